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
from tests.trainer_helpers import offline_trainer

TOPIC = "driftline.training"
KEY = "trainer-process-batch-signing-key-32-bytes!"


def _trainer() -> Any:
    from driftline.settings import load_settings

    s = load_settings(
        environ={},
        overrides={
            "model.signing_key": KEY,
            "state_dir": tempfile.mkdtemp(prefix="trainer-process-"),
            "model.learner": {"name": "logistic_regression", "params": {"multiclass": "binary"}},
        },
    )
    trainer = offline_trainer(s)
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


def _shifting_records(n: int, seed: int) -> list[tuple[RawRecord, dict[str, Any]]]:
    """Records whose inputs change under the watch: a feature turning into text, booleans, ints and missing
    values, names appearing late, new label classes after the warm-up; from two partitions interleaved."""
    rng = random.Random(seed)
    out: list[tuple[RawRecord, dict[str, Any]]] = []
    offsets = [0, 0]
    for i in range(n):
        x: dict[str, Any] = {f"f{k}": rng.gauss(0.0, 1.0) for k in range(4)}
        if i > 300:
            x["late"] = rng.random()  # a name first seen after the start
        if rng.random() < 0.05:
            x["f2"] = None  # missing: never a type change
        if rng.random() < 0.03:
            x["f3"] = rng.randrange(5)  # an int: still a number
        if 500 < i < 520 or rng.random() < 0.01:
            x["f1"] = "sunny"  # text where numbers came: a warning each time it changes
        if rng.random() < 0.01:
            x["f0"] = True  # a boolean
        y: Any = x["f0"] is True or (isinstance(x["f0"], float) and x["f0"] > 0)
        if rng.random() < 0.01:
            y = rng.choice(["third", "fourth", 7])  # new classes, refused by the binary model
        part = rng.randrange(2)
        example = {"id": f"e{i}", "model": "default", "features": x, "label": y, "event_ts": 1_000 * i}
        out.append((RawRecord(TOPIC, part, offsets[part], b"default", b"", 1_000 * i), example))
        offsets[part] += 1
        if i > 10 and rng.random() < 0.02:
            out.extend(out[-1 - rng.randrange(1, 6) : -1])  # a replay of records already handled
    return out


def _published(trainer: Any, topic_end: str) -> list[dict[str, Any]]:
    from schemas.codec import default_codec

    codec = default_codec()
    out = []
    for topic, value, _ in trainer.ctx.out.sent:
        if topic.endswith(topic_end):
            record = codec.decode("DriftEvent", value)
            record.pop("ts", None)
            out.append(record)
    return out


def _audited(trainer: Any) -> list[tuple[str, str]]:
    """The audit entries appended (kind and record; the clock's fields dropped)."""
    import json

    alog = trainer.ctx._audit_logs[trainer.ctx.model]
    return [(e["kind"], json.dumps(e["record"], sort_keys=True)) for e in alog.appended]


def test_process_matches_the_per_record_path_when_inputs_change() -> None:
    """The batch path's input watch (``InputWatch.check_many``), partition switches and the per-label loop.

    Against the same batches with the watch checking one example at a time (``InputWatch.check``, as before
    ``check_many``): the same warnings (drift events), audit entries and watch state. Against the per-record
    path: the same releases, offsets, recent ids, index and model. (A warning's drift event names the version
    served when it is emitted, before its batch is learned, so the per-record path's can differ there.)"""
    records = _shifting_records(1500, seed=11)
    batched, released_b = _trainer()
    one_by_one, released_o = _trainer()
    plain, released_p = _trainer()
    watch = one_by_one.watch
    one_by_one.watch.check_many = lambda examples, index: [
        w for k, (x, y) in enumerate(examples) for w in watch.check(x, y, index + k)
    ]
    for trainer in (batched, one_by_one):
        alog = trainer.ctx._audit_logs[trainer.ctx.model]
        alog.appended = []
        append = alog.append
        alog.append = lambda kind, record, ts=None, _a=append, _l=alog.appended, **texts: (
            _l.append({"kind": kind, "record": _strip_clock(record)}) or _a(kind, record, ts=ts, **texts)
        )
    rng = random.Random(7)
    k = 0
    while k < len(records):
        size = rng.randrange(1, 300)
        batched.process(records[k : k + size])
        one_by_one.process(records[k : k + size])
        k += size
    _per_record(plain, records)
    drift = _published(batched, "drift")
    assert drift == _published(one_by_one, "drift")
    assert {d["signal"] for d in drift} >= {"feature_type:f1", "feature_type:f0", "label:new_class"}
    assert [(d["signal"], d["index"]) for d in drift] == [
        (d["signal"], d["index"]) for d in _published(plain, "drift")
    ]
    assert _audited(batched) == _audited(one_by_one) and len(_audited(batched)) > 6
    del one_by_one.watch.check_many
    assert pickle.dumps(batched.watch) == pickle.dumps(one_by_one.watch) == pickle.dumps(plain.watch)
    assert released_b == released_o == released_p and len(released_b) > 3
    assert batched.offsets == plain.offsets and set(batched.offsets) == {f"{TOPIC}:0", f"{TOPIC}:1"}
    assert batched.index == plain.index and batched.lifecycle.n_learned == plain.lifecycle.n_learned
    assert pickle.dumps(batched.seen) == pickle.dumps(plain.seen)
    assert pickle.dumps(batched.lifecycle.champion.model) == pickle.dumps(plain.lifecycle.champion.model)


def _strip_clock(record: Any) -> Any:
    """A record without the wall clock's fields (``created_at``, ``at``, ``ts``, latencies), recursively."""
    if isinstance(record, dict):
        return {
            k: _strip_clock(v)
            for k, v in record.items()
            if k not in ("created_at", "at", "ts", "decided_at")
            and "latency" not in k
            and not k.endswith("_ms")
        }
    if isinstance(record, list | tuple):
        return [_strip_clock(v) for v in record]
    return record
