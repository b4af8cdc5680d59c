"""The overview's totals: records where the console reads the topic (``training``, ``deadletter``), end offsets
named as such elsewhere. Dead letters written in transactions (as the trainer writes them) take an offset each for
their commit markers: outside37 saw 7 dead letters shown with 6 on the topic."""

from __future__ import annotations

import time

import pytest

from connectors.producer import EventProducer
from connectors.topics import ensure_topics
from driftline.settings import Settings
from streams.console.overview import Overview
from streams.console.tail import TopicTail

pytestmark = pytest.mark.kafka


def _deadletter(i: int) -> dict[str, object]:
    return {
        "source_topic": "x",
        "partition": 0,
        "offset": i,
        "key": None,
        "value": b"junk",
        "error": "SchemaError: junk",
        "ts": 0,
        "stage": "train",
    }


def test_dead_letters_written_in_transactions_are_counted_as_records(settings: Settings) -> None:
    ensure_topics(settings, ("training", "drift", "deadletter", "features", "predictions"))
    producer = EventProducer(settings, **{"transactional.id": f"{settings.kafka.client_id}-test-dlq"})
    producer.init_transactions()
    for i in range(3):  # three transactions of two dead letters: 6 records, 9 offsets
        producer.begin()
        producer.send("deadletter", "DeadLetter", _deadletter(2 * i), "k")
        producer.send("deadletter", "DeadLetter", _deadletter(2 * i + 1), "k")
        producer.commit([], None)
    producer.flush()
    tail = TopicTail(settings, keep={"deadletter": 4}).start()  # keeps fewer than it counts
    overview = Overview(settings, records=tail.counts)
    try:
        deadline = time.monotonic() + 60
        while "deadletter" not in tail.counts() and time.monotonic() < deadline:
            time.sleep(0.2)
        rates = overview._rates()
        assert rates["deadletter"]["total"] == 6 and rates["deadletter"]["counts"] == "records"
        assert 0 < len(tail.snapshot("deadletter")) < 6  # kept: the last 4 offsets; counted: every record
        assert rates["training"] == {"total": 0, "counts": "records", "per_s": None}
        assert rates["features"]["counts"] == "offsets"
    finally:
        tail.stop()
        overview.close()
