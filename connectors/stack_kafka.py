"""One local Kafka broker (KRaft) of the stack: its ``server.properties``, probing, starting and waiting for it.
:mod:`connectors.stack` runs one; :mod:`connectors.cluster` runs several (one per node config).
"""

from __future__ import annotations

import subprocess
import time

from connectors.localkafka import (
    KAFKA_HEAP,
    is_kafka_process,
    java_command,
    kafka_libs,
    prepare,
    render_cluster_properties,
    render_server_properties,
)
from connectors.localproc import kafka_answers, log_tail, owned_pid, port_bindable, port_open, process_stopped
from connectors.stack_config import (
    LIVE_STATES,
    ServiceStatus,
    StackConfig,
    read_text,
    stopped_detail,
    stopped_error,
)
from driftline.errors import StackError

__all__ = [
    "check_bindable",
    "kafka_needs_start",
    "kafka_start",
    "kafka_status",
    "kafka_up",
    "kafka_wait",
    "render_kafka_properties",
]


def render_kafka_properties(cfg: StackConfig) -> str:
    """The broker's ``server.properties`` for ``cfg`` (a single node, or one node of a cluster)."""
    if cfg.node:
        return render_cluster_properties(
            cfg.host, cfg.node, cfg.kafka_port, cfg.controller_port, cfg.kafka_dir / "data", cfg.voters
        )
    return render_server_properties(
        cfg.host, cfg.kafka_port, cfg.controller_port, cfg.kafka_dir / "data", cfg.kafka_security
    )


# Where a port comes from for the commands that start the stack themselves (`demo`, `bench`, `make test`): they
# take no --kafka-port; advice naming only the flag sent a `make demo` user looking for one (session 41, first41).
PORT_VARIABLES = {
    "--kafka-port": "the port of DRIFTLINE_KAFKA_BOOTSTRAP",
    "--redis-port": "the port of DRIFTLINE_REDIS_URL",
}


def choose_another(flag: str) -> str:
    """What to do about a taken port: the ``stack up`` flag, and the variable for the commands without it.

    >>> choose_another("--redis-port")
    'choose another with --redis-port (`stack up`), or the port of DRIFTLINE_REDIS_URL (`demo`, `bench`)'
    """
    variable = PORT_VARIABLES.get(flag)
    return f"choose another with {flag}" + (
        f" (`stack up`), or {variable} (`demo`, `bench`)" if variable else ""
    )


def check_bindable(host: str, port: int, flag: str) -> None:
    """A StackError naming ``flag`` when ``host:port`` cannot be bound."""
    if not port_bindable(host, port):
        raise StackError(f"{host}:{port} is in use (by a server or a connection); {choose_another(flag)}")


def kafka_status(cfg: StackConfig) -> ServiceStatus:
    """Probe the broker of ``cfg``: ours and answering (up), ours but not yet (starting), someone else's
    (external), a port taken by something else (busy), or down."""
    props = cfg.kafka_dir / "server.properties"
    pid = owned_pid(cfg.kafka_dir / "kafka.pid", lambda argv: is_kafka_process(argv, props))
    text = read_text(props)
    if pid and not any(f"advertised.listeners=PLAINTEXT://{cfg.kafka_address}{end}" in text for end in ",\n"):
        pid = None  # our broker, but serving another port: not what this address is about
    answers = kafka_answers(cfg.host, cfg.kafka_port)
    if pid:
        if not answers and process_stopped(pid):
            return ServiceStatus("kafka", cfg.kafka_address, "stopped", pid, stopped_detail(pid))
        return ServiceStatus("kafka", cfg.kafka_address, "up" if answers else "starting", pid)
    if answers:
        return ServiceStatus("kafka", cfg.kafka_address, "external")
    busy = port_open(cfg.host, cfg.kafka_port)
    return ServiceStatus("kafka", cfg.kafka_address, "busy" if busy else "down")


def kafka_up(cfg: StackConfig, timeout_s: float) -> ServiceStatus:
    """Start the broker of ``cfg`` if needed and wait until it answers."""
    return kafka_wait(cfg, kafka_start(cfg), timeout_s)


def kafka_needs_start(cfg: StackConfig) -> bool:
    """Whether the broker of ``cfg`` must be started (it neither answers nor is starting); a StackError naming
    the port when one of its ports is taken by something else. Cheap and side-effect free, so
    :func:`connectors.stack.stack_up` runs it before starting Redis: a taken port leaves nothing behind."""
    status = kafka_status(cfg)
    if status.state in ("external", "up", "starting"):
        return False
    if status.state == "stopped" and status.pid:
        raise stopped_error(f"Kafka node {cfg.node}" if cfg.node else "Kafka", cfg.kafka_address, status.pid)
    if status.state == "busy":
        raise StackError(
            f"port {cfg.kafka_port} is taken by a process that does not answer as Kafka; "
            f"{choose_another('--kafka-port')}"
        )
    check_bindable(cfg.host, cfg.kafka_port, "--kafka-port")
    check_bindable(cfg.host, cfg.controller_port, "--controller-port")
    security = cfg.kafka_security
    for proto, port in security.listeners() if security else ():
        check_bindable(cfg.host, port, f"BrokerSecurity ({proto} listener)")
    return True


def kafka_start(
    cfg: StackConfig, cluster_id: str | None = None, heap: str = KAFKA_HEAP
) -> subprocess.Popen[bytes] | None:
    """Start the broker of ``cfg`` unless it answers or is starting; returns the child started, if any."""
    if not kafka_needs_start(cfg):
        return None
    libs = kafka_libs(cfg.cache_dir, cfg.kafka_home)
    security = cfg.kafka_security
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


def kafka_wait(cfg: StackConfig, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> ServiceStatus:
    """Wait until the broker of ``cfg`` answers; a StackError with its log tail when it does not."""
    deadline = time.monotonic() + timeout_s
    exited = False
    while True:
        status = kafka_status(cfg)
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
