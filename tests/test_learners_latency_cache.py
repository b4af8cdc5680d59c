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


def _tree(rows: int, seed: int = 3) -> Any:
    learner = build_learner(LearnerSpec("hoeffding_tree"), "classification", 0)
    for _, x, y in make_rows(rows, seed=seed):
        learner.learn_one(x, y)
    return learner


def test_a_tree_of_the_same_shape_is_timed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Session 34: a Hoeffding tree whose sampled events reach leaves of the same depth, kind, answer (majority
    class or naive Bayes), splitters and classes does the same work: timed once, as a linear model is."""
    calls = _counted(monkeypatch)
    cache = LatencyCache()
    learner = _tree(300)
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    shape = latency_shape(learner, sample[-guard.LATENCY_SAMPLE :])
    assert shape is not None
    first = judge("incremental", _evidence(), GuardConfig(), candidate=learner, sample=sample, latency=cache)
    learner.learn_one(sample[0], True)  # another label: other counts, the same paths and leaves
    assert latency_shape(learner, sample[-guard.LATENCY_SAMPLE :]) == shape
    again = judge("incremental", _evidence(), GuardConfig(), candidate=learner, sample=sample, latency=cache)
    assert len(calls) == 1
    assert again.evidence["predict_latency_ms"] == first.evidence["predict_latency_ms"] == 0.01
    judge("incremental", _evidence(), GuardConfig(), candidate=learner.copy(), sample=sample, latency=cache)
    assert len(calls) == 1


def _leaf_of(learner: Any, x: dict[str, Any]) -> Any:
    from learners.features import clean_features

    return learner.model._root.traverse(clean_features(x), until_leaf=True)


def test_a_tree_that_changed_where_its_events_go_is_timed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A split (deeper paths, new leaves), a leaf that now answers by naive Bayes instead of the majority class,
    a third class, or events with more features: each is other work, timed again."""
    calls = _counted(monkeypatch)
    cache = LatencyCache()
    sample = [x for _, x, _ in make_rows(20, seed=4)]
    xs = sample[-guard.LATENCY_SAMPLE :]
    young = _tree(150)
    shape = latency_shape(young, xs)
    grown = _tree(6000, seed=11)
    assert grown.model.n_nodes > young.model.n_nodes  # the bench's rows split the tree by then
    assert latency_shape(grown, xs) != shape
    cache.measure(young, sample, 5.0)
    cache.measure(grown, sample, 5.0)
    assert len(calls) == 2
    # The same leaf switching between majority class and naive Bayes (River's adaptive rule) is another shape.
    from learners.frozen_tree import _answers_naive

    leaf = _leaf_of(grown, xs[-1])
    leaf._nb_correct_weight, leaf._mc_correct_weight = 5.0, 1.0
    assert _answers_naive(leaf, grown.model)
    naive = latency_shape(grown, xs)
    leaf._nb_correct_weight, leaf._mc_correct_weight = 1.0, 5.0
    assert not _answers_naive(leaf, grown.model)
    after = latency_shape(grown, xs)
    assert naive != after
    wider = [{**x, "extra": 2.0} for x in sample]
    assert latency_shape(grown, wider[-guard.LATENCY_SAMPLE :]) != latency_shape(grown, xs)
    grown.learn_one(sample[1], "third")
    assert latency_shape(grown, xs) != after


def test_a_tree_with_string_features_is_timed_at_every_judgement(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counted(monkeypatch)
    cache = LatencyCache()
    learner = build_learner(LearnerSpec("hoeffding_tree"), "classification", 0)
    rows = [
        ({**x, "colour": "red" if i % 2 else "blue"}, y) for i, (_, x, y) in enumerate(make_rows(200, seed=3))
    ]
    for x, y in rows:
        learner.learn_one(x, y)
    sample = [x for x, _ in rows[-20:]]
    assert latency_shape(learner, sample) is None
    for _ in range(3):
        cache.measure(learner, sample, 5.0)
    assert len(calls) == 3


def _replay(n: int, batch: int, spec: LearnerSpec | None = None) -> list[Any]:
    lc = ModelLifecycle(
        "m",
        "classification",
        spec or LearnerSpec("logistic_regression"),
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


def test_a_replayed_tree_stream_gets_the_same_releases_and_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Session 34: the same for a Hoeffding tree (every judgement timed against the cache, a constant clock)."""
    calls = _counted(monkeypatch)
    cached = _replay(4000, 900, LearnerSpec("hoeffding_tree"))
    with_cache = len(calls)
    monkeypatch.setattr(guard, "latency_shape", lambda model, xs: None)
    timed = _replay(4000, 900, LearnerSpec("hoeffding_tree"))
    every = len(calls) - with_cache
    assert cached == timed
    assert sum(1 for e in cached if isinstance(e, tuple) and e[2] == "incremental") > 20
    assert every > 20 and with_cache < every / 3
