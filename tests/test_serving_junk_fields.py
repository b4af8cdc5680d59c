"""``read_serving`` skips a field of the scorers' hash that no scorer wrote instead of raising: ``status`` and
``models list`` read it, and junk in Redis must degrade them to "this field is ignored", not a traceback (review32:
``{"served": "x"}`` raised ValueError and ``{"at": Infinity}`` OverflowError out of ``driftline status``)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import streams.serving as serving
from driftline.settings import load_settings


class _Hash:
    def __init__(self, fields: dict[bytes, bytes]) -> None:
        self.fields = fields

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return self.fields

    def time(self) -> tuple[int, int]:
        now = time.time()
        return int(now), int(now % 1 * 1_000_000)


def _read(monkeypatch: pytest.MonkeyPatch, fields: dict[str, str]) -> dict[str, Any] | None:
    raw = {k.encode(): v.encode() for k, v in fields.items()}
    monkeypatch.setattr(serving, "redis_client", lambda *a, **k: _Hash(raw))
    monkeypatch.setattr(serving, "_READERS", {})  # read_serving reuses one client per URL
    return serving.read_serving(load_settings(environ={}), "default")


@pytest.mark.parametrize(
    "junk",
    [
        '{"served": "x", "at": NOW}',
        '{"served": [1], "at": NOW}',
        '{"served": 1, "at": Infinity}',
        '{"served": Infinity, "at": NOW}',
        '{"served": 1, "at": NOW, "refused": [{"version": 1e999, "reason": "load"}]}',
    ],
)
def test_a_junk_field_is_skipped_and_the_real_scorer_still_counts(
    monkeypatch: pytest.MonkeyPatch, junk: str
) -> None:
    now = str(int(time.time() * 1000))
    real = json.dumps({"served": 3, "at": int(now), "refused": []})
    got = _read(monkeypatch, {"host-1": real, "junk": junk.replace("NOW", now)})
    assert got is not None
    assert (got["scorers"], got["versions"], got["served_version"]) == (1, {"3": 1}, 3)
