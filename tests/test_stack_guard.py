"""A test run with a stack of one's own (DRIFTLINE_TEST_KAFKA / DRIFTLINE_TEST_REDIS) neither starts nor reaches the
shared stack on 127.0.0.1:9092 / 6379, even from a shell that exported only the test variables (session 40: a
stack appeared on 9092/6379 while tests ran with the test variables set elsewhere; session 41, helper arch41).

A child process stands in for a test run: it imports ``tests/conftest.py`` as pytest does first, with the test
variables naming ports where nothing runs and no DRIFTLINE_KAFKA_BOOTSTRAP / DRIFTLINE_REDIS_URL. The stack's
start-up steps are replaced by recorders in the child, so nothing is started even without the guard; no broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from connectors.localproc import free_port

CHILD = """
import json, sys
from pathlib import Path

import tests.conftest  # noqa: F401  (what pytest imports before any test)
import connectors.stack as stack
from connectors.stack import ServiceStatus, StackStatus, ensure_stack
from driftline.settings import load_settings

started = []
stack.check_tools = lambda needed: None
stack.kafka_needs_start = lambda cfg: True
stack._check_running_elsewhere = lambda cfg, kafka, redis: None
stack._redis_status = lambda cfg: ServiceStatus("redis", cfg.redis_address, "down", None)
stack.stack_status = lambda cfg, state_dir=None: StackStatus(
    ServiceStatus("kafka", cfg.kafka_address, "down", None), stack._redis_status(cfg), cfg.state_dir
)


def fake_up(name):
    def up(cfg, timeout_s):
        port = cfg.kafka_port if name == "kafka" else cfg.redis_port
        started.append([name, port])
        return ServiceStatus(name, f"127.0.0.1:{port}", "up", 1)
    return up


stack.kafka_up, stack._redis_up = fake_up("kafka"), fake_up("redis")
settings = load_settings()  # from the environment, as every CLI command (in-process or a child) loads them
refused = ""
try:  # a test that builds its settings from nothing and brings "the stack" up (as `driftline demo` would)
    ensure_stack(load_settings(environ={}, overrides={"state_dir": sys.argv[1]}))
except BaseException as exc:
    refused = str(exc)
print(json.dumps({"bootstrap": settings.kafka.bootstrap, "redis": settings.redis.url.get(),
                  "started": started, "refused": refused}))
"""


def test_a_run_with_a_stack_of_ones_own_never_starts_or_reaches_the_default_one(tmp_path: Path) -> None:
    kafka, redis = f"127.0.0.1:{free_port()}", f"redis://127.0.0.1:{free_port()}/15"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env.update({"DRIFTLINE_TEST_KAFKA": kafka, "DRIFTLINE_TEST_REDIS": redis})
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # Anything that reads the environment goes to the test stack, not to the defaults.
    assert (out["bootstrap"], out["redis"]) == (kafka, redis)
    # A stack asked for on the default ports is refused before anything starts, naming why.
    assert out["started"] == []
    assert "[6379, 9092, 9093]" in out["refused"] and "DRIFTLINE_TEST_KAFKA" in out["refused"], out


def test_make_test_brings_up_the_stack_the_test_variables_name() -> None:
    """`make test` ran `driftline stack up` with no address: from a shell with only the test variables set it
    started a broker and Redis on 9092/6379 beside the stack the tests then used (``make -n``: nothing runs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env.update(
        {"DRIFTLINE_TEST_KAFKA": "127.0.0.1:19999", "DRIFTLINE_TEST_REDIS": "redis://127.0.0.1:19998/15"}
    )
    root = Path(__file__).resolve().parents[1]
    for target in ("test", "test-cluster"):
        done = subprocess.run(
            ["make", "-n", "-C", str(root), target],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        (up,) = [line for line in done.stdout.splitlines() if line.rstrip().endswith("stack up")]
        assert "--bootstrap 127.0.0.1:19999 --redis-url redis://127.0.0.1:19998/15 stack up" in up, up
