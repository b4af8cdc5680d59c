"""The trainer's per-label shortcuts for *learning* models give the learner's own answers at every step.

``learners.batch._Fast`` predicts a learning binary logistic regression (the ``FeatureScaler | LogisticRegression``
pipeline that ``learners.specs`` builds) without River's pipeline: the same arithmetic in the same order, so the
answer must equal ``Learner.predict_one`` exactly, before and after every label, with missing, boolean, string and
never-seen features, and through the switch to one-vs-rest at a third label (where the shortcut must step aside).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import LearnerSpec
from learners.batch import _Fast, _fast_binary_lr
from learners.features import clean_features
from learners.specs import build_learner

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

value = st.one_of(
    st.floats(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.integers(-(10**6), 10**6),
    st.sampled_from(["red", "green", "blue"]),
)
example = st.dictionaries(st.sampled_from(["a", "b", "c", "colour", "rare"]), value, max_size=5)
labels = st.sampled_from(["down", "up"])


def test_the_default_logistic_regression_gets_the_shortcut() -> None:
    model = build_learner(LearnerSpec("logistic_regression"))
    for i in range(4):
        model.learn_one({"a": float(i)}, "up" if i % 2 else "down")
    assert _fast_binary_lr(model) is not None
    assert _fast_binary_lr(build_learner(LearnerSpec("gaussian_nb"))) is None


@PROPS
@given(stream=st.lists(st.tuples(example, labels), min_size=1, max_size=120), seed=st.integers(0, 3))
def test_fast_champion_prediction_equals_predict_one_while_learning(
    stream: list[tuple[dict[str, Any], str]], seed: int
) -> None:
    rng = random.Random(seed)
    model = build_learner(LearnerSpec("logistic_regression", {"multiclass": "binary"}))
    fast = _Fast()
    for i, (x, y) in enumerate(stream):
        if i % 10 == 3:  # a stretch of a usual dense example, so the weights move
            x = {"a": rng.gauss(0, 1), "b": rng.gauss(1, 2), "colour": rng.choice(["red", "green"])}
        xc = clean_features(x)
        assert fast.predict(model, xc) == model.predict_one(xc, cleaned=True), (i, x)
        model.learn_one(xc, y, cleaned=True)


@pytest.mark.parametrize("third", [True, False])
def test_the_shortcut_steps_aside_when_the_model_changes_shape(third: bool) -> None:
    rng = random.Random(5)
    model = build_learner(LearnerSpec("logistic_regression"))  # multiclass: auto
    fast = _Fast()
    for i in range(300):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        y = "up" if x["a"] > x["b"] else "down"
        if third and i >= 150 and i % 4 == 0:
            y = "sideways"  # one-vs-rest from here: the shortcut must not answer for it
        assert fast.predict(model, x) == model.predict_one(x, cleaned=True), i
        model.learn_one(x, y, cleaned=True)
    assert (fast.fn is None) == third
