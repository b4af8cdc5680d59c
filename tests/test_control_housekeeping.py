"""Housekeeping (issue 20): ``driftline cleanup`` removes a prefix's topics, groups, Redis keys, checkpoints and local
state (and refuses the default prefix); a closed pipe ends a command without a traceback; worker logs written to a
file hold no terminal escape codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis
from confluent_kafka.admin import AdminClient

from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import KAFKA_BOOTSTRAP, Pipeline

pytestmark = [pytest.mark.kafka]

KEY = "control-tests-signing-key-0123456789abcdef"


def test_cleanup_closed_pipe_and_plain_logs(prefix: str, redis_url: str, tmp_path: Path) -> None:
    pipeline = Pipeline(prefix, tmp_path, redis_url, extra_env={"DRIFTLINE_SIGNING_KEY": KEY})
    with running_all(pipeline):
        (worker,) = pipeline.start("all")
        publish(pipeline, make_events(120, seed=2), label_lag=0)
        pipeline.wait_learned(120)
        pipeline.cli("models", "set", "guard.alpha=0.02")

        # A closed pipe: `| true` exits without reading, so every write of the command hits a closed pipe.
        cmd = f"{sys.executable} -m streams.cli models list | true"
        piped = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd],
            capture_output=True,
            text=True,
            env=pipeline.env(),
            timeout=120,
        )
        assert piped.returncode == 141 and piped.stderr == "", piped.stderr
        assert "set done" in pipeline.cli("models", "set", "guard.alpha=0.03").stdout
    # No trainer running: the CLI says so and exits 3 (no answer), or returns at once with --no-wait.
    silent = pipeline.cli("models", "pause", "--timeout", "3", check=False)
    assert silent.returncode == 3 and "NO ANSWER" in silent.stderr, silent.stderr
    assert pipeline.cli("models", "resume", "--no-wait").returncode == 0
    # Logs redirected to a file: no escape codes.
    log_text = worker.log_path.read_bytes()
    assert b"\x1b" not in log_text, log_text[:400]

    client = redis.Redis.from_url(redis_url)
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    state = pipeline.settings()
    ns = f"{state.redis.key_prefix}:{prefix}"
    assert list(client.scan_iter(match=f"{ns}*")), "the run left no Redis keys to clean"

    refused = pipeline.cli("cleanup", "--prefix", "driftline.", "--dry-run", check=False)
    assert refused.returncode == 2 and "--force" in refused.stderr

    (kept,) = pipeline.cli_json("cleanup", "--prefix", prefix, "--dry-run", "--keep-audit", "--json")
    (dry,) = pipeline.cli_json("cleanup", "--prefix", prefix, "--dry-run", "--json")
    contract = {f"{prefix}{t}" for t in ("features", "labels", "predictions", "training", "models", "drift",
                                         "control", "deadletter", "changelog")}  # fmt: skip
    present = {t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)}
    assert contract <= present and set(dry["topics"]) == present
    assert (
        f"{prefix}audit" not in kept["topics"]
        and kept["kept"]
        and not [p for p in kept["paths"] if "audit" in p]
    )
    assert dry["groups"] and all(g.startswith(f"driftline-{prefix}") for g in dry["groups"])
    assert dry["paths"] and dry["redis_keys"]
    assert all(Path(p).exists() for p in dry["paths"]), "a dry run removed something"
    assert f"{prefix}changelog" in admin.list_topics(timeout=10).topics, "a dry run removed the changelog"

    (done,) = pipeline.cli_json("cleanup", "--prefix", prefix, "--json")
    assert done["failed"] == {}
    assert not [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    groups = admin.list_consumer_groups(request_timeout=10).result().valid
    assert not [g.group_id for g in groups if g.group_id.startswith(f"driftline-{prefix}")]
    assert not list(client.scan_iter(match=f"{ns}*"))
    assert not [p for p in dry["paths"] if Path(p).exists()]
    assert not list((tmp_path / "faust").glob(f"driftline-{prefix}*"))
    assert not list((tmp_path / "audit").glob(f"{prefix}*"))
