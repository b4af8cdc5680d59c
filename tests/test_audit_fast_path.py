"""Publishing a release more cheaply writes the same records (issue 16, session 15: publishing a release).

- :func:`driftline.audit_chain.make_line` no longer parses a plain-JSON record back: its line, hash and signature
  must be the bytes the JSON round trip gave (a reference built here, independently of the module).
- :func:`learners.explain.weight_changes` ranks tuples and builds only the top rows: the same rows as ranking a
  dict per feature.
- A trainer replaying a stream writes a chain that verifies, and releases that verify and refuse tampering; its
  ModelRelease bytes, encoded without validation, are the validating encoder's.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import random
import tempfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.audit_chain import (
    GENESIS,
    SIGNED_FIELDS,
    AuditHead,
    from_line,
    key_id,
    make_entry,
    make_line,
    to_line,
    verify,
)

KEY = b"a-signing-key-of-at-least-32-bytes!!"


def reference_line(
    head: AuditHead | None, kind: str, model: str, record: Any, ts: int
) -> tuple[str, str, str]:
    """(line, hash, sig) as the chain was built before the fast path: the record's JSON round trip, hashed."""
    stored = json.loads(json.dumps(dict(record), default=str, ensure_ascii=False))
    entry = {
        "seq": 0 if head is None else head.seq + 1,
        "ts": ts,
        "kind": kind,
        "model": model,
        "record": stored,
        "prev": GENESIS if head is None else head.hash,
        "sig_key_id": key_id(KEY),
    }
    signed = json.dumps(
        {k: entry[k] for k in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    entry["hash"] = hashlib.sha256(signed.encode("utf-8")).hexdigest()
    entry["sig"] = hmac.new(KEY, entry["hash"].encode("ascii"), hashlib.sha256).hexdigest()
    return to_line(entry), entry["hash"], entry["sig"]


_PLAIN_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_PLAIN_KEYS = st.one_of(st.text(max_size=6), st.sampled_from(["seq", "hash", "record", "sig", "1", "true"]))
_PLAIN = st.recursive(
    _PLAIN_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(_PLAIN_KEYS, inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(record=st.dictionaries(_PLAIN_KEYS, _PLAIN, max_size=6), seq=st.integers(-1, 10**6))
def test_a_plain_record_takes_the_fast_path_and_writes_the_round_trips_bytes(
    record: dict[str, Any], seq: int
) -> None:
    head = None if seq < 0 else AuditHead(seq, "cd" * 32)
    entry, line = make_line(head, "release", "m", record, KEY, ts=7)
    assert entry["record"] is record  # the fast path: not parsed back
    assert (line, entry["hash"], entry["sig"]) == reference_line(head, "release", "m", record, 7)
    parsed = from_line(line)
    assert verify([parsed], [KEY], first_seq=parsed["seq"]).ok


class Colour(enum.IntEnum):
    RED = 1


class Score(float):
    pass


@pytest.mark.parametrize(
    "record",
    [
        {"by_class": {1: 0.5, 10: 0.25, 2: 0.25}},  # int keys: written as strings and sorted as strings
        {"a": {1: "int", "1": "str"}},  # two keys that become one string
        {"colour": Colour.RED, "score": Score(0.1)},  # subclasses
        {"path": object.__new__(type("Opaque", (), {"__str__": lambda self: "opaque"}))},  # stored as str()
        {"nested": [{"x": (1, {2: 3})}]},
    ],
)
def test_a_record_that_is_not_plain_json_still_takes_the_round_trip(record: dict[str, Any]) -> None:
    entry, line = make_line(AuditHead(3, "ef" * 32), "decision", "m", record, KEY, ts=9)
    assert entry["record"] is not record
    if "a" not in record:  # the collapsed keys: to_line writes the parsed record (json.dumps keeps both keys)
        assert (line, entry["hash"], entry["sig"]) == reference_line(
            AuditHead(3, "ef" * 32), "decision", "m", record, 9
        )
    assert verify([from_line(line)], [KEY], first_seq=4).ok


def test_make_entry_never_shares_the_callers_record() -> None:
    record = {"version": 2, "metrics": {"acc": 0.5}}
    entry = make_entry(None, "release", "m", record, KEY, ts=1)
    assert entry["record"] == record and entry["record"] is not record
    record["metrics"]["acc"] = 0.9
    assert entry["record"]["metrics"]["acc"] == 0.5


def _old_weight_changes(wa: dict[str, float], wb: dict[str, float], top: int) -> list[dict[str, Any]]:
    rows = []
    for f in sorted(set(wa) | set(wb)):
        before, after = wa.get(f, 0.0), wb.get(f, 0.0)
        rows.append({"feature": f, "before": before, "after": after, "delta": after - before})
    rows.sort(key=lambda r: (-abs(r["delta"]), r["feature"]))
    return rows[:top]


class _Linear:
    """A bare linear estimator (``weights`` and ``intercept``), as learners.explain reads one."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights, self.intercept = weights, 0.0


@pytest.mark.parametrize("seed", range(20))
def test_weight_changes_rank_as_before(seed: int) -> None:
    from learners.explain import weight_changes

    rng = random.Random(seed)
    names = [f"f{i}" for i in range(rng.randint(0, 30))]
    # Ties on purpose (equal and opposite moves, unchanged features), features on one side only.
    wa = {f: rng.choice([0.0, 1.0, -1.0, rng.gauss(0, 1)]) for f in names if rng.random() < 0.9}
    wb = {f: rng.choice([wa.get(f, 0.0), 2.0, 0.0, rng.gauss(0, 1)]) for f in names if rng.random() < 0.9}
    top = rng.choice([0, 3, 10, 50, -1])
    got = weight_changes(_Linear(wa), _Linear(wb), top)
    assert got["top"] == _old_weight_changes(wa, wb, top)
    assert got["n_features"] == len(set(wa) | set(wb))


def test_a_replayed_trainer_writes_a_chain_and_releases_that_verify() -> None:
    """Releases published by a trainer (the fast paths on): every audit entry verifies with the head note, each
    release's audit record is its JSON round trip, and each ModelRelease verifies; a tampered one is refused."""
    from bench.data import make_rows, served_answers, training_value
    from connectors.batch_source import RawRecord
    from driftline.errors import SecurityError
    from driftline.settings import load_settings
    from learners.artifacts import verify_release
    from schemas.codec import default_codec
    from streams import audit as audit_mod
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    produced: list[tuple[str, bytes]] = []

    class Capture:
        def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
            produced.append((topic, value))

    s = load_settings(
        environ={},
        overrides={
            "model.learner": {"name": "logistic_regression", "params": {}},
            "model.signing_key": "k" * 64,
            "state_dir": tempfile.mkdtemp(prefix="audit-fast-path-"),
        },
    )
    n = 1500
    rows = make_rows(n, seed=3)
    codec = default_codec()
    topic = s.topic("training")
    values = codec.encode_many(
        "TrainingExample",
        [training_value(r, s.model.name, 0, a) for r, a in zip(rows, served_answers(s, rows), strict=True)],
        topic=topic,
    )
    raws = [RawRecord(topic, 0, i, s.model.name.encode(), v, 0) for i, v in enumerate(values)]
    pairs = list(zip(raws, codec.decode_many("TrainingExample", values, topic=topic), strict=True))
    ctx = WorkerContext(s, codec, producer=Capture(), audit_deferred=True)
    ctx._audit_logs[ctx.model] = alog = audit_mod.AuditLog(
        s, ctx.model, lambda d, m: None, topic_entries=lambda: [], deferred=True
    )
    trainer = Trainer(ctx, redis_conn=object())  # type: ignore[arg-type]
    trainer.publish(trainer.lifecycle.initial_release())
    for k in range(0, n, 250):
        trainer.process(pairs[k : k + 250])
        alog.commit()
    entries = audit_mod.read_file(alog.path)
    check = audit_mod.verify(
        entries, [trainer.key], model=ctx.model, head=audit_mod.read_head(alog.head_path)
    )
    assert check.ok, check.problems
    kinds = [e["kind"] for e in entries]
    assert kinds.count("release") >= 5 and "decision" in kinds
    for line in alog.path.read_text(encoding="utf-8").splitlines():
        entry = from_line(line)
        assert entry["record"] == json.loads(json.dumps(entry["record"]))
        assert line == to_line(entry)  # the line is exactly what to_line writes of the parsed entry
    encoded = [v for t, v in produced if t == s.topic("models")]
    releases = [codec.decode("ModelRelease", v) for v in encoded]
    assert len(releases) == kinds.count("release")
    # Encoded directly (complete=True): the bytes the validating encoder writes.
    assert encoded == [codec.encode("ModelRelease", r, topic="models") for r in releases]
    for release in releases:
        verify_release(release, key=trainer.key)
    tampered = dict(releases[-1])
    tampered["artifact"] = bytes(tampered["artifact"][:-1]) + bytes([tampered["artifact"][-1] ^ 1])
    with pytest.raises(SecurityError):
        verify_release(tampered, key=trainer.key)
    forged = dict(releases[-1], metrics={**releases[-1]["metrics"], "accuracy": 1.0})
    with pytest.raises(SecurityError):
        verify_release(forged, key=trainer.key)
