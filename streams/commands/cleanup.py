"""``driftline cleanup --prefix P [--dry-run] [--force]``: remove everything one topic prefix left behind.

That is its contract topics (the ``audit`` topic too), its worker consumer groups (``driftline-<prefix>...``), its
Redis keys (``<redis.key_prefix>:<prefix>...``: pending joins, trainer status, control answers), and under the state
dir its Faust data folders and audit logs. ``--keep-audit`` keeps the audit topic and logs (the record of what was
done). Groups, keys and paths are named by prefix, so ``trial1`` matches ``trial10``'s too: a longer prefix with
contract topics of its own is another deployment, and everything of it is left alone (and said). The default prefix,
and any prefix it starts with, is refused without ``--force``: it is usually someone's real deployment.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from connectors.kafka_client import check_reachable
from connectors.redis_store import check_redis_reachable, redis_client
from connectors.topics import ALL_TOPICS
from driftline.errors import ConfigError
from driftline.settings import KafkaSettings, Settings
from streams.cli import settings_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cleanup",
        help="remove a topic prefix's topics, consumer groups, Redis keys and local state",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--prefix", required=True, help="the topic prefix to remove, e.g. 'trial1.'")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument(
        "--force",
        action="store_true",
        help=f"allow the default prefix {KafkaSettings.topic_prefix!r}, and a prefix whose workers are running",
    )
    p.add_argument("--keep-audit", action="store_true", help="keep the audit topic and the audit logs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def longer_prefixes(prefix: str, topic_names: Iterable[str]) -> list[str]:
    """The prefixes longer than ``prefix`` that have contract topics of their own: ``trial10`` for ``trial1`` when
    ``trial10features`` exists (and ``trial1.`` for ``trial1``). Everything of theirs matches ``prefix`` too, and is
    someone else's deployment: :func:`plan` leaves it alone."""
    found = set()
    for topic in topic_names:
        rest = topic[len(prefix) :] if topic.startswith(prefix) else ""
        if not rest or rest in ALL_TOPICS:
            continue
        for name in ALL_TOPICS:
            if rest.endswith(name) and len(rest) > len(name):
                found.add(prefix + rest[: -len(name)])
    return sorted(found)


def shorter_prefixes(prefix: str, topic_names: Iterable[str]) -> list[str]:
    """The prefixes shorter than ``prefix`` that have contract topics of their own: ``a`` for ``ad`` when
    ``afeatures`` exists. Their names can match ``prefix`` too (``a``'s model ``default`` names its groups, keys and
    audit log ``adefault``): :func:`plan` leaves alone what starts with one of their models' names."""
    names = set(topic_names)
    return sorted(
        {q for q in (prefix[:i] for i in range(len(prefix))) if any(q + n in names for n in ALL_TOPICS)}
    )


#: What follows a model's name in its groups' names (``-score``), Redis keys (``:trainer``) and files (``.jsonl``).
NAME_SEPARATORS = "-:."


def deployment_models(settings: Settings, prefix: str) -> set[str]:
    """The model names a deployment of ``prefix`` has used, as far as its compacted ``models`` and ``control``
    topics say (their keys are model names), with ``default`` (the default ``model.name``) and ``trainers`` (the
    trainer group's ``driftline-<prefix>trainers``): the stems of the names that are that deployment's."""
    from connectors.consumer import read_to_end

    found = {settings.model.name, "default", "trainers"}
    for name in ("models", "control"):
        for msg in read_to_end(settings, prefix + name, "driftline-cleanup-reader", timeout=10):
            key = msg.key()
            if key:
                found.add(key.decode("utf-8", "replace"))
    return found


