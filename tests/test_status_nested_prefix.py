"""``status`` for prefix P lists P's worker groups, not those of a prefix P's own name starts (P + ``ext.``):
group ids are matched by prefix, so ``driftline-P`` also took ``driftline-Pext.default-join``, shown with its lag
on ``ext.labels`` as if it were P's (outside, session 29)."""

from __future__ import annotations

import dataclasses

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.topics import ensure_topics
from driftline.settings import Settings
from streams.status import collect_status
from tests.pipeline_helpers import KAFKA_BOOTSTRAP

pytestmark = pytest.mark.kafka


def _commit(group: str, topic: str) -> None:
    consumer = Consumer(
        {"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": group, "enable.auto.commit": False}
    )
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    finally:
        consumer.close()


def test_status_leaves_out_the_groups_of_a_longer_prefix(settings: Settings) -> None:
    prefix = settings.kafka.topic_prefix
    nested = dataclasses.replace(
        settings, kafka=dataclasses.replace(settings.kafka, topic_prefix=prefix + "ext.")
    )
    ensure_topics(settings, ("labels",))
    ensure_topics(nested, ("labels",))
    _commit(f"driftline-{prefix}default-join", f"{prefix}labels")
    _commit(f"driftline-{prefix}ext.default-join", f"{prefix}ext.labels")

    groups = {g["group"] for g in collect_status(settings)["workers"]}
    assert groups == {f"driftline-{prefix}default-join"}
    nested_groups = {g["group"] for g in collect_status(nested)["workers"]}
    assert nested_groups == {f"driftline-{prefix}ext.default-join"}
    every = {g["group"] for g in collect_status(settings, all_prefixes=True)["workers"]}
    assert {f"driftline-{prefix}default-join", f"driftline-{prefix}ext.default-join"} <= every
