"""The guard's latency check measured once per model shape (``learners.guard.LatencyCache``, session 23): reused
only while a linear classifier's prediction is the same work, timed again when its shape changes, never kept when
it fails the budget, never for other kinds; and a replayed stream gets the same releases and decisions as when
every judgement is timed. All fail on the base (no ``LatencyCache``, no ``latency_shape``)."""

from __future__ import annotations

import itertools
import pickle
from typing import Any

import pytest

import learners.guard as guard
from bench.data import make_rows
from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.guard import LatencyCache, PairedEvidence, judge, latency_shape
from learners.lifecycle import Labelled, ModelLifecycle, Release
from learners.specs import build_learner


def _lr(rows: int, *, spec: LearnerSpec | None = None) -> Any:
    learner = build_learner(spec or LearnerSpec("logistic_regression"), "classification", 0)
    for _, x, y in make_rows(rows, seed=3):
        learner.learn_one(x, y)
    return learner


def _evidence() -> PairedEvidence:
    ev = PairedEvidence("classification")
    for i in range(200):
        ev.add(i % 2, i % 2, (i // 2) % 2)
    return ev


def _counted(monkeypatch: pytest.MonkeyPatch, ms: float = 0.01) -> list[int]:
    calls: list[int] = []

    def timed(model: Any, xs: Any) -> float:
        calls.append(len(list(xs)))
        return ms

    monkeypatch.setattr(guard, "_latency_ms", timed)
    return calls


def test_a_linear_model_of_the_same_shape_is_timed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counted(monkeypatch)
    cache = LatencyCache()
    learner = _lr(300)
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    first = judge("incremental", _evidence(), GuardConfig(), candidate=learner, sample=sample, latency=cache)
    # More labels over the same features: other weights, the same shape; newer events with as many features.
    more = make_rows(100, seed=5)
    for _, x, y in more:
        learner.learn_one(x, y)
    later = [x for _, x, _ in more[-20:]]
    again = judge("incremental", _evidence(), GuardConfig(), candidate=learner, sample=later, latency=cache)
    assert len(calls) == 1
    assert again.evidence["predict_latency_ms"] == first.evidence["predict_latency_ms"] == 0.01
    assert again.checks["latency"] is True and again.outcome == first.outcome
    # A copy (the served snapshot) has the same shape: the same work.
    judge("incremental", _evidence(), GuardConfig(), candidate=learner.copy(), sample=later, latency=cache)
    assert len(calls) == 1


def test_a_changed_shape_is_timed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counted(monkeypatch)
    cache = LatencyCache()
    learner = _lr(300)
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    shape = latency_shape(learner, sample[-guard.LATENCY_SAMPLE :])
    assert shape is not None
    cache.measure(learner, sample, 5.0)
    # A new feature learned: one more weight and scaler statistic.
    learner.learn_one({**sample[0], "new_feature": 1.5}, True)
    assert latency_shape(learner, sample[-guard.LATENCY_SAMPLE :]) != shape
    cache.measure(learner, sample, 5.0)
    # Events with more features: more work per prediction.
    wider = [{**x, "extra": 2.0} for x in sample]
    cache.measure(learner, wider, 5.0)
    assert len(calls) == 3
    # A third class: one-vs-rest, two members.
    learner.learn_one(sample[1], "third")
    assert latency_shape(learner, sample[-guard.LATENCY_SAMPLE :]) is not None
    cache.measure(learner, sample, 5.0)
    assert len(calls) == 4
    cache.measure(learner, sample, 5.0)
    assert len(calls) == 4


def test_a_measurement_over_the_budget_is_never_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counted(monkeypatch, ms=50.0)
    cache = LatencyCache()
    learner = _lr(300)
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    for _ in range(3):
        d = judge("incremental", _evidence(), GuardConfig(), candidate=learner, sample=sample, latency=cache)
        assert d.outcome == "reject" and d.checks["latency"] == "50.000 ms per prediction > budget 5.0 ms"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "spec",
    [
        LearnerSpec("hoeffding_tree"),
        LearnerSpec("gaussian_nb"),
        LearnerSpec("logistic_regression", {"degree": 2}),
        LearnerSpec("logistic_regression", {"multiclass": "softmax"}),
    ],
)
def test_other_kinds_are_timed_at_every_judgement(spec: LearnerSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counted(monkeypatch)
    cache = LatencyCache()
    learner = _lr(300, spec=spec)
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    assert latency_shape(learner, sample) is None
    for _ in range(3):
        cache.measure(learner, sample, 5.0)
    assert len(calls) == 3


def test_the_cache_is_pickled_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counted(monkeypatch)
    cache = LatencyCache()
    learner = _lr(300)
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    cache.measure(learner, sample, 5.0)
    restored = pickle.loads(pickle.dumps(cache))
    restored.measure(learner, sample, 5.0)
    assert len(calls) == 2  # a restored trainer (maybe another machine) measures again


def _replay(n: int, batch: int) -> list[Any]:
    lc = ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("logistic_regression"),
        None,
        DriftConfig(),
        GuardConfig(),
    )
    out: list[Any] = [lc.initial_release().version]
    rows = make_rows(n, seed=7)
    examples = [Labelled(x, y, None, None, None, i, i) for i, (_, x, y) in enumerate(rows)]
    for k in range(0, n, batch):
        for events in lc.learn_batch(examples[k : k + batch]):
            assert not isinstance(events, Exception)
            for e in events:
                if isinstance(e, Release):
                    decision = e.decision.to_json() if e.decision else ""
                    out.append((e.version, e.parent, e.reason, e.index, sorted(e.metrics.items()), decision))
                else:
                    out.append(repr(e))
    return out


def test_a_replayed_stream_gets_the_same_releases_and_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every judgement timed (the shape unknown, as before session 23) against the cache, with a clock that
    answers the same for every call: the same releases, metrics and decisions, and far fewer timings."""
    calls = _counted(monkeypatch)
    cached = _replay(4000, 900)
    with_cache = len(calls)
    monkeypatch.setattr(guard, "latency_shape", lambda model, xs: None)
    timed = _replay(4000, 900)
    every = len(calls) - with_cache
    assert cached == timed
    assert sum(1 for e in cached if isinstance(e, tuple) and e[2] == "incremental") > 50
    assert every > 50 and with_cache < every / 5


def test_a_slow_first_timing_of_a_shape_still_vetoes_only_that_judgement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A preempted measurement (over the budget) vetoes its judgement and is not remembered: the next judgement
    of the same shape is timed again and passes, as when every judgement was timed."""
    answers = itertools.chain([50.0], itertools.repeat(0.01))
    calls: list[float] = []

    def timed(model: Any, xs: Any) -> float:
        calls.append(ms := next(answers))
        return ms

    monkeypatch.setattr(guard, "_latency_ms", timed)
    cache = LatencyCache()
    learner = _lr(300)
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    outcomes = [
        judge(
            "incremental", _evidence(), GuardConfig(), candidate=learner, sample=sample, latency=cache
        ).outcome
        for _ in range(3)
    ]
    assert outcomes == ["reject", "promote", "promote"] and calls == [50.0, 0.01]
