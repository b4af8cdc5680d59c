"""An event id is what a label joins on: a FeatureEvent or Label with an empty ``id`` is dead-lettered by the stage
that reads it (found from outside, session 28: both were accepted, and every empty-id event shared one join context,
so a label could be joined with another event's prediction). A negative ``ts`` is a valid long (event time before
1970) and is scored and joined like any other."""

from __future__ import annotations

from schemas.codec import default_codec
from streams.join import Joiner
from streams.score import Scorer
from tests.test_fuzz_stages import FakeProducer, _ctx, _NoModel, _ParkingStore, _raws

CODEC = default_codec()


def test_scorer_dead_letters_a_feature_event_with_an_empty_id() -> None:
    ctx = _ctx()
    batch = [
        CODEC.encode_json("FeatureEvent", {"id": "", "ts": 1, "features": {"x": 1.0}}),
        CODEC.encode("FeatureEvent", {"id": "", "ts": 1, "key": None, "features": {"x": 1.0}}),
        CODEC.encode_json("FeatureEvent", {"id": "a", "ts": -5_000, "features": {"x": 1.0}}),
        CODEC.encode_json("FeatureEvent", {"id": "b", "ts": -(2**63), "features": {"x": 1.0}}),
    ]
    scored = Scorer(ctx, _NoModel(), store=None).process(_raws("features", batch))  # type: ignore[arg-type]
    producer: FakeProducer = ctx.out  # type: ignore[assignment]
    assert [p["id"] for p in producer.on("predictions")] == ["a", "b"]
    assert [p["ts"] for p in producer.on("predictions")] == [-5_000, -(2**63)]
    assert len(scored.contexts) == 2
    dead = producer.on("deadletter")
    assert [d["offset"] for d in dead] == [0, 1]
    assert all("FeatureEvent.id: empty" in d["error"] for d in dead)


def test_joiner_dead_letters_a_label_with_an_empty_id() -> None:
    ctx = _ctx()
    batch = [
        CODEC.encode_json("Label", {"id": "", "ts": 1, "label": True}),
        CODEC.encode_json("Label", {"id": "a", "ts": -1, "label": True}),
    ]
    assert Joiner(ctx, _ParkingStore()).process(_raws("labels", batch)) == []  # type: ignore[arg-type]
    producer: FakeProducer = ctx.out  # type: ignore[assignment]
    dead = producer.on("deadletter")
    assert [d["offset"] for d in dead] == [0]
    assert "Label.id: empty" in dead[0]["error"]
