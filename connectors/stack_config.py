"""The local stack's configuration and status types: where the stack runs (:class:`StackConfig`, from settings)
and what a probe found (:class:`ServiceStatus`, :class:`StackStatus`). Shared by :mod:`connectors.stack` (Redis and
the public API), :mod:`connectors.stack_kafka` (one broker) and :mod:`connectors.cluster` (several).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.localkafka import BrokerSecurity
from driftline.errors import StackError
from driftline.settings import Settings

__all__ = [
    "LIVE_STATES",
    "ServiceStatus",
    "StackConfig",
    "StackStatus",
    "read_text",
    "recorded_cluster",
    "stopped_detail",
    "stopped_error",
]

# Service states: up (ours, answering), external (answering, not ours), starting (our process, not answering
# yet), stopped (our process, stopped by a signal: it answers nothing until resumed), busy (the port is taken by
# something that does not answer the protocol), down.
LIVE_STATES = ("up", "external")


def stopped_detail(pid: int) -> str:
    """What a service stopped by a signal is, and what to do."""
    return f"stopped by a signal (SIGSTOP?): it holds its port and answers nothing; `kill -CONT {pid}` resumes it"


def stopped_error(what: str, address: str, pid: int) -> StackError:
    """``stack up`` of a service of the stack that is stopped by a signal: starting another on its port cannot work,
    and waiting does not help."""
    return StackError(
        f"{what} on {address} (pid {pid}, started by this stack) is stopped by a signal and answers nothing: resume "
        f"it with `kill -CONT {pid}` (or end it with `kill -9 {pid}` and run `driftline stack up` again)"
    )


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
    """One service of the stack: ``state`` is up, external, starting, stopped, busy or down."""

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
    # The services the call that returned this started (``"kafka"``, ``"redis"``), decided under the state
    # directory's lock: of two concurrent ``stack up`` only one started each service and says so. What one call
    # did, not the stack's state: two statuses of the same stack compare equal whoever started it.
    started: tuple[str, ...] = field(default=(), compare=False)

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


def _host_port(address: str, default_port: int, what: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    if not host:
        return address.strip() or "127.0.0.1", default_port
    try:
        return host, int(port)
    except ValueError:
        raise StackError(f"{what}: expected HOST:PORT, got {address!r}") from None


def read_text(path: Path) -> str:
    """The file's text; empty when it cannot be read."""
    try:
        return path.read_text()
    except OSError:
        return ""


def recorded_cluster(stack_dir: Path) -> dict[str, int]:
    """What ``stack up --brokers N`` (N > 1) recorded in ``stack_dir``: ``brokers``, ``kafka_port`` and
    ``controller_port`` of node 1; empty for a single-node stack."""
    try:
        data = json.loads(read_text(stack_dir / "cluster.json") or "{}")
    except ValueError:
        return {}
    keys = ("brokers", "kafka_port", "controller_port")
    return {k: int(data[k]) for k in keys} if isinstance(data, dict) and all(k in data for k in keys) else {}
