"""Junk in the trainer's status hash (a hand edit, another program writing the same Redis key) is read as the
field's default and named, not a traceback from ``driftline status``, ``models`` or the console (review33)."""

from __future__ import annotations

import pytest

import streams.trainer_status as ts
from driftline.settings import load_settings


class Stub:
    def __init__(self, raw: dict[bytes, bytes]) -> None:
        self.raw = raw

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        return self.raw


GOOD = {b"n_learned": b"40", b"served_version": b"3", b"updated_at": b"5", b"metrics": b'{"overall.n": 41}'}


@pytest.mark.parametrize(
    ("field", "junk"),
    [
        (b"updated_at", b"yesterday"),
        (b"n_learned", b"4.5"),
        (b"served_version", b"\xff\xfe"),
        (b"metrics", b"not json"),
        (b"metrics", b'{"overall.n": "many"}'),
        (b"settings", b"[1, 2]"),
        (b"held_examples", b""),
    ],
)
def test_a_junk_field_is_read_as_its_default_and_named(monkeypatch, field: bytes, junk: bytes) -> None:
    raw = {**GOOD, field: junk}
    monkeypatch.setattr(ts, "redis_client", lambda *a: Stub(raw))
    live = ts.trainer_status(load_settings(environ={}))
    assert live is not None
    name = field.decode()
    if junk == b"":  # an empty field is the default, not damage
        assert live["damaged"] == []
        return
    assert live["damaged"] == [name]
    for other, value in (("n_learned", 40), ("served_version", 3), ("updated_at", 5)):
        if other != name:
            assert live[other] == value


def test_status_names_the_damaged_fields(monkeypatch) -> None:
    from tests.status_helpers import render_status

    raw = {**GOOD, b"updated_at": b"yesterday"}
    monkeypatch.setattr(ts, "redis_client", lambda *a: Stub(raw))
    model, text = render_status(monkeypatch, served=3)  # the trainer's status read from the stub above
    assert model["trainer"]["damaged"] == ["updated_at"] and model["trainer"]["n_learned"] == 40
    assert "DAMAGED (fields updated_at" in text
