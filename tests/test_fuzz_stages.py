"""Property/fuzz tests over the stages' batch handling, in process with a fake producer (no broker): whatever a
batch holds, every valid record is processed once, every bad one is dead-lettered once with a reason, nothing
raises, and a poison record that makes a whole batch fail is isolated (one record at a time) instead of retried.

The live-stack counterpart is tests/test_badinput_poison.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.batches
from connectors.producer import DeliveryError
from connectors.redis_store import LabelLookup
from driftline.errors import ConfigError, StackError
from driftline.settings import load_settings
from schemas.codec import default_codec
from streams.batches import handle_batch_blocking, one_by_one, transient
from streams.join import Joiner
from streams.metrics import build_metrics
from streams.runtime import RawRecord, WorkerContext
from streams.score import Scorer
from tests.corpus import for_record, valid_after_poison

CODEC = default_codec()
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def _short_retry_waits() -> Iterator[None]:
    """A transient failure's first wait before a retry 1 ms, not 0.2 s: what these tests check is which records are
    retried, learned or dead-lettered, never how long the back-off waits (100 examples of up to two transient
    failures each waited ~20 s, tspeed43). Module-scoped: Hypothesis refuses function-scoped fixtures."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(streams.batches, "RETRY_FIRST_S", 0.001)
        yield


