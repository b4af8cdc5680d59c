"""Verifying a model's audit chain, file and topic: what ``driftline audit verify`` prints and the console shows.

Not in the ``audit`` command module, so the console can use it without importing the commands (which launch it).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.kafka_client import check_reachable
from driftline.audit_chain import Verification, verify
from driftline.errors import ConfigError
from driftline.settings import Settings
from streams.audit import audit_paths, read_file, read_head, read_topic, signing_keys

__all__ = ["file_chains", "verify_chains"]


def file_chains(
    settings: Settings, file: Path | None, model: str | None
) -> dict[str, tuple[Path, list[Any]]]:
    """{model: (path, entries)} from ``--file`` or the state dir (one file per model of this prefix)."""
    if file is not None:
        if not file.exists():
            raise ConfigError(f"--file: {file} does not exist")
        entries = read_file(file)
        first = next((e for e in entries if isinstance(e, Mapping)), {})
        name = model or str(first.get("model", settings.model.name))
        return {name: (file, entries)}
    if model:
        path = audit_paths(settings, model)[0]
        return {model: (path, read_file(path))} if path.exists() else {}
    folder = audit_paths(settings, settings.model.name)[0].parent
    out = {}
    prefix = settings.kafka.topic_prefix
    for path in sorted(folder.glob(f"{prefix}*.jsonl")):
        name = path.name[len(prefix) : -len(".jsonl")]
        entries = read_file(path)
        if ".pre-chain-" in name and not any(isinstance(e, Mapping) and "hash" in e for e in entries):
            continue  # a trail from before the chain, kept aside by AuditLog.open (a model's name may say so too)
        out[name] = (path, entries)
    return out


def _head_path(path: Path, head: Path | None) -> Path:
    if head is not None:
        return Path(head)
    return path.with_name(path.name.removesuffix(".jsonl") + ".head.json")


def verify_chains(
    settings: Settings,
    source: str = "both",
    model: str | None = None,
    file: Path | None = None,
    head: Path | None = None,
) -> list[dict[str, Any]]:
    """The checks ``driftline audit verify --json`` prints (one per copy of each chain: file, topic), each with
    ``ok`` and its ``problems``; an empty list when no chain was found. The console shows the same checks."""
    keys = signing_keys(settings)
    if not keys[0]:
        raise ConfigError("model.signing_key: not set (DRIFTLINE_SIGNING_KEY); the chain cannot be verified")
    checks: list[dict[str, Any]] = []
    files: dict[str, Verification] = {}
    if source in ("file", "both"):
        for name, (path, entries) in file_chains(settings, file, model).items():
            note_path = _head_path(path, head)
            note = read_head(note_path)
            result = verify(entries, keys, model=name, head=note)
            files[name] = result
            checks.append(_check("file", str(path), result, note is not None, entries))
    if (source == "both" and file is None) or source == "topic":
        check_reachable(settings)
        chains = read_topic(settings)
        # A chain the file has is looked for on the topic too: a topic that lost all of it (deleted and made
        # again, emptied) is a cut-off copy, not "nothing to check".
        models = sorted(set(chains) | {m for m, r in files.items() if r.head is not None})
        if model:
            models = [model]
        for name in models:
            entries = chains.get(name, [])
            if not entries and name not in files:
                continue  # no chain of this model anywhere: nothing was checked (a typo, or nothing recorded)
            result = verify(entries, keys, model=name)
            checks.append(_check("topic", settings.topic("audit"), result, False, entries))
            if name in files and result.ok and files[name].ok:
                _cross_check(files[name], result, checks[-1])
    return checks


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
