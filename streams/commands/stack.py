"""``driftline stack up|down|status``: local Kafka (KRaft) and Redis for development, tests and the demo."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from typing import Any

from connectors.stack import StackConfig, StackStatus, as_started, stack_down, stack_status, stack_up
from connectors.topics import ALL_TOPICS, check_topics, ensure_topics
from connectors.warmup import WarmupReport, warm_broker
from driftline.errors import StackError
from driftline.settings import Settings
from streams.cli import port_number, positive_seconds, settings_from_args

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stack",
        help="local Kafka (KRaft: one node, or a cluster with --brokers N) and Redis on 127.0.0.1",
        description=(
            "Run a local single-node Apache Kafka (KRaft) and Redis on 127.0.0.1 for development, tests and "
            "the demo; with --brokers N a KRaft cluster of N nodes instead (each node a controller and a broker, "
            "on --kafka-port + 0, 2, 4, ...). Ports come from --bootstrap / --redis-url (or settings) unless "
            "given below. Data and "
            "logs live in <state_dir>/stack. Servers already answering there are reused, never stopped. "
            "`up` also creates the contract's topics for the configured prefix (see `driftline topics`)."
        ),
    )
    ssub = p.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    for name, help_text, func in (
        ("up", "start Kafka and Redis unless already answering; wait until both answer", _up),
        ("down", "stop the servers this state directory started (by pid)", _down),
        ("status", "show both addresses and whether they answer; exit 1 when either is down", _status),
    ):
        action = ssub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        action.add_argument(
            "--state-dir",
            metavar="DIR",
            help="default: settings state_dir (DRIFTLINE_STATE_DIR); status and down given no port look at the "
            "servers this directory (given here or by DRIFTLINE_STATE_DIR) last started",
        )
        action.add_argument("--kafka-port", type=port_number, metavar="PORT", help="Kafka client port")
        action.add_argument(
            "--controller-port", type=port_number, metavar="PORT", help="KRaft controller port"
        )
        action.add_argument("--redis-port", type=port_number, metavar="PORT", help="Redis port")
        action.add_argument(
            "--brokers",
            type=int,
            metavar="N",
            help="Kafka nodes: 1 (default) or a KRaft cluster of N on --kafka-port, +2, +4, ... (topics then "
            "get replication factor min(3, N) and min.insync.replicas one less); default: what `up` recorded "
            "in the state directory",
        )
        action.add_argument("--json", action="store_true", help="print JSON")
        if name == "down":
            action.add_argument(
                "--force", action="store_true", help="stop the servers even while consumers are connected"
            )
        if name == "up":
            action.add_argument(
                "--timeout", type=positive_seconds, default=120.0, metavar="S", help="seconds to wait"
            )
            action.add_argument(
                "--no-topics", action="store_true", help="do not create the contract's topics for the prefix"
            )
            action.add_argument(
                "--warm",
                action="store_true",
                help="warm a broker this command started: run records through scratch topics until the broker's "
                "JIT compiler goes quiet (10-40 s), so the first minutes of a latency measurement do not queue "
                "behind it (`driftline bench` does this for a broker it starts itself)",
            )
        action.set_defaults(func=func)


def _config(args: argparse.Namespace) -> StackConfig:
    """The stack ``status``/``down`` look at, with no port given: the one the state directory last started when
    it is named (``--state-dir D``, or ``DRIFTLINE_STATE_DIR``, the directory ``up`` starts in and ``down`` stops
    by pid; an address given as a flag, ``--bootstrap`` / ``--redis-url``, still wins over the environment's
    directory); else the configured addresses (``--bootstrap``, ``--redis-url``, environment, settings)."""
    cfg = _settings_and_config(args)[1]
    if args.kafka_port is not None or args.controller_port is not None or args.redis_port is not None:
        return cfg
    if args.state_dir:
        return as_started(cfg)
    if not os.environ.get("DRIFTLINE_STATE_DIR"):
        return cfg
    # DRIFTLINE_STATE_DIR alone probed the configured addresses while `down` stopped that directory's servers.
    started = as_started(cfg)
    if getattr(args, "bootstrap", None):
        started = dataclasses.replace(started, kafka_port=cfg.kafka_port, controller_port=cfg.controller_port)
    if getattr(args, "redis_url", None):
        started = dataclasses.replace(started, redis_port=cfg.redis_port)
    return started


def _settings_and_config(args: argparse.Namespace) -> tuple[Settings, StackConfig]:
    settings = settings_from_args(args)
    cfg = StackConfig.from_settings(
        settings,
        args.state_dir,
        kafka_port=args.kafka_port,
        controller_port=args.controller_port,
        redis_port=args.redis_port,
        brokers=args.brokers,
    )
    return settings, cfg


def _create_topics(settings: Settings, cfg: StackConfig, port_given: bool) -> dict[str, Any]:
    """The contract's topics for the configured prefix on the stack's broker, so a plain client can publish at
    once (the local broker does not auto-create topics)."""
    kafka = settings.kafka
    if port_given or cfg.brokers > 1:  # the brokers are not (all) where the settings point
        kafka = dataclasses.replace(kafka, bootstrap=cfg.kafka_address)
    if cfg.brokers > 1:
        # A cluster keeps every record on min(3, N) nodes; contract_topics adds min.insync.replicas.
        kafka = dataclasses.replace(
            kafka, replication_factor=max(kafka.replication_factor, min(3, cfg.brokers))
        )
    settings = dataclasses.replace(settings, kafka=kafka)
    before = {c.topic for c in check_topics(settings, ALL_TOPICS) if c.exists}
    ensure_topics(settings, names=ALL_TOPICS)
    return {
        "prefix": settings.kafka.topic_prefix,
        "created": [n for n in ALL_TOPICS if n not in before],
        "present": list(ALL_TOPICS),
    }


def _print(
    status: StackStatus,
    notes: dict[str, str],
    as_json: bool,
    topics: dict[str, Any] | None = None,
    warmup: WarmupReport | None = None,
) -> None:
    if as_json:
        data = status.to_dict()
        for name, note in notes.items():
            data[name]["note"] = note
        if topics is not None:
            data["topics"] = topics
        if warmup is not None:
            data["warmup"] = dataclasses.asdict(warmup)
        print(json.dumps(data, sort_keys=True))
        return
    for service in (status.kafka, *status.kafka_nodes, status.redis):
        extra = notes.get(service.name)
        print(service.describe() + (f" ({extra})" if extra else ""))
    if status.kafka_nodes:
        print(f"bootstrap {status.kafka.address}  (export DRIFTLINE_KAFKA_BOOTSTRAP={status.kafka.address})")
    print(f"state  {status.state_dir}")
    if topics is not None:
        created = f"{len(topics['created'])} created" if topics["created"] else "all there already"
        print(f"topics {len(topics['present'])} contract topics with prefix {topics['prefix']!r} ({created})")
    if warmup is not None:
        how = "its JIT compiler went quiet" if warmup.stopped == "quiet" else "the time limit"
        print(
            f"warmup {warmup.produced:,} records through the broker in {warmup.seconds:.0f} s (until {how})"
        )


def _up(args: argparse.Namespace) -> int:
    settings, cfg = _settings_and_config(args)
    before = stack_status(cfg)
    after = stack_up(cfg, timeout_s=args.timeout)
    notes = {}
    for old, new in ((before.kafka, after.kafka), (before.redis, after.redis)):
        if new.name in after.started:  # decided under the state directory's lock, unlike ``before``
            notes[new.name] = "started"
        elif old.state == "external":
            notes[new.name] = "reusing it"
        elif old.up:
            notes[new.name] = "already up"
        else:  # down when this command looked, then started by another `stack up` that held the lock
            notes[new.name] = "already up: started by another `stack up` meanwhile"
    topics = None if args.no_topics else _create_topics(settings, cfg, bool(args.kafka_port))
    warmup = None
    if notes["kafka"] == "started" and args.warm and cfg.brokers == 1:
        warmup = _warm(settings, cfg, after.kafka.pid)
    _print(after, notes, args.json, topics, warmup)
    return 0


def _warm(settings: Settings, cfg: StackConfig, pid: int | None) -> WarmupReport:
    """Warm the broker ``up`` has just started (connectors.warmup says why), on the stack's own address."""
    kafka = dataclasses.replace(settings.kafka, bootstrap=cfg.kafka_address)
    return warm_broker(dataclasses.replace(settings, kafka=kafka), pid)


