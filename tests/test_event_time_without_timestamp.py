"""A JSON FeatureEvent or Label without ``ts`` whose Kafka message has no timestamp either (-1: a client that set
none, an old message format; the consumer gives 0 in ``RawRecord.timestamp_ms``).

Decided (README, "Event time"): there is no time in the record every reader could agree on, so the stage that
reads it stamps its own clock once, and that stamp travels: the scorer's into the Prediction's ``ts`` and from its
join context into the TrainingExample's ``event_ts``; the joiner's into ``label_ts``. Not dead-lettered (the
contract lets a JSON producer leave ``ts`` out) and not 0 or -1 (label delays of 56 years). Other readers
(``tail``) show their own clock for such a record. With a Kafka timestamp, every reader gets that.
"""

from __future__ import annotations

import time

from driftline.settings import load_settings
from schemas.codec import default_codec
from streams.join import build_training_example
from streams.metrics import build_metrics
from streams.runtime import RawRecord, WorkerContext
from streams.score import Scorer
from tests.test_fuzz_stages import FakeProducer
from tests.test_score_batch import _Follower, _model

CODEC = default_codec()


def test_the_scorer_stamps_its_read_time_once_and_the_training_example_carries_it() -> None:
    settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "t6."})
    ctx = WorkerContext(settings, CODEC, build_metrics(), FakeProducer())
    scorer = Scorer(ctx, _Follower(_model("logistic_regression")), store=None)  # type: ignore[arg-type]
    untimed = b'{"id": "no-time", "features": {"a": 1.0, "b": 0.5}}'
    timed = b'{"id": "kafka-time", "features": {"a": 1.0, "b": 0.5}}'
    before = int(time.time() * 1000)
    scored = scorer.process(
        [
            RawRecord("t6.features", 0, 0, b"k", untimed, 0),  # no Kafka timestamp
            RawRecord("t6.features", 0, 1, b"k", timed, 1_700_000_000_123),
        ]
    )
    after = int(time.time() * 1000)
    predictions = {p["id"]: p for p in ctx.out.on("predictions")}  # type: ignore[attr-defined]
    assert before <= predictions["no-time"]["ts"] <= after
    assert predictions["kafka-time"]["ts"] == 1_700_000_000_123
    # The join context is the Prediction as published: the TrainingExample's event_ts is that one stamp.
    contexts = {id_: CODEC.decode("Prediction", context) for id_, context in scored.contexts}
    assert contexts["no-time"]["ts"] == predictions["no-time"]["ts"]
    time.sleep(0.01)
    label = CODEC.decode("Label", b'{"id": "no-time", "label": "up"}', allow_json=True, timestamp=0)
    example = build_training_example(contexts["no-time"], label)
    assert example["event_ts"] == predictions["no-time"]["ts"] < example["label_ts"]
