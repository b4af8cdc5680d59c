"""The audit trail's hash chain: building entries and verifying a sequence of them. Pure: no files, no Kafka.

An entry is a JSON object::

    {"seq": 7, "ts": 1764590000000, "kind": "decision", "model": "default", "record": {...},
     "prev": "<hash of entry 6>", "sig_key_id": "3f2a...", "hash": "<sha256>", "sig": "<hmac-sha256>"}

``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces) of the signed fields (everything but
``hash`` and ``sig``); ``sig`` is HMAC-SHA256 of ``hash`` with the signing key; ``sig_key_id`` names the key by a
short fingerprint (never the key). Entry 0 links to :data:`GENESIS`. Why both a hash and a MAC: the hash links
the entries (anyone can check order and completeness), the MAC makes a rewritten chain impossible to re-seal
without the key.

For the readers that came before the chain (the demo, tests), an entry's line also carries a copy of each
record field at the top level (unless the name is a chain field); :func:`verify` checks the copies too. The line
writes the record and its copies in canonical form, the text that is hashed (:func:`to_line`); lines written
before that (the record as ``json.dumps`` writes it) verify the same: only the parsed entry is ever hashed.

>>> key = b"k" * 32
>>> e0 = make_entry(None, "control", "m", {"command": "pause_learning"}, key, ts=1)
>>> e1 = make_entry(head_of(e0), "release", "m", {"version": 2}, key, ts=2)
>>> verify([e0, e1], [key]).ok
True
>>> e1["record"]["version"] = 3
>>> verify([e0, e1], [key]).problems[0].kind
'altered'
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CHAIN_FIELDS",
    "GENESIS",
    "AuditHead",
    "Problem",
    "Verification",
    "canonical",
    "canonical_text",
    "entry_hash",
    "from_line",
    "head_of",
    "key_id",
    "make_entry",
    "make_line",
    "sign_head",
    "to_line",
    "verify",
]

GENESIS = "0" * 64
# ``sig_key_id``, not ``key_id``: a record may carry a key_id of its own (a control command's signer), and
# pre-chain readers read record fields at the top level of the line.
SIGNED_FIELDS = ("seq", "ts", "kind", "model", "record", "prev", "sig_key_id")
CHAIN_FIELDS = frozenset(SIGNED_FIELDS) | {"hash", "sig"}
# The kinds of tampering :func:`verify` names.
KINDS = (
    "malformed",
    "altered",
    "forged",
    "foreign",
    "removed",
    "reordered",
    "duplicated",
    "relinked",
    "truncated",
)


# Encoders and a decoder made once: json.dumps/loads with arguments build a new one per call (2-4 us each, ten
# calls per release). The same settings as the json.dumps calls they stand for, so the same text.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_LINE = json.JSONEncoder(ensure_ascii=False)
_RECORD = json.JSONEncoder(default=str, ensure_ascii=False)
# What the encoders above call for a str (ensure_ascii=False): a signed field's text without an encoder call.
_encode_str = json.encoder.encode_basestring
_int_repr = int.__repr__  # how the encoders write an int (not a bool, nor an int subclass)


def canonical(value: Any) -> bytes:
    """The bytes that are hashed: JSON with sorted keys and no whitespace (NaN spelled as Python's json does)."""
    return _CANONICAL.encode(value).encode("utf-8")


def canonical_text(value: Any, texts: Mapping[str, str] | None = None) -> str:
    """:func:`canonical` as text; ``texts``: the canonical texts of some of ``value``'s top-level values (a dict
    with str keys), by key, already made by the caller: spliced in rather than encoded again.

    Why: a trainer's release writes the same metrics in its signed header and in its audit entry, and the guard's
    decision in two audit entries (~40 and ~15 floats, ~1 us each to write; ~400 releases per 20,000 LR labels).
    The text is the encoder's: its keys sorted, each written by the same function, each value as it writes it
    at any depth (``tests/test_audit_spliced.py``).

    >>> canonical_text({"b": [1.5], "a": "x"}, {"b": "[1.5]"}) == canonical_text({"b": [1.5], "a": "x"})
    True
    """
    if not texts:
        return _CANONICAL.encode(value)
    return (
        "{"
        + ",".join(
            f"{_encode_str(k)}:{texts[k] if k in texts else _text(v)}"
            for k, v in sorted(value.items(), key=_first)
        )
        + "}"
    )


def _text(value: Any) -> str:
    """``_CANONICAL.encode(value)``, a str, int, None or bool written without the encoder's call (~1 us each: a
    release's signed header and its audit entry hold ~10 such top-level values besides the spliced ones)."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is int:
        return _int_repr(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return _CANONICAL.encode(value)


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def key_id(key: bytes) -> str:
    """A short public fingerprint of a signing key (16 hex digits), safe to print and store.

    >>> key_id(b"k" * 32) == key_id(b"k" * 32), len(key_id(b"k" * 32))
    (True, 16)
    """
    return hashlib.sha256(b"driftline-key-id\x00" + key).hexdigest()[:16]


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of the entry's signed fields."""
    return hashlib.sha256(canonical({k: entry.get(k) for k in SIGNED_FIELDS})).hexdigest()


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditHead:
    """Where a chain ends: the last entry's ``seq`` and ``hash`` (the next entry links to it)."""

    seq: int
    hash: str


def head_of(entry: Mapping[str, Any]) -> AuditHead:
    return AuditHead(int(entry["seq"]), str(entry["hash"]))


def make_entry(
    head: AuditHead | None, kind: str, model: str, record: Mapping[str, Any], key: bytes, *, ts: int
) -> dict[str, Any]:
    """The next entry after ``head`` (None: the first entry of a chain), hashed and signed with ``key``.

    ``record`` may hold any JSON; values JSON cannot carry are stored as their ``str()``. The entry's record is
    its own copy (the JSON round trip), never ``record`` itself.
    """
    return _make(head, kind, model, record, key, ts, share=False)[0]


class _Collapsed(ValueError):
    """Two keys of one object became the same string (``1`` and ``"1"``): the text is not the stored record's."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Collapsed
    return out


_UNIQUE = json.JSONDecoder(object_pairs_hook=_unique)


_SCALARS = frozenset((str, int, float, bool, type(None)))


def _plain(value: Any) -> bool:
    """True if ``value`` is made of exactly dict (str keys only), list, tuple, str, int, float, bool and None.

    Such a value hashes the same as its JSON round trip: the canonical text sorts the same str keys, a tuple is
    written as a list, and a float's repr reads back as the same float (NaN and the infinities as themselves).
    Subclasses (an IntEnum, numpy's float64) and other keys (``1`` is written as ``"1"`` and sorts otherwise)
    are not plain: they take the round trip. ~6 us for a release's explanation, where parsing its text back
    took ~50 (floats are most of it, ~0.5 us each to read).
    """
    # Loops rather than all(): a generator per container costs as much again as the walk.
    kind = type(value)
    if kind is dict:
        for k, v in value.items():
            if type(k) is not str or (type(v) not in _SCALARS and not _plain(v)):
                break
        else:
            return True
        return False
    if kind is list or kind is tuple:
        for v in value:
            if type(v) not in _SCALARS and not _plain(v):
                break
        else:
            return True
        return False
    return kind in _SCALARS


def make_line(
    head: AuditHead | None,
    kind: str,
    model: str,
    record: Mapping[str, Any],
    key: bytes,
    *,
    ts: int,
    texts: Mapping[str, str] | None = None,
    record_text: str | None = None,
) -> tuple[dict[str, Any], str]:
    """:func:`make_entry` and its :func:`to_line`, the record encoded once.

    The record's canonical text (what is hashed) is also its text in the line: the hash is assembled around it
    rather than encoding the record a second time (a release's record holds ~80 floats; encoding them twice was
    about half of its audit entry). A trainer audits each release this way (~400 releases per 20,000 logistic
    regression labels).

    A record that is already plain JSON (:func:`_plain`) is not parsed back: the entry's ``record`` is then
    ``record`` itself (not a copy; :func:`make_entry` copies), and the hash and signature are the bytes of the
    JSON round trip's (``tests/test_audit_fast_path.py``). ``texts``: the canonical texts of some of such a
    record's top-level values, by key (:func:`canonical_text`), already made by the caller; ``record_text``: the
    whole record's. Both are ignored for a record that is not plain (its copy is encoded).
    """
    return _make(head, kind, model, record, key, ts, share=True, texts=texts, known=record_text)


def _make(
    head: AuditHead | None,
    kind: str,
    model: str,
    record: Mapping[str, Any],
    key: bytes,
    ts: int,
    *,
    share: bool,
    texts: Mapping[str, str] | None = None,
    known: str | None = None,
) -> tuple[dict[str, Any], str]:
    stored: Any
    record_text = None
    if share and type(record) is dict and _plain(record):
        stored = record
        if known is not None:
            record_text = known
        elif texts:
            record_text = canonical_text(stored, texts)
    else:
        text = _RECORD.encode(dict(record))
        try:
            stored = _UNIQUE.decode(text)
        except _Collapsed:
            stored = json.loads(text)
    entry: dict[str, Any] = {
        "seq": 0 if head is None else head.seq + 1,
        "ts": int(ts),
        "kind": str(kind),
        "model": str(model),
        "record": stored,
        "prev": GENESIS if head is None else head.hash,
        "sig_key_id": key_id(key),
    }
    if record_text is None:
        record_text = _CANONICAL.encode(stored)
    # canonical() of the signed fields, the record's text spliced in: their keys in sorted order, no spaces.
    signed = (
        f'{{"kind":{_string(entry["kind"])},"model":{_string(entry["model"])},"prev":{_string(entry["prev"])},'
        f'"record":{record_text},"seq":{entry["seq"]},"sig_key_id":{_string(entry["sig_key_id"])},'
        f'"ts":{entry["ts"]}}}'
    )
    entry["hash"] = hashlib.sha256(signed.encode("utf-8")).hexdigest()
    entry["sig"] = _mac(key, entry["hash"])
    return entry, _line(entry, record_text)


def to_line(entry: Mapping[str, Any]) -> str:
    """One JSON line: the entry plus top-level copies of the record's fields (for pre-chain readers).

    The record and the copies are written in canonical form (sorted keys, no spaces: the record's text is the
    one that is hashed), the rest as ``json.dumps`` writes it::

        {<record fields>, "seq": 7, "ts": 1764590000000, "kind": "decision", "model": "default",
         "record": {<record fields>}, "prev": "...", "sig_key_id": "...", "hash": "...", "sig": "..."}

    Lines written before the record was canonical (``json.dumps`` spacing, the record's own key order) verify
    the same: the hash is over the canonical form of the parsed entry, never over the line's text.
    """
    return _line(entry, _CANONICAL.encode(entry["record"]))


def _line(entry: Mapping[str, Any], record_text: str) -> str:
    record = entry["record"]
    if CHAIN_FIELDS.isdisjoint(record):
        copies = record_text[1:-1]
    else:  # a record field named like a chain field is not copied (the chain's own field is at the top)
        copies = _CANONICAL.encode({k: v for k, v in record.items() if k not in CHAIN_FIELDS})[1:-1]
    return (
        f'{{{copies}{", " if copies else ""}"seq": {_int(entry["seq"])}, "ts": {_int(entry["ts"])}, '
        f'"kind": {_string(entry["kind"])}, "model": {_string(entry["model"])}, "record": {record_text}, '
        f'"prev": {_string(entry["prev"])}, "sig_key_id": {_string(entry["sig_key_id"])}, '
        f'"hash": {_string(entry["hash"])}, "sig": {_string(entry["sig"])}}}'
    )


def _string(value: Any) -> str:
    """A signed field's JSON text as ``json.dumps`` writes it (a str: the C quoting function the encoders use)."""
    return _encode_str(value) if type(value) is str else _LINE.encode(value)


def _int(value: Any) -> str:
    return str(value) if type(value) is int else _LINE.encode(value)


def from_line(line: str | bytes) -> dict[str, Any]:
    """Parse one line; raises ValueError on anything that is not a JSON object."""
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError(f"not a JSON object: {type(value).__name__}")
    return value


def sign_head(head: AuditHead, model: str, key: bytes) -> dict[str, Any]:
    """A signed note of where ``model``'s chain ends, kept apart from the chain to expose a truncated tail."""
    return {
        "model": model,
        "seq": head.seq,
        "hash": head.hash,
        "key_id": key_id(key),
        "sig": _mac(key, f"head:{model}:{head.seq}:{head.hash}"),
    }


@dataclass(frozen=True)
class Problem:
    """The first thing wrong with a chain: which entry (position in the input, its seq) and what kind."""

    kind: str  # one of KINDS
    position: int  # index in the sequence given to verify (-1: not about one entry, e.g. the head note)
    seq: int | None
    detail: str

    def __str__(self) -> str:
        where = f"entry #{self.position}" if self.position >= 0 else "the chain head"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass
class Verification:
    """What :func:`verify` found: entries checked, the head reached, and problems (first one first)."""

    model: str
    n: int = 0
    head: AuditHead | None = None
    problems: list[Problem] = field(default_factory=list)
    key_ids: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ok": self.ok,
            "entries": self.n,
            "head": None if self.head is None else {"seq": self.head.seq, "hash": self.head.hash},
            "key_ids": sorted(self.key_ids),
            "problems": [
                {"kind": p.kind, "position": p.position, "seq": p.seq, "detail": p.detail}
                for p in self.problems
            ],
        }


def _integrity(entry: Any, keys: Mapping[str, bytes], model: str | None) -> tuple[str, str] | None:
    """Per-entry checks (shape, hash, signature, model); (kind, detail) of the first failure, or None."""
    if not isinstance(entry, Mapping):
        return "malformed", "not a JSON object"
    missing = [k for k in (*SIGNED_FIELDS, "hash", "sig") if k not in entry]
    if missing:
        return "malformed", f"missing field(s) {', '.join(missing)}"
    if not isinstance(entry["seq"], int) or isinstance(entry["seq"], bool) or entry["seq"] < 0:
        return "malformed", f"seq is {entry['seq']!r}, not a non-negative integer"
    if not isinstance(entry["record"], Mapping):
        return "malformed", "record is not a JSON object"
    if entry_hash(entry) != entry["hash"]:
        return "altered", "content does not match its hash"
    for name, value in entry.items():
        if name not in CHAIN_FIELDS and canonical(entry["record"].get(name)) != canonical(value):
            return "altered", f"top-level field {name!r} differs from record.{name}"
    key = keys.get(str(entry["sig_key_id"]))
    if key is None:
        return "forged", f"signed with key id {entry['sig_key_id']!r}, not with a key given to verify"
    if not hmac.compare_digest(_mac(key, str(entry["hash"])), str(entry["sig"])):
        return "forged", "signature does not match (rewritten without the key)"
    if model is not None and entry["model"] != model:
        return "foreign", f"belongs to model {entry['model']!r}, not {model!r} (spliced from another chain)"
    return None


def verify(
    entries: Sequence[Any],
    keys: Iterable[bytes],
    *,
    model: str | None = None,
    head: Mapping[str, Any] | None = None,
    first_seq: int = 0,
) -> Verification:
    """Check one model's chain, in the order given.

    Every entry that is not genuine (malformed, signed with no key given, of another model) is reported and left
    out; the chain of the genuine entries is then checked in order and its first problem reported (order
    analysis stops there). One junk record no longer hides what comes after it: a later forgery, or a genuine
    entry removed or relinked, is still found (session 35, sec35's F9: one record that was not JSON made the
    topic's check say "entries: 0" and stop).

    ``keys``: the signing keys to accept (current and, during a rotation, previous). ``model``: the chain's
    model (default: the first entry's). ``head``: a signed note from :func:`sign_head`; without one, a chain
    cut short at its end looks whole (see README, Governance). ``first_seq``: where the given part starts
    (0 for a whole chain).
    """
    by_id = {key_id(k): k for k in keys}
    if model is None and entries and isinstance(entries[0], Mapping):
        model = str(entries[0].get("model"))
    result = Verification(model=model or "")

    def fail(kind: str, position: int, seq: int | None, detail: str) -> Verification:
        result.problems.append(Problem(kind, position, seq, detail))
        return result

    # Integrity first, so the order analysis below only looks at genuine entries (by their positions given).
    genuine: list[tuple[int, Any]] = []
    reported: dict[int, list[Mapping[str, Any]]] = {}  # the entries reported above, by seq: see _through
    for i, entry in enumerate(entries):
        bad = _integrity(entry, by_id, model)
        seq = entry.get("seq") if isinstance(entry, Mapping) and isinstance(entry.get("seq"), int) else None
        if bad is not None:
            fail(bad[0], i, seq, bad[1])
            if seq is not None:
                reported.setdefault(seq, []).append(entry)
            continue
        result.key_ids.add(str(entry["sig_key_id"]))
        genuine.append((i, entry))
    seqs = [int(e["seq"]) for _, e in genuine]
    positions: dict[int, int] = {}
    expected, prev_hash = first_seq, None if first_seq else GENESIS
    for k, (i, entry) in enumerate(genuine):
        seq = seqs[k]
        if seq in positions:
            same = entries[positions[seq]]["hash"] == entry["hash"]
            detail = f"seq {seq} already appeared at entry #{positions[seq]}"
            return fail("duplicated" if same else "relinked", i, seq, detail + ("" if same else " (a fork)"))
        positions[seq] = i
        if seq < expected:
            return fail("reordered", i, seq, f"comes after seq {expected - 1}")
        if seq > expected:
            link = _through(reported, expected, seq, prev_hash)
            if link is not False and (link is None or entry["prev"] == link):
                expected, prev_hash = (
                    seq,
                    link,
                )  # only entries reported above between, altered where they stand
        if seq > expected:
            if expected in seqs[k + 1 :]:
                return fail("reordered", i, seq, f"comes before seq {expected}")
            missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}..{seq - 1}"
            return fail("removed", i, seq, f"{missing} missing before it")
        if prev_hash is not None and entry["prev"] != prev_hash:
            return fail("relinked", i, seq, "prev does not match the hash of the entry before it")
        expected, prev_hash = seq + 1, str(entry["hash"])
        result.n += 1
        result.head = head_of(entry)
    if head is not None:
        problem = _check_head(head, entries, positions, by_id, result.model)
        if problem is not None:
            return fail(*problem)
    return result


def _through(
    reported: Mapping[int, list[Mapping[str, Any]]], start: int, stop: int, link: str | None
) -> str | Literal[False] | None:
    """The hash the chain reaches through the entries reported as not genuine at seqs ``start``..``stop - 1``, each
    linking (by its ``prev``) to the one before, from ``link`` (None: not known, at the start of a part), or False
    when they do not link (or a seq has none).

    An entry altered where it stands keeps its place in the chain: the genuine entries around it link through it
    (the one after it names its hash). A record that only carries the seq of a genuine entry removed (junk, a
    forgery re-hashed, an entry of another chain) does not, so the removal is reported too, not hidden behind a
    problem an auditor may take for noise (review35).
    """
    for seq in range(start, stop):
        step = next((e for e in reported.get(seq, ()) if link is None or e.get("prev") == link), None)
        if step is None or not isinstance(step.get("hash"), str):
            return False
        link = step["hash"]
    return link


def _check_head(
    note: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    positions: Mapping[int, int],
    keys: Mapping[str, bytes],
    model: str,
) -> tuple[str, int, int | None, str] | None:
    try:
        seq, digest, kid, sig = int(note["seq"]), str(note["hash"]), str(note["key_id"]), str(note["sig"])
    except (KeyError, TypeError, ValueError):
        return "malformed", -1, None, "the head note lacks seq, hash, key_id or sig"
    key = keys.get(kid)
    if key is None or not hmac.compare_digest(_mac(key, f"head:{model}:{seq}:{digest}"), sig):
        return "forged", -1, seq, "the head note's signature does not match"
    last = max(positions, default=-1)
    if seq > last:
        gone = f"seq {last + 1}" if seq == last + 1 else f"seq {last + 1}..{seq}"
        return (
            "truncated",
            -1,
            seq,
            f"the head note says the chain reaches seq {seq}; {gone} missing at the end",
        )
    if entries[positions[seq]]["hash"] != digest:
        return "relinked", positions[seq], seq, "the head note's hash differs from this entry's"
    return None
