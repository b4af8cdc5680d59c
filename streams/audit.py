"""The audit trail's storage: one hash chain per model, on disk and on the ``audit`` topic.

The chain logic (hashing, signing, verifying) is :mod:`driftline.audit_chain`; this module only reads and writes.

- Disk: ``<state_dir>/audit/<prefix><model>.jsonl``, one entry per line (the path the demo reads), and next to it
  ``<prefix><model>.head.json``, a signed note of the last entry, replaced after each append: a chain cut short
  at its end no longer matches it.
- Topic: ``<prefix>audit`` (one partition, ``cleanup.policy=delete``, ``retention.ms=-1``,
  ``retention.bytes=-1``), keyed by model. The value is the entry's JSON line, UTF-8: the exact signed content,
  so ``kcat`` or any client can read and re-verify it without the Avro schemas.

Only the model's trainer appends (it is the single writer of the lineage), so a chain has one writer. On the first
append after a start, the log reads its chain back from disk and from the topic, continues from the longer one
and copies what the other lacks (a crash between the file append and the topic delivery leaves the topic one
entry short; a lost disk leaves the file empty).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from connectors.consumer import IncompleteRead, read_to_end
from connectors.topics import TopicSpec, ensure_topics
from driftline.audit_chain import AuditHead, from_line, head_of, make_line, sign_head, to_line, verify
from driftline.settings import Settings

log = logging.getLogger(__name__)

AUDIT_TOPIC = "audit"

# The kinds of entry a chain holds: the one definition. :meth:`AuditLog.append` refuses any other, and `audit show
# --kind` offers exactly these (session 35: the command kept its own copy of the list).
AuditKind = Literal["release", "decision", "control"]
AUDIT_KINDS: tuple[str, ...] = get_args(AuditKind)

Publish = Callable[[bytes, str], None]


def audit_paths(settings: Settings, model: str) -> tuple[Path, Path]:
    """(chain file, head note) of ``model`` under the settings' state dir and topic prefix."""
    base = Path(settings.state_dir).expanduser() / "audit" / f"{settings.kafka.topic_prefix}{model}"
    return base.with_name(base.name + ".jsonl"), base.with_name(base.name + ".head.json")


def chain_marker(chain: Path) -> Path:
    """The empty file a trainer leaves next to a chain file it made: the state dir held this chain, so `audit
    verify` can tell a chain file that was deleted from one that was never here (an auditor's machine, which
    verifies from the topic alone). A hint, not a guarantee: whoever deletes the chain can delete this too."""
    return chain.with_name(chain.name.removesuffix(".jsonl") + ".chain-made")


def signing_keys(settings: Settings) -> list[bytes]:
    """The keys an entry may be signed with: the current one and, during a rotation, the previous one."""
    keys = [settings.model.signing_key.get().encode()]
    previous = settings.model.previous_signing_key.get().encode()
    return keys + ([previous] if previous else [])


def ensure_audit_topic(settings: Settings, timeout: float = 30.0) -> TopicSpec:
    """Create ``<prefix>audit`` if missing (connectors.topics: one partition, delete-only, kept forever)."""
    return ensure_topics(settings, (AUDIT_TOPIC,), timeout)[AUDIT_TOPIC]


