"""The local stack: one Apache Kafka 4 broker (KRaft, single node) and one Redis, on loopback.

``driftline stack up|down|status`` and the test fixtures call :func:`stack_up`, :func:`stack_down`,
:func:`stack_status` and :func:`ensure_stack`. Everything lives in one state directory
(``<state_dir>/stack``): ``kafka/`` (properties, data, logs, pid) and ``redis/`` (config, AOF, log, pid).
Processes are stopped only through our own pid files, and only after ``/proc/<pid>/cmdline`` shows they are
the processes we started.

A port already served by something we did not start (a developer's broker, a system Redis) is reported as
``external`` and reused, never replaced.

This module runs Redis and holds the public API; the configuration and status types are in
:mod:`connectors.stack_config`, one broker in :mod:`connectors.stack_kafka`, a multi-node cluster in
:mod:`connectors.cluster`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.localkafka import is_kafka_process, libs_cached
from connectors.localproc import (
    check_tools,
    file_lock,
    log_tail,
    owned_pid,
    port_open,
    process_stopped,
    redis_ping,
    require_tool,
    stop_pidfile,
)
from connectors.stack_config import (
    LIVE_STATES,
    ServiceStatus,
    StackConfig,
    StackStatus,
    recorded_cluster,
    stopped_detail,
    stopped_error,
)
from connectors.stack_kafka import (
    check_bindable,
    choose_another,
    kafka_needs_start,
    kafka_status,
    kafka_up,
    render_kafka_properties,
)
from driftline.errors import StackError
from driftline.settings import Settings

if TYPE_CHECKING:
    from connectors.warmup import WarmupReport

__all__ = [
    "LIVE_STATES",
    "ServiceStatus",
    "StackConfig",
    "StackStatus",
    "as_started",
    "ensure_stack",
    "is_redis_process",
    "recorded_cluster",
    "render_kafka_properties",
    "render_redis_conf",
    "stack_down",
    "stack_status",
    "stack_up",
]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- Redis


def render_redis_conf(cfg: StackConfig) -> str:
    """``redis.conf``: loopback, AOF with fsync every second, everything in the state directory."""
    lines = [
        f"bind {cfg.host}",
        f"port {cfg.redis_port}",
        "protected-mode yes",
        f"dir {cfg.redis_dir}",
        "daemonize yes",
        f"pidfile {cfg.redis_dir / 'redis.pid'}",
        f"logfile {cfg.redis_dir / 'redis.log'}",
        # Lose at most a second of pending joins on a crash, without an fsync per write.
        "appendonly yes",
        "appendfsync everysec",
        "save 300 100",
    ]
    if cfg.redis_password:
        # In the config file (mode 0600), not on the command line where `ps` would show it.
        lines.append("requirepass " + cfg.redis_password.replace("\\", "\\\\").replace('"', '\\"').join('""'))
    return "\n".join(lines) + "\n"


def is_redis_process(cmdline: list[str], port: int) -> bool:
    """redis-server renames its process title to ``redis-server HOST:PORT``; check both forms."""
    if not cmdline or not os.path.basename(cmdline[0]).startswith("redis-server"):
        return False
    return any(part.endswith(f":{port}") for part in " ".join(cmdline).split())


def _redis_status(cfg: StackConfig) -> ServiceStatus:
    pid = owned_pid(cfg.redis_dir / "redis.pid", lambda argv: is_redis_process(argv, cfg.redis_port))
    reply = redis_ping(cfg.host, cfg.redis_port, cfg.redis_password)
    answers = reply is not None and (reply == "+PONG" or reply.startswith(("-NOAUTH", "-WRONGPASS", "-ERR")))
    detail = "" if reply in (None, "+PONG") else reply.lstrip("-+")
    if pid:
        if not answers and process_stopped(pid):
            return ServiceStatus("redis", cfg.redis_address, "stopped", pid, stopped_detail(pid))
        return ServiceStatus("redis", cfg.redis_address, "up" if answers else "starting", pid, detail)
    if answers:
        return ServiceStatus("redis", cfg.redis_address, "external", None, detail)
    busy = port_open(cfg.host, cfg.redis_port)
    return ServiceStatus("redis", cfg.redis_address, "busy" if busy else "down")


def _redis_up(cfg: StackConfig, timeout_s: float) -> ServiceStatus:
    status = _redis_status(cfg)
    if status.state in ("up", "external"):
        return status
    if status.state == "busy":
        raise StackError(
            f"port {cfg.redis_port} is taken by a process that does not answer as Redis; "
            f"{choose_another('--redis-port')}"
        )
    if status.state == "stopped" and status.pid:
        raise stopped_error("Redis", cfg.redis_address, status.pid)
    check_bindable(cfg.host, cfg.redis_port, "--redis-port")
    server = require_tool("redis-server")
    cfg.redis_dir.mkdir(parents=True, exist_ok=True)
    conf = cfg.redis_dir / "redis.conf"
    conf.touch(mode=0o600)
    conf.chmod(0o600)
    conf.write_text(render_redis_conf(cfg))
    done = subprocess.run(
        [server, str(conf)], capture_output=True, text=True, check=False, start_new_session=True
    )
    if done.returncode != 0:
        raise StackError(
            f"redis-server failed to start:\n{done.stdout}{done.stderr}\n"
            f"{log_tail(cfg.redis_dir / 'redis.log')}"
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _redis_status(cfg)
        if status.state == "up":
            return status
        time.sleep(0.1)
    raise StackError(
        f"Redis did not answer PING on {cfg.redis_address} within {timeout_s:.0f}s; "
        f"from {cfg.redis_dir / 'redis.log'}:\n{log_tail(cfg.redis_dir / 'redis.log')}"
    )


# ---------------------------------------------------------------- public API


def _config(settings: Settings | StackConfig, state_dir: str | Path | None) -> StackConfig:
    if isinstance(settings, StackConfig):
        return settings
    return StackConfig.from_settings(settings, state_dir)


def stack_status(settings: Settings | StackConfig, state_dir: str | Path | None = None) -> StackStatus:
    """Probe both services. Pass a :class:`StackConfig` (``StackConfig.from_settings(..., kafka_port=...)``)
    for other ports; a ``Settings`` uses its ``kafka.bootstrap`` and ``redis.url``."""
    cfg = _config(settings, state_dir)
    if cfg.brokers > 1:
        from connectors.cluster import cluster_status

        kafka, each = cluster_status(cfg)
        return StackStatus(kafka, _redis_status(cfg), cfg.state_dir, each)
    return StackStatus(kafka_status(cfg), _redis_status(cfg), cfg.state_dir)


def stack_up(
    settings: Settings | StackConfig,
    state_dir: str | Path | None = None,
    *,
    timeout_s: float = 120.0,
) -> StackStatus:
    """Start whatever is not answering yet (idempotent) and wait until both services answer.

    A service already answering on its port - ours or not - is left alone and reported (``up``/``external``).
    Raises :class:`StackError` with the log tail when a service does not come up in ``timeout_s``.
    """
    cfg = _config(settings, state_dir)
    # Name every missing program before starting anything, rather than leave half a stack running.
    needed = [] if _redis_status(cfg).up else ["redis-server"]
    if not stack_status(cfg).kafka.up:
        needed += ["java"] if cfg.kafka_home or libs_cached(cfg.cache_dir) else ["java", "mvn"]
    check_tools(needed)
    with file_lock(cfg.state_dir / "stack.lock"):
        # A taken Kafka port fails here, before Redis is started. What this call starts is decided here, under
        # the lock: a concurrent `stack up` that got the lock first has started it, and this one only finds it.
        if cfg.brokers > 1:
            from connectors.cluster import cluster_check, cluster_up, nodes

            cluster_check(cfg)
            kafka_starts = any([kafka_needs_start(node) for node in nodes(cfg)])
        else:
            kafka_starts = kafka_needs_start(cfg)
        redis_starts = _redis_status(cfg).state not in ("up", "external")
        _check_running_elsewhere(cfg, kafka_starts, redis_starts)
        started = (("kafka",) if kafka_starts else ()) + (("redis",) if redis_starts else ())
        redis = _redis_up(cfg, min(timeout_s, 30.0))
        if cfg.brokers > 1:
            kafka, each = cluster_up(cfg, timeout_s)
            return StackStatus(kafka, redis, cfg.state_dir, each, started)
        kafka = kafka_up(cfg, timeout_s)
    return StackStatus(kafka, redis, cfg.state_dir, started=started)


def _check_running_elsewhere(cfg: StackConfig, kafka_starts: bool, redis_starts: bool) -> None:
    """A StackError when a service this call would start (``kafka_starts``, ``redis_starts``) already runs from
    this state directory on another port (servers already answering on the ports asked start nothing: no clash).

    One state directory holds one stack: its data, pid files and configuration. Starting a second broker on
    another port there rewrote the first one's properties and pid file over its running process and put two
    brokers on one data directory (the first one died; session 35 lost a demo to it).
    """
    running = as_started(cfg)
    props = cfg.kafka_dir / "server.properties"
    elsewhere = []
    if kafka_starts and cfg.brokers == 1 and running.kafka_port != cfg.kafka_port:
        pid = owned_pid(cfg.kafka_dir / "kafka.pid", lambda argv: is_kafka_process(argv, props))
        if pid:
            elsewhere.append(f"Kafka on {cfg.host}:{running.kafka_port} (pid {pid})")
    if kafka_starts and cfg.brokers > 1:
        elsewhere += _cluster_elsewhere(cfg)
    # Redis is one per state directory whatever the brokers (review35: `--brokers 3` skipped this check).
    redis_port = _started_redis_port(cfg)
    if redis_starts and redis_port != cfg.redis_port:
        pid = owned_pid(cfg.redis_dir / "redis.pid", lambda argv: is_redis_process(argv, redis_port))
        if pid:
            elsewhere.append(f"Redis on {cfg.host}:{redis_port} (pid {pid})")
    if elsewhere:
        raise StackError(
            f"the stack of state directory {cfg.state_dir.parent} already runs {' and '.join(elsewhere)}, not on "
            f"the ports asked; one state directory holds one stack: stop it first (driftline stack down "
            f"--state-dir {cfg.state_dir.parent}) or give this one its own --state-dir"
        )


def _cluster_elsewhere(cfg: StackConfig) -> list[str]:
    """The nodes of the cluster recorded in ``cfg``'s state directory (``cluster.json``) that run on other ports
    than ``cfg``'s: node N of any cluster there keeps its data in ``kafka-N``, so starting this one's would put a
    second broker on a running node's directory."""
    from connectors.cluster import nodes

    recorded = recorded_cluster(cfg.state_dir)
    if not recorded or (recorded["kafka_port"], recorded["controller_port"]) == (
        cfg.kafka_port,
        cfg.controller_port,
    ):
        return []
    out = []
    there = dataclasses.replace(
        cfg,
        brokers=recorded["brokers"],
        kafka_port=recorded["kafka_port"],
        controller_port=recorded["controller_port"],
    )
    for node in nodes(there):
        props = node.kafka_dir / "server.properties"
        pid = owned_pid(node.kafka_dir / "kafka.pid", functools.partial(is_kafka_process, properties=props))
        if pid:
            out.append(f"Kafka node {node.node} on {node.host}:{node.kafka_port} (pid {pid})")
    return out


