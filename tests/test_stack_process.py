"""Fast tests for pid files, /proc checks, careful stops, probes and missing-tool errors (no Java needed)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.localkafka import is_kafka_process
from connectors.localproc import (
    check_tools,
    free_port,
    kafka_answers,
    owned_pid,
    port_bindable,
    port_open,
    process_cmdline,
    read_pid,
    redis_ping,
    stop_pidfile,
)
from connectors.stack import StackConfig, _redis_up, is_redis_process, stack_down, stack_status, stack_up
from driftline.errors import StackError
from streams.cli import main

# A stand-in server process; with "stubborn" it ignores SIGTERM like a hung broker.
SLEEPER = (
    "import signal, sys, time\n"
    "if 'stubborn' in sys.argv:\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


def _spawn(*extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", SLEEPER, "driftline-test-sleeper", *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handlers are in place
    return proc


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def test_read_pid(tmp_path: Path) -> None:
    assert read_pid(tmp_path / "missing.pid") is None
    (tmp_path / "bad.pid").write_text("not a pid\n")
    assert read_pid(tmp_path / "bad.pid") is None
    (tmp_path / "zero.pid").write_text("0\n")
    assert read_pid(tmp_path / "zero.pid") is None
    (tmp_path / "ok.pid").write_text("1234\n")
    assert read_pid(tmp_path / "ok.pid") == 1234


def test_process_cmdline_of_self_and_of_nothing() -> None:
    assert "pytest" in " ".join(process_cmdline(os.getpid()))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert process_cmdline(proc.pid) == []


def test_recognises_our_kafka_and_redis(tmp_path: Path) -> None:
    props = tmp_path / "stack" / "kafka" / "server.properties"
    java = ["/usr/bin/java", "-Xmx1g", "-cp", "/libs/*", "kafka.Kafka", str(props)]
    assert is_kafka_process(java, props)
    assert not is_kafka_process([*java[:-1], "/tmp/devkafka/server.properties"], props)
    assert not is_kafka_process(["/usr/bin/java", "kafka.tools.StorageTool", str(props)], props)
    assert is_redis_process(["redis-server 127.0.0.1:36379"], 36379)
    assert is_redis_process(["/usr/bin/redis-server", "127.0.0.1:36379"], 36379)
    assert not is_redis_process(["redis-server 127.0.0.1:6379"], 36379)
    assert not is_redis_process(["python", "127.0.0.1:36379"], 36379)


def test_owned_pid_needs_a_matching_cmdline(tmp_path: Path) -> None:
    proc = _spawn()
    try:
        pid_file = tmp_path / "x.pid"
        pid_file.write_text(f"{proc.pid}\n")
        assert owned_pid(pid_file, lambda argv: "driftline-test-sleeper" in argv) == proc.pid
        assert owned_pid(pid_file, lambda argv: "kafka.Kafka" in argv) is None
    finally:
        proc.kill()
        proc.wait()


def test_stop_pidfile_never_signals_a_process_it_does_not_recognise(tmp_path: Path) -> None:
    proc = _spawn()
    try:
        pid_file = tmp_path / "kafka.pid"
        pid_file.write_text(f"{proc.pid}\n")  # e.g. a recycled pid
        assert stop_pidfile(pid_file, lambda argv: "kafka.Kafka" in argv, grace_s=1) is False
        assert _alive(proc)
        assert not pid_file.exists()
    finally:
        proc.kill()
        proc.wait()


def test_stop_pidfile_terminates_ours(tmp_path: Path) -> None:
    proc = _spawn()
    pid_file = tmp_path / "ours.pid"
    pid_file.write_text(f"{proc.pid}\n")
    assert stop_pidfile(pid_file, lambda argv: "driftline-test-sleeper" in argv, grace_s=10) is True
    assert proc.wait(timeout=10) == -15
    assert not pid_file.exists()


def test_stop_pidfile_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    proc = _spawn("stubborn")
    pid_file = tmp_path / "stubborn.pid"
    pid_file.write_text(f"{proc.pid}\n")
    assert stop_pidfile(pid_file, lambda argv: "stubborn" in argv, grace_s=0.5) is True
    assert proc.wait(timeout=10) == -9


def test_probes_on_a_closed_port() -> None:
    port = free_port()
    assert not port_open("127.0.0.1", port)
    assert redis_ping("127.0.0.1", port) is None
    assert kafka_answers("127.0.0.1", port) is False


def test_free_port_never_hands_out_a_port_twice_nor_a_client_port() -> None:
    # Two workers started together were once told the same metrics port (bind(0) gave the closed port again before
    # the first child had bound it). 400 draws from 10,000 ports would repeat one without the memory.
    floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(400)]
    assert len(set(ports)) == len(ports)
    assert all(1024 <= p < floor for p in ports)  # below the ports outgoing connections take


def test_a_port_held_by_a_client_connection_is_not_bindable() -> None:
    # The local end of an outgoing connection takes a port that no listener shows (this broke a stack once).
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        try:
            local_port = client.getsockname()[1]
            assert not port_open("127.0.0.1", local_port)
            assert not port_bindable("127.0.0.1", local_port)
        finally:
            client.close()
    assert port_bindable("127.0.0.1", free_port())


def test_missing_tools_are_named_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError) as info:
        check_tools(["java", "mvn", "redis-server"])
    text = str(info.value)
    assert "java, mvn, redis-server not found" in text
    assert "apt-get install openjdk-17-jre-headless maven redis-server" in text
    assert "docker compose up" in text


def _free_config(tmp_path: Path) -> StackConfig:
    kafka = free_port()
    return StackConfig(
        state_dir=tmp_path / "stack",
        kafka_port=kafka,
        controller_port=free_port(),
        redis_port=free_port(),
        cache_dir=tmp_path / "cache",
    )


def test_stack_up_without_java_fails_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "redis-server"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    cfg = _free_config(tmp_path)
    with pytest.raises(StackError, match=r"^java, mvn not found on PATH") as info:
        stack_up(cfg, timeout_s=5)
    assert "redis-server" not in str(info.value).split(" not found")[0]
    assert not cfg.state_dir.exists()  # nothing was started or written


def test_status_and_down_of_a_stack_that_never_ran(tmp_path: Path) -> None:
    cfg = _free_config(tmp_path)
    status = stack_status(cfg)
    assert (status.kafka.state, status.redis.state, status.up) == ("down", "down", False)
    assert stack_down(cfg) == {"kafka": False, "redis": False}


def test_down_of_a_state_dir_stops_its_redis_without_being_told_the_port(tmp_path: Path) -> None:
    # `stack up --state-dir D --redis-port P` then `stack down --state-dir D`: the second command's Redis port is
    # the default, yet D's Redis must be recognised and stopped, not left running without its pid file.
    started = _free_config(tmp_path)
    _redis_up(started, 30.0)
    pid = read_pid(started.redis_dir / "redis.pid")
    assert pid is not None and redis_ping("127.0.0.1", started.redis_port) == "+PONG"
    told = StackConfig(state_dir=started.state_dir, cache_dir=tmp_path / "cache")
    try:
        assert told.redis_port != started.redis_port
        assert stack_down(told, services=("redis",)) == {"kafka": False, "redis": True}
        assert redis_ping("127.0.0.1", started.redis_port) is None
    finally:
        if process_cmdline(pid):
            os.kill(pid, 9)


def test_cli_status_and_down_of_a_state_dir_look_at_its_own_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `stack up --state-dir D --redis-port P` then `stack status|down --state-dir D` without the ports: they
    # reported (and, for down, checked for active consumer groups) the servers on the configured ports instead.
    started = _free_config(tmp_path)
    _redis_up(started, 30.0)
    pid = read_pid(started.redis_dir / "redis.pid")
    args = ["--bootstrap", f"127.0.0.1:{free_port()}", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]
    try:
        assert main([*args, "stack", "status", "--state-dir", str(started.state_dir.parent), "--json"]) == 1
        out = capsys.readouterr().out
        assert f'"address": "127.0.0.1:{started.redis_port}"' in out and '"state": "up"' in out, out
        assert main([*args, "stack", "down", "--state-dir", str(started.state_dir.parent), "--json"]) == 0
        out = capsys.readouterr().out
        assert f"127.0.0.1:{started.redis_port}" in out and f"stopped pid {pid}" in out, out
        assert redis_ping("127.0.0.1", started.redis_port) is None
    finally:
        if pid is not None and process_cmdline(pid):
            os.kill(pid, 9)


def test_cli_status_without_a_state_dir_looks_at_the_addresses_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # outside10: `driftline --bootstrap A --redis-url R stack status` (no --state-dir) reported the servers the
    # default state directory had last started, not A and R.
    started = _free_config(tmp_path)
    _redis_up(started, 30.0)
    pid = read_pid(started.redis_dir / "redis.pid")
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(started.state_dir.parent))
    elsewhere = free_port()
    args = ["--bootstrap", f"127.0.0.1:{free_port()}", "--redis-url", f"redis://127.0.0.1:{elsewhere}/0"]
    try:
        assert main([*args, "stack", "status", "--json"]) == 1
        out = capsys.readouterr().out
        assert f'"address": "127.0.0.1:{elsewhere}"' in out, out
        assert f"127.0.0.1:{started.redis_port}" not in out, out
    finally:
        if pid is not None and process_cmdline(pid):
            os.kill(pid, 9)


def test_cli_status_and_down_with_the_state_dir_of_the_environment_look_at_its_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DRIFTLINE_STATE_DIR alone (no --state-dir, no address flag): `stack down` stopped that directory's servers
    # by pid, but `stack status` (and down's check for active consumer groups) probed the configured addresses.
    started = _free_config(tmp_path)
    _redis_up(started, 30.0)
    pid = read_pid(started.redis_dir / "redis.pid")
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(started.state_dir.parent))
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("DRIFTLINE_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert main(["stack", "status", "--json"]) == 1  # Kafka never started there
        out = capsys.readouterr().out
        assert f'"address": "127.0.0.1:{started.redis_port}"' in out and '"state": "up"' in out, out
        assert main(["stack", "down", "--json"]) == 0
        out = capsys.readouterr().out
        assert f"127.0.0.1:{started.redis_port}" in out and f"stopped pid {pid}" in out, out
        assert redis_ping("127.0.0.1", started.redis_port) is None
    finally:
        if pid is not None and process_cmdline(pid):
            os.kill(pid, 9)


def test_cli_status_exits_nonzero_when_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--bootstrap", f"127.0.0.1:{free_port()}", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]
    code = main([*args, "stack", "status", "--state-dir", str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert code == 1
    assert '"up": false' in out and '"state": "down"' in out


def test_cli_up_reports_missing_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    args = ["--bootstrap", f"127.0.0.1:{free_port()}", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]
    code = main([*args, "stack", "up", "--state-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "driftline stack: error:" in err and "redis-server" in err and "docker compose" in err


@pytest.mark.parametrize("taken", ["kafka_port", "controller_port"])
def test_stack_up_with_a_kafka_port_taken_starts_nothing(tmp_path: Path, taken: str) -> None:
    # outside10: with the Kafka (or controller) port held by another server, `stack up` named the port but left
    # the Redis it had already started running behind it.
    with socket.create_server(("127.0.0.1", 0)) as squatter:
        port = squatter.getsockname()[1]
        cfg = dataclasses.replace(_free_config(tmp_path), **{taken: port})
        try:
            with pytest.raises(StackError, match=str(port)):
                stack_up(cfg, timeout_s=5)
            assert redis_ping("127.0.0.1", cfg.redis_port) is None
            assert read_pid(cfg.redis_dir / "redis.pid") is None
        finally:
            stack_down(cfg, grace_s=5)


def test_cluster_up_with_a_node_port_taken_starts_nothing(tmp_path: Path) -> None:
    # outside10: the cluster's own check came after Redis was started, and a node port held by a connection was
    # found only after the nodes before it were started.
    base = next(p for p in range(21000, 30000, 8) if all(port_bindable("127.0.0.1", p + i) for i in range(6)))
    cfg = dataclasses.replace(_free_config(tmp_path), kafka_port=base, controller_port=base + 1, brokers=3)
    with socket.create_server(("127.0.0.1", base + 2)):
        try:
            with pytest.raises(StackError, match=str(base + 2)):
                stack_up(cfg, timeout_s=5)
            assert redis_ping("127.0.0.1", cfg.redis_port) is None
            assert not any(read_pid(cfg.state_dir / f"kafka-{i}" / "kafka.pid") for i in (1, 2, 3))
        finally:
            stack_down(cfg, grace_s=5)


def test_stack_up_under_a_state_dir_that_is_a_file_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # outside10: `stack up --state-dir FILE` ended in a NotADirectoryError traceback.
    (tmp_path / "afile").write_text("")
    args = ["--bootstrap", f"127.0.0.1:{free_port()}", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"]
    assert main([*args, "stack", "up", "--state-dir", str(tmp_path / "afile"), "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert (
        f"state directory {tmp_path / 'afile' / 'stack'}: cannot use it" in err and "Traceback" not in err
    ), err


def test_stack_up_on_other_ports_of_a_running_state_dir_refuses_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # session 35: `stack up --kafka-port B` on the state directory of a stack running on port A rewrote A's
    # server.properties and pid file and started a second broker on the same data directory; the first one died
    # (a demo on the default stack lost its broker to a helper's `stack up` on other ports).
    running = _free_config(tmp_path)
    _redis_up(running, 30.0)
    redis_pid = read_pid(running.redis_dir / "redis.pid")
    running.kafka_dir.mkdir(parents=True, exist_ok=True)
    props = running.kafka_dir / "server.properties"
    props.write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{running.kafka_port},CONTROLLER://127.0.0.1:{running.controller_port}\n"
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{running.kafka_port}\n"
    )
    broker = _spawn("kafka.Kafka", str(props))  # recognised as this state directory's broker by its argv
    (running.kafka_dir / "kafka.pid").write_text(f"{broker.pid}\n")
    monkeypatch.setattr("connectors.stack.check_tools", lambda needed: None)
    monkeypatch.setattr(
        "connectors.stack.kafka_up", lambda cfg, timeout_s: pytest.fail("started a second broker")
    )
    other = dataclasses.replace(
        running, kafka_port=free_port(), controller_port=free_port(), redis_port=free_port()
    )
    try:
        with pytest.raises(StackError) as refused:
            stack_up(other, timeout_s=5)
        message = str(refused.value)
        assert f"Kafka on 127.0.0.1:{running.kafka_port} (pid {broker.pid})" in message, message
        assert f"Redis on 127.0.0.1:{running.redis_port} (pid {redis_pid})" in message, message
        assert f"--state-dir {running.state_dir.parent}" in message, message
        assert redis_ping("127.0.0.1", other.redis_port) is None  # no second Redis either
        assert read_pid(running.kafka_dir / "kafka.pid") == broker.pid
        assert read_pid(running.redis_dir / "redis.pid") == redis_pid
        assert f"PLAINTEXT://127.0.0.1:{running.kafka_port}" in props.read_text()
        # servers already answering on the ports asked (a test run's own broker and Redis): nothing is started
        # in the state directory, so nothing clashes
        monkeypatch.setattr("connectors.stack.kafka_needs_start", lambda cfg: False)
        monkeypatch.setattr("connectors.stack.kafka_up", lambda cfg, timeout_s: stack_status(cfg).kafka)
        answering = _redis_up(dataclasses.replace(other, state_dir=tmp_path / "elsewhere" / "stack"), 30.0)
        assert stack_up(other, timeout_s=5).redis.state == "external", answering
        stack_down(dataclasses.replace(other, state_dir=tmp_path / "elsewhere" / "stack"), grace_s=5)
        # the same ports are still `up`: nothing to refuse
        assert stack_up(running, timeout_s=5).redis.state == "up"
    finally:
        broker.kill()
        stack_down(running, grace_s=5, services=("redis",))


def test_reading_a_topic_from_a_broker_that_does_not_answer_names_the_address(tmp_path: Path) -> None:
    # session 35: the demo's report (and `tail`) ended in a librdkafka traceback when the broker had gone away;
    # a StackError would have been read as "the topic was never created" and given an empty report.
    from connectors.tail import assign_tail
    from driftline.errors import DriftlineError
    from driftline.settings import load_settings

    address = f"127.0.0.1:{free_port()}"
    settings = load_settings(overrides={"kafka.bootstrap": address})
    with pytest.raises(DriftlineError) as failed:
        assign_tail(settings, "predictions", None)
    assert not isinstance(failed.value, StackError)
    assert address in str(failed.value) and "driftline stack status" in str(failed.value)


def test_stack_up_of_a_cluster_on_a_state_dir_whose_redis_runs_on_another_port_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # review35: the other-ports check ran for a single-node stack only, so `stack up --brokers 3 --redis-port B` on
    # a state directory whose Redis runs on port A started a second Redis on A's directory (redis.conf, pid file and
    # append-only files rewritten under the running one), as the single-node case did before the check.
    running = _free_config(tmp_path)
    _redis_up(running, 30.0)
    redis_pid = read_pid(running.redis_dir / "redis.pid")
    monkeypatch.setattr("connectors.stack.check_tools", lambda needed: None)
    monkeypatch.setattr("connectors.cluster.cluster_check", lambda cfg: None)
    monkeypatch.setattr("connectors.stack.kafka_needs_start", lambda cfg: True)
    monkeypatch.setattr(
        "connectors.cluster.cluster_up", lambda cfg, timeout_s: pytest.fail("started a cluster")
    )
    cluster = dataclasses.replace(
        running, brokers=3, kafka_port=free_port(), controller_port=free_port(), redis_port=free_port()
    )
    try:
        with pytest.raises(StackError) as refused:
            stack_up(cluster, timeout_s=5)
        message = str(refused.value)
        assert f"Redis on 127.0.0.1:{running.redis_port} (pid {redis_pid})" in message, message
        assert redis_ping("127.0.0.1", cluster.redis_port) is None  # no second Redis
        assert read_pid(running.redis_dir / "redis.pid") == redis_pid
        assert f"port {running.redis_port}" in (running.redis_dir / "redis.conf").read_text()
    finally:
        stack_down(running, grace_s=5, services=("redis",))


def test_stack_up_of_a_cluster_on_other_ports_than_its_running_cluster_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # review35: a cluster recorded (cluster.json) on ports A.. with its nodes running, then `stack up --brokers 3
    # --kafka-port B`: node 1 on B would be started in node 1's directory on A, over the running broker.
    from connectors.cluster import nodes

    running = dataclasses.replace(_free_config(tmp_path), brokers=3)
    running.state_dir.mkdir(parents=True)
    record = {"brokers": 3, "kafka_port": running.kafka_port, "controller_port": running.controller_port}
    (running.state_dir / "cluster.json").write_text(json.dumps(record) + "\n")
    first = nodes(running)[0]
    first.kafka_dir.mkdir(parents=True)
    props = first.kafka_dir / "server.properties"
    props.write_text(f"listeners=PLAINTEXT://127.0.0.1:{first.kafka_port}\n")
    broker = _spawn("kafka.Kafka", str(props))
    (first.kafka_dir / "kafka.pid").write_text(f"{broker.pid}\n")
    monkeypatch.setattr("connectors.stack.check_tools", lambda needed: None)
    monkeypatch.setattr("connectors.cluster.cluster_check", lambda cfg: None)
    monkeypatch.setattr("connectors.stack.kafka_needs_start", lambda cfg: True)
    monkeypatch.setattr("connectors.stack._redis_up", lambda cfg, timeout_s: pytest.fail("started Redis"))
    monkeypatch.setattr(
        "connectors.cluster.cluster_up", lambda cfg, timeout_s: pytest.fail("started a cluster")
    )
    other = dataclasses.replace(running, kafka_port=free_port(), controller_port=free_port())
    try:
        with pytest.raises(StackError) as refused:
            stack_up(other, timeout_s=5)
        assert f"Kafka node 1 on 127.0.0.1:{first.kafka_port} (pid {broker.pid})" in str(refused.value)
        assert read_pid(first.kafka_dir / "kafka.pid") == broker.pid
    finally:
        broker.kill()
