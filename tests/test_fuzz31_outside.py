"""What session 31's outside fuzz campaign (docs/experiments/fuzz31.py) found, pinned without the broker.

Thousands of mutated records written to ``models`` (anyone who can write the topic can do it) made every command
that reads the registry (``status``, ``models list|show``, ``explain``, the console) print one WARNING line per
undecodable record on stderr (2,399 lines for one ``status``), and ``status`` print one line per forged release
(600 lines): the operator could not see what was wrong. Each now says it in one line, with the count.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import streams.releases
from driftline.settings import load_settings
from schemas.codec import default_codec
from streams.commands.status import render

CODEC = default_codec()


class _Msg:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes:
        return self._value

    def offset(self) -> int:
        return self._offset

    def partition(self) -> int:
        return 0


def _release(version: int) -> dict[str, Any]:
    return {
        "model": "default",
        "version": version,
        "parent": None,
        "created_at": 1,
        "reason": "initial",
        "metrics": {"n_learned": 0.0},
        "format": "pickle",
        "artifact": b"x",
        "artifact_ref": None,
        "sha256": "0" * 64,
        "signature": "0" * 64,
    }


def test_read_releases_sums_up_undecodable_records_in_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = CODEC.encode("ModelRelease", _release(1))
    msgs = [_Msg(good, 0)] + [_Msg(b"\xc3\x01garbage" + bytes([i % 256]), i) for i in range(1, 2001)]
    monkeypatch.setattr(streams.releases, "read_to_end", lambda *a, **k: iter(msgs))
    with caplog.at_level(logging.WARNING, logger="streams.releases"):
        out = streams.releases.read_releases(load_settings(environ={}))
    assert [r["version"] for r in out] == [1]
    warnings = [r for r in caplog.records if r.name == "streams.releases" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, f"{len(warnings)} warning lines"
    text = warnings[0].getMessage()
    assert "2000 undecodable record(s)" in text and "offsets 1-2000" in text and "first at offset 1" in text


def test_read_releases_names_a_single_undecodable_record(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(streams.releases, "read_to_end", lambda *a, **k: iter([_Msg(b"junk", 7)]))
    with caplog.at_level(logging.WARNING, logger="streams.releases"):
        assert streams.releases.read_releases(load_settings(environ={})) == []
    [warning] = [r for r in caplog.records if r.name == "streams.releases"]
    assert "1 undecodable record(s)" in warning.getMessage() and "offset 7" in warning.getMessage()


def _status(unverified: list[dict[str, Any]]) -> dict[str, Any]:
    model = {
        "model": "default",
        "served_version": 3,
        "releases": 3,
        "latest_release": None,
        "trainer": None,
        "unverified_releases": unverified,
    }
    return {
        "topic_prefix": "driftline.",
        "default_model": "default",
        "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
        "workers": [],
        "models": [model],
        "drift_last_hour": {"total": 0, "by_signal": {}},
    }


def test_status_text_sums_up_many_unverified_releases() -> None:
    forged = [{"version": v % 40, "reason": "signature" if v % 7 else "header"} for v in range(600)]
    text = render(_status(forged))
    lines = [line for line in text.splitlines() if "UNVERIFIED" in line]
    assert 1 <= len(lines) <= 6, "\n".join(lines)
    summary = lines[-1]
    assert "600 UNVERIFIED release record(s)" in summary
    assert "signature: 514" in summary and "header: 86" in summary
    assert "driftline models list --model default" in summary


def test_status_text_names_a_few_unverified_releases_one_by_one() -> None:
    forged = [{"version": 9, "reason": "signature"}, {"version": 4, "reason": "header"}]
    text = render(_status(forged))
    assert "UNVERIFIED release v9 (signature): ignored by scorers and trainer" in text
    assert "UNVERIFIED release v4 (header): ignored by scorers and trainer" in text
