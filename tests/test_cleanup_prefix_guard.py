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
