"""The ``auto`` pool under label delay: members are scored partly on what their served copies answered."""

from __future__ import annotations

import pickle
import random

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners import pool as pool_module
from learners.lifecycle import Labelled, ModelLifecycle
from learners.specs import build_learner


def _trend(n: int, seed: int = 0) -> list[tuple[dict[str, float], float]]:
    """A target following a slow random walk, with a growing time feature and a noise feature."""
    rng = random.Random(seed)
    level, rows = 40.0, []
    for t in range(n):
        level += rng.gauss(0, 0.5)
        rows.append(({"t": float(t), "noise": rng.gauss(0, 1)}, level))
    return rows


def test_a_member_whose_served_copy_answers_badly_loses_the_blend() -> None:
    """Two members, the served copy of the first answering 10 off and of the second exactly: after 300 labels the
    first's running loss holds SERVED_SHARE of those misses, and the lead goes to the second, which a pool scoring
    only its members' own answers (the linear one follows the walk better) leaves with the first."""
    model, twin = (
        build_learner(LearnerSpec("auto"), "regression"),
        build_learner(LearnerSpec("auto"), "regression"),
    )
    pool = model.model
    rows = _trend(600)
    for x, y in rows[:300]:
        model.learn_one(x, y)
        twin.learn_one(x, y)
    served = pickle.loads(pickle.dumps(pool))
    before = list(pool.losses)
    for x, y in rows[300:]:
        pool.score_served(served, x, y, lambda m, _x, y=y: y + 10.0 if m is served.members[0] else y)
        model.learn_one(x, y)
        twin.learn_one(x, y)
    assert twin.model.leader == 0 and twin.model.losses[0] < twin.model.losses[1]
    # each of the 300 labels added at least SERVED_SHARE * 10 to the first member's faded loss
    floor = sum(pool_module.SERVED_SHARE["regression"] * 10.0 * pool_module.FADE**k for k in range(300))
    assert pool.losses[0] >= floor + pool_module.FADE**300 * before[0] - 1e-6
    assert pool.losses[0] > pool.losses[1]
    assert pool.leader == 1


def test_served_losses_are_ignored_without_a_matching_snapshot_and_never_carried_over() -> None:
    """A served pool with other members leaves test-then-train scoring as it was; a score not consumed by the next
    learn does not leak into a later one."""
    a, b = build_learner(LearnerSpec("auto"), "regression"), build_learner(LearnerSpec("auto"), "regression")
    other = build_learner(LearnerSpec("auto", {"members": [{"name": "linear_regression"}]}), "regression")
    for x, y in _trend(200):
        a.model.score_served(other.model, x, y)
        a.learn_one(x, y)
        b.learn_one(x, y)
    assert a.model.losses == b.model.losses
    a.model.score_served(a.model, {"t": 1.0, "noise": 0.0}, float("nan"))  # not a target: nothing to score
    assert a.model._served_losses is None


def test_a_pool_pickled_before_served_scoring_loads_and_learns() -> None:
    """A checkpoint's pool has no ``_served_losses`` in its state: the class-level default covers it."""
    model = build_learner(LearnerSpec("auto"), "regression")
    for x, y in _trend(100):
        model.learn_one(x, y)
    model.model.__dict__.pop("_served_losses", None)
    restored = pickle.loads(pickle.dumps(model))
    restored.learn_one({"t": 101.0, "noise": 0.0}, 41.0)
    assert restored.model.weight > model.model.weight


def _lifecycle(task: str) -> ModelLifecycle:
    return ModelLifecycle(
        "m", task, LearnerSpec("auto"), None, DriftConfig(), GuardConfig(), release_every=25, reference=None
    )


def test_the_trainer_scores_its_auto_champion_on_the_served_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the lifecycle (per label and batched), before the champion pool learns a label, its members are
    scored on the served snapshot's pool; and that moves the champion's losses away from the test-then-train
    ones (the linear member's served copies trail a random walk it extrapolates on ``t``)."""
    calls: list[bool] = []
    original = pool_module.Pool.score_served

    def spy(self, served, x, y, predict=None):  # type: ignore[no-untyped-def]
        calls.append(served is lc.served_model.model and self is lc.champion.model)
        return original(self, served, x, y, predict)

    monkeypatch.setattr(pool_module.Pool, "score_served", spy)
    rows = _trend(800, seed=1)
    lc = _lifecycle("regression")
    for x, y in rows[:400]:
        lc.learn_one(x, y)
    lc.learn_batch([Labelled(x, y) for x, y in rows[400:]])
    assert lc.served_version > 2
    assert len(calls) == len(rows) and all(calls)
    monkeypatch.setitem(pool_module.SERVED_SHARE, "regression", 0.0)  # the old scoring, for comparison
    old = _lifecycle("regression")
    for x, y in rows:
        old.learn_one(x, y)
    assert lc.champion.model.losses != old.champion.model.losses
