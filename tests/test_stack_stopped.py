"""A server of the local stack stopped by a signal (SIGSTOP: alive, its port open, answering nothing) is named as such,
with what to do, by ``stack status``, ``status`` and ``stack up`` (helper fault40, session 40: a frozen Redis and a
frozen broker were shown as ``starting``; ``stack up`` said Redis's port was taken, "choose another with
--redis-port", and waited out its timeout on the broker)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.localproc import free_port, process_stopped, read_pid, redis_ping
from connectors.stack import StackConfig, _redis_up, stack_status
from connectors.stack_kafka import kafka_needs_start, kafka_status
from driftline.errors import StackError
from streams.status import stack_state_text


def _config(tmp_path: Path) -> StackConfig:
    return StackConfig(
        state_dir=tmp_path / "stack",
        kafka_port=free_port(),
        controller_port=free_port(),
        redis_port=free_port(),
        cache_dir=tmp_path / "cache",
    )


def _stop(pid: int) -> None:
    """SIGSTOP, and wait until the kernel shows the process stopped (the signal is delivered asynchronously)."""
    os.kill(pid, signal.SIGSTOP)
    for _ in range(500):
        if process_stopped(pid):
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid} not stopped")


def test_a_stopped_redis_of_the_stack_is_named_and_stack_up_says_to_resume_it(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    _redis_up(cfg, 30.0)  # a real redis-server of this test's own
    pid = read_pid(cfg.redis_dir / "redis.pid")
    assert pid is not None
    try:
        _stop(pid)
        assert redis_ping("127.0.0.1", cfg.redis_port) is None
        redis = stack_status(cfg).to_dict()["redis"]
        assert redis["state"] == "stopped" and redis["up"] is False, redis
        assert f"`kill -CONT {pid}` resumes it" in redis["detail"]
        assert stack_state_text("redis", redis).startswith("DOWN: stopped by a signal")
        # not "port ... in use; choose another with --redis-port"
        with pytest.raises(StackError, match=rf"stopped by a signal .* `kill -CONT {pid}`"):
            _redis_up(cfg, 5.0)
        os.kill(pid, signal.SIGCONT)
        assert _redis_up(cfg, 30.0).state == "up"
    finally:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)


def test_a_stopped_kafka_node_is_named_and_stack_up_refuses_at_once(tmp_path: Path) -> None:
    # The broker process is a stand-in (no Java needed): what is tested is the stack's view of a process of its own
    # that does not answer, running (starting) or stopped.
    cfg = _config(tmp_path)
    cfg.kafka_dir.mkdir(parents=True)
    props = cfg.kafka_dir / "server.properties"
    props.write_text(f"advertised.listeners=PLAINTEXT://{cfg.kafka_address}\n")
    argv = [
        sys.executable,
        "-c",
        "import time; print('ready', flush=True); time.sleep(120)",
        "kafka.Kafka",
        str(props),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        (cfg.kafka_dir / "kafka.pid").write_text(f"{proc.pid}\n")
        assert kafka_status(cfg).state == "starting"
        assert not process_stopped(proc.pid)
        _stop(proc.pid)
        status = kafka_status(cfg)
        assert (status.state, status.pid) == ("stopped", proc.pid)
        assert f"`kill -CONT {proc.pid}` resumes it" in status.detail
        with pytest.raises(
            StackError, match=rf"Kafka on .* is stopped by a signal .* `kill -CONT {proc.pid}`"
        ):
            kafka_needs_start(cfg)
        os.kill(proc.pid, signal.SIGCONT)
        assert kafka_status(cfg).state == "starting"
    finally:
        proc.kill()
        proc.wait()


def test_doctor_says_to_resume_a_stopped_redis_or_node_of_the_stack(tmp_path: Path) -> None:
    # `stack up` cannot help a stopped server (it refuses, above): doctor's fix was "start Redis (`driftline stack
    # up` ...)" and, for a stopped node, "start the missing broker (`driftline stack up` restarts ...)".
    from connectors.stack_config import ServiceStatus, StackStatus
    from driftline.settings import load_settings
    from streams.commands.doctor import Check, _stopped_nodes, check_redis

    cfg = _config(tmp_path)
    _redis_up(cfg, 30.0)
    pid = read_pid(cfg.redis_dir / "redis.pid")
    assert pid is not None
    settings = load_settings(overrides={"redis": {"url": f"redis://127.0.0.1:{cfg.redis_port}/0"}})
    try:
        _stop(pid)
        check = check_redis(settings, cfg, stack_status(cfg), 1.0)
        assert check.status == "fail" and f"`kill -CONT {pid}` resumes it" in check.fix, check
    finally:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
    node = ServiceStatus("kafka", "127.0.0.1:1", "stopped", 4242, "stopped by a signal ... `kill -CONT 4242`")
    status = StackStatus(node, node, tmp_path, (dataclasses.replace(node, name="kafka-3"),))
    warned = _stopped_nodes(Check("replication", "warn", "broker 3 ... does not answer", "start it"), status)
    assert warned.fix.startswith("kafka-3 (pid 4242) is stopped by a signal"), warned
    ok = Check("replication", "ok", "3 broker(s)")
    assert _stopped_nodes(ok, status) is ok
