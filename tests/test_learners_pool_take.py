"""The ``auto`` pool's lead at the label delay: with ``SERVED_TAKE`` a member takes the lead from the incumbent only
if its served copy has also answered better (``learners.pool.SERVED_TAKE``)."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners import pool as pool_module
from learners.specs import build_learner

# A slow and a fast learner: on a concept that flips every 100 labels the fast one has the lower test-then-train loss.
MEMBERS = [
    {"name": "logistic_regression", "params": {"lr": 0.001}},
    {"name": "logistic_regression", "params": {"lr": 0.1}},
]


def _flipping(n: int, seed: int = 0) -> list[tuple[dict[str, float], bool]]:
    rng, w, rows = random.Random(seed), 1.0, []
    for t in range(n):
        if t % 100 == 0:
            w = -w
        a = rng.uniform(-1, 1)
        rows.append(({"a": a, "b": rng.uniform(-1, 1)}, a * w > 0))
    return rows


def _run(served_wrong: int | None, n: int = 600) -> Any:
    """The two-member pool learning ``n`` labels, each scored first on a frozen copy of the pool (its served
    snapshot) whose member ``served_wrong`` answers every label wrong and the other right."""
    model = build_learner(LearnerSpec("auto", {"members": MEMBERS}), "classification")
    served = pickle.loads(pickle.dumps(model.model))
    for x, y in _flipping(n):
        wrong = None if served_wrong is None else served.members[served_wrong]
        model.model.score_served(served, x, y, lambda m, _x, y=y, wrong=wrong: (not y) if m is wrong else y)
        model.learn_one(x, y)
    return model.model


def test_a_member_whose_served_copy_answers_worse_does_not_take_the_lead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast member's own answers are better (it leads without the rule), but its served copy misses every
    label: with ``SERVED_TAKE`` the slow incumbent keeps the lead; the test-then-train losses are the same."""
    monkeypatch.setitem(pool_module.SERVED_SHARE, "classification", 0.0)
    monkeypatch.setitem(pool_module.SERVED_TAKE, "classification", False)
    plain = _run(served_wrong=1)
    assert plain.leader == 1 and plain.losses[1] < plain.losses[0]
    monkeypatch.setitem(pool_module.SERVED_TAKE, "classification", True)
    gated = _run(served_wrong=1)
    assert gated.losses == plain.losses
    assert gated._served_faded is not None and gated._served_faded[1] > gated._served_faded[0]
    assert gated.leader == 0


def test_the_gate_costs_nothing_when_the_served_copies_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the served copies also rank the fast member better (the slow one's copy misses), it takes the lead
    as it would without the rule."""
    monkeypatch.setitem(pool_module.SERVED_SHARE, "classification", 0.0)
    monkeypatch.setitem(pool_module.SERVED_TAKE, "classification", True)
    assert _run(served_wrong=0).leader == 1


def test_the_served_scores_restart_when_the_members_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm-starting a pool (new members) drops the served copies' faded losses: they belonged to other members."""
    monkeypatch.setitem(pool_module.SERVED_TAKE, "classification", True)
    champion = _run(served_wrong=1, n=200)
    assert champion._served_faded is not None
    fresh = build_learner(LearnerSpec("auto", {"members": MEMBERS}), "classification").model
    fresh._served_faded = [1.0, 2.0]
    fresh.warm_start(champion)
    assert fresh._served_faded is None and len(fresh.members) == 4


def test_a_pool_pickled_before_the_rule_loads_and_learns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint's pool has no ``_served_faded``: the class-level default covers it, and the rule then starts
    from the first served score."""
    monkeypatch.setitem(pool_module.SERVED_TAKE, "classification", True)
    model = build_learner(LearnerSpec("auto", {"members": MEMBERS}), "classification")
    for x, y in _flipping(100):
        model.learn_one(x, y)
    model.model.__dict__.pop("_served_faded", None)
    restored = pickle.loads(pickle.dumps(model))
    served = pickle.loads(pickle.dumps(restored.model))
    x, y = _flipping(101)[-1]
    restored.model.score_served(served, x, y)
    restored.learn_one(x, y)
    assert restored.model._served_faded is not None and len(restored.model._served_faded) == 2
