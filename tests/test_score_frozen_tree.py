"""The scorer's batch path for a Hoeffding tree (``batch_predictor``: each leaf's naive Bayes terms read once) gives
exactly the learner's own answers, on numeric, categorical, missing and hostile features, binary and multi-class."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners.batch import batch_predictor
from learners.specs import build_learner


def _rows(n: int, seed: int, classes: int, nominal: bool) -> list[tuple[dict[str, Any], Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x: dict[str, Any] = {f"f{j}": rng.gauss(0, 1) for j in range(5)}
        if nominal and i % 7 == 0:
            x["colour"] = rng.choice(["red", "green", "blue"])  # a nominal feature: not a Gaussian splitter
        if i % 11 == 0:
            x["f1"] = None
        score = x["f0"] + 0.5 * x["f2"] - (0.8 if i > n // 2 else -0.8) * x["f3"]  # a drift halfway
        label = int(min(classes - 1, max(0, (score + 2) * classes / 4))) if classes > 2 else score > 0
        out.append((x, label))
    return out


@pytest.mark.parametrize(
    ("classes", "seed", "nominal"), [(2, 1, False), (2, 5, True), (4, 2, False), (4, 3, True)]
)
def test_frozen_tree_batch_path_answers_as_the_learner(classes: int, seed: int, nominal: bool) -> None:
    rows = _rows(6000, seed, classes, nominal)
    learner = build_learner(LearnerSpec("hoeffding_tree"))
    for x, y in rows[:4000]:
        learner.learn_one(x, y)
    predictor = batch_predictor(learner)
    if (
        not nominal
    ):  # (with string features the learner completes one-hot indicators first: it answers itself)
        assert predictor.frozen_tree is not None, "the tree is not served by the frozen path"
    xs = [x for x, _ in rows[4000:]] + [
        {},
        {"f0": float("nan")},
        {"f0": "not a number"},
        {"f0": 1e308, "f9": True},
    ]
    got = []
    for i in range(0, len(xs), 500):
        got += predictor.predict_many(xs[i : i + 500])
    want = [learner.predict_with_proba(x) for x in xs]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert not isinstance(g, Exception), g
        assert g[0] == w[0]
        assert g[1].keys() == w[1].keys()
        assert all(abs(g[1][c] - w[1][c]) <= 1e-12 for c in w[1])


def test_a_tree_without_two_classes_is_answered_by_the_learner() -> None:
    learner = build_learner(LearnerSpec("hoeffding_tree"))
    learner.learn_one({"a": 1.0}, True)
    predictor = batch_predictor(learner)
    assert predictor.frozen_tree is None
    assert predictor.predict_many([{"a": 2.0}]) == [learner.predict_with_proba({"a": 2.0})]
