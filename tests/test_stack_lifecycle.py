"""A second, private stack on free ports: up, status, idempotent up, down, up again from nothing, down.

Also checks that a stack never signals servers it did not start (the shared test stack stays up).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.localproc import free_port, process_cmdline
from connectors.stack import StackConfig, StackStatus, stack_down, stack_status, stack_up

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _roundtrip(cfg: StackConfig) -> None:
    """Create a topic, produce and consume one record; write and read a Redis key."""
    topic = f"t-{uuid.uuid4().hex[:8]}.roundtrip"
    admin = AdminClient({"bootstrap.servers": cfg.kafka_address})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": cfg.kafka_address})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": cfg.kafka_address, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        msg = None
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                break
        assert msg is not None and msg.value() == b"hello"
    finally:
        consumer.close()
    client = redis.Redis(host=cfg.host, port=cfg.redis_port)
    client.set("t:stack", "1")
    assert client.get("t:stack") == b"1"
    client.close()


def _assert_ours(status: StackStatus) -> None:
    assert status.up
    assert (status.kafka.state, status.redis.state) == ("up", "up")
    assert status.kafka.pid and "kafka.Kafka" in process_cmdline(status.kafka.pid)
    assert status.redis.pid and "redis-server" in process_cmdline(status.redis.pid)[0]


def test_second_stack_up_down_up(tmp_path: Path) -> None:
    cfg = StackConfig(
        state_dir=tmp_path / "stack",
        kafka_port=free_port(),
        controller_port=free_port(),
        redis_port=free_port(),
    )
    try:
        first = stack_up(cfg, timeout_s=120)
        _assert_ours(first)
        assert stack_status(cfg) == first
        again = stack_up(cfg)  # idempotent: same processes
        assert (again.kafka.pid, again.redis.pid) == (first.kafka.pid, first.redis.pid)
        _roundtrip(cfg)
        assert (cfg.redis_dir / "appendonlydir").is_dir()
        assert (cfg.kafka_dir / "data" / "meta.properties").exists()
        assert (cfg.kafka_dir / "logs" / "server.log").stat().st_size > 0

        assert stack_down(cfg) == {"kafka": True, "redis": True}
        down = stack_status(cfg)
        assert (down.kafka.state, down.redis.state, down.up) == ("down", "down", False)
        assert process_cmdline(first.kafka.pid or 0) == []
        assert stack_down(cfg) == {"kafka": False, "redis": False}

        shutil.rmtree(cfg.state_dir)  # up again from nothing: fresh KRaft format, fresh Redis dir
        second = stack_up(cfg, timeout_s=120)
        _assert_ours(second)
        _roundtrip(cfg)
    finally:
        stack_down(cfg)
    assert not stack_status(cfg).up


def test_reuses_and_never_stops_servers_it_did_not_start(stack: StackStatus, tmp_path: Path) -> None:
    # The shared test stack answers on its ports; a stack in another state dir sees it as external. Its ports, not
    # the defaults: with DRIFTLINE_TEST_KAFKA elsewhere and 9092 free, this test started (and stopped) a broker on
    # 9092 and a Redis on 6379 under whoever uses them (found by outside10).
    cfg = StackConfig(
        state_dir=tmp_path / "stack",
        kafka_port=int(stack.kafka.address.rpartition(":")[2]),
        redis_port=int(stack.redis.address.rpartition(":")[2]),
    )
    status = stack_up(cfg)
    try:
        assert (status.kafka.state, status.redis.state) == ("external", "external")
        assert status.kafka.pid is None and status.redis.pid is None
    finally:
        # A server this test started (the shared stack is elsewhere, DRIFTLINE_TEST_KAFKA) must not outlive it:
        # a Redis left on 6379 in a deleted folder cannot save and refuses to stop.
        stopped = stack_down(cfg)
    assert stopped == {"kafka": False, "redis": False}
    assert stack_status(cfg).up
    assert not (cfg.kafka_dir / "kafka.pid").exists()
