"""A local multi-node Kafka cluster for ``driftline stack up --brokers N``: N KRaft nodes on loopback, each a
controller and a broker, each with its own ports and data directory (``<state_dir>/stack/kafka-<i>``).

Node ``i`` (1..N) listens on ``kafka_port + 2(i-1)`` (clients) and ``controller_port + 2(i-1)`` (the quorum),
so the default 19092 gives 19092/19093, 19094/19095, 19096/19097. All nodes are formatted with one cluster id
(kept in ``<state_dir>/stack/cluster.id``) and started together: a node only answers once a quorum of
controllers runs, so waiting for one before starting the next would never finish. Topics replicate to
min(3, N) nodes with ``min.insync.replicas`` one less (see :func:`connectors.localkafka.render_cluster_properties`).

:mod:`connectors.stack` calls these for a config whose ``brokers`` is more than 1; Redis is handled there.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connectors.localkafka import CLUSTER_NODE_HEAP, is_kafka_process, kafka_cluster_id
from connectors.localproc import stop_pidfile
from connectors.stack_config import LIVE_STATES, ServiceStatus, StackConfig
from connectors.stack_kafka import kafka_needs_start, kafka_start, kafka_status, kafka_wait
from driftline.errors import StackError


def nodes(cfg: StackConfig) -> list[StackConfig]:
    """One config per node of the cluster ``cfg`` describes."""
    voters = tuple(cfg.controller_port + 2 * i for i in range(cfg.brokers))
    return [
        dataclasses.replace(
            cfg,
            node=i + 1,
            kafka_port=cfg.kafka_port + 2 * i,
            controller_port=cfg.controller_port + 2 * i,
            voters=voters,
        )
        for i in range(cfg.brokers)
    ]


def cluster_status(cfg: StackConfig) -> tuple[ServiceStatus, tuple[ServiceStatus, ...]]:
    """The cluster as one service (``up`` when every node answers, ``degraded`` when some do) and each node."""
    each = tuple(dataclasses.replace(kafka_status(node), name=f"kafka-{node.node}") for node in nodes(cfg))
    live = sum(1 for n in each if n.state in LIVE_STATES)
    if live == len(each):
        state = "up" if all(n.state == "up" for n in each) else "external"
    elif live:
        state = "degraded"
    elif any(n.state == "starting" for n in each):
        state = "starting"
    else:
        state = "busy" if any(n.state == "busy" for n in each) else "down"
    detail = f"{live}/{len(each)} brokers answer" if state != "up" else f"{len(each)} brokers"
    controller = active_controller(cfg) if live else None
    if controller:
        detail += f", active controller kafka-{controller}"
    return ServiceStatus("kafka", cfg.kafka_address, state, None, detail), each


def cluster_check(cfg: StackConfig) -> None:
    """A StackError when a node's port is served or held by something else; cheap and side-effect free, so
    :func:`connectors.stack.stack_up` runs it before starting Redis: a taken port leaves nothing behind."""
    members = nodes(cfg)
    before = [kafka_status(node) for node in members]
    foreign = [f"{s.address} ({s.state})" for s in before if s.state in ("external", "busy")]
    if foreign:
        # A node port served by something else (say the single-node stack on 9092) would join our quorum to a
        # stranger's controller; refuse before starting anything.
        raise StackError(
            f"a {cfg.brokers}-node cluster from port {cfg.kafka_port} needs ports {cfg.kafka_port}-"
            f"{cfg.kafka_port + 2 * cfg.brokers - 1} free, but something else answers on {', '.join(foreign)}; "
            "choose another --kafka-port"
        )
    for node in members:
        kafka_needs_start(node)  # the ports of a node that is down can be bound


def cluster_up(cfg: StackConfig, timeout_s: float) -> tuple[ServiceStatus, tuple[ServiceStatus, ...]]:
    """Start every node that is down, then wait until all answer."""
    cluster_check(cfg)
    members = nodes(cfg)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    record = {"brokers": cfg.brokers, "kafka_port": cfg.kafka_port, "controller_port": cfg.controller_port}
    (cfg.state_dir / "cluster.json").write_text(json.dumps(record) + "\n")
    id_file = cfg.state_dir / "cluster.id"
    if not id_file.exists():
        id_file.write_text(kafka_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    procs = [kafka_start(node, cluster_id, heap=CLUSTER_NODE_HEAP) for node in members]
    for node, proc in zip(members, procs, strict=True):
        kafka_wait(node, proc, timeout_s)
    return cluster_status(cfg)


def cluster_down(cfg: StackConfig, grace_s: float) -> bool:
    """Stop every node we started, all at once (one at a time, the last nodes would wait on a quorum that the
    first ones took away); True when any was stopped."""

    def stop(node: StackConfig) -> bool:
        props = node.kafka_dir / "server.properties"
        pid_file: Path = node.kafka_dir / "kafka.pid"
        return stop_pidfile(pid_file, lambda argv: is_kafka_process(argv, props), grace_s)

    members = nodes(cfg)
    with ThreadPoolExecutor(max_workers=len(members)) as pool:
        return any(list(pool.map(stop, members)))


def active_controller(cfg: StackConfig) -> int | None:
    """The node id of the KRaft quorum leader (the active controller), from the nodes' ``quorum-state`` files:
    the leader named in the highest epoch any node has seen. None before the first election."""
    best: tuple[int, int] | None = None
    for node in nodes(cfg):
        path = node.kafka_dir / "data" / "__cluster_metadata-0" / "quorum-state"
        try:
            state = json.loads(path.read_text())
            epoch, leader = int(state["leaderEpoch"]), int(state["leaderId"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if leader > 0 and (best is None or epoch > best[0]):
            best = (epoch, leader)
    return best[1] if best else None
