"""``driftline doctor [--json]``: what a new user may be missing, and what to do about each thing.

Checks, in the order a first run needs them: the settings load; Java, the Kafka jars (or Maven to fetch them) and
redis-server for the local stack; the stack's ports; Kafka and Redis reachable at the configured addresses; the
signing key; the contract's topics for the configured prefix; workers seen for that prefix. Each check is ok,
warn (works, or only part of the system is affected) or fail (blocks the main job, `make demo`, or leaves a
deployment broken), and says what to do. Exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from connectors.redis_store import redis_address, redis_client
from connectors.stack import StackConfig, StackStatus, stack_status
from driftline.errors import ConfigError, DriftlineError, StackError
from driftline.settings import Settings
from streams.cli import positive_seconds, settings_from_args

JAVA_MIN = 17
KEY_MIN_BYTES = 32
KEY_FIX = "export DRIFTLINE_SIGNING_KEY=$(openssl rand -hex 32)"
APT = "sudo apt-get install"


@dataclass(frozen=True)
class Check:
    """One finding: ``status`` is ok, warn or fail; ``fix`` says what to do when it is not ok."""

    name: str
    status: str
    detail: str
    fix: str = ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check what the main job needs: Java, jars, ports, Kafka, Redis, signing key, topics, workers",
        description=" ".join((__doc__ or "").split("\n\n")[1].split()),
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--timeout", type=positive_seconds, default=3.0, metavar="S", help="seconds to wait for each server"
    )
    p.set_defaults(func=run)


# ---------------------------------------------------------------- programs the local stack runs


def java_major(text: str) -> int | None:
    """The major version in ``java -version`` output.

    >>> java_major('openjdk version "17.0.13" 2024-10-15'), java_major('java version "1.8.0_392"')
    (17, 8)
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java(local: bool) -> Check:
    bad = "fail" if local else "warn"  # only the local stack runs Java
    fix = f"install Java {JAVA_MIN}+: {APT} openjdk-17-jre-headless (`make setup` does it as root)"
    java = shutil.which("java")
    if java is None:
        return Check("java", bad, "java not found on PATH (the local Kafka runs on it)", fix)
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("java", bad, f"{java} -version failed: {exc}", fix)
    major = java_major(done.stderr + done.stdout)
    if major is None or major < JAVA_MIN:
        return Check(
            "java", bad, f"{java} is Java {major or 'of unknown version'}; Kafka 4 needs {JAVA_MIN}+", fix
        )
    return Check("java", "ok", f"Java {major} ({java})")


def check_kafka_jars(cfg: StackConfig | None) -> Check:
    from connectors.localkafka import KAFKA_VERSION, libs_cached

    if cfg is None:
        return Check("kafka jars", "ok", "not needed: the configured Kafka is not on loopback")
    if cfg.kafka_home is not None:
        if any((cfg.kafka_home / "libs").glob("kafka_2.13-*.jar")):
            return Check("kafka jars", "ok", f"KAFKA_HOME={cfg.kafka_home}")
        fix = "point KAFKA_HOME at a Kafka 4 distribution, or unset it to fetch the jars with Maven"
        return Check("kafka jars", "fail", f"KAFKA_HOME={cfg.kafka_home} has no libs/kafka_2.13-*.jar", fix)
    if libs_cached(cfg.cache_dir):
        return Check("kafka jars", "ok", f"Apache Kafka {KAFKA_VERSION} in {cfg.cache_dir}")
    mvn = shutil.which("mvn")
    if mvn:
        return Check("kafka jars", "ok",
                     f"not fetched yet: the first `driftline stack up` (or `make demo`) fetches Apache Kafka "
                     f"{KAFKA_VERSION} (~45 MB) from Maven Central with {mvn} into {cfg.cache_dir}")  # fmt: skip
    return Check("kafka jars", "fail", f"no Kafka jars in {cfg.cache_dir}, and mvn is not on PATH to fetch them",
                 f"install Maven: {APT} maven (or set KAFKA_HOME to a Kafka 4 distribution)")  # fmt: skip


def check_redis_server(cfg: StackConfig | None, redis_up: bool) -> Check:
    path = shutil.which("redis-server")
    if path:
        return Check("redis-server", "ok", path)
    if cfg is None or redis_up:
        return Check("redis-server", "ok", "not on PATH; not needed (Redis answers / is not on loopback)")
    return Check("redis-server", "fail", "redis-server not found on PATH (the local stack runs it)",
                 f"{APT} redis-server (`make setup` does it as root)")  # fmt: skip


