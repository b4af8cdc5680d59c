"""``driftline stack up|down`` on a private stack (free ports, tmp state): up creates the contract's topics on a
fresh broker; down refuses while a consumer group is active on it and stops it once nobody is connected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from connectors.localproc import free_port, port_bindable
from connectors.stack import StackConfig, stack_down, stack_status
from connectors.topics import ALL_TOPICS

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _ports() -> tuple[int, int, int]:
    for _ in range(50):
        kafka = free_port()
        if kafka < 65535 and port_bindable("127.0.0.1", kafka + 1):
            return kafka, kafka + 1, free_port()
    raise AssertionError("no two adjacent free ports")


def test_stack_up_creates_topics_and_down_waits_for_consumers(tmp_path: Path) -> None:
    kafka, controller, redis_port = _ports()
    cfg = StackConfig(tmp_path / "stack", kafka_port=kafka, controller_port=controller, redis_port=redis_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    ports = ["--state-dir", str(tmp_path), "--kafka-port", str(kafka), "--controller-port", str(controller),
             "--redis-port", str(redis_port)]  # fmt: skip

    def stack(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "streams.cli", "--topic-prefix", "mine.", "stack", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)

    try:
        up = stack("up", *ports, "--json")
        assert up.returncode == 0, up.stderr
        data = json.loads(up.stdout)
        assert data["kafka"]["note"] == "started" and data["kafka"]["address"] == f"127.0.0.1:{kafka}"
        assert data["topics"] == {"prefix": "mine.", "created": list(ALL_TOPICS), "present": list(ALL_TOPICS)}

        consumer = Consumer({"bootstrap.servers": cfg.kafka_address, "group.id": "my-service"})
        consumer.subscribe(["mine.predictions"])
        for _ in range(60):
            consumer.poll(0.5)
            if consumer.assignment():
                break
        assert consumer.assignment(), "the consumer never joined its group"

        refused = stack("down", *ports)
        assert refused.returncode == 1
        assert f"Kafka at {cfg.kafka_address} still has active consumer groups: my-service" in refused.stderr
        assert "--force" in refused.stderr
        assert stack_status(cfg).up  # nothing was stopped

        consumer.close()  # leaves the group
        down = stack("down", *ports, "--json")
        assert down.returncode == 0, down.stderr
        after = json.loads(down.stdout)
        assert (after["kafka"]["state"], after["redis"]["state"]) == ("down", "down")
        assert after["kafka"]["note"].startswith("stopped pid")
    finally:
        stack_down(cfg)
    assert not stack_status(cfg).up
