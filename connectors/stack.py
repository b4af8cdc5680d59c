"""The local stack: one Apache Kafka 4 broker (KRaft, single node) and one Redis, on loopback.

``driftline stack up|down|status`` and the test fixtures call :func:`stack_up`, :func:`stack_down`,
:func:`stack_status` and :func:`ensure_stack`. Everything lives in one state directory
(``<state_dir>/stack``): ``kafka/`` (properties, data, logs, pid) and ``redis/`` (config, AOF, log, pid).
Processes are stopped only through our own pid files, and only after ``/proc/<pid>/cmdline`` shows they are
the processes we started.

A port already served by something we did not start (a developer's broker, a system Redis) is reported as
``external`` and reused, never replaced.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.localkafka import (
    KAFKA_HEAP,
    BrokerSecurity,
    is_kafka_process,
    java_command,
    kafka_libs,
    libs_cached,
    prepare,
    render_cluster_properties,
    render_server_properties,
)
from connectors.localproc import (
    check_tools,
    file_lock,
    kafka_answers,
    log_tail,
    owned_pid,
    port_bindable,
    port_open,
    redis_ping,
    require_tool,
    stop_pidfile,
)
from driftline.errors import StackError
from driftline.settings import Settings

log = logging.getLogger(__name__)

# Service states: up (ours, answering), external (answering, not ours), starting (our process, not answering
# yet), busy (the port is taken by something that does not answer the protocol), down.
LIVE_STATES = ("up", "external")


@dataclass(frozen=True)
class StackConfig:
    """Where and how the local stack runs; built from settings by :meth:`from_settings`."""

    state_dir: Path
    kafka_port: int = 9092
    controller_port: int = 9093
    redis_port: int = 6379
    redis_password: str = field(default="", repr=False)
    host: str = "127.0.0.1"
    kafka_home: Path | None = None
    cache_dir: Path = field(default_factory=lambda: Path("~/.cache/driftline").expanduser())
    # Extra SASL/TLS listeners next to PLAINTEXT on kafka_port (tests of secured clients); None = PLAINTEXT only.
    kafka_security: BrokerSecurity | None = None
    # Kafka nodes. 1: the single-node stack in kafka/. N > 1: a KRaft cluster (connectors.cluster) whose node i
    # (1..N) lives in kafka-<i>/ on kafka_port + 2(i-1) and controller_port + 2(i-1).
    brokers: int = 1
    # Set on the per-node configs of a cluster (connectors.cluster.nodes): this node's id and every node's
    # controller port (the KRaft voters); 0 and () for the single-node stack.
    node: int = 0
    voters: tuple[int, ...] = ()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        state_dir: str | Path | None = None,
        *,
        kafka_port: int | None = None,
        controller_port: int | None = None,
        redis_port: int | None = None,
        kafka_home: str | Path | None = None,
        brokers: int | None = None,
    ) -> StackConfig:
        """Ports from ``kafka.bootstrap`` and ``redis.url`` unless given; controller port = kafka port + 1.

        ``brokers`` defaults to what ``stack up --brokers`` recorded in the state directory, else 1.
        """
        k_host, k_port = _host_port(settings.kafka.bootstrap.split(",")[0], 9092, "kafka.bootstrap")
        url = urlsplit(settings.redis.url.get())
        r_host = url.hostname or "127.0.0.1"
        try:
            r_port = url.port or 6379
        except ValueError as exc:
            raise StackError(f"redis.url: bad port in {url.scheme}://{r_host}:...: {exc}") from exc
        for what, host in (("kafka.bootstrap", k_host), ("redis.url", r_host)):
            if host not in ("127.0.0.1", "localhost"):
                raise StackError(
                    f"{what}: the local stack runs on 127.0.0.1 only, not {host!r}; "
                    "point the setting at 127.0.0.1 or run your own servers"
                )
        home = kafka_home if kafka_home is not None else os.environ.get("KAFKA_HOME")
        stack_dir = Path(state_dir or settings.state_dir).expanduser() / "stack"
        recorded = recorded_cluster(stack_dir) if brokers is None else {}
        if recorded:  # the cluster this state directory runs, wherever the settings point
            brokers = recorded["brokers"]
            controller_port = controller_port or (None if kafka_port else recorded["controller_port"])
            kafka_port = kafka_port or recorded["kafka_port"]
        kafka_port = kafka_port or k_port
        brokers = 1 if brokers is None else brokers
        if brokers < 1:
            raise StackError(f"--brokers must be 1 or more, not {brokers}")
        return cls(
            state_dir=stack_dir,
            brokers=brokers,
            kafka_port=kafka_port,
            controller_port=controller_port or kafka_port + 1,
            redis_port=redis_port or r_port,
            redis_password=unquote(url.password or ""),  # as redis-py reads it
            kafka_home=Path(home).expanduser() if home else None,
        )

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / (f"kafka-{self.node}" if self.node else "kafka")

    @property
    def redis_dir(self) -> Path:
        return self.state_dir / "redis"

    @property
    def kafka_address(self) -> str:
        """``host:port``; for a whole cluster the bootstrap list of all its nodes."""
        if self.brokers > 1 and not self.node:
            step = range(0, 2 * self.brokers, 2)
            return ",".join(f"{self.host}:{self.kafka_port + i}" for i in step)
        return f"{self.host}:{self.kafka_port}"

    @property
    def redis_address(self) -> str:
        return f"{self.host}:{self.redis_port}"


@dataclass(frozen=True)
class ServiceStatus:
    """One service of the stack: ``state`` is up, external, starting, busy or down."""

    name: str
    address: str
    state: str
    pid: int | None = None
    detail: str = ""

    @property
    def up(self) -> bool:
        """True when the service answers, whoever started it."""
        return self.state in LIVE_STATES

    def describe(self) -> str:
        text = {"external": "up (not started by driftline)", "busy": "port taken (not answering)"}.get(
            self.state, self.state
        )
        pid = f", pid {self.pid}" if self.pid else ""
        return f"{self.name:<6} {self.address:<16} {text}{pid}{' - ' + self.detail if self.detail else ''}"


@dataclass(frozen=True)
class StackStatus:
    """Both services and the state directory; ``up`` when both answer. For a cluster ``kafka`` sums up the
    nodes (``up`` only when every node answers) and ``kafka_nodes`` lists each one."""

    kafka: ServiceStatus
    redis: ServiceStatus
    state_dir: Path
    kafka_nodes: tuple[ServiceStatus, ...] = ()

    @property
    def up(self) -> bool:
        return self.kafka.up and self.redis.up

    def to_dict(self) -> dict[str, Any]:
        def one(s: ServiceStatus) -> dict[str, Any]:
            return {"address": s.address, "state": s.state, "up": s.up, "pid": s.pid, "detail": s.detail}

        data = {
            "up": self.up,
            "state_dir": str(self.state_dir),
            "kafka": one(self.kafka),
            "redis": one(self.redis),
        }
        if self.kafka_nodes:
            data["kafka_nodes"] = [{"name": n.name, **one(n)} for n in self.kafka_nodes]
        return data


# ---------------------------------------------------------------- rendering and recognising our processes


def _host_port(address: str, default_port: int, what: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    if not host:
        return address.strip() or "127.0.0.1", default_port
    try:
        return host, int(port)
    except ValueError:
        raise StackError(f"{what}: expected HOST:PORT, got {address!r}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def recorded_cluster(stack_dir: Path) -> dict[str, int]:
    """What ``stack up --brokers N`` (N > 1) recorded in ``stack_dir``: ``brokers``, ``kafka_port`` and
    ``controller_port`` of node 1; empty for a single-node stack."""
    try:
        data = json.loads(_read(stack_dir / "cluster.json") or "{}")
    except ValueError:
        return {}
    keys = ("brokers", "kafka_port", "controller_port")
    return {k: int(data[k]) for k in keys} if isinstance(data, dict) and all(k in data for k in keys) else {}


def render_kafka_properties(cfg: StackConfig) -> str:
    """The broker's ``server.properties`` for ``cfg`` (a single node, or one node of a cluster)."""
    if cfg.node:
        return render_cluster_properties(
            cfg.host, cfg.node, cfg.kafka_port, cfg.controller_port, cfg.kafka_dir / "data", cfg.voters
        )
    return render_server_properties(
        cfg.host, cfg.kafka_port, cfg.controller_port, cfg.kafka_dir / "data", cfg.kafka_security
    )


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