def stack_down(
    settings: Settings | StackConfig,
    state_dir: str | Path | None = None,
    *,
    grace_s: float = 30.0,
    services: tuple[str, ...] = ("kafka", "redis"),
) -> dict[str, bool]:
    """Stop the services this state directory started; returns ``{"kafka": stopped?, "redis": stopped?}``.

    Services we did not start are never signalled; ``services`` narrows the stop further (a caller that started
    only Redis stops only Redis).
    """
    cfg = _config(settings, state_dir)
    stopped = {"kafka": False, "redis": False}
    if not cfg.state_dir.is_dir():
        return stopped
    props = cfg.kafka_dir / "server.properties"
    with file_lock(cfg.state_dir / "stack.lock"):
        if "kafka" in services:
            if cfg.brokers > 1:
                from connectors.cluster import cluster_down

                stopped["kafka"] = cluster_down(cfg, grace_s)
            else:
                stopped["kafka"] = stop_pidfile(
                    cfg.kafka_dir / "kafka.pid", lambda argv: is_kafka_process(argv, props), grace_s
                )
        if "redis" in services:
            port = _started_redis_port(cfg)
            stopped["redis"] = stop_pidfile(
                cfg.redis_dir / "redis.pid", lambda argv: is_redis_process(argv, port), grace_s
            )
    return stopped


