"""The frozen Hoeffding tree shortcut (learners/frozen_tree.py) answers exactly as the learner does."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import LearnerSpec
from learners.features import clean_features
from learners.frozen_tree import frozen_tree_predictor
from learners.specs import build_learner


def _trained(seed: int, n: int, n_classes: int, params: dict) -> tuple:
    rng = random.Random(seed)
    learner = build_learner(LearnerSpec("hoeffding_tree", params))
    w = [rng.uniform(-1, 1) for _ in range(4)]
    for _ in range(n):
        x = {f"f{j}": rng.gauss(0, 1) for j in range(4) if rng.random() > 0.1}  # some features missing
        score = sum(w[j] * x.get(f"f{j}", 0.0) for j in range(4))
        y = min(int((score + 2) * n_classes / 4), n_classes - 1) if n_classes > 2 else score > 0
        learner.learn_one(x, max(y, 0) if n_classes > 2 else y)
    return learner, rng


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.sampled_from([0, 1, 5, 40, 400, 1500]),
    n_classes=st.sampled_from([2, 3]),
    params=st.sampled_from([{}, {"leaf_prediction": "nb"}, {"leaf_prediction": "mc"}, {"grace_period": 50}]),
)
def test_frozen_tree_matches_predict_with_proba(seed: int, n: int, n_classes: int, params: dict) -> None:
    learner, rng = _trained(seed, n, n_classes, params)
    fast = frozen_tree_predictor(learner)
    if len(learner._classes) < 2:
        assert fast is None  # the learner answers {} or its single class without the tree
        return
    assert fast is not None
    for _ in range(50):
        x = clean_features({f"f{j}": rng.gauss(0, 2) for j in range(5) if rng.random() > 0.2})
        want, got = learner.predict_with_proba(x, cleaned=True), fast(x)
        assert got[0] == want[0]
        assert got[1] == want[1]  # the same arithmetic in the same order: equal, not just close


def test_other_learners_get_no_shortcut() -> None:
    lr = build_learner(LearnerSpec("logistic_regression"))
    for i in range(10):
        lr.learn_one({"a": float(i)}, i % 2 == 0)
    assert frozen_tree_predictor(lr) is None
    reg = build_learner(LearnerSpec("hoeffding_tree"), task="regression")
    reg.learn_one({"a": 1.0}, 1.0)
    assert frozen_tree_predictor(reg) is None