def _check_bindable(host: str, port: int, flag: str) -> None:
    if not port_bindable(host, port):
        raise StackError(f"{host}:{port} is in use (by a server or a connection); choose another with {flag}")


# ---------------------------------------------------------------- Kafka


def _kafka_status(cfg: StackConfig) -> ServiceStatus:
    props = cfg.kafka_dir / "server.properties"
    pid = owned_pid(cfg.kafka_dir / "kafka.pid", lambda argv: is_kafka_process(argv, props))
    text = _read(props)
    if pid and not any(f"advertised.listeners=PLAINTEXT://{cfg.kafka_address}{end}" in text for end in ",\n"):
        pid = None  # our broker, but serving another port: not what this address is about
    answers = kafka_answers(cfg.host, cfg.kafka_port)
    if pid:
        return ServiceStatus("kafka", cfg.kafka_address, "up" if answers else "starting", pid)
    if answers:
        return ServiceStatus("kafka", cfg.kafka_address, "external")
    busy = port_open(cfg.host, cfg.kafka_port)
    return ServiceStatus("kafka", cfg.kafka_address, "busy" if busy else "down")


def _kafka_up(cfg: StackConfig, timeout_s: float) -> ServiceStatus:
    return _kafka_wait(cfg, _kafka_start(cfg), timeout_s)


