"""``driftline models pause`` while the CLI cannot reach Redis (found from outside: Redis restarting).

The trainer applied the command and recorded it in its audit chain, but the CLI, which reads the answer from Redis,
said "NO ANSWER from the trainer ...: is a train worker running for this prefix?" and exited 3. The answer is also
on the ``audit`` topic: the CLI reads it there when Redis does not give it, and says why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connectors.localproc import free_port
from tests.pipeline_helpers import Pipeline, running

pytestmark = pytest.mark.kafka


def test_the_answer_comes_from_the_audit_topic_when_redis_cannot_be_read(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    pipeline = Pipeline(prefix, tmp_path, redis_url)
    with running(pipeline):
        pipeline.start("all")
        pipeline.wait_releases(1)  # the trainer is up and owns the model
        env = dict(pipeline.env(), DRIFTLINE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing there
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", "models", "pause", "--timeout", "3"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "pause_learning done" in proc.stdout, proc.stdout
        assert "audit" in proc.stdout and "Redis" in proc.stdout, proc.stdout
        assert "learning paused" in pipeline.cli("status").stdout.replace("PAUSED", "paused")
