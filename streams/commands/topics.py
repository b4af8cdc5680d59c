"""``driftline topics create|list|describe``: the contract's topics on any cluster, created and checked.

The local broker (like most production clusters) does not auto-create topics, so a user's own producer gets
``Unknown topic or partition`` until something creates them. ``create`` does it with the contract's settings
(partitions and replication factor from settings, compaction for ``models``/``control``/``changelog``, an
``audit`` topic that never expires); ``list`` and ``describe`` show what exists and how it differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from connectors.kafka_client import check_reachable
from connectors.topics import ALL_TOPICS, TopicCheck, TopicSpec, check_topics, ensure_topics, prefixed_topics
from driftline.errors import ConfigError
from driftline.settings import Settings
from streams.cli import positive_seconds, settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "topics",
        help="create the contract's topics on any cluster; list and check them",
        description=(__doc__ or "").split("\n\n")[1].replace("\n", " "),
    )
    tsub = p.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    for name, help_text, func in (
        ("create", "create the contract topics that are missing (existing ones are never altered)", _create),
        ("list", "one line per contract topic: present or missing, partitions, cleanup policy", _list),
        ("describe", "each topic's settings next to the contract's; exit 1 if any is missing or wrong", _describe),
    ):  # fmt: skip
        action = tsub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        action.add_argument(
            "names",
            nargs="*",
            metavar="TOPIC",
            help=f"contract topics (default all: {', '.join(ALL_TOPICS)})",
        )
        action.add_argument("--json", action="store_true", help="print one JSON object")
        if name == "create":
            action.add_argument(
                "--dry-run", action="store_true", help="print what would be created, change nothing"
            )
        action.add_argument(
            "--timeout",
            type=positive_seconds,
            default=10.0,
            metavar="S",
            help="seconds to wait for the broker",
        )
        action.set_defaults(func=func)


def _settings(args: argparse.Namespace) -> tuple[Settings, tuple[str, ...]]:
    settings = settings_from_args(args)
    names = tuple(args.names) or ALL_TOPICS
    unknown = [n for n in names if n not in ALL_TOPICS]
    if unknown:
        raise ConfigError(f"TOPIC: {unknown[0]!r} is not a contract topic ({', '.join(ALL_TOPICS)})")
    # A quick, clear failure naming the address, instead of librdkafka retrying for the whole timeout.
    check_reachable(settings, timeout=args.timeout)
    return settings, names


def spec_text(spec: TopicSpec) -> str:
    """``4 partitions, replication factor 1, cleanup.policy=delete``: what a topic is created with."""
    config = ", ".join(f"{k}={v}" for k, v in spec.config.items())
    return f"{spec.partitions} partition(s), replication factor {spec.replication_factor}, {config}"


def _header(settings: Settings) -> dict[str, Any]:
    return {"bootstrap": settings.kafka.bootstrap, "prefix": settings.kafka.topic_prefix}


def _create(args: argparse.Namespace) -> int:
    settings, names = _settings(args)
    checks = check_topics(settings, names, timeout=args.timeout)
    missing = tuple(c.topic for c in checks if not c.exists)
    if missing and not args.dry_run:
        ensure_topics(settings, names=missing, timeout=max(args.timeout, 30.0))
    verb = "would create" if args.dry_run else "created"
    rows = []
    for c in checks:
        row = c.to_dict()
        row["action"] = verb.replace(" ", "_") if not c.exists else "exists"
        rows.append(row)
    # An existing topic that breaks the contract (e.g. ``models`` not compacted) is never altered; the command then
    # fails as ``describe`` does, so a set-up script does not go on with a topic the workers cannot rely on.
    broken = [c.spec.name for c in checks if c.exists and c.status == "differs"]
    if args.json:
        print(json.dumps({**_header(settings), "dry_run": args.dry_run, "topics": rows}, sort_keys=True))
        return 1 if broken else 0
    for c in checks:
        if not c.exists:
            print(f"{verb:<12} {c.spec.name}  ({spec_text(c.spec)})")
        else:
            print(f"{'exists':<12} {c.spec.name}  ({c.status})")
            for d in c.differences:
                print(f"{'':<12}   {d.describe()}; existing topics are not altered")
    print(
        f"{len(missing)} {verb}, {len(checks) - len(missing)} already there, on {settings.kafka.bootstrap}"
        + (" (dry run: nothing changed)" if args.dry_run else "")
    )
    if broken:
        print(
            f"{', '.join(broken)}: break the contract (see above) and are not altered: delete and create them "
            "again (losing their records), or use another prefix",
            file=sys.stderr,
        )
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:
    settings, names = _settings(args)
    checks = check_topics(settings, names, timeout=args.timeout)
    contract = {c.spec.name for c in checks}
    others = [t for t in prefixed_topics(settings, timeout=args.timeout) if t not in contract]
    if args.json:
        topics = [c.to_dict() for c in checks]
        print(json.dumps({**_header(settings), "topics": topics, "other_topics": others}, sort_keys=True))
        return 0
    print(f"{'topic':<40} {'status':<9} {'partitions':>10} {'rf':>3}  cleanup.policy")
    for c in checks:
        parts = f"{c.partitions}" if c.exists else "-"
        rf = f"{c.replication_factor}" if c.exists else "-"
        policy = c.config.get("cleanup.policy", "-") if c.exists else "-"
        print(f"{c.spec.name:<40} {c.status:<9} {parts:>10} {rf:>3}  {policy}")
    if others:
        print(f"other topics with prefix {settings.kafka.topic_prefix!r}: {', '.join(others)}")
    if any(not c.exists for c in checks):
        print("create the missing ones with `driftline topics create`")
    return 0


def _describe_one(c: TopicCheck) -> list[str]:
    lines = [f"{c.spec.name} ({c.topic}): {c.status}"]
    fields = [("partitions", str(c.spec.partitions), str(c.partitions)),
              ("replication_factor", str(c.spec.replication_factor), str(c.replication_factor))]  # fmt: skip
    fields += [(k, v, c.config.get(k) or "(not set)") for k, v in c.spec.config.items()]
    for key, want, have in fields:
        lines.append(f"  {key:<26} contract {want:<14} cluster {have if c.exists else '-'}")
    lines += [f"  ! {d.describe()}" for d in c.differences]
    return lines


def blocking(checks: list[TopicCheck]) -> list[TopicCheck]:
    """The checks that are missing or differ from the contract in a way that breaks a guarantee."""
    return [c for c in checks if c.status in ("missing", "differs")]


def _describe(args: argparse.Namespace) -> int:
    settings, names = _settings(args)
    checks = check_topics(settings, names, timeout=args.timeout)
    if args.json:
        print(json.dumps({**_header(settings), "topics": [c.to_dict() for c in checks]}, sort_keys=True))
    else:
        print(f"contract topics for prefix {settings.kafka.topic_prefix!r} on {settings.kafka.bootstrap}")
        for c in checks:
            print("\n".join(_describe_one(c)))
    return 1 if blocking(checks) else 0