def _kafka_start(
    cfg: StackConfig, cluster_id: str | None = None, heap: str = KAFKA_HEAP
) -> subprocess.Popen[bytes] | None:
    """Start the broker of ``cfg`` unless it answers or is starting; returns the child started, if any."""
    status = _kafka_status(cfg)
    if status.state in ("external", "up", "starting"):
        return None
    if status.state == "busy":
        raise StackError(f"port {cfg.kafka_port} is taken by a process that does not answer as Kafka")
    libs = kafka_libs(cfg.cache_dir, cfg.kafka_home)
    _check_bindable(cfg.host, cfg.kafka_port, "--kafka-port")
    _check_bindable(cfg.host, cfg.controller_port, "--controller-port")
    security = cfg.kafka_security
    for proto, port in security.listeners() if security else ():
        _check_bindable(cfg.host, port, f"BrokerSecurity ({proto} listener)")
    scram = security.scram_args() if security else []
    props = prepare(libs, cfg.kafka_dir, render_kafka_properties(cfg), scram, cluster_id)
    out = cfg.kafka_dir / "kafka.out"
    with out.open("ab") as sink:
        proc = subprocess.Popen(
            java_command(libs, cfg.kafka_dir, "kafka.Kafka", str(props), heap=heap),
            stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True,
        )  # fmt: skip
    (cfg.kafka_dir / "kafka.pid").write_text(f"{proc.pid}\n")
    return proc


def _kafka_wait(cfg: StackConfig, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> ServiceStatus:
    """Wait until the broker of ``cfg`` answers; a StackError with its log tail when it does not."""
    deadline = time.monotonic() + timeout_s
    exited = False
    while True:
        status = _kafka_status(cfg)
        # Right after the fork /proc shows Python's argv, so a child we just started is watched by poll().
        exited = proc.poll() is not None if proc else status.pid is None
        if status.state in LIVE_STATES or exited or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if status.state in LIVE_STATES:
        return status
    raise StackError(
        f"Kafka did not answer on {cfg.kafka_address} within {timeout_s:.0f}s "
        f"({'the process exited' if exited else 'still starting'}); "
        f"from {cfg.kafka_dir / 'logs' / 'server.log'}:\n"
        f"{log_tail(cfg.kafka_dir / 'logs' / 'server.log')}\n{log_tail(cfg.kafka_dir / 'kafka.out', 5)}"
    )


# ---------------------------------------------------------------- Redis


def _redis_status(cfg: StackConfig) -> ServiceStatus:
    pid = owned_pid(cfg.redis_dir / "redis.pid", lambda argv: is_redis_process(argv, cfg.redis_port))
    reply = redis_ping(cfg.host, cfg.redis_port, cfg.redis_password)
    answers = reply is not None and (reply == "+PONG" or reply.startswith(("-NOAUTH", "-WRONGPASS", "-ERR")))
    detail = "" if reply in (None, "+PONG") else reply.lstrip("-+")
    if pid:
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
        raise StackError(f"port {cfg.redis_port} is taken by a process that does not answer as Redis")
    _check_bindable(cfg.host, cfg.redis_port, "--redis-port")
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
    return StackStatus(_kafka_status(cfg), _redis_status(cfg), cfg.state_dir)


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
        redis = _redis_up(cfg, min(timeout_s, 30.0))
        if cfg.brokers > 1:
            from connectors.cluster import cluster_up

            kafka, each = cluster_up(cfg, timeout_s)
            return StackStatus(kafka, redis, cfg.state_dir, each)
        kafka = _kafka_up(cfg, timeout_s)
    return StackStatus(kafka, redis, cfg.state_dir)


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
            stopped["redis"] = stop_pidfile(
                cfg.redis_dir / "redis.pid", lambda argv: is_redis_process(argv, cfg.redis_port), grace_s
            )
    return stopped


def ensure_stack(settings: Settings, state_dir: str | Path | None = None) -> StackStatus:
    """The stack answering on the configured ports: reuses what already answers, starts the rest."""
    return stack_up(settings, state_dir)
