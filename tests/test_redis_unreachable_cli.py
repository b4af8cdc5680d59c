"""Commands that need Redis, given a Redis address where nothing answers (the broker up): exit 1 naming the
address (never its password), no traceback (outside, session 29: ``cleanup`` printed a redis-py traceback, and a
worker started and ran on, logging a Redis error per batch, where an unreachable broker stops it at once)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from connectors.localproc import free_port
from tests.pipeline_helpers import KAFKA_BOOTSTRAP

pytestmark = pytest.mark.kafka


def _run(prefix: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env["DRIFTLINE_SIGNING_KEY"] = "redis-unreachable-test-signing-key-32b"
    cmd = [sys.executable, "-m", "streams.cli", "--bootstrap", KAFKA_BOOTSTRAP, "--redis-url", redis_url]
    cmd += ["--topic-prefix", prefix, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize(
    "command",
    [
        ["cleanup", "--prefix", "PREFIX", "--dry-run"],
        ["worker", "--role", "score", "--metrics-port", "0"],
        ["worker", "--role", "all", "--metrics-port", "0"],
    ],
)
def test_unreachable_redis_is_named_and_the_command_stops(prefix: str, command: list[str]) -> None:
    port = free_port()
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    proc = _run(prefix, url, *[prefix if a == "PREFIX" else a for a in command])
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"cannot reach Redis at 127.0.0.1:{port}/0" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "hunter2-secret" not in proc.stdout + proc.stderr
