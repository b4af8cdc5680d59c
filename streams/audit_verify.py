"""Verifying a model's audit chain, file and topic: what ``driftline audit verify`` prints and the console shows.

Not in the ``audit`` command module, so the console can use it without importing the commands (which launch it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.kafka_client import check_reachable
from connectors.topics import check_topics
from driftline.audit_chain import AuditHead, Verification, verify
from driftline.errors import ConfigError, StackError
from driftline.settings import Settings
from streams.audit import audit_paths, chain_marker, read_file, read_head, read_topic, signing_keys

__all__ = ["file_chains", "verify_chains"]

# A file behind the topic is read again this many times, this far apart, before it is called cut off.
CATCH_UP_TRIES = 4
CATCH_UP_PAUSE_S = 0.5


def file_chains(
    settings: Settings, file: Path | None, model: str | None, keys: list[bytes] | None = None
) -> dict[str, tuple[Path, list[Any]]]:
    """{model: (path, entries)} from ``--file`` or the state dir (one file per model of this prefix). With
    ``keys``, a file of a longer prefix sharing the state dir is left out (:func:`_of_longer_prefix`)."""
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
        if keys and _of_longer_prefix(name, path, entries, keys):
            continue
        out[name] = (path, entries)
    return out


def _of_longer_prefix(name: str, path: Path, entries: list[Any], keys: list[bytes]) -> bool:
    """Whether ``<prefix><name>.jsonl`` is another deployment's chain: one whose prefix starts with this one
    (``driftline.staging.`` next to the default ``driftline.``, in the default state dir), so that ``name`` is
    ``<rest of its prefix><its model>``. It is when the file verifies, signatures, links and head note, as the chain
    of a model that ``name`` ends with: only a holder of the key writes that, and it is not a chain of
    this prefix's model ``name`` (every entry would be ``foreign`` to it). Before session 42, ``audit verify`` of
    the default prefix failed on such a file as ``foreign`` and ``forged`` (docs/experiments/gov42.md)."""
    first = next((e for e in entries if isinstance(e, Mapping)), None)
    owner = first.get("model") if first is not None else None
    if not isinstance(owner, str) or owner == name or not name.endswith(owner):
        return False
    if any(not isinstance(e, Mapping) or e.get("model") != owner for e in entries):
        return False
    note = read_head(_head_path(path, None))
    return note is not None and verify(entries, keys, model=owner, head=note).ok


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
        for name, (path, _) in file_chains(settings, file, model, keys).items():
            result, check, _ = _verify_file(path, _head_path(path, head), keys, name)
            files[name] = result
            checks.append(check)
        if file is None:
            checks += _gone_files(settings, model, files)
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
            later: tuple[str, dict[int, str]] | None = None
            if name in files and file is None and result.ok and files[name].ok:
                result, entries, later = _catch_up(settings, name, files, result, entries, checks, keys, head)
            checks.append(_check("topic", settings.topic("audit"), result, False, entries))
            if name in files and result.ok and files[name].ok:
                noted = any(c["source"] == "file" and c["model"] == name and c["head_note"] for c in checks)
                _cross_check(files[name], result, checks[-1], later, _hashes(entries) if noted else None)
        _topic_at_risk(settings, [c for c in checks if c["source"] == "topic"])
    return checks


def audit_topic_risks(settings: Settings) -> list[str]:
    """How the ``audit`` topic's settings break the contract's keep-forever (``driftline topics describe``'s errors)."""
    (topic,) = check_topics(settings, ("audit",))
    keep = ("cleanup.policy", "retention.ms", "retention.bytes")
    return [d.describe() for d in topic.differences if d.severity == "error" and d.field in keep]


def _topic_at_risk(settings: Settings, checks: list[dict[str, Any]]) -> None:
    """Fail every topic check while the ``audit`` topic is configured to lose entries (compacted: only each model's
    last entry is kept; a finite retention): nothing is missing yet, but the copy is no longer kept, and a
    verify run then would report the loss only after Kafka had made it (session 42 noticed it)."""
    try:
        wrong = audit_topic_risks(settings) if checks else []
    except StackError as exc:
        # A principal without DescribeConfigs on the topic (SECURITY.md's operator ACLs) verifies the chain all the
        # same: only whether the topic keeps its entries goes unchecked, and the check says so.
        for check in checks:
            check.setdefault("notes", []).append(f"the audit topic's settings were not checked: {exc}")
        return
    if not wrong:
        return
    name = settings.topic("audit")
    text = (
        f"at_risk: the topic {name} will lose entries ({'; '.join(wrong)}); set it back, e.g. kafka-configs.sh "
        f"--bootstrap-server {settings.kafka.bootstrap} --alter --entity-type topics --entity-name {name} "
        "--add-config cleanup.policy=delete,retention.ms=-1,retention.bytes=-1"
    )
    for check in checks:
        check["ok"] = False
        check["problems"].append({"kind": "at_risk", "position": -1, "seq": 0, "detail": text, "text": text})


def _gone_files(settings: Settings, model: str | None, files: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A failed file check for each chain whose file this state dir made (its marker is there) but no longer holds:
    without it, a deleted chain file and head note left only the topic's copy checked, exit 0, as on a machine
    that never had them (gov40, session 40, T5)."""
    folder = audit_paths(settings, settings.model.name)[0].parent
    prefix = settings.kafka.topic_prefix
    if model:
        markers = [chain_marker(audit_paths(settings, model)[0])]
    else:
        markers = sorted(folder.glob(f"{prefix}*.chain-made"))
    out = []
    for marker in markers:
        name = marker.name[len(prefix) : -len(".chain-made")]
        path = audit_paths(settings, name)[0]
        if name in files or path.exists() or not marker.exists():
            continue
        text = (
            f"truncated: the chain file {path} and its head note are gone, but this state dir held them "
            f"({marker.name} says so): only the topic's copy can be checked. A trainer of model {name} writes the "
            "file again from the topic at its next append; delete the marker if the file was removed on purpose"
        )
        problem = {"kind": "truncated", "position": -1, "seq": 0, "detail": text, "text": text}
        out.append(
            {
                "model": name,
                "ok": False,
                "entries": 0,
                "head": None,
                "key_ids": [],
                "problems": [problem],
                "source": "file",
                "where": str(path),
                "head_note": False,
                "lines": 0,
            }
        )
    return out


def _verify_file(
    path: Path, note_path: Path, keys: list[bytes], name: str
) -> tuple[Verification, dict[str, Any], list[Any]]:
    """Verify one chain file with its head note. The note is read first: the trainer writes the file's lines, then
    the note, so a note read after the file could name an entry appended in between ("the head note says the chain
    reaches seq N; ... missing at the end" of a sound chain)."""
    note = read_head(note_path)
    entries = read_file(path)
    result = verify(entries, keys, model=name, head=note)
    return result, _check("file", str(path), result, note is not None, entries), entries


def _seq(head: AuditHead | None) -> int:
    return -1 if head is None else head.seq


def _hashes(entries: list[Any]) -> dict[int, str]:
    return {
        e["seq"]: str(e.get("hash"))
        for e in entries
        if isinstance(e, Mapping) and isinstance(e.get("seq"), int) and not isinstance(e.get("seq"), bool)
    }


def _catch_up(
    settings: Settings,
    name: str,
    files: dict[str, Verification],
    result: Verification,
    entries: list[Any],
    checks: list[dict[str, Any]],
    keys: list[bytes],
    head: Path | None,
) -> tuple[Verification, list[Any], tuple[str, dict[int, str]] | None]:
    """File and topic are read one after the other while a trainer may append to both (which first depends on
    its mode), so the copy read first can be behind without being cut. Read the one behind again, a few times,
    until it reaches the head the other had; return the topic's verification and entries, and which copy was read
    last with its hashes by seq (the cross-check then accepts the copy read first being a start of it). A copy cut
    by someone never catches up, stays the shorter one, and is reported by the cross-check."""
    if _seq(files[name].head) < _seq(result.head):
        target = _seq(result.head)
        index = next(i for i, c in enumerate(checks) if c["source"] == "file" and c["model"] == name)
        path = Path(checks[index]["where"])
        for attempt in range(CATCH_UP_TRIES):
            if attempt:
                time.sleep(CATCH_UP_PAUSE_S)
            files[name], checks[index], fentries = _verify_file(path, _head_path(path, head), keys, name)
            if _seq(files[name].head) >= target or not files[name].ok:
                break
        return result, entries, ("file", _hashes(fentries))
    if _seq(files[name].head) > _seq(result.head):
        target = _seq(files[name].head)
        for attempt in range(CATCH_UP_TRIES):
            if attempt:
                time.sleep(CATCH_UP_PAUSE_S)
            entries = read_topic(settings).get(name, [])
            result = verify(entries, keys, model=name)
            if _seq(result.head) >= target or not result.ok:
                break
        return result, entries, ("topic", _hashes(entries))
    return result, entries, None


def _check(
    source: str, where: str, result: Verification, has_note: bool, entries: list[Any]
) -> dict[str, Any]:
    out = result.to_json()
    out.update({"source": source, "where": where, "head_note": has_note, "lines": len(entries)})
    for problem, raw in zip(out["problems"], result.problems, strict=True):
        problem["text"] = str(raw)
    return out


def _cross_check(
    file_result: Verification,
    topic_result: Verification,
    check: dict[str, Any],
    later: tuple[str, dict[int, str]] | None = None,
    topic_hashes: dict[int, str] | None = None,
) -> None:
    """Both copies verify on their own and end at the same entry; or the copy read last (``later``: which, and its
    hashes by seq), read again because it was behind, has overtaken the other: the one read first must then be its
    start (same hash at its head); or the file ends where its signed head note says and the topic holds that entry
    and goes on (``topic_hashes``, given when the file has its note): the trainer of this state dir stopped writing
    the chain there, and another trainer of the group went on (a note, not a failure: nothing is missing from the
    trail, and cutting the file would have needed the key to sign a matching note). Any other difference is a
    cut-off or forked copy."""
    fh, th = file_result.head, topic_result.head
    if fh is None or fh == th:
        return
    if (
        topic_hashes is not None
        and th is not None
        and fh.seq < th.seq
        and topic_hashes.get(fh.seq) == fh.hash
    ):
        check.setdefault("notes", []).append(
            f"the file ends at seq {fh.seq}, where its signed head note says, and the topic holds the same "
            f"entries and goes on to seq {th.seq}: this state dir's trainer stopped writing the chain at seq "
            f"{fh.seq} (the model moved to another trainer of the group); the topic's copy is the whole chain"
        )
        return
    if later is not None and th is not None:
        source, hashes = later
        first = th if source == "file" else fh
        last = fh if source == "file" else th
        if last.seq > first.seq and hashes.get(first.seq) == first.hash:
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
