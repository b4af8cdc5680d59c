"""`status` on a local cluster with a node down shows the pipeline, not "Kafka is down" (found from outside, helper
brk39, session 39: one node of a `stack up --brokers 3` cluster killed -9 under a running pipeline, which went on
scoring and learning; `status` printed kafka DOWN, "Kafka is down: start it with 'driftline stack up'", no worker,
lag, model or replication, for the whole outage).

The broker is real (the test stack); the local stack's view of it is the one `stack_status` gives for a three-node
cluster with one node down, as in the run."""

from __future__ import annotations

from typing import Any

import pytest

import streams.status as status_module
from connectors.topics import ensure_topics
from driftline.settings import Settings
from streams.commands.status import render

pytestmark = [pytest.mark.kafka]


def _one_node_down(settings: Settings) -> dict[str, Any]:
    addresses = settings.kafka.bootstrap
    return {
        "up": False,
        "kafka": {
            "address": addresses,
            "detail": "2/3 brokers answer, active controller kafka-2",
            "pid": None,
            "state": "degraded",
            "up": False,
        },
        "kafka_nodes": [
            {
                "address": "127.0.0.1:1",
                "name": "kafka-1",
                "pid": None,
                "state": "down",
                "up": False,
                "detail": "",
            },
        ],
        "redis": {"address": "127.0.0.1:6379", "detail": "", "pid": None, "state": "up", "up": True},
    }


def test_status_shows_workers_models_and_replication_while_a_node_of_the_cluster_is_down(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_topics(settings)
    monkeypatch.setattr(status_module, "_stack", _one_node_down)
    status = status_module.collect_status(settings)
    assert "workers" in status and "models" in status, "status gave up as if Kafka were down"
    assert "kafka_replication" in status
    text = render(status)
    kafka_line = next(line for line in text.splitlines() if line.strip().startswith("kafka"))
    assert "up, degraded (2/3 brokers answer" in kafka_line
    assert "Kafka is down" not in text and "workers (consumer groups)" in text


def test_a_cluster_with_every_node_down_is_still_down(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def all_down(s: Settings) -> dict[str, Any]:
        stack = _one_node_down(s)
        stack["kafka"].update(state="down", detail="")
        return stack

    monkeypatch.setattr(status_module, "_stack", all_down)
    status = status_module.collect_status(settings)
    assert "workers" not in status
    assert "Kafka is down" in render(status)
