"""learners.batch: the numpy mirror gives ``predict_with_proba``'s answers for whole batches.

Property: for logistic regression (binary, and after ``multiclass: auto`` turned it one-vs-rest) and the ``auto``
pool (whichever member leads), ``BatchPredictor.predict_many`` over a random batch equals ``predict_with_proba`` per
event within float tolerance, with random features: missing, None, NaN/inf, booleans, ints, huge values, strings
(seen and unseen categories) and features the model never saw.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import LearnerSpec
from learners.batch import batch_predictor
from learners.specs import build_learner

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["a", "b", "c", "d", "colour", "never_seen"]


def _train(
    kind: str, labels: tuple[Any, ...], n: int = 300, seed: int = 0, params: dict | None = None
) -> Any:
    rng = random.Random(seed)
    model = build_learner(LearnerSpec(kind, params or {}))
    for i in range(n):
        x: dict[str, Any] = {"a": rng.gauss(0, 1), "b": rng.gauss(2, 3), "c": float(i % 3)}
        x["colour"] = rng.choice(["red", "green"])
        if i % 7:
            x["d"] = rng.random() < 0.5  # a boolean, missing one time in seven
        score = x["a"] - 0.5 * x["b"] + (1.0 if x["colour"] == "red" else -1.0)
        y = labels[0] if score < 0 else labels[1]
        if len(labels) > 2 and i % 5 == 0:
            y = labels[2]
        model.learn_one(x, y)
    return model


value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-5, max_value=5),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.booleans(),
    st.none(),
    st.sampled_from(["red", "green", "blue"]),  # blue: an unseen category
)
features = st.dictionaries(st.sampled_from(NAMES), value, max_size=len(NAMES))
# Numbers only (the batch's matrix path, not the per-event cleaning): special values must be handled there too.
special = st.sampled_from([math.inf, -math.inf, math.nan, 1e300, -1e300, 0.0])
number = st.one_of(st.floats(-5, 5), special, st.integers(-(10**6), 10**6), st.booleans())
numeric = st.dictionaries(st.sampled_from(NAMES), number, max_size=len(NAMES))
# Batches mostly of one shape (the usual stream) with odd events mixed in.
batches = st.lists(
    st.one_of(features, numeric, st.fixed_dictionaries({n: number for n in NAMES[:4]})), max_size=40
)


def _assert_same(model: Any, batch: list[dict[str, Any]]) -> None:
    got = batch_predictor(model).predict_many(batch)
    assert len(got) == len(batch)
    for x, answer in zip(batch, got, strict=True):
        try:
            want = model.predict_with_proba(x)
        except Exception as exc:
            assert isinstance(answer, type(exc)), (x, answer)
            continue
        assert not isinstance(answer, Exception), (x, answer)
        pred, proba = answer
        assert set(proba) == set(want[1]), x
        for k, p in want[1].items():
            assert math.isclose(proba[k], p, rel_tol=1e-9, abs_tol=1e-12), (x, k, proba[k], p)
        if max(want[1].values()) - min(want[1].values()) > 1e-9:  # not a float-tolerance tie
            assert pred == want[0], (x, proba, want)


LR = _train("logistic_regression", (False, True))
LR_STR = _train("logistic_regression", ("down", "up"), seed=1)
LR_OVR = _train("logistic_regression", ("x", "y", "z"), seed=2)  # multiclass: auto went one-vs-rest
POOL = _train("auto", (0, 1), seed=3)
POOL_TREE = _train("auto", (0, 1), seed=4, params={"members": [{"name": "hoeffding_tree"}]})


def test_the_linear_models_take_the_batch_path() -> None:
    assert batch_predictor(LR).batched and batch_predictor(LR_STR).batched
    assert not batch_predictor(LR_OVR).batched  # served per event
    assert not batch_predictor(POOL_TREE).batched
    assert batch_predictor(POOL).batched == (POOL.model.leader == 0)  # the LR member leads, or per event


@pytest.mark.parametrize(
    "model", [LR, LR_STR, LR_OVR, POOL, POOL_TREE], ids=["lr", "lr-str", "ovr", "auto", "tree"]
)
@PROPS
@given(batch=batches)
def test_batch_equals_per_event(model: Any, batch: list[dict[str, Any]]) -> None:
    _assert_same(model, batch)


def test_auto_pool_with_its_lr_member_leading() -> None:
    """Force the leader both ways on the same trained pool: both give the per-event answers."""
    rng = random.Random(5)
    batch = [{n: rng.gauss(0, 2) for n in NAMES[:4]} | {"colour": "red"} for _ in range(200)]
    for leader in (0, 1):
        POOL.model.leader = leader
        assert batch_predictor(POOL).batched == (leader == 0)
        _assert_same(POOL, batch)


def test_untrained_and_single_class_models_are_served_per_event() -> None:
    fresh = build_learner(LearnerSpec("logistic_regression"))
    assert batch_predictor(fresh).predict_many([{"a": 1.0}]) == [(None, {})]
    fresh.learn_one({"a": 1.0}, "only")
    assert batch_predictor(fresh).predict_many([{"a": 1.0}]) == [("only", {"only": 1.0})]


def test_a_value_too_large_for_a_float_is_the_learners_call() -> None:
    """An int too large for a float: the learner answers with its label frequencies (OverflowError is an
    ArithmeticError), only for that event; the batch path gives the same."""
    batch = [{"a": 1.0, "b": 2.0}, {"a": 10**400, "b": 1.0}, {"a": -1.0, "b": 0.5}]
    got = batch_predictor(LR).predict_many(batch)
    n = sum(LR._counts.values())
    assert got[1] == (
        LR._classes[0] if LR._counts[LR._classes[0]] >= LR._counts[LR._classes[1]] else LR._classes[1],
        {c: k / n for c, k in LR._counts.items()},
    )
    assert not isinstance(got[0], Exception) and not isinstance(got[2], Exception)
    _assert_same(LR, batch)


def test_a_huge_value_saturates_like_river() -> None:
    """Values are clipped to 1e12 and River's sigmoid is exactly 0 or 1 beyond |logit| 30: the same here."""
    batch = [{"a": 1e300, "b": 0.0, "c": 0.0}, {"a": -1e300, "b": 0.0, "c": 0.0}]
    _assert_same(LR, batch)
    assert {p for _, proba in batch_predictor(LR).predict_many(batch) for p in proba.values()} <= {0.0, 1.0}


