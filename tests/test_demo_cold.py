"""``driftline demo`` from a machine where nothing runs: it starts the stack, writes the report, stops the stack.

This is a new user's first ``make demo`` (issue 11): the demo must read the topics for the report *before* it
stops the stack it started. The demo here starts its own private stack (free ports, a tmp state directory), so
the shared test stack on 9092/6379 is never touched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from connectors.localkafka import is_kafka_process
from connectors.localproc import free_port, port_bindable, port_open, process_cmdline, read_pid
from connectors.stack import is_redis_process
from tests.waiting import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 3000


def _kafka_ports() -> tuple[int, int]:
    """A free client port whose neighbour (the KRaft controller port, client port + 1) is free too."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and port_bindable("127.0.0.1", port + 1):
            return port, port + 1
    raise AssertionError("no two adjacent free ports")


def _wait_pid(path: Path, proc: subprocess.Popen[str], timeout: float) -> int:
    def exited() -> str | None:
        return None if proc.poll() is None else f"the demo exited with status {proc.poll()}"

    return wait_until(f"a pid in {path}", lambda: read_pid(path), timeout, 0.2, abort=exited)


def test_demo_from_a_stopped_stack_writes_the_report_and_stops_what_it_started(tmp_path: Path) -> None:
    kafka_port, controller_port = _kafka_ports()
    redis_port = free_port()
    for port in (kafka_port, controller_port, redis_port):
        assert not port_open("127.0.0.1", port), f"port {port} is already served: not a cold start"
    state = tmp_path / "state"
    report = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env.update(
        {
            "DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
            "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DRIFTLINE_STATE_DIR": str(state),
        }
    )
    # The arguments of the done-criterion: make demo DEMO_ARGS="--events 3000 --rate 300 --no-live".
    cmd = [sys.executable, "-m", "streams.cli", "demo", "--events", str(EVENTS), "--rate", "300", "--no-live",
           "--report", str(report), "--json"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The demo writes the pid files of the stack it starts; read them while it runs.
        kafka_pid = _wait_pid(state / "stack" / "kafka" / "kafka.pid", proc, 180)
        redis_pid = _wait_pid(state / "stack" / "redis" / "redis.pid", proc, 180)
        out, err = proc.communicate(timeout=420)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert "Broker transport failure" not in err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["outcome"] == "completed"
    assert summary["events"] == summary["predictions"] == EVENTS
    assert summary["learned"] == EVENTS

    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    for name in ("accuracy", "throughput_latency", "label_delay", "pipeline"):
        with Image.open(report / f"{name}.png") as im:
            im.verify()

    # The stack it started is down again: ports closed, its processes gone (by pid and command line).
    assert "stopping the local stack it started" in err
    props = state / "stack" / "kafka" / "server.properties"
    assert not is_kafka_process(process_cmdline(kafka_pid), props)
    assert not is_redis_process(process_cmdline(redis_pid), redis_port)
    for port in (kafka_port, controller_port, redis_port):
        assert not port_open("127.0.0.1", port), f"port {port} still served after the demo"

    # The web console ran next to it, its URL printed, and it stopped with the demo.
    console = re.search(r"console (http://127\.0\.0\.1:(\d+)/)", err)
    assert console, err[-3000:]
    assert not port_open("127.0.0.1", int(console.group(2))), "the console outlived the demo"


def test_demo_stops_only_the_services_it_started(tmp_path: Path) -> None:
    # The user's Kafka runs (started with `driftline stack up` in the same state dir), Redis does not: the demo
    # starts Redis, and afterwards stops Redis only.
    from connectors.stack import StackConfig, stack_down, stack_status, stack_up
    from driftline.settings import load_settings
    from streams.demo.runner import DemoOptions, DemoRun

    kafka_port, _ = _kafka_ports()
    redis_port = free_port()
    settings = load_settings(
        environ={},
        overrides={
            "kafka.bootstrap": f"127.0.0.1:{kafka_port}",
            "redis.url": f"redis://127.0.0.1:{redis_port}/0",
            "state_dir": str(tmp_path),
        },
    )
    cfg = StackConfig.from_settings(settings)
    try:
        first = stack_up(cfg)
        assert stack_down(cfg, services=("redis",)) == {"kafka": False, "redis": True}
        assert (stack_status(cfg).kafka.state, stack_status(cfg).redis.state) == ("up", "down")

        demo = DemoRun(settings, DemoOptions(events=10))
        demo.start_stack()
        assert demo.started_stack and stack_status(cfg).up
        assert demo.close() is True
        after = stack_status(cfg)
        assert (after.kafka.state, after.redis.state) == ("up", "down")
        assert after.kafka.pid == first.kafka.pid  # the user's broker, untouched
        assert demo.close() is False  # once
    finally:
        stack_down(cfg)
    assert not stack_status(cfg).up
