"""The contract keys ``predictions`` by the event ``id`` (its table: predictions | Prediction | key ``id``), whatever
the FeatureEvent's own Kafka key was (the entity key, as in the README's ``kcat -k u1`` example). An outside check
of issue 4 found Predictions keyed by the input record's key: a consumer that looked a prediction up by its key, or
compacted the topic by it, met ``u1`` where the contract promises ``e1``."""

from __future__ import annotations

from schemas.codec import default_codec
from streams.score import Scorer
from tests.test_fuzz_stages import FakeProducer, _ctx, _NoModel, _raws

CODEC = default_codec()


def test_predictions_are_keyed_by_the_event_id_not_the_input_key() -> None:
    ctx = _ctx()
    batch = [
        CODEC.encode_json("FeatureEvent", {"id": "e1", "ts": 1, "key": "u1", "features": {"x": 1.0}}),
        CODEC.encode("FeatureEvent", {"id": "e2", "ts": 1, "key": "u1", "features": {"x": 2.0}}),
        CODEC.encode_json("FeatureEvent", {"id": "e3", "ts": 1, "key": None, "features": {"x": 3.0}}),
    ]
    raws = _raws("features", batch)  # every record keyed b"k" on the input topic
    Scorer(ctx, _NoModel(), store=None).process(raws)  # type: ignore[arg-type]
    producer: FakeProducer = ctx.out  # type: ignore[assignment]
    sent = [
        (CODEC.decode("Prediction", data)["id"], key)
        for t, data, key in producer.sent
        if t == "fuzz.predictions"
    ]
    assert [i for i, _ in sent] == ["e1", "e2", "e3"]
    for event_id, key in sent:
        assert (key.decode() if isinstance(key, bytes) else key) == event_id
