"""``driftline bench`` removes what its run created: topics, Redis keys and consumer groups (real broker)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.env import BenchEnv
from driftline.settings import Settings

pytestmark = pytest.mark.kafka


def _groups(admin: AdminClient) -> set[str]:
    return {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}


def test_close_deletes_the_runs_topics_and_consumer_groups(settings: Settings, prefix: str) -> None:
    """Each bench run left its score, join, trainer and hand-written-loop groups on the broker (six per run)."""
    bootstrap = settings.kafka.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"{prefix}lr.features"
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result()
    # As the run's workers and its naive loop name theirs.
    groups = [f"driftline-{prefix}lr.score-lr-score", f"{prefix}lr.naive-1"]
    for group in groups:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        consumer.close()
    assert set(groups) <= _groups(admin)
    env = BenchEnv(settings, prefix=prefix)
    env.close()
    assert topic not in admin.list_topics(timeout=10).topics
    assert not set(groups) & _groups(admin)
