"""`status` and `doctor` say when the cluster is degraded: a broker that replicas name does not answer, partitions
whose in-sync replicas are fewer than their replicas, partitions without a leader.

Found from outside (session 29): with one of three brokers killed, and then another stopped so that writes with
``acks=all`` could not reach ``min.insync.replicas``, ``status`` printed "kafka ... up" (and "workers: none seen"
while the group coordinator was the stopped broker) and ``doctor`` said every check was ok. The metadata every
client already gets names the replicas and the in-sync ones; these tests feed that shape without a cluster.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from connectors.kafka_view import replication_health
from streams.commands.doctor import check_replication
from streams.commands.status import render


def _metadata(brokers: list[int], partitions: dict[str, list[tuple[int, list[int], list[int]]]]) -> Any:
    """A ClusterMetadata-like object: topic -> [(leader, replicas, isrs) per partition]."""
    return SimpleNamespace(
        brokers={b: SimpleNamespace(id=b) for b in brokers},
        topics={
            topic: SimpleNamespace(
                partitions={
                    i: SimpleNamespace(id=i, leader=leader, replicas=replicas, isrs=isrs)
                    for i, (leader, replicas, isrs) in enumerate(parts)
                },
                error=None,
            )
            for topic, parts in partitions.items()
        },
    )


HEALTHY = _metadata(
    [1, 2, 3],
    {
        "p.features": [(1, [1, 2, 3], [1, 2, 3]), (2, [2, 3, 1], [2, 3, 1])],
        "p.models": [(3, [3, 1, 2], [3, 1, 2])],
        "other.features": [(1, [1], [1])],
    },
)
# broker 3 killed: leadership moved, its replicas left the ISR; other.features is not this prefix's
DEGRADED = _metadata(
    [1, 2],
    {
        "p.features": [(1, [1, 2, 3], [1, 2]), (2, [2, 3, 1], [2, 1])],
        "p.models": [(1, [3, 1, 2], [1])],
        "p.drift": [(-1, [3], [3])],
        "other.features": [(1, [1, 3], [1])],
    },
)


# The start of a `status --json` object with both servers up (render() reads the rest).
_STATUS_UP: dict[str, Any] = {
    "topic_prefix": "p.",
    "default_model": "default",
    "stack": {
        "up": True,
        "kafka": {"address": "127.0.0.1:1", "up": True, "state": "up"},
        "redis": {"address": "127.0.0.1:2", "up": True, "state": "up"},
    },
}


def test_a_healthy_cluster_has_nothing_to_report() -> None:
    health = replication_health(HEALTHY, "p.")
    assert health == {"brokers": [1, 2, 3], "missing_brokers": [], "under_replicated": {}, "offline": {}}
    assert check_replication(health).status == "ok"


def test_a_dead_broker_under_replicated_and_offline_partitions_are_named() -> None:
    health = replication_health(DEGRADED, "p.")
    assert health["brokers"] == [1, 2]
    assert health["missing_brokers"] == [3]
    assert health["under_replicated"] == {"p.features": [0, 1], "p.models": [0]}
    assert health["offline"] == {"p.drift": [0]}
    check = check_replication(health)
    assert check.status == "warn"
    assert "broker 3" in check.detail and "p.drift" in check.detail and "p.models" in check.detail


def test_status_renders_the_degraded_cluster_next_to_kafka() -> None:
    status = {
        **_STATUS_UP,
        "kafka_replication": replication_health(DEGRADED, "p."),
        "workers": [],
        "models": [],
        "drift_last_hour": {"total": 0, "by_signal": {}},
        "deadletters_last_hour": {"total": 0, "by_reason": {}},
    }
    text = render(status)
    kafka_line = next(line for line in text.splitlines() if line.strip().startswith("kafka"))
    assert "degraded" in kafka_line
    assert "broker 3" in text
    assert "under-replicated" in text and "without a leader" in text
    status["kafka_replication"] = replication_health(HEALTHY, "p.")
    assert "degraded" not in render(status)


class _Listing:
    """What ``AdminClient.list_consumer_groups().result()`` gives when a broker does not answer in time."""

    def __init__(self, valid: list[str], errors: list[str]) -> None:
        self.valid = [SimpleNamespace(group_id=g) for g in valid]
        self.errors = errors


class _Admin:
    def __init__(self, listing: _Listing) -> None:
        self.listing = listing

    def list_consumer_groups(self, request_timeout: float) -> Any:
        return SimpleNamespace(result=lambda: self.listing)


def _view(listing: _Listing) -> Any:
    from connectors.kafka_view import KafkaView
    from driftline.settings import load_settings

    view = KafkaView(load_settings(environ={"DRIFTLINE_TOPIC_PREFIX": "p."}), timeout=1.0)
    view._admin = _Admin(listing)  # type: ignore[assignment]
    return view


def test_groups_that_could_not_be_listed_are_not_reported_as_no_workers() -> None:
    # A broker stopped (SIGSTOP): list_consumer_groups answered no group and one timeout. status said "none seen for
    # this prefix (start one with 'driftline worker')" while three workers were running.
    view = _view(_Listing([], ['KafkaError{code=_TIMED_OUT,val=-185,str="Local: Timed out"}']))
    assert view.group_ids() == []
    assert view.group_errors and "Timed out" in view.group_errors[0]
    status = {
        **_STATUS_UP,
        "workers": [],
        "workers_errors": view.group_errors,
        "models": [],
        "drift_last_hour": {"total": 0, "by_signal": {}},
        "deadletters_last_hour": {"total": 0, "by_reason": {}},
    }
    text = render(status)
    assert "none seen" not in text
    assert "could not be listed" in text and "Timed out" in text
    complete = _view(_Listing(["driftline-p.default-score"], []))
    assert complete.group_ids() == ["driftline-p.default-score"]
    assert complete.group_errors == []


# Every broker answers again (a killed node came back), its replicas still copying what they missed: the ISR is
# short although no broker is missing.
CATCHING_UP = _metadata(
    [1, 2, 3],
    {
        "p.features": [(1, [1, 2, 3], [1, 2]), (2, [2, 3, 1], [2, 3, 1])],
        "p.models": [(1, [3, 1, 2], [1, 2])],
    },
)


def test_status_exits_1_while_the_replicas_of_a_returned_node_catch_up(monkeypatch: Any) -> None:
    # fault40, session 40: right after a killed node of three was back, `status` listed 10 under-replicated
    # partitions in `kafka_replication` and exited 0, as if the cluster were whole.
    import argparse

    import streams.commands.status as status_command

    status = {
        **_STATUS_UP,
        "kafka_replication": replication_health(CATCHING_UP, "p."),
        "workers": [],
        "models": [],
        "drift_last_hour": {"total": 0, "by_signal": {}},
        "deadletters_last_hour": {"total": 0, "by_reason": {}},
    }
    monkeypatch.setattr(status_command, "collect_status", lambda settings, all_prefixes: status)
    args = argparse.Namespace(json=False, all_prefixes=False, model=None)
    assert status_command.run(args) == 1
    text = render(status)
    assert "2 partition(s) under-replicated (catching up" in text and "p.features 0; p.models 0" in text
    assert "up, degraded" in next(line for line in text.splitlines() if line.strip().startswith("kafka"))
    status["kafka_replication"] = replication_health(HEALTHY, "p.")
    assert status_command.run(args) == 0
