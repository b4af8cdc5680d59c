"""A categorical feature reaches the linear learners (issue 13): River's StandardScaler sees a one-hot feature only
when it is present (always 1.0, variance 0) and scaled it to 0.0, so LR learned nothing from strings."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners import safe_pickle
from learners.batch import batch_predictor
from learners.features import FeatureScaler
from learners.specs import build_learner


def _stream(n: int, seed: int) -> list[tuple[dict[str, Any], bool]]:
    """Only the string feature carries the label (5 % noise); the number is noise."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        color = rng.choice(["red", "green", "blue", "grey"])
        y = color in ("red", "blue")
        rows.append(({"color": color, "noise": rng.gauss(0.0, 1.0)}, y if rng.random() > 0.05 else not y))
    return rows


def _accuracy(spec: LearnerSpec, seed: int) -> float:
    model = build_learner(spec, "classification", seed)
    rows = _stream(3000, seed)
    for x, y in rows[:1500]:
        model.learn_one(x, y)
    return sum(model.predict_one(x) == y for x, y in rows[1500:]) / 1500


@pytest.mark.parametrize("spec", [LearnerSpec("logistic_regression"), LearnerSpec("logistic_regression",
                                  {"degree": 2}), LearnerSpec("auto")], ids=["lr", "quadratic", "auto"])  # fmt: skip
def test_only_a_categorical_feature_carries_the_signal_and_lr_learns_it(spec: LearnerSpec) -> None:
    # 95 % is the ceiling (5 % noise); a model blind to the colour is at ~50 %.
    assert _accuracy(spec, seed=3) > 0.9


def test_linear_regression_learns_a_categorical_target_shift() -> None:
    rng = random.Random(5)
    model = build_learner(LearnerSpec("linear_regression"), "regression", 5)
    shift = {"a": -10.0, "b": 0.0, "c": 10.0}
    errors = []
    for i in range(3000):
        k = rng.choice("abc")
        x, y = {"k": k, "z": rng.random()}, shift[k] + rng.gauss(0.0, 0.5)
        if i >= 2000:
            errors.append(abs(model.predict_one(x) - y))
        model.learn_one(x, y)
    assert sum(errors) / len(errors) < 2.0  # blind to k: ~6.7 (the mean absolute deviation of the shifts)


def test_indicators_pass_through_other_features_are_standardised() -> None:
    scaler = FeatureScaler()
    for x in ({"c=red": 1.0, "n": 2.0, "k": 3.0}, {"c=red": 1.0, "n": 4.0, "k": 3.0}):
        scaler.learn_one(x)
    out = scaler.transform_one({"c=red": 1.0, "n": 4.0, "k": 3.0, "never": 7.0})
    assert out == {"c=red": 1.0, "n": 1.0, "k": 0.0, "never": 0.0}


def test_batch_mirror_and_pickles_agree_on_categorical_features() -> None:
    model = build_learner(LearnerSpec("logistic_regression"), "classification", 1)
    for x, y in _stream(800, 1):
        model.learn_one(x, y)
    probe = [x for x, _ in _stream(200, 2)] + [{"color": "unseen", "noise": 0.3}, {"noise": 1.0}]
    predictor = batch_predictor(model)
    assert predictor.batched  # the numpy mirror, not the per-event fallback
    for x, got in zip(probe, predictor.predict_many(probe), strict=True):
        assert not isinstance(got, Exception)
        pred, proba = model.predict_with_proba(x)
        assert got[0] == pred
        assert got[1] == pytest.approx(proba, abs=1e-9)
    restored = safe_pickle.loads(safe_pickle.dumps(model))  # the restricted loader admits the scaler
    assert [restored.predict_one(x) for x in probe] == [model.predict_one(x) for x in probe]