def check_ports(cfg: StackConfig | None, status: StackStatus | None) -> Check:
    from connectors.localproc import port_bindable

    if cfg is None or status is None:
        return Check("ports", "ok", "not checked: the configured servers are not on loopback")
    problems = []
    for service, flag in ((status.kafka, "--kafka-port / DRIFTLINE_KAFKA_BOOTSTRAP"),
                          (status.redis, "--redis-port / DRIFTLINE_REDIS_URL")):  # fmt: skip
        if service.state == "busy":
            problems.append(
                f"{service.address} is taken by something that does not answer as {service.name} ({flag})"
            )
    if status.kafka.state == "down" and not port_bindable(cfg.host, cfg.controller_port):
        problems.append(
            f"{cfg.host}:{cfg.controller_port} (the KRaft controller port) is in use (--controller-port)"
        )
    if problems:
        return Check("ports", "fail", "; ".join(problems), "stop what holds the port, or choose other ports")
    states = ", ".join(f"{s.address} {s.state}" for s in (status.kafka, status.redis))
    return Check("ports", "ok", f"{states}; controller {cfg.host}:{cfg.controller_port}")


# ---------------------------------------------------------------- servers


def check_kafka(
    settings: Settings, cfg: StackConfig | None, status: StackStatus | None, timeout: float
) -> Check:
    from connectors.kafka_client import check_reachable

    try:
        check_reachable(settings, timeout=timeout)
        return Check("kafka", "ok", f"answers at {settings.kafka.bootstrap}")
    except StackError as exc:
        reason = str(exc)
    if (
        cfg is not None
        and status is not None
        and status.kafka.state == "down"
        and _local_stack_at(cfg, "kafka")
    ):
        # A local stack that is not running is not a problem: `make demo` and `driftline stack up` start it.
        return Check("kafka", "warn", f"nothing answers at {settings.kafka.bootstrap} (the local stack is down)",
                     "`driftline stack up` starts it (`make demo` does too)")  # fmt: skip
    return Check("kafka", "fail", reason,
                 "start the broker (`driftline stack up` starts a local one at that address) or fix kafka.bootstrap "
                 "/ DRIFTLINE_KAFKA_BOOTSTRAP (and the security settings)")  # fmt: skip


def check_replication(health: dict[str, Any]) -> Check:
    """A warning when the cluster is degraded (:func:`connectors.kafka_view.replication_health`): the main job may
    still run, but a broker is gone or partitions are short of in-sync replicas (writes with ``acks=all`` stop
    below ``min.insync.replicas``; a partition without a leader is neither read nor written)."""
    from connectors.kafka_view import describe_replication

    problems = describe_replication(health)
    if not problems:
        return Check(
            "replication", "ok", f"{len(health['brokers'])} broker(s), every partition fully in sync"
        )
    return Check("replication", "warn", "; ".join(problems),
                 "start the missing broker (`driftline stack up` restarts a local cluster's node); the workers "
                 "wait and go on by themselves once the in-sync replicas are back")  # fmt: skip


def _local_stack_at(cfg: StackConfig, service: str) -> bool:
    """Whether the configured address of ``service`` (kafka, redis) is the local stack's: the default one, or one a
    stack in this state directory was set up on. Any other address that does not answer is a server the settings
    point at and that is missing (e.g. ``127.0.0.1:1``), not a stack waiting to be started."""
    if service == "kafka":
        if cfg.kafka_port == StackConfig.kafka_port or cfg.brokers > 1:  # a cluster is recorded by `stack up`
            return True
        text, pattern = _read(cfg.kafka_dir / "server.properties"), rf"(?m)^listeners=.*:{cfg.kafka_port}\b"
    else:
        if cfg.redis_port == StackConfig.redis_port:
            return True
        text, pattern = _read(cfg.redis_dir / "redis.conf"), rf"(?m)^port {cfg.redis_port}\b"
    return re.search(pattern, text) is not None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def check_redis(
    settings: Settings, cfg: StackConfig | None, status: StackStatus | None, timeout: float
) -> Check:
    import redis

    address = redis_address(settings)
    try:
        client = redis_client(settings, timeout)
        client.ping()
        return Check("redis", "ok", f"answers at {address}")
    except redis.RedisError as exc:
        reason = f"{type(exc).__name__}: {exc}"
    if (
        cfg is not None
        and status is not None
        and status.redis.state == "down"
        and _local_stack_at(cfg, "redis")
    ):
        return Check("redis", "warn", f"nothing answers at {address} (the local stack is down)",
                     "`driftline stack up` starts it (`make demo` does too)")  # fmt: skip
    fix = "start Redis (`driftline stack up` for the local one) or fix redis.url / DRIFTLINE_REDIS_URL"
    if status is not None and status.redis.state == "stopped":  # ours, frozen: `stack up` cannot help
        fix = f"the local stack's Redis (pid {status.redis.pid}) is {status.redis.detail}"
    return Check("redis", "fail", f"cannot reach Redis at {address}: {reason}", fix)