def as_started(cfg: StackConfig) -> StackConfig:
    """``cfg`` with the ports its state directory's single-node stack was last started on (its
    ``server.properties`` and ``redis.conf``), where they can be read: what ``stack status|down --state-dir D``
    look at when no port is given, so they probe (and refuse to stop under active groups) D's servers, not the
    servers on the configured ports."""
    if cfg.brokers > 1:
        return cfg  # the cluster records its ports (cluster.json)
    kafka_port, controller_port = cfg.kafka_port, cfg.controller_port
    try:
        lines = (cfg.kafka_dir / "server.properties").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("listeners="):
            for listener in line.removeprefix("listeners=").split(","):
                name, _, port = listener.rpartition(":")
                if port.isdigit() and name.startswith("PLAINTEXT:"):
                    kafka_port = int(port)
                elif port.isdigit() and name.startswith("CONTROLLER:"):
                    controller_port = int(port)
    return dataclasses.replace(
        cfg, kafka_port=kafka_port, controller_port=controller_port, redis_port=_started_redis_port(cfg)
    )


def _started_redis_port(cfg: StackConfig) -> int:
    """The port this state directory's Redis was started on (its ``redis.conf``), else the configured one.

    ``stack down --state-dir D`` without the ports ``stack up`` was given must still recognise (and stop) that
    Redis, not take it for a recycled pid and drop its pid file. Kafka is recognised by its properties file.
    """
    try:
        lines = (cfg.redis_dir / "redis.conf").read_text().splitlines()
    except OSError:
        return cfg.redis_port
    ports = [line.split()[1] for line in lines if line.startswith("port ") and len(line.split()) == 2]
    return int(ports[0]) if ports and ports[0].isdigit() else cfg.redis_port


def ensure_stack(
    settings: Settings,
    state_dir: str | Path | None = None,
    *,
    warm: bool = False,
    on_warm: Callable[[WarmupReport], None] | None = None,
) -> StackStatus:
    """The stack answering on the configured ports: reuses what already answers, starts the rest.

    ``warm``: when this call started the (single-node) broker, run records through it until its JIT compiler
    goes quiet before returning (:func:`connectors.warmup.warm_broker`), as ``driftline stack up --warm`` does;
    ``on_warm`` is then given what the warm-up did.
    """
    cfg = _config(settings, state_dir)
    status = stack_up(cfg)
    if warm and "kafka" in status.started and cfg.brokers == 1 and status.kafka.state == "up":
        from connectors.warmup import warm_broker

        report = warm_broker(settings, status.kafka.pid)
        log.info("warmed the broker for %.0f s (%s)", report.seconds, report.stopped)
        if on_warm is not None:
            on_warm(report)
    return status
