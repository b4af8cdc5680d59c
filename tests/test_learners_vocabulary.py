"""What a model learns from is bounded (``learners.features.admit``, ``Learner.admit``), and predicting never grows it.

A uuid column, or events whose feature names are all new, made every linear model (and the ``auto`` pool's linear
members) hold one weight and one scaler entry per event: the model, every release and every checkpoint grew
without bound. These tests fail on the code before the bound (session 14): the keys grew with the stream, and a
served logistic regression grew by one scaler entry per unseen name it was *asked* about.
"""

from __future__ import annotations

import pickle
import random
from typing import Any

import pytest

from driftline.config import LearnerSpec
from learners import safe_pickle
from learners.features import MAX_KEYS, MAX_TREE_KEYS, MAX_VALUES, Quadratic, admit, clean_features
from learners.frozen_tree import forget_recorded
from learners.live_models import _Fast, _FastLearn
from learners.specs import Learner, build_learner, vocabulary_bounds


def _linear_keys(learner: Learner) -> list[int]:
    """Sizes of every scaler's statistics and every weight vector inside ``learner`` (pool members included)."""
    from river import compose, multiclass

    from learners.features import FeatureScaler
    from learners.pool import Pool

    out: list[int] = []

    def walk(model: Any) -> None:
        if isinstance(model, Pool):
            for member in model.members:
                walk(member.model)
        elif isinstance(model, compose.Pipeline):
            for step in model.steps.values():
                walk(step)
        elif isinstance(model, multiclass.OneVsRestClassifier):
            for clf in model.classifiers.values():
                walk(clf)
        elif isinstance(model, FeatureScaler):
            out.extend([len(model.means), len(model.vars), len(model.counts)])
        elif hasattr(model, "_weights"):
            out.append(len(model._weights))

    walk(learner.model)
    return out


def _hostile(rng: random.Random, i: int) -> dict[str, Any]:
    """Three informative numbers and one feature whose name is new on every event."""
    return {"a": rng.random(), "b": rng.gauss(0, 1), "c": rng.gauss(0, 1), f"f{i}": rng.random()}


def _label(x: dict[str, Any]) -> int:
    return int(2 * x["a"] - 1 + 0.8 * x["b"] - 0.6 * x["c"] > 0)


def test_admit_keeps_known_keys_and_refuses_past_the_bounds() -> None:
    known: dict[Any, None] = {}
    values: dict[str, int] = {}
    x = {"a": 1.0, "s=x": 1.0}
    assert admit(x, known, values, 3, 2) is x  # all new and within the bounds: learned as it is
    assert admit(x, known, values, 3, 2) is x  # all known: the same dict, no copy
    assert admit({"a": 2.0, "s=y": 1.0, "s=z": 1.0}, known, values, 3, 2) == {"a": 2.0, "s=y": 1.0}
    assert admit({"b": 1.5, "s=x": 1.0}, known, values, 3, 2) == {"s=x": 1.0}  # three keys known: b is not
    assert list(known) == ["a", "s=x", "s=y"] and values == {"s": 2}


def test_quadratic_products_stop_at_max_keys_and_answer_as_before() -> None:
    """``Quadratic`` learns at most ``MAX_KEYS`` output names; past them an unknown product is left out. Under the
    bound its outputs are River's extender's (no output left out)."""
    quad = Quadratic()
    x = {"a": 2.0, "b": 3.0}
    quad.learn_one(x)
    assert quad.transform_one(x) == {"a": 2.0, "b": 3.0, "a*a": 4.0, "a*b": 6.0, "b*b": 9.0}
    for i in range(MAX_KEYS):
        quad.learn_one({"a": 1.0, f"f{i}": 1.0})
    assert quad._full and len(quad._known) == MAX_KEYS
    out = quad.transform_one({"a": 1.0, "b": 2.0, "new": 5.0})
    assert out == {"a": 1.0, "b": 2.0, "a*a": 1.0, "a*b": 2.0, "b*b": 4.0}  # every output with "new" left out