def plan(settings: Settings, prefix: str, keep_audit: bool = False) -> dict[str, Any]:
    """What belongs to ``prefix``: its contract topics, and the groups, Redis keys and local paths named by it but not
    by a longer prefix that has topics of its own (``left``); nothing is removed here."""
    from confluent_kafka.admin import AdminClient

    from connectors.kafka_client import LIBRDKAFKA_LOG, client_config

    admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
    present = list(admin.list_topics(timeout=10).topics)
    left = longer_prefixes(prefix, present)
    shorter = {q: deployment_models(settings, q) for q in shorter_prefixes(prefix, present)}
    spared: set[str] = set()

    def ours(name: str, *heads: str) -> bool:
        theirs = tuple(head + other[len(prefix) :] for head in heads for other in left)
        if not name.startswith(heads) or name.startswith(theirs):
            return False
        for head in heads:
            base = head[: len(head) - len(prefix)]  # every head ends with the prefix
            for q, models in shorter.items():
                rest = name[len(base) + len(q) :] if name.startswith(base + q) else ""
                if any(rest == m or (rest.startswith(m) and rest[len(m)] in NAME_SEPARATORS) for m in models):
                    spared.add(name)  # a model of the shorter prefix's deployment: theirs
                    return False
        return True

    names = [n for n in ALL_TOPICS if not (keep_audit and n == "audit")]
    topics = sorted(t for t in present if t in {prefix + n for n in names})
    groups = admin.list_consumer_groups(request_timeout=10).result()
    group_ids = sorted(g.group_id for g in groups.valid if ours(g.group_id, f"driftline-{prefix}", prefix))
    active = _active_members(admin, group_ids)
    state = Path(settings.state_dir).expanduser()
    audit = sorted(str(p) for p in (state / "audit").glob(f"{prefix}*") if ours(p.name, prefix))
    found = [p for p in (state / "checkpoints").glob(f"{prefix}*") if ours(p.name, prefix)]
    found += [
        p for p in (state / "faust").glob(f"driftline-{prefix}*") if ours(p.name, f"driftline-{prefix}")
    ]
    paths = sorted([str(p) for p in found] + ([] if keep_audit else audit))
    keys = [k for k in _redis_keys(settings, prefix) if ours(k, f"{settings.redis.key_prefix}:{prefix}")]
    kept = audit if keep_audit else []
    return {
        "topics": topics,
        "groups": group_ids,
        "redis_keys": keys,
        "paths": paths,
        "left": left,
        "kept": kept,
        "shorter": sorted(shorter),
        "spared": sorted(spared),
        "active": active,
    }


def _active_members(admin: Any, group_ids: list[str]) -> dict[str, list[str]]:
    """``{group: [client_id@host, ...]}`` of the groups that have members now: workers of the prefix still running
    (their topics, keys and audit chain would be removed under them)."""
    if not group_ids:
        return {}
    active = {}
    for gid, future in admin.describe_consumer_groups(group_ids, request_timeout=10).items():
        try:
            members = future.result().members
        except Exception:  # described below as a group that could not be removed, if it cannot
            continue
        if members:
            active[gid] = sorted(f"{m.client_id}@{m.host.lstrip('/')}" for m in members)
    return active


def _redis_keys(settings: Settings, prefix: str) -> list[str]:

    client = redis_client(settings, 10)
    pattern = f"{_glob_escape(settings.redis.key_prefix)}:{_glob_escape(prefix)}*"
    return sorted(
        k.decode() if isinstance(k, bytes) else k for k in client.scan_iter(match=pattern, count=1000)
    )


def _glob_escape(text: str) -> str:
    # SCAN MATCH is a glob: a prefix with * ? [ in it must match itself only.
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def remove(settings: Settings, todo: dict[str, Any]) -> dict[str, Any]:
    """Remove what :func:`plan` found; returns what failed (a group still in use cannot be deleted)."""
    from confluent_kafka.admin import AdminClient

    from connectors.kafka_client import LIBRDKAFKA_LOG, client_config

    failed: dict[str, str] = {}
    admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
    if todo["topics"]:
        for topic, future in admin.delete_topics(todo["topics"], operation_timeout=30).items():
            try:
                future.result()
            except Exception as exc:
                failed[topic] = str(exc)
    if todo["groups"]:
        for group, future in admin.delete_consumer_groups(todo["groups"], request_timeout=10).items():
            try:
                future.result()
            except Exception as exc:  # e.g. a worker of this prefix still running
                failed[group] = str(exc)
    keys = todo["redis_keys"]
    if keys:
        client = redis_client(settings, 10)
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    for path in todo["paths"]:
        p = Path(path)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return failed