def check_signing_key(settings: Settings) -> Check:
    key = settings.model.signing_key.get()
    if not key:
        detail = "DRIFTLINE_SIGNING_KEY is not set: workers refuse to start (the demo makes its own)"
        return Check("signing key", "warn", detail, KEY_FIX)
    size = len(key.encode())
    if size < KEY_MIN_BYTES:
        return Check("signing key", "fail",
                     f"the signing key is {size} bytes; it must be at least {KEY_MIN_BYTES}", KEY_FIX)  # fmt: skip
    return Check("signing key", "ok", f"set ({size} bytes)")


def check_topics_present(settings: Settings, timeout: float) -> Check:
    from connectors.topics import check_topics

    prefix = settings.kafka.topic_prefix
    checks = check_topics(settings, timeout=max(timeout, 5.0))
    missing = [c.topic for c in checks if not c.exists]
    wrong = [f"{c.spec.name}: " + "; ".join(d.describe() for d in c.differences if d.severity == "error")
             for c in checks if c.status == "differs"]  # fmt: skip
    if wrong:
        return Check("topics", "fail", " | ".join(wrong),
                     "recreate these topics with the contract's settings (delete them, then `driftline topics "
                     "create`), or alter them with kafka-configs; `driftline topics describe` shows all")  # fmt: skip
    if missing:
        return Check("topics", "warn", f"{len(missing)} of {len(checks)} topics with prefix {prefix!r} missing: "
                     f"{', '.join(missing)}", "`driftline topics create` (workers create them too)")  # fmt: skip
    notes = [c for c in checks if c.status == "warning"]
    if notes:
        detail = "; ".join(f"{c.spec.name}: {d.describe()}" for c in notes for d in c.differences)
        return Check("topics", "warn", detail, "`driftline topics describe` shows what differs")
    return Check("topics", "ok", f"all {len(checks)} topics with prefix {prefix!r} as the contract says")


def check_workers(settings: Settings, timeout: float) -> Check:
    """Worker heartbeats as ``driftline status`` sees them: consumer groups with members, and the trainer's
    live state in Redis (refreshed after every batch)."""
    from connectors.kafka_view import KafkaView
    from streams.join import trainer_group
    from streams.status import worker_config_differences
    from streams.trainer_status import (
        CONFIG_DIFFERS_FIX,
        ROUTING_DIFFERS_FIX,
        differences_text,
        trainer_status,
    )

    view = KafkaView(settings, timeout=max(timeout, 5.0))
    groups = [g for g in view.describe(view.group_ids(), with_lag=False) if g.members]
    trainer = trainer_status(settings)
    beat = ""
    if trainer and trainer.get("updated_at"):
        beat = f"; trainer state updated {max(time.time() - trainer['updated_at'] / 1000, 0):.0f}s ago"
    prefix = settings.kafka.topic_prefix
    if view.group_errors:
        why = view.group_errors[0][:100]
        return Check("workers", "warn", f"consumer groups could not be listed from every broker ({why}); "
                     f"{len(groups)} seen with members{beat}",
                     "a broker does not answer: see the replication check and `driftline stack status`")  # fmt: skip
    if not groups:
        return Check("workers", "warn", f"no worker is running for prefix {prefix!r}{beat}",
                     "start one: driftline worker --role all (with DRIFTLINE_SIGNING_KEY set)")  # fmt: skip
    names = ", ".join(f"{g.group_id} ({len(g.members)})" for g in groups)
    # Each role of the main job has its consumer group: a stopped trainer left "ok" here while nothing learned and
    # no control command was answered (status showed its group empty).
    running = {g.group_id for g in groups}
    stage = f"driftline-{prefix}{settings.model.name}-"  # streams.app.stage_group, without importing Faust
    roles = {"score": stage + "score", "join": stage + "join", "train": trainer_group(settings)}
    missing = [role for role, group in roles.items() if group not in running]
    found = [g.to_dict() for g in groups]
    notes, fixes = [], []
    if trainers_differ := worker_config_differences(settings, found, "trainer"):
        notes.append(f"the trainers run with different settings ({differences_text(trainers_differ)})")
        fixes.append(CONFIG_DIFFERS_FIX)
    if scorers_differ := worker_config_differences(settings, found, "scorer"):
        notes.append(f"the scorers route with different settings ({differences_text(scorers_differ)})")
        fixes.append(ROUTING_DIFFERS_FIX)
    differs = bool(notes)
    differs_text = "; ".join(notes)
    if missing:
        what = {"score": "no event is answered", "join": "no label reaches a trainer",
                "train": "no model learns and control commands get no answer"}  # fmt: skip
        return Check("workers", "warn",
                     "; ".join(f"no {role} worker is running ({what[role]})" for role in missing)
                     + (f"; {differs_text}" if differs else "") + f"; running: {names}{beat}",
                     " and ".join(f"start one: driftline worker --role {role}" for role in missing)
                     + "".join(f"; {fix}" for fix in fixes))  # fmt: skip
    if differs:
        return Check("workers", "warn", f"{differs_text}; running: {names}{beat}", "; ".join(fixes))
    return Check("workers", "ok", f"{len(groups)} worker group(s) with members: {names}{beat}")


