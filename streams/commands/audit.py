"""``driftline audit verify|show``: check and read the signed audit chain (disk file and ``audit`` topic)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.kafka_client import check_reachable
from driftline.errors import DriftlineError
from driftline.settings import Settings
from streams.audit import AUDIT_KINDS, read_topic, signing_keys, topic_continuation
from streams.audit_verify import file_chains, verify_chains
from streams.cli import settings_from_args, whole_number

SOURCES = ("file", "topic", "both")
# The kinds of entry a chain holds, from their one definition (the trainer can append no other).
KINDS = AUDIT_KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="verify or read the signed audit chain (releases, guard decisions, control commands)",
        description="The audit trail: one hash chain per model, signed with the signing key, kept in "
        "<state_dir>/audit/<prefix><model>.jsonl and on the <prefix>audit topic.",
    )
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    for name, func, text in (
        ("verify", _verify, "check every entry, the links and the head; exit 1 naming the first bad entry"),
        ("show", _show, "print the entries (oldest first)"),
    ):
        c = asub.add_parser(name, help=text)
        # SUPPRESS: given here it sets the same `model` as the global --model (and so the settings' model.name).
        c.add_argument("--model", default=argparse.SUPPRESS, help="one model (default: every model found)")
        if name == "verify":
            c.add_argument(
                "--source", choices=SOURCES, default="both", help="which copy to check (default: both)"
            )
        else:  # auto: the state dir's files, or the topic where there are none
            c.add_argument(
                "--source",
                choices=("auto", *SOURCES),
                default="auto",
                help="where to read the chain (default: auto, the state dir's files, else the topic)",
            )
        c.add_argument("--file", type=Path, help="a chain file to read instead of the state dir's")
        c.add_argument("--json", action="store_true", help="print JSON")
        if name == "verify":
            c.add_argument("--head", type=Path, help="the signed head note (default: next to the file)")
        else:
            c.add_argument(
                "-n", type=whole_number, default=0, help="only the last N entries (default 0: all)"
            )
            c.add_argument("--kind", choices=KINDS, help="only entries of this kind")
        c.set_defaults(func=func)


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from_args(args)


def _verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    checks = verify_chains(settings, args.source, args.model, args.file, getattr(args, "head", None))
    ok = bool(checks) and all(c["ok"] for c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": checks}, sort_keys=True))
    else:
        if not checks:
            print("no audit chain found (nothing recorded yet, or wrong --topic-prefix/state dir)")
        for c in checks:
            status = "OK  " if c["ok"] else "FAIL"
            head = c["head"]
            where = f"{c['source']} {c['where']}"
            line = f"{status} {c['model']}: {c['lines']} entries"
            line += f", head seq {head['seq']} {head['hash'][:12]}" if head else ""
            print(f"{line} ({where})")
            for p in c["problems"]:
                print(f"     {p['text']}")
            for note in c.get("notes", []):
                print(f"     note: {note}")
            if c["ok"] and c["source"] == "file" and not c["head_note"]:
                print("     note: no head note next to the file, so a cut-off tail would not show")
    return 0 if ok else 1


def _show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    chains: dict[str, list[Any]] = {}
    if args.source in ("file", "auto") or args.file is not None:
        keys = signing_keys(settings)
        found = file_chains(settings, args.file, args.model, keys if keys[0] else None)
        chains = {m: e for m, (_, e) in found.items()}
    if args.file is None and (args.source in ("topic", "both") or (args.source == "auto" and not chains)):
        if args.source == "auto":  # not the trainer's machine (or another state dir): the topic has the trail
            of = f" of model {args.model!r}" if args.model else ""
            print(
                f"audit show: no chain file{of} in {settings.state_dir}; reading {settings.topic('audit')}",
                file=sys.stderr,
            )
        check_reachable(settings)
        chains = read_topic(settings)
        if args.model:
            chains = {args.model: chains.get(args.model, [])}
    elif args.file is None and args.source == "auto":
        chains = _with_topic_continuation(settings, chains)
    rows = [e for entries in chains.values() for e in entries if isinstance(e, Mapping) and "seq" in e]
    if (
        args.model and not rows
    ):  # as `audit verify --model M`: a model with no chain anywhere is not "no entries"
        print(
            f"audit show: no audit chain found for model {args.model!r} (check --model, --topic-prefix and the "
            "state dir)",
            file=sys.stderr,
        )
        return 1
    if args.kind:
        rows = [e for e in rows if e.get("kind") == args.kind]
    rows.sort(key=lambda e: (int(e.get("ts", 0)), str(e.get("model")), int(e["seq"])))
    if args.n:
        rows = rows[-args.n :]
    for e in rows:
        if args.json:
            print(
                json.dumps(
                    {
                        k: e.get(k)
                        for k in ("seq", "ts", "kind", "model", "record", "prev", "sig_key_id", "hash", "sig")
                    }
                )
            )
        else:
            print(
                f"{e['seq']:>5}  {_when(e.get('ts'))}  {e.get('model')!s:<12} {e.get('kind')!s:<9} {_summary(e)}"
            )
    if not rows and not args.json:
        print("no audit entries")
    return 0


def _with_topic_continuation(settings: Settings, chains: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The state dir's chains, each followed by what the topic holds after the file's last entry: a file stops
    where this machine's trainer stopped writing its chain (the model moved to another trainer of the group)."""
    try:
        check_reachable(settings)
        topic = read_topic(settings)
    except (
        DriftlineError
    ) as exc:  # the files are still the trail this machine has: show them, say what is not
        print(
            f"audit show: {settings.topic('audit')} not read ({exc}); showing the state dir's files",
            file=sys.stderr,
        )
        return chains
    out = {}
    for model, entries in chains.items():
        more = topic_continuation(entries, topic.get(model, []))
        if more:
            print(
                f"audit show: the chain file of model {model!r} ends at seq {more[0]['seq'] - 1}; "
                f"{len(more)} later entries from {settings.topic('audit')} (another trainer wrote them)",
                file=sys.stderr,
            )
        out[model] = [*entries, *more]
    return out


def _when(ms: Any) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return "-"


def _summary(entry: Mapping[str, Any]) -> str:
    record = entry.get("record") or {}
    if not isinstance(record, Mapping):
        return str(record)[:100]
    parts = []
    for key in ("version", "parent", "reason", "outcome", "command", "args", "key_id"):
        if key in record and record[key] not in (None, "", {}):
            parts.append(f"{key}={json.dumps(record[key], default=str)}")
    return " ".join(parts) or json.dumps(record, default=str)[:100]
