"""A worker (and the console) started by a driftline command stops when that command dies, however it dies.

Found from outside (session 41, docs/experiments/first41.md): `driftline demo` killed half way (SIGKILL, or the
SIGHUP of a closed terminal) left its three workers and its console running for good, each in its own session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftline.settings import Settings

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[1]

# The parent: starts a score worker and a console the way the demo does, prints their pids, then waits to be killed.
PARENT = """
import json, signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as a shell starts it (a `nohup` around the tests would ignore it)
from pathlib import Path
from streams.console.launch import start_console
from streams.processes import WorkerProcess
env, logs = json.loads(sys.argv[1]), Path(sys.argv[2])
worker = WorkerProcess("score", env, logs / "score.log").start()
console = start_console(env, logs / "console.log", port=0)
print(json.dumps([worker.pid, console.proc.pid]), flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit is reaped by whoever adopted it, maybe late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_children_stop_when_the_process_that_started_them_dies(
    settings: Settings, tmp_path: Path, how: signal.Signals
) -> None:
    env = {
        "DRIFTLINE_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "DRIFTLINE_REDIS_URL": settings.redis.url.get(),
        "DRIFTLINE_TOPIC_PREFIX": settings.kafka.topic_prefix,
        "DRIFTLINE_SIGNING_KEY": settings.model.signing_key.get(),
        "DRIFTLINE_STATE_DIR": str(tmp_path),
    }
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, json.dumps(env), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    children: list[int] = []
    try:
        assert parent.stdout is not None
        children = json.loads(parent.stdout.readline())
        assert all(_running(pid) for pid in children), "the worker or the console did not start"
        parent.send_signal(how)
        parent.wait(30)
        deadline = time.monotonic() + 60  # a worker drains on SIGTERM; a generous bound, not a timing check
        while time.monotonic() < deadline and any(_running(pid) for pid in children):
            time.sleep(0.5)
        left = [pid for pid in children if _running(pid)]
        assert not left, f"still running after their parent died of {how.name}: {left}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
