"""``status`` (and the console's overview, which calls it every 2 s) reads the last hour of ``drift`` and
``deadletter`` to its end, also when those topics end with a transaction's commit marker (the trainer writes them
in transactions): the marker is never delivered, so waiting for the last offset gave up only at the deadline and
every ``driftline status`` and ``/api/status`` took 20 s."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from connectors.kafka_client import client_config
from connectors.topics import ensure_topics
from driftline.settings import Settings
from driftline.util import now_ms
from schemas.codec import default_codec
from streams import status

pytestmark = pytest.mark.kafka


def test_a_topic_ending_with_a_commit_marker_is_read_to_its_end(settings: Settings) -> None:
    ensure_topics(settings, ("drift",))
    since = now_ms() - 1000
    event = {
        "model": "default",
        "version": 3,
        "detector": "adwin",
        "signal": "error",
        "ts": now_ms(),
        "details": {},
    }
    producer = Producer(client_config(settings, **{"transactional.id": f"{settings.kafka.topic_prefix}t"}))
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(settings.topic("drift"), default_codec().encode("DriftEvent", event), b"default")
    producer.commit_transaction(30)
    # strict: a read that gives up before the end raises instead of returning a part as if it were the whole
    read = status._read_since(settings, "drift", "DriftEvent", since, strict=True)
    assert [(r["model"], r["version"], r["signal"]) for r in read] == [("default", 3, "error")]
    assert status._recent_drift(settings, since)["by_signal"] == {"default adwin/error": 1}
