"""Fast tests for the local stack's pure parts: settings -> ports, rendered configs, statuses."""

from __future__ import annotations

import base64
import dataclasses
import socket
from pathlib import Path

import pytest

from connectors.localkafka import KAFKA_VERSION, kafka_cluster_id, kafka_libs, libs_cached
from connectors.stack import (
    ServiceStatus,
    StackConfig,
    StackStatus,
    render_kafka_properties,
    render_redis_conf,
    stack_up,
)
from driftline.errors import StackError
from driftline.settings import load_settings


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_ports_and_state_dir_come_from_settings(tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        overrides={
            "kafka.bootstrap": "localhost:19092",
            "redis.url": "redis://127.0.0.1:16379/3",
            "state_dir": str(tmp_path),
        },
    )
    cfg = StackConfig.from_settings(settings)
    assert (cfg.kafka_port, cfg.controller_port, cfg.redis_port) == (19092, 19093, 16379)
    assert cfg.state_dir == tmp_path / "stack"
    assert cfg.kafka_address == "127.0.0.1:19092"
    assert cfg.redis_password == ""


def test_flags_beat_settings(tmp_path: Path) -> None:
    cfg = StackConfig.from_settings(
        load_settings(environ={}), tmp_path, kafka_port=39092, controller_port=39999, redis_port=36379
    )
    assert (cfg.kafka_port, cfg.controller_port, cfg.redis_port) == (39092, 39999, 36379)
    assert cfg.state_dir == tmp_path / "stack"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("with_home", "missing"), [(True, "redis-server, java"), (False, "redis-server, java, mvn")]
)
def test_a_kafka_home_means_maven_is_not_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_home: bool, missing: str
) -> None:
    """With a Kafka distribution (flag or KAFKA_HOME) the broker's jars are not fetched, so ``stack up`` asks for
    Java but not Maven; without one and no cached jars it needs both. Nothing starts: PATH is empty."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("KAFKA_HOME", raising=False)
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    home = tmp_path / "kafka"
    ports = {"kafka_port": _free_port(), "controller_port": _free_port(), "redis_port": _free_port()}
    cfg = StackConfig.from_settings(settings, tmp_path, kafka_home=home if with_home else None, **ports)
    cfg = dataclasses.replace(cfg, cache_dir=tmp_path / "cache")  # no jars cached
    with pytest.raises(StackError, match=rf"^{missing} not found on PATH"):
        stack_up(cfg, timeout_s=1)
    assert not (tmp_path / "stack" / "kafka").exists()  # nothing was started or written


def test_kafka_home_from_the_environment_unless_a_flag_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_HOME", "~/kafka-from-env")
    settings = load_settings(environ={})
    assert StackConfig.from_settings(settings, tmp_path).kafka_home == Path.home() / "kafka-from-env"
    flag = StackConfig.from_settings(settings, tmp_path, kafka_home=tmp_path / "flag")
    assert flag.kafka_home == tmp_path / "flag"
    monkeypatch.delenv("KAFKA_HOME")
    assert StackConfig.from_settings(settings, tmp_path).kafka_home is None


@pytest.mark.parametrize(
    ("path", "value"),
    [("kafka.bootstrap", "broker.example.com:9092"), ("redis.url", "redis://10.0.0.5:6379/0")],
)
def test_refuses_non_loopback_addresses(tmp_path: Path, path: str, value: str) -> None:
    settings = load_settings(environ={}, overrides={path: value})
    with pytest.raises(StackError, match=path.replace(".", r"\.")):
        StackConfig.from_settings(settings, tmp_path)


def test_kafka_properties_single_node_kraft(tmp_path: Path) -> None:
    cfg = StackConfig(state_dir=tmp_path / "stack", kafka_port=39092, controller_port=39093)
    text = render_kafka_properties(cfg)
    assert "$" not in text
    props = _props(text)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:39093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:39092"
    assert props["log.dirs"] == str(tmp_path / "stack" / "kafka" / "data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "default.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"


def test_redis_conf_persists_with_aof_everysec(tmp_path: Path) -> None:
    cfg = StackConfig(state_dir=tmp_path / "stack", redis_port=36379)
    lines = render_redis_conf(cfg).splitlines()
    assert "appendonly yes" in lines
    assert "appendfsync everysec" in lines
    assert "bind 127.0.0.1" in lines
    assert "port 36379" in lines
    assert "daemonize yes" in lines
    assert f"dir {tmp_path / 'stack' / 'redis'}" in lines
    assert f"pidfile {tmp_path / 'stack' / 'redis' / 'redis.pid'}" in lines
    assert not any(line.startswith("requirepass") for line in lines)


def test_redis_password_goes_to_the_config_file_quoted(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"redis.url": 'redis://:s3"cr\\et@127.0.0.1:6379/0'})
    cfg = StackConfig.from_settings(settings, tmp_path)
    assert cfg.redis_password == 's3"cr\\et'
    assert 's3"cr' not in repr(cfg)
    assert 'requirepass "s3\\"cr\\\\et"' in render_redis_conf(cfg).splitlines()


def test_cluster_id_is_kafka_uuid_text() -> None:
    ids = {kafka_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for text in ids:
        assert len(text) == 22 and not text.startswith("-")
        assert len(base64.urlsafe_b64decode(text + "==")) == 16


def test_status_up_only_when_both_answer(tmp_path: Path) -> None:
    kafka = ServiceStatus("kafka", "127.0.0.1:9092", "external")
    redis_down = ServiceStatus("redis", "127.0.0.1:6379", "down")
    redis_up = ServiceStatus("redis", "127.0.0.1:6379", "up", pid=42)
    assert not StackStatus(kafka, redis_down, tmp_path).up
    status = StackStatus(kafka, redis_up, tmp_path)
    assert status.up
    data = status.to_dict()
    assert data["kafka"] == {
        "address": "127.0.0.1:9092",
        "state": "external",
        "up": True,
        "pid": None,
        "detail": "",
    }
    assert data["redis"]["pid"] == 42
    assert "not started by driftline" in kafka.describe()
    assert ServiceStatus("kafka", "127.0.0.1:9092", "starting", pid=7).up is False


def test_kafka_home_libs_are_used_instead_of_the_cache(tmp_path: Path) -> None:
    home = tmp_path / "kafka_2.13-4.1.1"
    (home / "libs").mkdir(parents=True)
    with pytest.raises(StackError, match="not a Kafka distribution"):
        kafka_libs(tmp_path / "cache", home)
    (home / "libs" / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    assert kafka_libs(tmp_path / "cache", home) == home / "libs"
    assert not (tmp_path / "cache").exists()  # nothing fetched


def test_a_complete_cache_is_used_without_maven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mvn: a fetch would fail
    cache = tmp_path / "cache"
    assert not libs_cached(cache)
    with pytest.raises(StackError, match="mvn not found"):
        kafka_libs(cache)
    (cache / f"kafka-{KAFKA_VERSION}" / "libs").mkdir(parents=True)
    (cache / f"kafka-{KAFKA_VERSION}" / "libs.complete").write_text(KAFKA_VERSION)
    assert libs_cached(cache)
    assert kafka_libs(cache) == cache / f"kafka-{KAFKA_VERSION}" / "libs"


def test_the_broker_jvm_aims_at_short_gc_pauses_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.localkafka import JVM_OPTS_ENV, java_command

    monkeypatch.delenv(JVM_OPTS_ENV, raising=False)
    cmd = java_command(tmp_path, tmp_path, "kafka.Kafka", "server.properties")
    assert "-XX:MaxGCPauseMillis=20" in cmd and "-XX:+UseG1GC" in cmd
    assert cmd[-4:] == ["-cp", f"{tmp_path}/*", "kafka.Kafka", "server.properties"]
    monkeypatch.setenv(JVM_OPTS_ENV, "-XX:+UseZGC  -XX:+ZGenerational")
    cmd = java_command(tmp_path, tmp_path, "kafka.Kafka", "server.properties")
    assert "-XX:+UseZGC" in cmd and "-XX:+ZGenerational" in cmd and "-XX:MaxGCPauseMillis=20" not in cmd
    assert cmd[-2:] == ["kafka.Kafka", "server.properties"]


def _thread_nices(pid: int) -> dict[str, list[int]]:
    """Nice value of every thread of ``pid`` by thread name, from ``/proc/<pid>/task/*/stat``."""
    nices: dict[str, list[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        nices.setdefault(name, []).append(int(stat[stat.rindex(")") + 2 :].split()[16]))
    return nices


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread nice values from /proc")
def test_the_broker_jvm_runs_its_jit_compiler_at_nice_19_and_everything_else_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default JVM options, on the installed JVM: they are accepted, the compiler threads run at nice 19 and
    every other thread at 0 as without them (root or not: every Java priority maps to nice 0, none is boosted)."""
    import os
    import subprocess
    import time

    from connectors.localkafka import JVM_OPTS_ENV, java_command

    monkeypatch.delenv(JVM_OPTS_ENV, raising=False)
    src = tmp_path / "Idle.java"
    src.write_text(
        "public class Idle { public static void main(String[] a) throws Exception {"
        ' Thread t = new Thread(() -> { try { Thread.sleep(60000); } catch (InterruptedException e) { } }, "hi");'
        " t.setPriority(Thread.MAX_PRIORITY); t.start(); t.join(); } }\n"
    )
    # Single-file source launch (JDK 11+): java_command's -cp is harmless here.
    cmd = java_command(tmp_path, tmp_path, str(src))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        nices: dict[str, list[int]] = {}
        while time.monotonic() < deadline and proc.poll() is None:
            nices = _thread_nices(proc.pid)
            if any("CompilerThre" in name for name in nices) and "hi" in nices:
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            if "jdk.compiler" in out:
                pytest.skip("this JVM cannot launch a source file (no jdk.compiler module)")
            pytest.fail(f"the JVM with the default broker options exited: {out[-2000:]}")
        base = os.getpriority(os.PRIO_PROCESS, 0)
        compilers = {name: n for name, n in nices.items() if "CompilerThre" in name}
        others = {
            name: n for name, n in nices.items() if "CompilerThre" not in name and "Sweeper" not in name
        }
        assert compilers and all(n == [19] * len(n) for n in compilers.values()), compilers
        # GC, VM thread, reference handler (Java priority 10), finalizer (8), a thread at MAX_PRIORITY: as the launcher.
        assert {"VM Thread", "Reference Handl", "Finalizer", "hi"} <= set(others), sorted(others)
        # Nice values the JVM sets are absolute: under ``nice`` a root JVM resets its threads to 0, a non-root one
        # cannot lower them and keeps the launcher's. Never below 0 (no thread is boosted), 0 when launched at 0.
        assert all(set(n) <= {base, 0} for n in others.values()), others
    finally:
        proc.kill()
        proc.wait()
