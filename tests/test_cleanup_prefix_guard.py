"""``driftline cleanup --prefix P`` removes everything whose name starts with P, so a P that the default prefix
starts with (``driftline``, ``drift``, ``d``) takes the default deployment with it. Found from outside (session 28):
only the exact default prefix was refused without ``--force``. And (session 43) ``trial1`` matched ``trial10``'s
names: a longer prefix with contract topics of its own is left alone."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from connectors.topics import ALL_TOPICS, ensure_topics
from driftline.settings import load_settings
from streams.commands import cleanup
from tests.conftest import KAFKA_BOOTSTRAP


@pytest.mark.parametrize("prefix", ["driftline.", "driftline", "drift", "d"])
def test_a_prefix_that_covers_the_default_deployment_is_refused(
    prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(prefix=prefix, force=False, dry_run=True, keep_audit=False, json=False)
    assert cleanup.run(args) == 2  # before any broker is asked
    err = capsys.readouterr().err
    assert "'driftline.'" in err and "--force" in err


def test_a_model_named_for_cleanup_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside (session 46, adv46): ``driftline --model m2 cleanup --prefix a`` took the global
    ``--model`` silently and removed every model of ``a``."""
    from streams.cli import main

    assert (
        main(["--bootstrap", "127.0.0.1:1", "--model", "m2", "cleanup", "--prefix", "a.", "--dry-run"]) == 2
    )
    err = capsys.readouterr().err
    assert "--model 'm2' is not taken" in err and "every model" in err


def test_longer_prefixes_are_read_from_the_contract_topics_they_own() -> None:
    topics = [
        "trial1features",
        "trial1labels",
        "trial10features",
        "trial10audit",
        "trial1.models",
        "other",
        "trial1x",
    ]
    assert cleanup.longer_prefixes("trial1", topics) == ["trial1.", "trial10"]
    assert cleanup.longer_prefixes("trial10", topics) == []