def active_groups(cfg: StackConfig, timeout: float = 5.0) -> list[str]:
    """Consumer groups with members on the stack's broker (workers, a demo, a user's consumer)."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    from connectors.kafka_client import LIBRDKAFKA_LOG

    conf: dict[str, Any] = {"bootstrap.servers": cfg.kafka_address, "logger": LIBRDKAFKA_LOG}
    admin = AdminClient(conf)
    idle = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD}
    listed = admin.list_consumer_groups(request_timeout=timeout).result(timeout)
    return sorted(g.group_id for g in listed.valid if g.state not in idle)


def _down(args: argparse.Namespace) -> int:
    cfg = _config(args)
    before = stack_status(cfg)
    if before.kafka.state == "up" and not args.force:
        # Stopping the broker under running workers (or a demo still reading its topics) breaks them; the
        # demo's own cold-start bug (issue 11) was this. Say who is connected instead.
        try:
            busy = active_groups(cfg)
        except Exception as exc:  # a broker that cannot list groups must not keep its owner from stopping it
            log.warning("could not list consumer groups on %s: %s", cfg.kafka_address, exc)
            busy = []
        if busy:
            shown = ", ".join(busy[:5]) + (f" and {len(busy) - 5} more" if len(busy) > 5 else "")
            raise StackError(
                f"Kafka at {cfg.kafka_address} still has active consumer groups: {shown}. Stop those workers "
                "(or the demo) first, or pass --force to stop the servers under them."
            )
    stopped = stack_down(cfg)
    after = stack_status(cfg)
    notes = {}
    for old in (before.kafka, before.redis):
        if stopped[old.name]:
            notes[old.name] = f"stopped pid {old.pid}" if old.pid else "stopped"
        elif old.state in ("external", "busy"):
            notes[old.name] = "left alone"
        else:
            notes[old.name] = "was not running"
    _print(after, notes, args.json)
    return 0


def _status(args: argparse.Namespace) -> int:
    status = stack_status(_config(args))
    _print(status, {}, args.json)
    return 0 if status.up else 1