def _train_regressor(n: int, seed: int) -> Any:
    rng = random.Random(seed)
    model = build_learner(LearnerSpec("linear_regression"), task="regression")
    for i in range(n):
        x: dict[str, Any] = {"a": rng.gauss(0, 1), "b": rng.gauss(2, 3), "c": float(i % 3)}
        x["colour"] = rng.choice(["red", "green"])
        model.learn_one(x, 3 * x["a"] - x["b"] + (2.0 if x["colour"] == "red" else 0.0) + rng.gauss(0, 0.1))
    return model


REGRESSORS = [_train_regressor(n, seed) for n, seed in ((0, 0), (1, 1), (300, 2))]


@pytest.mark.parametrize("model", REGRESSORS, ids=["untrained", "one-label", "trained"])
@PROPS
@given(batch=batches)
def test_linear_regression_batch_equals_per_event(model: Any, batch: list[dict[str, Any]]) -> None:
    """The regression mirror: the learner's prediction (clipped to the observed range, the running mean for a
    non-finite output) within float tolerance, and ``{}`` probabilities."""
    predictor = batch_predictor(model)
    assert predictor.batched
    got = predictor.predict_many(batch)
    for x, answer in zip(batch, got, strict=True):
        want = model.predict_with_proba(x)
        assert not isinstance(answer, Exception), (x, answer)
        assert answer[1] == want[1] == {}
        assert math.isclose(answer[0], want[0], rel_tol=1e-9, abs_tol=1e-9), (x, answer, want)