class FakeProducer:
    """What a stage uses of EventProducer, recording (topic, bytes, key)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Any]] = []

    def produce_bytes(self, topic: str, data: bytes, key: Any = None) -> None:
        self.sent.append((topic, data, key))

    def produce_many(self, topic: str, records: list[tuple[bytes, Any]]) -> list[None]:
        self.sent.extend((topic, data, key) for data, key in records)
        return [None] * len(records)

    @contextmanager
    def tracking(self) -> Iterator[Any]:
        yield SimpleNamespace(pending=0, done=True, failed=0)

    def wait(self, deliveries: Any, timeout: float = 0, *, linger: bool = False) -> None:
        return None

    def flush(self, timeout: float = 0) -> None:
        return None

    def close(self, timeout: float = 0) -> None:
        return None

    def on(self, topic: str) -> list[dict[str, Any]]:
        record = {"predictions": "Prediction", "deadletter": "DeadLetter", "training": "TrainingExample"}[
            topic
        ]
        return [CODEC.decode(record, data) for t, data, _ in self.sent if t.endswith("." + topic)]


def _ctx() -> WorkerContext:
    settings_ = load_settings(environ={}, overrides={"kafka.topic_prefix": "fuzz."})
    return WorkerContext(settings_, CODEC, build_metrics(), FakeProducer())


def _raws(topic: str, values: list[bytes]) -> list[RawRecord]:
    return [RawRecord(f"fuzz.{topic}", 0, offset, b"k", value) for offset, value in enumerate(values)]


def _feature(i: int, value: Any) -> dict[str, Any]:
    return {"id": f"ok-{i}", "ts": 1, "key": None, "features": {"x": value, "y": 1.0}}


_good_features = st.tuples(
    st.integers(0, 10**6),
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5), st.booleans(), st.none()
    ),
    st.booleans(),
).map(lambda t: (CODEC.encode if t[2] else CODEC.encode_json)("FeatureEvent", _feature(t[0], t[1])))
_bad_features = st.one_of(
    st.binary(max_size=100), st.sampled_from(sorted(for_record("FeatureEvent").values()))
).filter(lambda b: not _valid("FeatureEvent", b))


def _valid(record: str, data: bytes) -> bool:
    return isinstance(CODEC.decode_many(record, [data], allow_json=True)[0], dict)


class _NoModel:
    first_loaded = threading.Event()

    def take(self) -> None:
        return None


@FUZZ
@given(batch=st.lists(st.one_of(_good_features, _bad_features), max_size=25))
def test_scorer_batch_outputs_one_prediction_or_one_dead_letter_per_record(batch: list[bytes]) -> None:
    batch = batch + valid_after_poison("FeatureEvent")
    ctx = _ctx()
    scorer = Scorer(ctx, _NoModel(), store=None)  # type: ignore[arg-type]
    scored = scorer.process(_raws("features", batch))
    good = [b for b in batch if _valid("FeatureEvent", b)]
    producer: FakeProducer = ctx.out  # type: ignore[assignment]
    assert len(producer.on("predictions")) == len(good) == len(scored.contexts)
    dead = producer.on("deadletter")
    assert len(dead) == len(batch) - len(good)
    assert all(d["error"] and d["source_topic"] == "fuzz.features" for d in dead)
    assert sorted(d["offset"] for d in dead) == [
        i for i, b in enumerate(batch) if not _valid("FeatureEvent", b)
    ]


class _ParkingStore:
    namespace = "fuzz"

    def lookup_labels(
        self, items: list[tuple[str, bytes]], now_ms: int, tokens: list[str] | None = None
    ) -> list[LabelLookup]:
        return [LabelLookup(id_, "parked", None) for id_, _ in items]


_good_labels = st.tuples(
    st.integers(0, 10**6), st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=4))
).map(lambda t: CODEC.encode_json("Label", {"id": f"l{t[0]}", "ts": 1, "label": t[1]}))
_bad_labels = st.one_of(
    st.binary(max_size=100), st.sampled_from(sorted(for_record("Label").values()))
).filter(lambda b: not _valid("Label", b))


@FUZZ
@given(batch=st.lists(st.one_of(_good_labels, _bad_labels), max_size=25))
def test_joiner_batch_dead_letters_exactly_the_bad_labels(batch: list[bytes]) -> None:
    ctx = _ctx()
    joined = Joiner(ctx, _ParkingStore()).process(_raws("labels", batch))  # type: ignore[arg-type]
    assert joined == []  # every good label parked (its prediction is not there yet)
    producer: FakeProducer = ctx.out  # type: ignore[assignment]
    assert len(producer.on("deadletter")) == sum(not _valid("Label", b) for b in batch)


# -- the poison fallback: a batch that fails as a whole ---------------------------------------------------------


class _Stage:
    """A stage whose whole batch fails (RecursionError, as a deeply nested record did) if it holds a poison
    record, and whose infrastructure fails transiently ``flaky`` times first."""

    def __init__(self, flaky: int) -> None:
        self.done: list[int] = []
        self.flaky = flaky
        self.calls = 0

    def __call__(self, raws: list[RawRecord]) -> None:
        self.calls += 1
        if self.flaky:
            self.flaky -= 1
            raise DeliveryError("1 record(s) were not delivered; first error: broker down")
        if any(r.value == b"poison" for r in raws):
            raise RecursionError("maximum recursion depth exceeded")
        self.done.extend(r.offset for r in raws)


_batches = st.lists(st.sampled_from([b"ok", b"poison"]), min_size=1, max_size=30)


@FUZZ
@given(values=_batches, flaky=st.integers(0, 2))
def test_blocking_retry_isolates_poison_records(values: list[bytes], flaky: int) -> None:
    ctx, stage, stopping = _ctx(), _Stage(flaky), threading.Event()
    raws = _raws("features", values)
    ok = handle_batch_blocking(
        "score", ctx, lambda: stage(raws), stopping, lambda: one_by_one("score", ctx, raws, stage, stopping)
    )
    assert ok
    good = [i for i, v in enumerate(values) if v == b"ok"]
    assert sorted(set(stage.done)) == good
    dead = ctx.out.on("deadletter")  # type: ignore[attr-defined]
    assert sorted(d["offset"] for d in dead) == [i for i, v in enumerate(values) if v == b"poison"]
    assert all("RecursionError" in d["error"] for d in dead)
    assert stage.calls <= flaky + 1 + len(values) + 1  # never retried forever


def test_transient_errors_are_the_infrastructure_ones() -> None:
    import redis
    from confluent_kafka import KafkaError, KafkaException

    assert transient(DeliveryError("x"))
    assert transient(KafkaException(KafkaError(KafkaError._TRANSPORT)))
    assert transient(redis.ConnectionError("down")) and transient(redis.TimeoutError("slow"))
    assert transient(redis.ResponseError("LOADING Redis is loading the dataset in memory"))
    # What redis-py raises when maxmemory is reached (the "OOM" code becomes the class), also inside a script.
    assert transient(redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."))
    assert transient(redis.exceptions.ReadOnlyError("You can't write against a read only replica."))
    assert transient(OSError(28, "No space left on device"))
    assert transient(StackError("cannot reach Redis at redis://127.0.0.1:6379/0"))
    try:  # a record-looking error raised from a connection failure is the connection failure
        try:
            raise redis.ConnectionError("Connection refused")
        except redis.ConnectionError as cause:
            raise ValueError("lookup failed") from cause
    except ValueError as wrapped:
        assert transient(wrapped)
    for poison in (RecursionError(), MemoryError(), OverflowError(), UnicodeDecodeError("utf-8", b"", 0, 1, "x"),
                   ValueError("bad"), KeyError("k"), TypeError("t"), redis.ResponseError("WRONGTYPE")):  # fmt: skip
        assert not transient(poison), poison


def test_a_transient_failure_is_retried_not_dead_lettered() -> None:
    ctx, stage, stopping = _ctx(), _Stage(3), threading.Event()
    raws = _raws("features", [b"ok", b"ok"])
    assert handle_batch_blocking(
        "score", ctx, lambda: stage(raws), stopping, lambda: one_by_one("score", ctx, raws, stage, stopping)
    )
    assert stage.done == [0, 1] and stage.calls == 4
    assert ctx.out.on("deadletter") == []  # type: ignore[attr-defined]


def test_stopping_during_a_transient_outage_leaves_the_batch_unacknowledged() -> None:
    ctx, stage, stopping = _ctx(), _Stage(10**9), threading.Event()
    stopping.set()
    raws = _raws("features", [b"ok"])
    assert not handle_batch_blocking("score", ctx, lambda: stage(raws), stopping)
    assert stage.done == []


def test_max_record_bytes_setting_bounds_every_input_record() -> None:
    settings_ = load_settings(environ={"DRIFTLINE__SERVING__MAX_RECORD_BYTES": "200000"})
    ctx = WorkerContext(settings_, CODEC, build_metrics(), FakeProducer())
    big = CODEC.encode_json("FeatureEvent", {"id": "big", "ts": 1, "features": {"blob": "a" * 250_000}})
    scorer = Scorer(ctx, _NoModel(), store=None)  # type: ignore[arg-type]
    scorer.process(_raws("features", [big]))
    (dead,) = ctx.out.on("deadletter")  # type: ignore[attr-defined]
    assert "exceeds the limit of 200000 bytes" in dead["error"]
    with pytest.raises(ConfigError, match=r"serving\.max_record_bytes: must be at least 131072"):
        load_settings(environ={"DRIFTLINE__SERVING__MAX_RECORD_BYTES": "1000"})
