"""Undecodable and invalid records on the input topics: each goes to ``deadletter`` with its bytes, coordinates
and a reason, the dead-letter counter rises by one, and the workers keep scoring and joining the good records
around it (dead letters + processed == input).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from schemas.codec import MAGIC, default_codec
from tests.fault_helpers import (
    SCHEMAS,
    Outcome,
    avro_with,
    check_joins,
    make_events,
    publish,
    running_all,
    training_in_order,
)
from tests.pipeline_helpers import Pipeline, distinct_ids

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running_all(Pipeline(prefix, tmp_path, redis_url)) as p:
        yield p


def bad_features() -> list[tuple[str, bytes]]:
    """``(expected reason, bytes)`` for the features topic."""
    codec = default_codec()
    good = codec.encode("FeatureEvent", {"id": "bad-0", "ts": 1, "key": None, "features": {"x1": 0.5}})
    rng = random.Random(5)
    nan_avro = avro_with(
        SCHEMAS / "FeatureEvent.avsc", {"id": "bad-nan", "ts": 1, "key": None, "features": {"x1": math.nan}}
    )
    huge = json.dumps({"id": "bad-huge", "ts": 1, "features": {"blob": "a" * (2 << 20)}}).encode()
    return [
        ("truncated Avro body", good[: len(good) // 2]),
        ("truncated Avro header", good[:6]),
        ("not Avro single-object encoding", b"\x00\x13" + bytes(rng.randrange(256) for _ in range(200))),
        ("unknown writer schema fingerprint", MAGIC + b"\x01\x02\x03\x04\x05\x06\x07\x08" + good[10:]),
        ("message holds a Label", codec.encode("Label", {"id": "bad-1", "ts": 1, "label": True})),
        ("expected long", b'{"id": "bad-2", "ts": "yesterday", "features": {"x1": 1.0}}'),
        ("features: required field is missing", b'{"id": "bad-3", "ts": 1}'),
        ("id: required field is missing", b'{"ts": 1, "features": {"x1": 1.0}}'),
        ("NaN is not allowed", b'{"id": "bad-4", "ts": 1, "features": {"x1": NaN}}'),
        ("inf is not allowed", b'{"id": "bad-5", "ts": 1, "features": {"x1": -Infinity}}'),
        ("inf is not allowed", b'{"id": "bad-6", "ts": 1, "features": {"x1": 1e999}}'),
        ("NaN is not allowed", nan_avro),
        (
            "expected null | boolean | long | double | string",
            b'{"id": "bad-7", "ts": 1, "features": {"x": [1]}}',
        ),
        ("invalid JSON", b'{"id": "bad-8", "ts": 1, "features": {'),
        ("empty message", b""),
        ("exceeds the limit", huge),
        # An id over 1,024 bytes (sec35 F7: a 900 KB id was refused only by the broker, on predictions).
        (
            "id of 900000 bytes is over the limit of 1024 bytes",
            avro_with(
                SCHEMAS / "FeatureEvent.avsc", {"id": "x" * 900_000, "ts": 1, "key": None, "features": {}}
            ),
        ),
        (
            "id of 1100 bytes is over the limit",
            b'{"id": "' + b"y" * 1100 + b'", "ts": 1, "features": {"x1": 1.0}}',
        ),
    ]


def bad_labels() -> list[tuple[str, bytes]]:
    return [
        ("not Avro single-object encoding", b"\x07garbage label"),
        ("label", b'{"id": "e-00001", "ts": 1, "label": [true]}'),
        ("NaN is not allowed", b'{"id": "e-00002", "ts": 1, "label": NaN}'),
        ("id: required field is missing", b'{"ts": 1, "label": true}'),
        # A label whose id is over 1,024 bytes could never join (no FeatureEvent has it); it waited in Redis.
        (
            "id of 900000 bytes is over the limit of 1024 bytes",
            avro_with(SCHEMAS / "Label.avsc", {"id": "z" * 900_000, "ts": 1, "label": True}),
        ),
        (
            "id of 1200 bytes is over the limit",
            ('{"id": "' + "é" * 600 + '", "ts": 1, "label": true}').encode(),
        ),
    ]


def send_raw_big(pipeline: Pipeline, topic: str, values: list[bytes]) -> None:
    """Raw bytes through a producer that compresses and allows records over 1 MiB (the broker limit applies to
    the compressed batch), so a huge record really reaches the topic."""
    settings = pipeline.settings()
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "message.max.bytes": 10_000_000,
            "compression.type": "lz4",
        }
    )
    errors: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for value in values:
        producer.produce(settings.topic(topic), value, b"bad", on_delivery=delivered)
    assert producer.flush(60) == 0 and not errors, f"raw records not delivered: {errors}"


def test_bad_records_are_dead_lettered_and_workers_keep_running(pipeline: Pipeline) -> None:
    pipeline.start("score", "join", "train")
    events = make_events(400)
    feats, labels = bad_features(), bad_labels()
    publish(pipeline, events[:200])
    send_raw_big(pipeline, "features", [v for _, v in feats])
    pipeline.send_raw("labels", [v for _, v in labels], key=b"bad")
    publish(pipeline, events[200:])
    ids = {e.id for e in events}

    pipeline.wait_until(
        "every good event predicted", lambda: ids <= distinct_ids(pipeline.values("predictions")), 90
    )
    pipeline.wait_learned(len(events))
    settings = pipeline.settings()
    pipeline.wait_until(
        "every bad record dead-lettered",
        lambda: len(pipeline.values("deadletter")) >= len(feats) + len(labels),
        60,
    )
    dead = pipeline.values("deadletter")
    pipeline.assert_alive()

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for d in dead:
        by_topic.setdefault(d["source_topic"], []).append(d)
    for topic, expected in (("features", feats), ("labels", labels)):
        got = by_topic.get(settings.topic(topic), [])
        assert len(got) == len(expected), f"{topic}: {len(got)} dead letters for {len(expected)} bad records"
        allowed = {v for _, v in expected} | {v[:65536] for _, v in expected}
        for reason, value in expected:
            match = [d for d in got if reason in d["error"] and d["value"] in (value, value[:65536])]
            assert len(match) >= 1, (
                f"{topic}: no dead letter for {reason!r}; errors: {[d['error'] for d in got]}"
            )
        for d in got:
            assert d["offset"] >= 0 and d["partition"] >= 0 and d["error"]
            assert d["value"] in allowed, f"{topic}: dead letter carries bytes that were never sent"
        # The counter says the same as the topic.
        counted = pipeline.metric_sum("driftline_deadletters_total", source_topic=settings.topic(topic))
        assert counted == len(expected), f"{topic}: deadletters_total = {counted}, expected {len(expected)}"

    # Dead letters + processed == input, and nothing bad reached the outputs.
    predictions = pipeline.values("predictions")
    assert distinct_ids(predictions) == ids
    assert len(distinct_ids(predictions)) + len(by_topic[settings.topic("features")]) == len(events) + len(
        feats
    )
    training = training_in_order(pipeline)
    assert distinct_ids(training) == ids
    assert pipeline.labels_learned() == len(events)
    check_joins(Outcome(predictions, training, dead, []), events)