def run(args: argparse.Namespace) -> int:
    prefix = args.prefix
    if not prefix.strip():
        raise ConfigError("cleanup --prefix: empty prefix (it would match every topic)")
    if getattr(args, "model", None):
        # `driftline --model m2 cleanup --prefix a` removed every model of `a`, not m2's (adv46).
        print(
            f"driftline cleanup: --model {args.model!r} is not taken: cleanup removes a whole prefix, every model's "
            "topics, groups, keys and logs. To keep the others, do not run it; to stop one model learning: "
            f"driftline --model {args.model} models pause",
            file=sys.stderr,
        )
        return 2
    default = KafkaSettings.topic_prefix
    # Names are matched by prefix: 'driftline' (or 'd') would take the default deployment's topics too.
    if default.startswith(prefix) and not args.force:
        what = (
            "the default prefix"
            if prefix == default
            else f"--prefix {prefix!r}, which covers the default prefix"
        )
        print(
            f"driftline cleanup: refusing {what} {default!r} (usually a real deployment); add --force if you mean it",
            file=sys.stderr,
        )
        return 2
    settings = settings_from_args(args, {"kafka.topic_prefix": prefix})
    check_reachable(settings)
    check_redis_reachable(settings)
    todo = plan(settings, prefix, args.keep_audit)
    active: dict[str, list[str]] = todo["active"]
    if active and not args.dry_run and not args.force:
        running = "; ".join(f"{g}: {', '.join(m)}" for g, m in sorted(active.items()))
        print(
            f"driftline cleanup: refusing --prefix {prefix!r}: its workers are running ({running}); nothing was "
            "removed. Stop them first (`driftline status` lists them), or add --force to remove their topics, keys "
            "and audit logs under them",
            file=sys.stderr,
        )
        if args.json:
            print(
                json.dumps(
                    {"prefix": prefix, "dry_run": False, "refused": "workers running", "active": active}
                )
            )
        return 1
    failed = {} if args.dry_run else remove(settings, todo)
    audit = todo["kept"]
    if args.json:
        print(json.dumps({"prefix": prefix, "dry_run": args.dry_run, **todo, "failed": failed}))
    else:
        verb = "would remove" if args.dry_run else "removed"
        for kind in ("topics", "groups", "redis_keys", "paths"):
            items = [item for item in todo[kind] if item not in failed]
            shown = ", ".join(items[:8]) + (f", ... ({len(items) - 8} more)" if len(items) > 8 else "")
            print(f"{verb} {len(items)} {kind.replace('_', ' ')}{': ' + shown if items else ''}")
        for name, error in failed.items():
            print(f"could not remove {name}: {error}", file=sys.stderr)
        if audit:
            print(f"kept the audit log(s): {', '.join(audit)}")
        if active and args.dry_run:
            print(f"running now (cleanup refuses without --force): {', '.join(sorted(active))}")
        if todo["left"]:
            others = ", ".join(repr(p) for p in todo["left"])
            print(
                f"left alone: the deployment(s) of prefix {others}, which --prefix {prefix!r} also matches (their "
                "topics exist); to remove one, name it: driftline cleanup --prefix <that prefix>"
            )
        if todo["spared"]:
            others = ", ".join(repr(p) for p in todo["shorter"])
            print(
                f"left alone: {len(todo['spared'])} group(s), Redis key(s) or path(s) named after a model of the "
                f"deployment(s) of prefix {others} (their topics exist), which --prefix {prefix!r} also matches: "
                f"{', '.join(todo['spared'][:4])}{', ...' if len(todo['spared']) > 4 else ''}; remove those by hand "
                "if they are this prefix's"
            )
    return 1 if failed else 0