@pytest.mark.parametrize("name", ["logistic_regression", "auto"])
def test_a_new_feature_name_per_event_keeps_the_model_and_its_release_bounded(name: str) -> None:
    rng = random.Random(0)
    model = build_learner(LearnerSpec(name))
    sizes = []
    for i in range(MAX_KEYS + 1500):
        x = _hostile(rng, i)
        model.learn_one(x, _label(x))
        if i in (MAX_KEYS + 500, MAX_KEYS + 1499):
            sizes.append(len(safe_pickle.compact(model)))
    keys = _linear_keys(model)
    assert keys and max(keys) <= MAX_KEYS  # the old code: MAX_KEYS + 1503 in every linear member
    assert sizes[1] <= sizes[0] * 1.02  # 1,000 more events of new names: the release did not grow with them
    x = {"a": 0.9, "b": 1.0, "c": -1.0}
    assert model.predict_one(x) == 1  # and it still learned the informative features


def test_a_uuid_column_keeps_logistic_regression_weights_within_max_values() -> None:
    rng = random.Random(1)
    model = build_learner(LearnerSpec("logistic_regression"))
    for _ in range(MAX_VALUES + 800):
        x = {"uuid": f"u{rng.getrandbits(48):012x}", "a": rng.random(), "city": f"c{rng.randrange(40)}"}
        model.learn_one(x, int(x["a"] > 0.5))
    weights = model.model["LogisticRegression"]._weights.to_dict()
    assert sum(k.startswith("uuid=") for k in weights) == MAX_VALUES  # the old code: one per event
    assert sum(k.startswith("city=") for k in weights) == 40  # a real categorical keeps every value
    assert len(model.model["FeatureScaler"].means) == MAX_VALUES + 41
    # What driftline_vocabulary_keys reports: one refused key per event once the uuid's values were full.
    assert model.vocabulary() == (MAX_VALUES + 41, 800)
    assert pickle.loads(pickle.dumps(model)).vocabulary() == (MAX_VALUES + 41, 800)


def test_a_tree_learns_at_most_max_tree_keys() -> None:
    rng = random.Random(2)
    model = build_learner(LearnerSpec("hoeffding_tree"))
    for i in range(MAX_TREE_KEYS + 400):
        x = _hostile(rng, i)
        model.learn_one(x, _label(x))
    splitters = {k for leaf in model.model._root.iter_leaves() for k in leaf.splitters}
    assert MAX_TREE_KEYS - 10 <= len(splitters) <= MAX_TREE_KEYS  # the old code: one per event
    assert vocabulary_bounds(LearnerSpec("hoeffding_tree")) == (MAX_TREE_KEYS, 33)


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("logistic_regression", "classification"),
        ("auto", "classification"),
        ("hoeffding_tree", "classification"),
        ("gaussian_nb", "classification"),
        ("linear_regression", "regression"),
        ("auto", "regression"),
    ],
)
def test_predicting_never_inserts_a_key(name: str, task: str) -> None:
    """A served model answers events with names it never learned (a scorer): its pickle must not change. Before,
    ``FeatureScaler.transform_one`` read River's defaultdicts and inserted each name (a logistic regression's
    release grew 80x over 2,000 such predictions)."""
    rng = random.Random(3)
    model = build_learner(LearnerSpec(name), task)
    for i in range(300):
        x = {"a": rng.random(), "b": rng.random(), "s": f"v{i % 3}"}
        model.learn_one(x, i % 2)
    before = pickle.dumps(model)
    fast = _Fast()
    for i in range(300):
        x = {"a": rng.random(), "b": rng.random(), f"new{i}": rng.random(), "s": f"u{i}"}
        model.predict_one(x)
        if task == "classification":
            model.predict_proba_one(x)
            fast.predict(model, clean_features(x))  # the trainer's shortcut for a learning champion
    assert pickle.dumps(model) == before


def test_an_unlearned_key_adds_nothing_to_a_prediction() -> None:
    rng = random.Random(4)
    model = build_learner(LearnerSpec("logistic_regression"))
    for i in range(MAX_KEYS + 200):
        x = _hostile(rng, i)
        model.learn_one(x, _label(x))
    x = {"a": 0.3, "b": 0.1, "c": 0.2}
    refused = {**x, f"f{MAX_KEYS + 100}": 0.7}  # seen while learning, after the bound: never learned
    assert model.predict_proba_one(refused) == model.predict_proba_one(x)


