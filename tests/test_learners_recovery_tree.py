"""A regression challenger's Hoeffding tree splits a tie sooner than River's default (learners.pool.RECOVERY_TAU).

Why it matters: with River's tie threshold (tau 0.05, delta 1e-7) a leaf whose two best splits are about as good
waits ~3,200 labels; on mv-shift whether a fresh challenger's tree got past such a tie was a coin flip on the label
of the first alarm, and the stream's MAE with it (BENCHMARKS-accuracy.md, session 16).
"""

from __future__ import annotations

import random

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.lifecycle import ModelLifecycle
from learners.specs import Learner, build_learner


def _lifecycle(task: str, learner: LearnerSpec) -> ModelLifecycle:
    return ModelLifecycle("m", task, learner, None, DriftConfig(), GuardConfig())


def _tie(n: int, seed: int) -> list[tuple[dict[str, float], float]]:
    """y is a step in x1 plus the same step in x2: the two best splits have the same merit (a tie)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = {"x1": rng.random(), "x2": rng.random()}
        rows.append((x, 10.0 * (x["x1"] > 0.5) + 10.0 * (x["x2"] > 0.5) + rng.gauss(0, 1)))
    return rows


def _leaves(pool_learner: Learner) -> int:
    tree = pool_learner.model.members[1].model
    return int(tree.summary["n_leaves"])


@pytest.mark.parametrize("seed", [0, 1, 3])  # at 2 and 9 of 0..9 the default splits by chance
def test_regression_challenger_splits_a_tie_that_the_default_tree_keeps(seed: int) -> None:
    lc = _lifecycle("regression", LearnerSpec("auto"))
    lc._start_challenger(10)
    challenger = lc.challenger
    assert challenger is not None
    default = build_learner(LearnerSpec("auto"), "regression", 0)
    for x, y in _tie(1200, seed):
        challenger.learn_one(x, y)
        default.learn_one(x, y)
    assert _leaves(default) == 1  # River's default: the tie waits ~3,200 labels
    assert _leaves(challenger) > 1


def test_classification_and_chosen_members_build_the_challenger_as_given() -> None:
    lc = _lifecycle("classification", LearnerSpec("auto"))
    lc._start_challenger(10)
    assert lc.challenger is not None
    default = [m.spec for m in build_learner(LearnerSpec("auto"), "classification", 0).model.members]
    # The fresh members first, then the champion's warm copies (learners.pool.WARM_START): the same specs.
    assert [m.spec for m in lc.challenger.model.members] == default + default
    members = [{"name": "hoeffding_tree"}]
    lc = _lifecycle("regression", LearnerSpec("auto", {"members": members}))
    lc._start_challenger(10)
    assert lc.challenger is not None
    assert [m.spec for m in lc.challenger.model.members] == [LearnerSpec("hoeffding_tree")] * 2
    lc = _lifecycle("regression", LearnerSpec("hoeffding_tree"))
    lc._start_challenger(10)
    assert lc.challenger is not None and lc.challenger.spec == LearnerSpec("hoeffding_tree")
