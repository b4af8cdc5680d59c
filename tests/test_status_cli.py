"""``driftline status`` against a running worker, and against a stack that is not there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connectors.localproc import free_port
from connectors.producer import EventProducer
from connectors.topics import ensure_topics
from driftline.settings import Settings
from driftline.util import now_ms
from streams.processes import WorkerProcess
from tests.waiting import wait_until


def _status(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args, "status", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env.update(
        {
            "DRIFTLINE_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
            "DRIFTLINE_TOPIC_PREFIX": settings.kafka.topic_prefix,
            "DRIFTLINE_REDIS_URL": settings.redis.url.get(),
            "DRIFTLINE__REDIS__KEY_PREFIX": settings.redis.key_prefix,
            "DRIFTLINE_SIGNING_KEY": settings.model.signing_key.get(),
            "DRIFTLINE_STATE_DIR": settings.state_dir,
            "DRIFTLINE__MODEL__ARTIFACT_STORE": settings.model.artifact_store,
        }
    )
    return env


@pytest.mark.kafka
@pytest.mark.slow
def test_status_shows_a_running_worker_its_release_and_recent_drift(
    settings: Settings, tmp_path: Path
) -> None:
    ensure_topics(settings)
    env = _env(settings)
    worker = WorkerProcess("all", env, tmp_path / "worker.log").start()
    try:
        assert worker.wait_metrics(90), worker.log_tail()
        with EventProducer(settings) as producer:
            drift = {"model": "default", "version": 1, "detector": "adwin", "signal": "error", "details": {},
                     "index": 10}  # fmt: skip
            producer.send("drift", "DriftEvent", {**drift, "ts": now_ms()}, "default")
            # Older than the one-hour window: not counted.
            producer.send("drift", "DriftEvent", {**drift, "ts": now_ms() - 2 * 3600_000}, "default")

        def ready() -> dict[str, Any] | None:
            done = _status(env=env)
            assert done.returncode == 0, done.stderr
            status = json.loads(done.stdout)
            members = [g for g in status["workers"] if g["members"]]
            model = status["models"][0]
            # The trainer writes its status before its initial release is read back from the models topic (a
            # loaded machine showed the first without the second): wait for both.
            complete = members and model["trainer"] is not None and model["latest_release"] is not None
            return status if complete else None

        status = wait_until("a group member, the trainer's status and its initial release", ready, 60, 1.0)
    finally:
        worker.stop()
    members = [g for g in status["workers"] if g["members"]]
    model = status["models"][0]
    assert status["stack"]["up"] is True
    # One process running every role: one consumer group per stage, as separate processes would have.
    p = settings.kafka.topic_prefix
    assert sorted(g["group"] for g in members) == [
        f"driftline-{p}default-join",
        f"driftline-{p}default-score",
        f"driftline-{p}trainers",
    ]
    assert all(lag >= 0 for g in status["workers"] for lag in g["lag"].values())
    assert model["model"] == "default" and model["served_version"] == 1
    assert model["latest_release"]["version"] == 1 and model["latest_release"]["reason"] == "initial"
    assert model["trainer"]["n_learned"] == 0
    assert status["drift_last_hour"]["total"] == 1
    assert status["drift_last_hour"]["by_signal"] == {"default adwin/error": 1}


def test_status_exits_1_when_the_stack_is_down(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env["DRIFTLINE_STATE_DIR"] = str(tmp_path)
    kafka, redis = free_port(), free_port()
    done = _status(
        "--bootstrap", f"127.0.0.1:{kafka}", "--redis-url", f"redis://127.0.0.1:{redis}/0", env=env
    )
    assert done.returncode == 1, done.stderr
    status = json.loads(done.stdout)
    assert status["stack"]["up"] is False
    assert status["stack"]["kafka"]["up"] is False and status["stack"]["redis"]["up"] is False
    assert "workers" not in status
