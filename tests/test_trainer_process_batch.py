"""``Trainer.process`` (a batch: offsets, duplicate ids, one digest per id, ``learn_batch``) against the plain
per-record path (the offset and duplicate checks, then ``Trainer.learn`` per record) on the same replayed records:
the same releases at the same labels, the same learned count, index, offsets and recent ids.

The records repeat ids within a batch and across batches, replay offsets already handled (a re-read after an
abort) and include labels a binary model refuses (dead-lettered), in batches of random sizes.
"""

from __future__ import annotations

import pickle
import random
import tempfile
from typing import Any

import pytest

from connectors.batch_source import RawRecord
from learners.lifecycle import Labelled

TOPIC = "driftline.training"
KEY = "trainer-process-batch-signing-key-32-bytes!"


class _Captured:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Any]] = []

    def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
        self.sent.append((topic, value, key))


class _NoStatus:
    def hget(self, key: str, field: str) -> None:
        return None


def _trainer() -> Any:
    from driftline.settings import load_settings
    from streams.audit import AuditLog
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    s = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            "state_dir": tempfile.mkdtemp(prefix="trainer-process-"),
            "model.learner": {"name": "logistic_regression", "params": {"multiclass": "binary"}},
        },
    )
    ctx = WorkerContext(s, producer=_Captured(), audit_deferred=True, audit_source=dict)  # type: ignore[arg-type]
    # The audit chain without its topic (no broker here): entries are built, signed and dropped.
    ctx._audit_logs[ctx.model] = AuditLog(
        s, ctx.model, lambda data, model: None, topic_entries=list, deferred=True
    )
    trainer = Trainer(ctx, redis_conn=_NoStatus())  # type: ignore[arg-type]
    trainer.start(None, 0)
    released: list[tuple[int, str, int | None]] = []
    publish = trainer.publish
    trainer.publish = lambda r: (released.append((r.version, r.reason, r.index)), publish(r))[1]
    return trainer, released


def _records(n: int, seed: int, refused: float) -> list[tuple[RawRecord, dict[str, Any]]]:
    rng = random.Random(seed)
    out: list[tuple[RawRecord, dict[str, Any]]] = []
    for i in range(n):
        x = {f"f{k}": rng.gauss(0.0, 1.0) for k in range(4)}
        y: Any = x["f0"] + 0.3 * x["f1"] > 0
        if rng.random() < refused:
            y = "third"  # a binary model refuses it: dead-lettered
        event_id = f"e{i}"
        if i > 10 and rng.random() < 0.05:
            event_id = f"e{rng.randrange(max(0, i - 40), i)}"  # a duplicate join: within or across batches
        example = {"id": event_id, "model": "default", "features": x, "label": y, "event_ts": 1_000 * i}
        out.append((RawRecord(TOPIC, 0, i, b"default", b"", 1_000 * i), example))  # offset i
        if i > 10 and rng.random() < 0.02:
            back = rng.randrange(1, 6)  # a replay of records already handled (skipped by their offsets)
            out.extend(out[-1 - back : -1])
    return out


def _per_record(trainer: Any, records: list[tuple[RawRecord, dict[str, Any]]]) -> None:
    """The checks ``process`` makes, one record at a time, then ``Trainer.learn``."""
    for raw, example in records:
        where = f"{raw.topic}:{raw.partition}"
        if raw.offset <= trainer.offsets.get(where, -1):
            continue
        trainer.offsets[where] = raw.offset
        if example["id"] in trainer.seen:
            continue
        trainer.learn(raw, example)


@pytest.mark.parametrize("refused", [0.0, 0.01])
def test_process_matches_the_per_record_path(refused: float) -> None:
    records = _records(1500, seed=3, refused=refused)
    batched, released_b = _trainer()
    plain, released_p = _trainer()
    rng = random.Random(5)
    k = 0
    while k < len(records):
        size = rng.randrange(1, 200)
        batched.process(records[k : k + size])
        k += size
    _per_record(plain, records)
    # A refused record takes its index in both paths: the same releases at the same labels.
    assert released_b == released_p and len(released_b) > 3
    assert batched.index == plain.index
    assert (batched.index > batched.lifecycle.n_learned) == bool(refused)  # a refused record takes an index
    assert batched.lifecycle.n_learned == plain.lifecycle.n_learned > 1000
    assert batched.offsets == plain.offsets
    assert pickle.dumps(batched.seen) == pickle.dumps(plain.seen)
    dead = [t for t, _, _ in batched.ctx.out.sent if t.endswith("deadletter")]
    assert len(dead) == len([t for t, _, _ in plain.ctx.out.sent if t.endswith("deadletter")])
    assert bool(dead) == bool(refused)


def test_recent_ids_digest_api_matches_add_and_contains() -> None:
    from streams.train import RecentIds

    a, b = RecentIds(size=50), RecentIds(size=50)
    for i in range(120):
        a.add(f"id{i}")
        b.add_digest(RecentIds.digest(f"id{i}"))
    assert pickle.dumps(a) == pickle.dumps(b)
    assert b.has(RecentIds.digest("id119")) and "id119" in b
    assert not b.has(RecentIds.digest("id69")) and "id69" not in b and "id70" in b


def test_labelled_keeps_its_fields_and_keywords() -> None:
    e = Labelled({"a": 1.0}, True, served_version=3, index=7)
    assert (e.x, e.y, e.served_prediction, e.served_version, e.served_proba, e.index, e.ts) == (
        {"a": 1.0},
        True,
        None,
        3,
        None,
        7,
        None,
    )