@pytest.mark.kafka
def test_a_prefix_leaves_a_longer_prefix_s_deployment_alone(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    """Found from outside (session 43): ``cleanup --prefix trial1`` removed ``trial10``'s topics, groups' keys and
    audit logs too (every name was matched by prefix)."""
    longer = f"{prefix}x."  # another deployment whose names all start with ``prefix``
    env = {**os.environ, "DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP, "DRIFTLINE_REDIS_URL": redis_url}
    env["DRIFTLINE_STATE_DIR"] = str(tmp_path)
    client = redis.Redis.from_url(redis_url)
    key_prefix = load_settings(environ={}).redis.key_prefix
    for p in (prefix, longer):
        ensure_topics(
            load_settings(
                environ={}, overrides={"kafka.bootstrap": KAFKA_BOOTSTRAP, "kafka.topic_prefix": p}
            ),
            ALL_TOPICS,
        )
        client.set(f"{key_prefix}:{p}m:pending:1", b"1", ex=600)
        for path in (
            tmp_path / "audit" / f"{p}m.jsonl",
            tmp_path / "checkpoints" / f"{p}m",
            tmp_path / "faust" / f"driftline-{p}m-score",
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")

    cmd = [sys.executable, "-m", "streams.cli", "cleanup", "--prefix", prefix, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["left"] == [longer] and report["failed"] == {}
    names = set(AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP}).list_topics(timeout=10).topics)
    assert {f"{longer}{t}" for t in ALL_TOPICS} <= names, "the longer prefix's topics were removed"
    assert not {f"{prefix}{t}" for t in ALL_TOPICS} & names
    assert client.exists(f"{key_prefix}:{longer}m:pending:1") and not client.exists(
        f"{key_prefix}:{prefix}m:pending:1"
    )
    assert sorted(p.name for p in tmp_path.glob("*/*")) == sorted(
        [f"{longer}m.jsonl", f"{longer}m", f"driftline-{longer}m-score"]
    )
    text = subprocess.run(
        [*cmd[:-1], "--dry-run"], capture_output=True, text=True, env=env, timeout=120
    ).stdout
    assert f"left alone: the deployment(s) of prefix {longer!r}" in text and "would remove 0 topics" in text


def test_shorter_prefixes_are_read_from_the_contract_topics_they_own() -> None:
    topics = ["afeatures", "amodels", "adfeatures", "features", "axfeatures", "dfeatures"]
    assert cleanup.shorter_prefixes("ad", topics) == ["", "a"]
    assert cleanup.shorter_prefixes("a", topics) == [""]
    assert cleanup.shorter_prefixes("b", ["afeatures"]) == []


@pytest.mark.kafka
def test_a_prefix_leaves_a_shorter_prefix_s_models_alone(prefix: str, redis_url: str, tmp_path: Path) -> None:
    """Found from outside (session 46, adv46): with a deployment on prefix ``a`` (model ``default``), ``cleanup
    --prefix ad`` of another deployment removed ``a``'s consumer groups (``driftline-adefault-score``), every Redis key
    (``driftline:adefault:...``: the join store, the trainer status), its signed audit chain (``adefault.jsonl``) and
    its Faust data, while ``a``'s workers ran: all those names start with ``ad`` too."""
    from confluent_kafka import Consumer, TopicPartition

    longer = f"{prefix}d"  # its names start with prefix's model 'default': prefix + 'default' starts with it
    env = {**os.environ, "DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP, "DRIFTLINE_REDIS_URL": redis_url}
    env["DRIFTLINE_STATE_DIR"] = str(tmp_path)
    client = redis.Redis.from_url(redis_url)
    key_prefix = load_settings(environ={}).redis.key_prefix
    groups = []
    for p, model in ((prefix, "default"), (longer, "default")):
        ensure_topics(
            load_settings(
                environ={}, overrides={"kafka.bootstrap": KAFKA_BOOTSTRAP, "kafka.topic_prefix": p}
            ),
            ALL_TOPICS,
        )
        client.set(f"{key_prefix}:{p}{model}:trainer", b"1", ex=600)
        (tmp_path / "audit").mkdir(exist_ok=True)
        (tmp_path / "audit" / f"{p}{model}.jsonl").write_text("x")
        group = f"driftline-{p}{model}-score"
        consumer = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": group})
        consumer.commit(offsets=[TopicPartition(f"{p}features", 0, 0)], asynchronous=False)
        consumer.close()
        groups.append(group)

    cmd = [sys.executable, "-m", "streams.cli", "cleanup", "--prefix", longer, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    # Topics first: a new client lists no groups before it has the cluster's metadata.
    topics = set(admin.list_topics(timeout=10).topics)
    names = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}
    assert groups[0] in names and groups[1] not in names, "the shorter prefix's group was removed"
    assert client.exists(f"{key_prefix}:{prefix}default:trainer"), (
        "the shorter prefix's trainer status was removed"
    )
    assert not client.exists(f"{key_prefix}:{longer}default:trainer")
    assert [p.name for p in (tmp_path / "audit").iterdir()] == [f"{prefix}default.jsonl"]
    assert {f"{prefix}{t}" for t in ALL_TOPICS} <= topics and not {
        f"{longer}{t}" for t in ALL_TOPICS
    } & topics
    assert report["shorter"] == [prefix] and report["failed"] == {}
    assert groups[0] in report["spared"] and groups[1] in report["groups"]


@pytest.mark.kafka
def test_a_prefix_whose_workers_run_is_refused_without_force(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    """Found from outside (session 46, adv46): ``cleanup --prefix P`` with P's workers running removed P's topics,
    Redis keys and the trainer's audit chain under them, then failed on the groups (NON_EMPTY_GROUP) and still
    printed "removed 3 groups"."""
    import time

    from confluent_kafka import Consumer

    env = {**os.environ, "DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP, "DRIFTLINE_REDIS_URL": redis_url}
    env["DRIFTLINE_STATE_DIR"] = str(tmp_path)
    ensure_topics(
        load_settings(
            environ={}, overrides={"kafka.bootstrap": KAFKA_BOOTSTRAP, "kafka.topic_prefix": prefix}
        ),
        ALL_TOPICS,
    )
    key = f"{load_settings(environ={}).redis.key_prefix}:{prefix}default:trainer"
    client = redis.Redis.from_url(redis_url)
    client.set(key, b"1", ex=600)
    group = f"driftline-{prefix}default-score"
    worker = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": group, "session.timeout.ms": 10_000})
    worker.subscribe([f"{prefix}features"])
    deadline = time.monotonic() + 30
    while not worker.assignment() and time.monotonic() < deadline:
        worker.poll(0.2)
    assert worker.assignment(), "the stand-in worker never joined its group"
    cmd = [sys.executable, "-m", "streams.cli", "cleanup", "--prefix", prefix]
    try:
        done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, timeout=120)
        worker.poll(0.1)  # stay in the group
        assert done.returncode == 1, done.stdout + done.stderr
        assert "workers are running" in done.stderr and group in done.stderr and "--force" in done.stderr
        assert json.loads(done.stdout)["active"].keys() == {group}
        topics = set(AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP}).list_topics(timeout=10).topics)
        assert {f"{prefix}{t}" for t in ALL_TOPICS} <= topics, "a running deployment's topics were removed"
        assert client.exists(key)
        dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
        assert dry.returncode == 0 and f"running now (cleanup refuses without --force): {group}" in dry.stdout
    finally:
        worker.close()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not client.exists(key)