# ---------------------------------------------------------------- running them


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    """A check that raises still yields a finding (doctor must never die on the thing it diagnoses)."""
    try:
        return fn()
    except DriftlineError as exc:
        return Check(name, "fail", str(exc))
    except Exception as exc:
        return Check(name, "fail", f"{type(exc).__name__}: {exc}")


def diagnose(settings: Settings | None, config_error: str = "", timeout: float = 3.0) -> list[Check]:
    """Every check, in order. ``settings`` None (the settings did not load) checks only the programs."""
    checks = [Check("python", "ok", f"Python {sys.version.split()[0]} ({sys.executable})")]
    if settings is None:
        checks.append(
            Check("config", "fail", config_error, "fix the named setting (`driftline config show`)")
        )
        checks += [check_java(True), check_redis_server(None, False)]
        return checks
    checks.append(Check("config", "ok", f"settings load; topic prefix {settings.kafka.topic_prefix!r}"))
    try:
        cfg: StackConfig | None = StackConfig.from_settings(settings)
    except StackError:
        cfg = None  # remote servers: no local stack to run
    status = _guard_status(cfg)
    checks.append(_guard("java", lambda: check_java(cfg is not None)))
    checks.append(_guard("kafka jars", lambda: check_kafka_jars(cfg)))
    checks.append(_guard("ports", lambda: check_ports(cfg, status)))
    kafka = _guard("kafka", lambda: check_kafka(settings, cfg, status, timeout))
    redis_check = _guard("redis", lambda: check_redis(settings, cfg, status, timeout))
    checks.append(_guard("redis-server", lambda: check_redis_server(cfg, redis_check.status == "ok")))
    checks += [kafka, redis_check, check_signing_key(settings)]
    if kafka.status == "ok":
        checks.append(
            _guard("replication", lambda: _stopped_nodes(_check_replication(settings, timeout), status))
        )
        checks.append(_guard("topics", lambda: check_topics_present(settings, timeout)))
        checks.append(_guard("workers", lambda: check_workers(settings, timeout)))
    return checks


def _check_replication(settings: Settings, timeout: float) -> Check:
    from connectors.kafka_view import KafkaView

    return check_replication(KafkaView(settings, timeout=max(timeout, 5.0)).replication())


def _stopped_nodes(check: Check, status: StackStatus | None) -> Check:
    """A degraded cluster whose missing node is a local one stopped by a signal: `stack up` cannot restart it, the
    fix is to resume it (helper fault40, session 40)."""
    stopped = [n for n in (status.kafka_nodes if status is not None else ()) if n.state == "stopped"]
    if check.status == "ok" or not stopped:
        return check
    said = "; ".join(f"{n.name} (pid {n.pid}) is {n.detail}" for n in stopped)
    return replace(check, fix=f"{said}; then the workers go on by themselves")


def _guard_status(cfg: StackConfig | None) -> StackStatus | None:
    if cfg is None:
        return None
    try:
        return stack_status(cfg)
    except DriftlineError:
        return None


def render(checks: list[Check]) -> str:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"{marks.get(c.status, c.status):<5} {c.name:<13} {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"{'':<19}-> {c.fix}")
    failed = [c.name for c in checks if c.status == "fail"]
    lines.append("")
    lines.append(f"{len(failed)} problem(s) block the main job: {', '.join(failed)}" if failed else
                 "nothing blocks the main job (`make demo`)")  # fmt: skip
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings: Settings | None
    try:
        settings = settings_from_args(args)
        error = ""
    except ConfigError as exc:
        settings, error = None, str(exc)
    checks = diagnose(settings, error, timeout=args.timeout)
    ok = not any(c.status == "fail" for c in checks)
    if args.json:
        out: dict[str, Any] = {"ok": ok, "checks": [asdict(c) for c in checks]}
        print(json.dumps(out, sort_keys=True))
    else:
        print(render(checks))
    return 0 if ok else 1
