"""A scorer's release follower that finds Kafka away follows again once it answers (found from outside, helper
brk39, session 39: a score worker restarted while two of three nodes were down logged ``models follower for every
model stopped`` with ``Failed to get watermark offsets: Local: Timed out``; the follower thread was gone for good and
the scorer served null predictions, ``no release of default on the models topic yet``, whatever was released).

The broker is real; the outage is injected where the run met it: the follower's first consumer fails to read the
topic's ends, as it does while the controllers' majority is down."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from prometheus_client import CollectorRegistry

import streams.releases as releases_module
from connectors.producer import EventProducer
from connectors.topics import ensure_topics
from driftline.settings import Settings
from streams.metrics import build_metrics
from streams.releases import ReleaseFollower
from tests.test_score_start_backlog import MODEL, releases

pytestmark = [pytest.mark.kafka]


class AwayOnce:
    """A real consumer whose first ``get_watermark_offsets`` times out, as with Kafka's quorum away."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    def get_watermark_offsets(self, *args: Any, **kwargs: Any) -> Any:
        raise KafkaException(
            KafkaError(KafkaError._TIMED_OUT, "Failed to get watermark offsets: Local: Timed out")
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def test_a_follower_that_finds_kafka_away_follows_again_and_loads_the_release(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_topics(settings)
    with EventProducer(settings) as producer:
        for record in releases(settings, 3):
            producer.send("models", "ModelRelease", record, MODEL)
    made: list[Any] = []
    real = releases_module._consumer

    def consumer(settings: Settings, group: str) -> Any:
        c = real(settings, group)
        made.append(c if made else AwayOnce(c))
        return made[-1]

    monkeypatch.setattr(releases_module, "_consumer", consumer)
    monkeypatch.setattr(releases_module, "FOLLOW_RETRY_S", 0.2)
    metrics = build_metrics(CollectorRegistry())
    follower = ReleaseFollower(settings, metrics)
    follower.start()
    try:
        assert follower.first_loaded.wait(60), (
            "the follower stopped when Kafka did not answer, and never loaded v3"
        )
        loaded = follower.take()
        assert loaded is not None and loaded.version == 3
        assert len(made) == 2
    finally:
        follower.stop()
