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
from driftline.audit_chain import Verification, verify
from driftline.errors import ConfigError
from driftline.settings import Settings
from streams.audit import audit_paths, read_file, read_head, read_topic, signing_keys
from streams.cli import settings_from_args

SOURCES = ("file", "topic", "both")


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
            c.add_argument("--source", choices=SOURCES, default="both")
        else:  # auto: the state dir's files, or the topic where there are none
            c.add_argument("--source", choices=("auto", *SOURCES), default="auto")
        c.add_argument("--file", type=Path, help="a chain file to read instead of the state dir's")
        c.add_argument("--json", action="store_true")
        if name == "verify":
            c.add_argument("--head", type=Path, help="the signed head note (default: next to the file)")
        else:
            c.add_argument("-n", type=int, default=0, help="only the last N entries")
            c.add_argument("--kind", help="only entries of this kind (release, decision, control, ...)")
        c.set_defaults(func=func)


def _settings(args: argparse.Namespace) -> Settings:
    return settings_from_args(args)


def _file_chains(settings: Settings, args: argparse.Namespace) -> dict[str, tuple[Path, list[Any]]]:
    """{model: (path, entries)} from ``--file`` or the state dir (one file per model of this prefix)."""
    if args.file is not None:
        if not args.file.exists():
            raise ConfigError(f"--file: {args.file} does not exist")
        entries = read_file(args.file)
        first = next((e for e in entries if isinstance(e, Mapping)), {})
        model = args.model or str(first.get("model", settings.model.name))
        return {model: (args.file, entries)}
    if args.model:
        path = audit_paths(settings, args.model)[0]
        return {args.model: (path, read_file(path))} if path.exists() else {}
    folder = audit_paths(settings, settings.model.name)[0].parent
    out = {}
    prefix = settings.kafka.topic_prefix
    for path in sorted(folder.glob(f"{prefix}*.jsonl")):
        model = path.name[len(prefix) : -len(".jsonl")]
        entries = read_file(path)
        if ".pre-chain-" in model and not any(isinstance(e, Mapping) and "hash" in e for e in entries):
            continue  # a trail from before the chain, kept aside by AuditLog.open (a model's name may say so too)
        out[model] = (path, entries)
    return out


def _head_path(path: Path, args: argparse.Namespace) -> Path:
    if getattr(args, "head", None) is not None:
        return Path(args.head)
    return path.with_name(path.name.removesuffix(".jsonl") + ".head.json")


def _verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    keys = signing_keys(settings)
    if not keys[0]:
        raise ConfigError("model.signing_key: not set (DRIFTLINE_SIGNING_KEY); the chain cannot be verified")
    checks: list[dict[str, Any]] = []
    files: dict[str, Verification] = {}
    if args.source in ("file", "both"):
        for model, (path, entries) in _file_chains(settings, args).items():
            note_path = _head_path(path, args)
            note = read_head(note_path)
            result = verify(entries, keys, model=model, head=note)
            files[model] = result
            checks.append(_check("file", str(path), result, note is not None, entries))
    if (args.source == "both" and args.file is None) or args.source == "topic":
        check_reachable(settings)
        chains = read_topic(settings)
        # A chain the file has is looked for on the topic too: a topic that lost all of it (deleted and made
        # again, emptied) is a cut-off copy, not "nothing to check".
        models = sorted(set(chains) | {m for m, r in files.items() if r.head is not None})
        if args.model:
            models = [args.model]
        for model in models:
            entries = chains.get(model, [])
            if not entries and model not in files:
                continue  # no chain of this model anywhere: nothing was checked (a typo, or nothing recorded)
            result = verify(entries, keys, model=model)
            checks.append(_check("topic", settings.topic("audit"), result, False, entries))
            if model in files and result.ok and files[model].ok:
                _cross_check(files[model], result, checks[-1])
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
            if c["ok"] and c["source"] == "file" and not c["head_note"]:
                print("     note: no head note next to the file, so a cut-off tail would not show")
    return 0 if ok else 1


def _check(
    source: str, where: str, result: Verification, has_note: bool, entries: list[Any]
) -> dict[str, Any]:
    out = result.to_json()
    out.update({"source": source, "where": where, "head_note": has_note, "lines": len(entries)})
    for problem, raw in zip(out["problems"], result.problems, strict=True):
        problem["text"] = str(raw)
    return out


def _cross_check(file_result: Verification, topic_result: Verification, check: dict[str, Any]) -> None:
    """Both copies verify on their own; the shorter must be the start of the longer (same hash at its head)."""
    fh, th = file_result.head, topic_result.head
    if fh is None or fh == th:
        return
    if th is None:
        text = f"truncated: the topic has none of this chain, the file goes on to seq {fh.seq}"
    elif fh.seq < th.seq:
        text = f"truncated: the file ends at seq {fh.seq}, the topic goes on to seq {th.seq}"
    elif fh.seq > th.seq:
        text = f"truncated: the topic ends at seq {th.seq}, the file goes on to seq {fh.seq}"
    else:
        text = f"relinked: file and topic differ at seq {fh.seq} (a fork)"
    check["ok"] = False
    check["problems"].append(
        {
            "kind": text.split(":")[0],
            "position": -1,
            "seq": 0 if th is None else min(fh.seq, th.seq),
            "text": text,
        }
    )


def _show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    chains: dict[str, list[Any]] = {}
    if args.source in ("file", "auto") or args.file is not None:
        chains = {m: e for m, (_, e) in _file_chains(settings, args).items()}
    if args.file is None and (args.source in ("topic", "both") or (args.source == "auto" and not chains)):
        if args.source == "auto":  # not the trainer's machine (or another state dir): the topic has the trail
            print(
                f"audit show: no chain file in {settings.state_dir}; reading {settings.topic('audit')}",
                file=sys.stderr,
            )
        check_reachable(settings)
        chains = read_topic(settings)
        if args.model:
            chains = {args.model: chains.get(args.model, [])}
    rows = [e for entries in chains.values() for e in entries if isinstance(e, Mapping) and "seq" in e]
    if args.kind:
        rows = [e for e in rows if e.get("kind") == args.kind]
    rows.sort(key=lambda e: (int(e.get("ts", 0)), str(e.get("model")), int(e["seq"])))
    if args.n:
        rows = rows[-args.n :]
    for e in rows:
        if args.json:
            print(
                json.dumps(
                    {k: e.get(k) for k in ("seq", "ts", "kind", "model", "record", "sig_key_id", "hash")}
                )
            )
        else:
            print(
                f"{e['seq']:>5}  {_when(e.get('ts'))}  {e.get('model')!s:<12} {e.get('kind')!s:<9} {_summary(e)}"
            )
    if not rows and not args.json:
        print("no audit entries")
    return 0


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