@pytest.mark.parametrize("params", [{}, {"l2": 0.01}])
def test_the_fused_learn_path_bounds_the_same_keys_bit_for_bit(params: dict[str, Any]) -> None:
    """The trainer's flattened LR learns (``_fused_lr_learn``; ``_vector_lr_learn`` with L2) refuse exactly the
    keys ``Learner.learn_one`` refuses: the two models' pickles are equal after both bounds were hit."""
    rng = random.Random(5)
    spec = LearnerSpec("logistic_regression", params)
    fast_model, slow_model = build_learner(spec), build_learner(spec)
    fast, used = _FastLearn(), 0
    for i in range(MAX_KEYS + 300):
        x = clean_features({**_hostile(rng, i), "uuid": f"u{i}"})
        y = _label(x)
        fast.learn(fast_model, dict(x), y)
        used += fast.fn is not None
        slow_model.learn_one(dict(x), y, cleaned=True)
    assert used > MAX_KEYS
    assert max(_linear_keys(fast_model)) == MAX_KEYS
    assert pickle.dumps(fast_model) == pickle.dumps(slow_model)


def test_the_pool_fast_path_bounds_its_members_as_the_pool_does() -> None:
    """The ``auto`` pool on hostile events, learning through its members' fast paths and through its own
    ``learn_one``: the same pickles, and every member's scaler and weights within ``MAX_KEYS`` (the quadratic
    member's products included: the old code held ~6 products per event)."""
    rng = random.Random(6)
    fast_model, slow_model = build_learner(LearnerSpec("auto")), build_learner(LearnerSpec("auto"))
    fast, used = _FastLearn(), 0
    for i in range(MAX_KEYS // 2 + 200):
        x = clean_features({**_hostile(rng, i), "uuid": f"u{i}"})
        y = _label(x)
        fast.learn(fast_model, dict(x), y)
        forget_recorded()
        slow_model.learn_one(dict(x), y, cleaned=True)
        used += fast.fn is not None
    assert used > 0
    quadratic = next(m for m in fast_model.model.members if m.spec.params.get("degree") == 2)
    assert quadratic.model["Quadratic"]._full
    assert max(_linear_keys(fast_model)) <= MAX_KEYS
    assert pickle.dumps(fast_model) == pickle.dumps(slow_model)
    learned, refused = fast_model.vocabulary()  # the largest member's: the tree's bound is the lowest
    assert learned == max(m.vocabulary()[0] for m in fast_model.model.members)
    assert refused >= 200 and refused == max(m.vocabulary()[1] for m in fast_model.model.members)


def test_a_learner_pickled_before_the_bound_starts_a_vocabulary() -> None:
    model = build_learner(LearnerSpec("logistic_regression"))
    model.learn_one({"a": 1.0}, 1)
    model.learn_one({"a": -1.0}, 0)
    state = model.__getstate__()
    del state["_known"], state["_values"]  # as a trainer's checkpoint from before session 14
    old = Learner.__new__(Learner)
    old.__setstate__(state)
    old.learn_one({"a": 0.5, "b": 2.0}, 1)
    assert old._known == {"a": None, "b": None}


def test_input_watch_remembers_a_bounded_number_of_feature_names() -> None:
    """A new feature name per event grew ``InputWatch.kinds`` (and the trainer's checkpoint) by one entry each; a
    name it remembers still warns when its type changes."""
    from streams.watch import MAX_NAMES, InputWatch

    watch = InputWatch("classification")
    assert watch.check({"a": 1.0}, 0, 0) == []
    for i in range(MAX_NAMES + 500):
        watch.check({f"f{i}": 1.0}, 0, i + 1)
    assert len(watch.kinds) == MAX_NAMES  # the old code: MAX_NAMES + 501
    assert [s.signal for s in watch.check({"a": "sunny"}, 0, MAX_NAMES + 600)] == ["feature_type:a"]
    assert watch.check({f"f{MAX_NAMES + 499}": "text"}, 0, MAX_NAMES + 601) == []  # never remembered: no news
