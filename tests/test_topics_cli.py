"""``driftline topics create|list|describe`` and the topics ``driftline stack up`` creates, against the real broker.

Includes the issue's done-criterion: right after ``driftline stack up`` a plain client (confluent-kafka standing
in for kcat) publishes a JSON event on ``<prefix>features`` and ``driftline tail features`` reads it back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.localproc import free_port
from connectors.topics import ALL_TOPICS, check_topics
from driftline.settings import Settings
from tests.conftest import REDIS_URL
from tests.pipeline_helpers import KAFKA_BOOTSTRAP

pytestmark = pytest.mark.kafka

BOOTSTRAP = KAFKA_BOOTSTRAP


def _run(prefix: str, *args: str, bootstrap: str = BOOTSTRAP) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    cmd = [sys.executable, "-m", "streams.cli", "--bootstrap", bootstrap, "--topic-prefix", prefix, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


def _json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_dry_run_changes_nothing_then_create_is_idempotent(prefix: str, settings: Settings) -> None:
    plan = _json(_run(prefix, "topics", "create", "--dry-run", "--json"))
    assert plan["dry_run"] is True and plan["bootstrap"] == BOOTSTRAP
    assert [t["topic"] for t in plan["topics"]] == list(ALL_TOPICS)
    assert {t["action"] for t in plan["topics"]} == {"would_create"}
    assert not any(c.exists for c in check_topics(settings))  # the dry run created nothing

    created = _json(_run(prefix, "topics", "create", "--json"))
    assert {t["action"] for t in created["topics"]} == {"created"}
    checks = {c.topic: c for c in check_topics(settings)}
    assert all(c.status == "ok" for c in checks.values()), {n: c.differences for n, c in checks.items()}
    assert checks["models"].config["cleanup.policy"] == "compact"
    assert checks["control"].config["cleanup.policy"] == "compact"
    assert checks["changelog"].config["cleanup.policy"] == "compact"
    assert checks["audit"].config == {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "retention.bytes": "-1",
    }
    assert checks["features"].partitions == settings.kafka.partitions
    assert checks["models"].partitions == checks["audit"].partitions == 1
    by_model = {checks[n].partitions for n in ("training", "control", "changelog")}
    assert by_model == {settings.kafka.training_partitions}

    again = _json(_run(prefix, "topics", "create", "--json"))
    assert {t["action"] for t in again["topics"]} == {"exists"}
    listed = _json(_run(prefix, "topics", "list", "--json"))
    assert {t["status"] for t in listed["topics"]} == {"ok"}
    assert _run(prefix, "topics", "describe").returncode == 0


def test_describe_names_what_differs_and_create_leaves_it_alone(prefix: str, settings: Settings) -> None:
    # A models topic made by hand, wrongly: deleting instead of compacting, and three partitions.
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    name = f"{prefix}models"
    admin.create_topics([NewTopic(name, 3, 1, config={"cleanup.policy": "delete"})])[name].result(30)

    described = _run(prefix, "topics", "describe", "models", "features", "--json")
    assert described.returncode == 1, described.stderr
    rows = {t["topic"]: t for t in json.loads(described.stdout)["topics"]}
    assert rows["features"]["status"] == "missing"
    assert rows["models"]["status"] == "differs"
    diffs = {d["field"]: d for d in rows["models"]["differences"]}
    assert diffs["cleanup.policy"] == {
        "field": "cleanup.policy",
        "expected": "compact",
        "actual": "delete",
        "severity": "error",
    }
    assert (diffs["partitions"]["expected"], diffs["partitions"]["actual"]) == ("1", "3")

    text = _run(prefix, "topics", "create")  # creates what is missing; fails on what breaks the contract
    assert text.returncode == 1, text.stderr
    assert f"{name}: break the contract" in text.stderr
    assert f"exists       {name}  (differs)" in text.stdout
    assert "cleanup.policy is delete, the contract says compact" in text.stdout
    check = {c.topic: c for c in check_topics(settings)}
    assert check["models"].partitions == 3  # never altered
    assert check["features"].status == "ok"  # the missing ones were created


def test_unreachable_broker_is_named(prefix: str) -> None:
    address = f"127.0.0.1:{free_port()}"
    proc = _run(prefix, "topics", "list", "--timeout", "2", bootstrap=address)
    assert proc.returncode == 1
    assert f"cannot reach Kafka at {address}" in proc.stderr
    assert "Connect to" not in proc.stderr.split("error:")[0]  # no librdkafka retry spam before the message


def test_plain_json_event_right_after_stack_up_is_read_back_by_tail(prefix: str, tmp_path: Path) -> None:
    # The test Redis and a state dir of its own: with DRIFTLINE_TEST_* elsewhere, `stack up` on the defaults
    # started a Redis on 6379 in ~/.driftline, under whoever uses them (found by outside10).
    up = _json(_run(prefix, "--redis-url", REDIS_URL, "stack", "up", "--state-dir", str(tmp_path), "--json"))
    assert up["up"] is True
    assert up["topics"]["prefix"] == prefix and sorted(up["topics"]["created"]) == sorted(ALL_TOPICS)

    # What a user's own service does: a plain client, JSON, no driftline import, no topic creation.
    errors: list[object] = []
    producer = Producer({"bootstrap.servers": BOOTSTRAP})
    event = {"id": "kcat-1", "ts": 1764547200000, "key": "u1", "features": {"x": 1.5, "country": "fr"}}
    producer.produce(
        f"{prefix}features",
        key=b"u1",
        value=json.dumps(event).encode(),
        on_delivery=lambda err, msg: errors.append(err),
    )
    assert producer.flush(30) == 0
    assert errors == [None]

    tail = _run(prefix, "tail", "features", "--json", "-n", "5")
    assert tail.returncode == 0, tail.stderr
    records = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    assert len(records) == 1
    assert records[0]["value"]["id"] == "kcat-1"
    assert records[0]["value"]["features"] == {"x": 1.5, "country": "fr"}


def test_tail_n_counts_records_not_offsets_on_a_transactional_topic(prefix: str) -> None:
    # `tail models -n 2` printed one release: the trainer writes in transactions, and every commit marker takes an
    # offset, so "the last N offsets" held fewer than N records (outside, session 29).
    assert _run(prefix, "topics", "create", "features").returncode == 0
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "transactional.id": f"{prefix}tail-test"})
    producer.init_transactions(30)
    for i in range(4):  # one record per transaction: offsets 0, 2, 4, 6 hold records, 1, 3, 5, 7 markers
        producer.begin_transaction()
        event = {"id": f"tx-{i}", "ts": 1764547200000 + i, "features": {"x": float(i)}}
        producer.produce(f"{prefix}features", key=b"u1", value=json.dumps(event).encode(), partition=0)
        producer.commit_transaction(30)

    for n in (1, 3, 4, 10):
        tail = _run(prefix, "tail", "features", "--json", "-n", str(n))
        assert tail.returncode == 0, tail.stderr
        ids = [json.loads(line)["value"]["id"] for line in tail.stdout.splitlines() if line.strip()]
        assert ids == [f"tx-{i}" for i in range(4)][-n:], (n, ids)
