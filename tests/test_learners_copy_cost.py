"""Pickling a learner of a kind in ``NO_DISTRIBUTIONS`` skips the RNG walk: sound only if the walk finds nothing."""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners.features import share_distribution_rngs
from learners.specs import NO_DISTRIBUTIONS, build_learner

CASES = [
    ("logistic_regression", {}, "classification", 2),
    ("logistic_regression", {}, "classification", 3),  # multiclass auto: one-vs-rest from the third label
    ("logistic_regression", {"multiclass": "ovr"}, "classification", 3),
    ("logistic_regression", {"multiclass": "softmax"}, "classification", 3),
    ("logistic_regression", {"degree": 2, "lr": 0.05}, "classification", 2),
    ("linear_regression", {}, "regression", 0),
]


def _rows(n: int, classes: int) -> list[tuple[dict[str, Any], Any]]:
    rng = random.Random(5)
    out = []
    for _ in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.choice(["u", "v"])}
        y: Any = x["a"] * 2 + x["b"] if classes == 0 else int((x["a"] + 2) * classes / 4) % classes
        out.append((x, y))
    return out


def test_every_linear_kind_is_listed() -> None:
    assert {name for name, *_ in CASES} == set(NO_DISTRIBUTIONS)


@pytest.mark.parametrize(("kind", "params", "task", "classes"), CASES)
def test_no_distribution_to_rewire(kind: str, params: dict[str, Any], task: str, classes: int) -> None:
    model = build_learner(LearnerSpec(kind, params), task)
    rows = _rows(400, classes)
    for x, y in rows:
        model.learn_one(x, y)
    assert share_distribution_rngs(model.model) == 0
    copy = model.copy()
    for x, y in rows[:50]:  # the copy answers and learns as the original does
        assert copy.predict_one(x) == model.predict_one(x)
        copy.learn_one(x, y)
        model.learn_one(x, y)


def test_a_pool_leaves_the_walk_to_its_members(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` is pickled without a walk over the whole pool: only the members that hold distributions walk."""
    import learners.specs as specs

    walked: list[Any] = []

    def spy(model: Any) -> int:
        walked.append(model)
        return share_distribution_rngs(model)

    monkeypatch.setattr(specs, "share_distribution_rngs", spy)
    model = build_learner(LearnerSpec("auto"))
    for x, y in _rows(600, 2):
        model.learn_one(x, y)
    pickle.dumps(model)
    tree = [m.model for m in model.model.members if m.spec.name == "hoeffding_tree"]
    assert walked == tree


@pytest.mark.parametrize("kind", ["gaussian_nb", "hoeffding_tree", "auto"])
def test_other_kinds_still_share_their_generators(kind: str) -> None:
    """The walk runs for kinds that hold distributions: after a pickle, every distribution shares one generator."""
    model = build_learner(LearnerSpec(kind))
    for x, y in _rows(600, 2):
        model.learn_one(x, y)
    pickle.dumps(model)
    from river.proba.base import Distribution

    found = []
    stack: list[Any] = [model.model]
    seen: set[int] = set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, int, float, bytes, type)):
            continue
        seen.add(id(obj))
        if isinstance(obj, Distribution):
            found.append(obj._rng)
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    assert len(found) > 1
    assert len({id(rng) for rng in found}) == 1


@pytest.mark.parametrize(
    "kind", ["logistic_regression", "hoeffding_tree", "gaussian_nb", "hoeffding_adaptive_tree"]
)
def test_a_copy_is_released_from_its_copy_pickle(kind: str) -> None:
    """Learner.copy leaves its pickle for the copy's release: the release is the copy, and the copy learns and
    answers as the original does."""
    from learners import safe_pickle
    from learners.artifacts import build_release, load_release

    model = build_learner(LearnerSpec(kind))
    rows = _rows(1500, 2)
    for x, y in rows[:1000]:
        model.learn_one(x, y)
    copy = model.copy()
    assert copy in safe_pickle._MADE
    record = build_release(copy, name="m", version=2, parent=1, reason="incremental", metrics={}, key=b"k" * 32,
                           n_learned=1000)  # fmt: skip
    assert copy not in safe_pickle._MADE  # taken once
    _, loaded = load_release(record, key=b"k" * 32)
    for x, y in rows[1000:]:
        assert copy.predict_proba_one(x) == model.predict_proba_one(x) == loaded.predict_proba_one(x)
        for m in (copy, model, loaded):
            m.learn_one(x, y)


def test_a_copy_that_learned_is_pickled_again() -> None:
    """The pickle left by the copy is not used once the copy has learned: its release holds what it learned."""
    from learners import safe_pickle
    from learners.artifacts import build_release, load_release

    model = build_learner(LearnerSpec("logistic_regression"))
    rows = _rows(600, 2)
    for x, y in rows[:300]:
        model.learn_one(x, y)
    copy = model.copy()
    for x, y in rows[300:]:
        copy.learn_one(x, y)
    record = build_release(copy, name="m", version=2, parent=1, reason="incremental", metrics={}, key=b"k" * 32,
                           n_learned=600)  # fmt: skip
    _, loaded = load_release(record, key=b"k" * 32)
    answers = [
        (loaded.predict_proba_one(x), copy.predict_proba_one(x), model.predict_proba_one(x)) for x, _ in rows
    ]
    assert all(a == b for a, b, _ in answers)
    assert any(a != c for a, _, c in answers)  # the original did not learn the last 300: the check could fail
    assert copy not in safe_pickle._MADE