def read_file(path: Path) -> list[Any]:
    """Every line of a chain file, parsed; an unparseable line is kept as its text (verify names it)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out: list[Any] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            out.append(from_line(line))
        except (ValueError, RecursionError):
            out.append(line)
    return out


def read_head(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {"unreadable": str(path)}  # verify reports it as a malformed head note
    return value if isinstance(value, dict) else {"unreadable": str(path)}


def read_topic(settings: Settings, timeout: float = 15.0) -> dict[str, list[Any]]:
    """Every entry on ``<prefix>audit``, per model (the message key), in topic order (a record that is no JSON
    object, or nested too deep to parse, is kept as its text: ``verify`` names it, the chain skips it). Raises
    :class:`IncompleteRead` when the topic could not be read to its end: part of a chain is not the chain."""
    out: dict[str, list[Any]] = {}
    group = f"{settings.kafka.topic_prefix}driftline-audit-reader"
    for msg in read_to_end(settings, settings.topic(AUDIT_TOPIC), group, timeout=timeout, strict=True):
        key = msg.key()
        model = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        try:
            value: Any = from_line(msg.value() or b"")
        except (ValueError, RecursionError):  # anyone who can write the topic can write b"[" * 100000
            value = (msg.value() or b"").decode("utf-8", "replace")
        out.setdefault(model, []).append(value)
    return out


def _seq(entry: Any) -> int:
    return int(entry["seq"]) if isinstance(entry, Mapping) and isinstance(entry.get("seq"), int) else -1


def topic_continuation(file_entries: list[Any], topic_entries: list[Any]) -> list[Any]:
    """The topic's entries after the file's last one, when the topic holds that last entry (same seq, same hash);
    else none. A chain file stops where its state dir's trainer stopped writing the chain: in a trainer group
    the model moves to another trainer (another machine, another state dir), which goes on from the topic. Read
    alone, the file left behind showed an old trail as the whole one (gov42, session 42). The entries are taken
    as the topic holds them: ``audit verify`` judges them."""
    last = next((e for e in reversed(file_entries) if _seq(e) >= 0), None)
    if last is None or not isinstance(last.get("hash"), str) or not last["hash"]:
        return []  # not a chain entry: nothing to match the topic's with
    shared = [e for e in topic_entries if _seq(e) == _seq(last)]
    if not shared or shared[0].get("hash") != last.get("hash"):
        return []
    return [e for e in topic_entries if _seq(e) > _seq(last)]


class AuditLog:
    """One model's chain: :meth:`append` hashes, signs, writes the line and the head note, and publishes."""

    def __init__(
        self,
        settings: Settings,
        model: str,
        publish: Publish | None = None,
        *,
        topic_entries: Callable[[], Iterable[Any]] | None = None,
        deferred: bool = False,
    ) -> None:
        self.settings = settings
        self.model = model
        self.key = settings.model.signing_key.get().encode()
        self.path, self.head_path = audit_paths(settings, model)
        self._publish = publish
        self._topic_entries = topic_entries
        self._head: AuditHead | None = None
        self._opened = False
        # deferred: the file copy is written by commit() once the transaction that published the entries is
        # committed, and dropped by discard() if it is aborted (the topic then never shows them either).
        self.deferred = deferred
        self._pending: list[str] = []
        self._committed_head: AuditHead | None = None
        self._marked = False

    @property
    def head(self) -> AuditHead | None:
        return self._head

    def open(self) -> None:
        """Find where the chain ends (disk and topic) and bring both copies level."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        on_disk = [e for e in read_file(self.path) if isinstance(e, Mapping)]
        if on_disk and not any("hash" in e for e in on_disk):
            # A trail from before the chain: keep it aside, untouched, and start a chain. (A file where only some
            # lines are unchained is not moved: those lines are insertions, and `audit verify` names them.)
            aside = self.path.with_name(f"{self.path.stem}.pre-chain-{int(time.time())}.jsonl")
            os.replace(self.path, aside)
            log.warning("audit: %s predates the hash chain; kept as %s, a new chain starts", self.path, aside)
            on_disk = []
        on_disk = [e for e in on_disk if "hash" in e]
        try:
            on_topic: list[Any] | None = [
                e for e in (self._topic_entries() if self._topic_entries else []) if isinstance(e, Mapping)
            ]
        except IncompleteRead as exc:
            # Part of the topic is not the topic: copying from it or publishing what it seems to lack could fork
            # or duplicate the chain. The file's chain goes on; the copies are levelled at the next start.
            log.error("audit: %s; the file %s and the topic are not levelled this time", exc, self.path)
            on_topic = None
        disk_last = max(map(_seq, on_disk), default=-1)
        topic_last = disk_last if on_topic is None else max(map(_seq, on_topic), default=-1)
        if on_topic is not None and topic_last > disk_last:
            # Only what verifies as the continuation of the file's chain: anyone who can write the topic could
            # have appended entries there, and copying them would launder them into the file.
            missing = self._continuation(
                on_disk, [e for e in on_topic if _seq(e) > disk_last], "on the topic", "copied"
            )
            log.warning("audit: %s lacks %d entries the topic holds; copying them", self.path, len(missing))
            with self.path.open("a", encoding="utf-8") as fh:
                for entry in missing:
                    fh.write(to_line(entry) + "\n")
            on_disk += missing
        elif disk_last > topic_last and self._publish is not None and self._topic_entries is not None:
            # The same rule the other way: anyone who can write the state dir could have appended lines to the
            # file, and publishing them would put their words on the append-only topic, kept forever in the
            # trainer's name. (The file's chain goes on from its head; `audit verify` names the bad entry.)
            lacking = [e for e in on_disk if _seq(e) > topic_last]
            missing = self._continuation(
                sorted(on_topic or [], key=_seq), lacking, "in the file", "published"
            )
            log.warning("audit: the topic lacks %d entries of %s; publishing them", len(missing), self.path)
            for entry in missing:
                self._publish(to_line(entry).encode("utf-8"), self.model)
        check = verify(on_disk, signing_keys(self.settings), model=self.model)
        if not check.ok:
            # Keep recording (losing the trail of what happens next would be worse); verify will name it.
            log.error("audit: the chain in %s does not verify: %s", self.path, check.problems[0])
        self._head = self._committed_head = head_of(on_disk[-1]) if on_disk else None
        if on_disk:  # a chain made before the marker existed is marked at the trainer's next start
            self._mark()
        self._opened = True

    def _mark(self) -> None:
        if not self._marked:
            chain_marker(self.path).touch()
            self._marked = True

    def _continuation(self, base: list[Any], extra: list[Any], where: str, action: str) -> list[Any]:
        """The longest start of ``extra`` that verifies as the continuation of ``base`` (signatures and links).

        One verify of the whole run, cut before the first entry it names: verifying each entry again with all
        the good ones before it was quadratic (2,000 entries to level, a lost disk or a new topic, took 44-106 s
        at the start of a trainer, session 40); the start kept is verified once more to be sure."""
        keys = signing_keys(self.settings)
        tail, first = ([base[-1]], _seq(base[-1])) if base else ([], 0)
        whole = verify([*tail, *extra], keys, model=self.model, first_seq=first)
        if whole.ok:
            return list(extra)
        named = [p.position for p in whole.problems if p.position >= 0]
        cut = max(0, min(len(extra), min(named, default=len(tail)) - len(tail)))
        while cut > 0 and not verify([*tail, *extra[:cut]], keys, model=self.model, first_seq=first).ok:
            cut -= 1  # not expected (the first problem named is where the run goes wrong); correct, not fast
        log.error("audit: entry seq %s %s does not verify; not %s", _seq(extra[cut]), where, action)
        return list(extra[:cut])

    def append(
        self,
        kind: AuditKind,
        record: Mapping[str, Any],
        *,
        ts: int | None = None,
        texts: Mapping[str, str] | None = None,
        record_text: str | None = None,
    ) -> dict[str, Any]:
        """Add one entry: file line (flushed), head note (atomic replace), then the topic (async, flushed with
        the batch). ``kind`` is one of :data:`AUDIT_KINDS` (ValueError otherwise: `audit show --kind` could not
        select it). ``texts``, ``record_text``: canonical texts the caller already made
        (:func:`driftline.audit_chain.make_line`)."""
        if kind not in AUDIT_KINDS:
            raise ValueError(
                f"audit: entry kind {kind!r} is not one of {', '.join(AUDIT_KINDS)}; add it to streams.audit.AuditKind"
            )
        if not self._opened:
            self.open()
        now = int(time.time() * 1000) if ts is None else ts
        entry, line = make_line(
            self._head, kind, self.model, record, self.key, ts=now, texts=texts, record_text=record_text
        )
        self._head = head_of(entry)
        self._pending.append(line)
        if not self.deferred:
            self.commit()
        if self._publish is not None:
            self._publish(line.encode("utf-8"), self.model)
        return entry

    def commit(self) -> None:
        """Write the entries appended since the last commit to the file, then the head note (atomic replace)."""
        if not self._pending:
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in self._pending))
        self._mark()
        self._pending = []
        self._committed_head = self._head
        assert self._head is not None
        tmp = self.head_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sign_head(self._head, self.model, self.key)), encoding="utf-8")
        os.replace(tmp, self.head_path)

    def discard(self) -> None:
        """Forget the entries appended since the last commit (their transaction was aborted)."""
        self._pending = []
        self._head = self._committed_head


# Audit topics this process has ensured, by (bootstrap, topic): a trainer makes a publisher for each model's chain,
# and ensuring is an admin client and a metadata round trip (~40 ms): once per model, 700 models taken over or
# created in one transaction spent ~27 s there, past the transaction timeout (20 s), and the trainer was fenced.
_ENSURED: set[tuple[str, str]] = set()


def topic_publisher(settings: Settings, produce: Callable[[str, bytes, str], None]) -> Publish:
    """A :data:`Publish` that ensures the topic (once per process), then queues each line with
    ``produce(topic, data, key)``."""
    topic = settings.topic(AUDIT_TOPIC)
    if (settings.kafka.bootstrap, topic) not in _ENSURED:
        topic = ensure_audit_topic(settings).name
        _ENSURED.add((settings.kafka.bootstrap, topic))

    def publish(data: bytes, model: str) -> None:
        produce(topic, data, model)

    return publish


def release_rows(path: Path) -> list[tuple[Any, ...]]:
    """(version, parent, reason, learned from, largest changes, guard evidence) for each release in a chain file:
    the "what changed" table of the demo report."""
    from learners.explain import describe_release

    rows = []
    for entry in read_file(path):
        if (
            isinstance(entry, Mapping)
            and entry.get("kind") == "release"
            and isinstance(entry.get("record"), Mapping)
        ):
            record = entry["record"]
            text = describe_release(record)
            rows.append((record.get("version"), record.get("parent"), record.get("reason"), *text.values()))
    return rows
