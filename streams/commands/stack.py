"""``driftline stack up|down|status``: local Kafka (KRaft) and Redis for development, tests and the demo."""

from __future__ import annotations

import argparse
import json

from connectors.stack import StackConfig, StackStatus, stack_down, stack_status, stack_up
from streams.cli import global_overrides
from streams.settings import load_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stack",
        help="local single-node Kafka (KRaft) and Redis on 127.0.0.1",
        description=(
            "Run a local single-node Apache Kafka (KRaft) and Redis on 127.0.0.1 for development, tests and "
            "the demo. Ports come from --bootstrap / --redis-url (or settings) unless given below. Data and "
            "logs live in <state_dir>/stack. Servers already answering there are reused, never stopped."
        ),
    )
    ssub = p.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    for name, help_text, func in (
        ("up", "start Kafka and Redis unless already answering; wait until both answer", _up),
        ("down", "stop the servers this state directory started (by pid)", _down),
        ("status", "show both addresses and whether they answer; exit 1 when either is down", _status),
    ):
        action = ssub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        action.add_argument("--state-dir", metavar="DIR", help="default: settings state_dir")
        action.add_argument("--kafka-port", type=int, metavar="PORT", help="Kafka client port")
        action.add_argument("--controller-port", type=int, metavar="PORT", help="KRaft controller port")
        action.add_argument("--redis-port", type=int, metavar="PORT", help="Redis port")
        action.add_argument("--json", action="store_true", help="print JSON")
        if name == "up":
            action.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds to wait")
        action.set_defaults(func=func)


def _config(args: argparse.Namespace) -> StackConfig:
    settings = load_settings(args.config, overrides=global_overrides(args))
    return StackConfig.from_settings(
        settings,
        args.state_dir,
        kafka_port=args.kafka_port,
        controller_port=args.controller_port,
        redis_port=args.redis_port,
    )


def _print(status: StackStatus, notes: dict[str, str], as_json: bool) -> None:
    if as_json:
        data = status.to_dict()
        for name, note in notes.items():
            data[name]["note"] = note
        print(json.dumps(data, sort_keys=True))
        return
    for service in (status.kafka, status.redis):
        extra = notes.get(service.name)
        print(service.describe() + (f" ({extra})" if extra else ""))
    print(f"state  {status.state_dir}")


def _up(args: argparse.Namespace) -> int:
    cfg = _config(args)
    before = stack_status(cfg)
    after = stack_up(cfg, timeout_s=args.timeout)
    notes = {}
    for old, new in ((before.kafka, after.kafka), (before.redis, after.redis)):
        if old.state == "external":
            notes[new.name] = "reusing it"
        elif old.up:
            notes[new.name] = "already up"
        else:
            notes[new.name] = "started"
    _print(after, notes, args.json)
    return 0


def _down(args: argparse.Namespace) -> int:
    cfg = _config(args)
    before = stack_status(cfg)
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
