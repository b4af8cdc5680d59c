"""Defaults on streams nobody tuned for (issue 13, ``bench/unseen.py``): the failures that sweep found, each on a
short stream that shows it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners import safe_pickle
from learners.specs import build_learner


def test_auto_pool_learns_events_whose_keys_mix_ints_and_strings() -> None:
    # River's generators key features 0, 1, ...; a string feature becomes "color=red": the quadratic member
    # sorted the pair (0, "color=red") to name their product and raised TypeError on the first event.
    model = build_learner(LearnerSpec("auto"))
    rng = random.Random(3)
    rows = []
    for _ in range(600):
        color = rng.choice(["red", "blue"])
        rows.append(({0: rng.random(), 1: rng.random(), "color": color}, color == "red"))
    for x, y in rows[:500]:
        model.learn_one(x, y)
    assert sum(model.predict_one(x) == y for x, y in rows[500:]) >= 95  # the colour alone decides


def _colours(n: int, seed: int) -> list[tuple[dict[str, Any], bool]]:
    """The label depends on a string feature and, within it, on a number (5 % noise)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        colour, v = rng.choice(["red", "green", "blue"]), rng.random()
        y = colour == "red" if v < 0.5 else colour != "blue"
        rows.append(({"colour": colour, "v": v}, y if rng.random() > 0.05 else not y))
    return rows


@pytest.mark.parametrize("kind", ["hoeffding_tree", "hoeffding_adaptive_tree", "adaptive_random_forest"])
def test_trees_split_on_one_hot_features(kind: str) -> None:
    # A one-hot indicator is present only when true: a tree saw it only as 1.0 and could never split on it,
    # so it scored ~0.64 here (the number alone). Absent indicators are now shown to it as 0.0.
    model = build_learner(LearnerSpec(kind))
    rows = _colours(4000, 1)
    for x, y in rows[:3000]:
        model.learn_one(x, y)
    assert sum(model.predict_one(x) == y for x, y in rows[3000:]) / 1000 > 0.8
    # The indicators survive the trainer's checkpoint round trip.
    again = safe_pickle.loads(safe_pickle.dumps(model))
    assert [again.predict_one(x) for x, _ in rows[3000:3100]] == [
        model.predict_one(x) for x, _ in rows[3000:3100]
    ]


def test_a_wide_string_feature_is_not_completed() -> None:
    # An id-like string (a new value on most events) would make every event as wide as its values seen so far:
    # only features with at most MAX_CATEGORIES values are completed, so the tree's cost stays bounded.
    from learners.features import MAX_CATEGORIES

    model = build_learner(LearnerSpec("hoeffding_tree"))
    rng = random.Random(4)
    for i in range(500):
        model.learn_one(
            {"user": f"u{i}", "colour": rng.choice(["red", "blue"]), "v": rng.random()}, i % 2 == 0
        )
    shown = model._complete({"v": 0.5}, learn=False)
    assert shown == {"v": 0.5, "colour=red": 0.0, "colour=blue": 0.0}
    assert MAX_CATEGORIES < 500


def test_a_uuid_column_gives_a_tree_a_bounded_number_of_splitters() -> None:
    """A string with a new value on every event (a uuid left in the data): the tree keeps splitters for its first
    ``MAX_CATEGORIES + 1`` values only, and answers as before (those values were only ever 1.0: no split, no naive
    Bayes term). Before, every value got a splitter in its leaf and each release pickled them all."""
    from learners.features import MAX_CATEGORIES

    model = build_learner(LearnerSpec("hoeffding_tree"))
    rng = random.Random(6)
    rows = []
    for i in range(3000):
        a = rng.uniform(-1, 1)
        rows.append(({"uuid": f"u{rng.getrandbits(40):x}", "a": a, "city": f"c{i % 7}"}, a > 0.2))
    for x, y in rows[:2500]:
        model.learn_one(x, y)
    stack, uuid_splitters = [model.model._root], 0
    while stack:
        node = stack.pop()
        stack.extend(getattr(node, "children", None) or [])
        uuid_splitters += sum(1 for att in getattr(node, "splitters", {}) if str(att).startswith("uuid="))
    assert 0 < uuid_splitters <= MAX_CATEGORIES + 1
    assert sum(model.predict_one(x) == y for x, y in rows[2500:]) / 500 > 0.9


def test_a_frozen_tree_with_string_features_answers_as_the_learner() -> None:
    # The trainer's fast path for a frozen tree reads the tree directly; it must not skip the completion of
    # absent one-hot indicators, or it answers differently from the scorer on the same event.
    from learners.features import clean_features
    from learners.frozen_tree import frozen_tree_predictor

    model = build_learner(LearnerSpec("hoeffding_tree"))
    rows = _colours(3000, 5)
    for x, y in rows[:2500]:
        model.learn_one(x, y)
    fast = frozen_tree_predictor(model) or model.predict_with_proba
    for x, _ in rows[2500:]:
        xc = clean_features(x)
        assert fast(xc) == model.predict_with_proba(xc, cleaned=True)


def test_a_numeric_target_under_the_classification_task_is_refused_clearly() -> None:
    # A regression stream replayed without model.task: regression made every value a class (600 events of
    # friedman took 29 s CPU at accuracy 0.0 and kept slowing). Refused at the 51st distinct fractional label.
    from driftline.errors import LearnerError

    model = build_learner(LearnerSpec("auto"))
    rng = random.Random(6)
    with pytest.raises(LearnerError, match=r"model\.task to 'regression'"):
        for _ in range(200):
            v = rng.random()
            model.learn_one({"a": v}, 3.0 * v + 0.123)
    # Half-point ratings are a legitimate set of classes.
    ratings = build_learner(LearnerSpec("auto"))
    for i in range(300):
        ratings.learn_one({"a": float(i % 10)}, 0.5 + (i % 10) / 2)
    assert ratings.predict_one({"a": 3.0}) == 2.0
