"""The trainer's per-label shortcuts for *learning* models give the learner's own answers at every step.

``learners.live_models`` predicts and learns a binary logistic regression (the ``FeatureScaler |
LogisticRegression`` pipeline that ``learners.specs`` builds) without River's layers: the same arithmetic in the
same order, so answers must equal ``Learner.predict_one`` exactly and the learned state must be the same bit for
bit, with missing, boolean, string and never-seen features, and through the switch to one-vs-rest at a third label
(where the shortcuts step aside). A learning Hoeffding tree reuses its prediction's naive Bayes answer in its
learn (``learners.frozen_tree``): checked against a twin tree that River alone predicts. And the batch's feature
cleaning equals ``clean_features``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import LearnerSpec
from learners.batch import BatchContext
from learners.features import clean_features
from learners.live_models import _Fast, _fast_binary_lr
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
        if (
            fast.fn is not None
        ):  # the probability behind the label is River's, exactly (not just its side of 0.5)
            want = model.predict_proba_one(xc, cleaned=True)[model._classes[1]]
            assert fast.fn.proba(xc) == want, (i, x)  # type: ignore[attr-defined]
        model.learn_one(xc, y, cleaned=True)


@pytest.mark.parametrize("third", [True, False])
def test_the_shortcut_steps_aside_when_the_model_changes_shape(third: bool) -> None:
    rng = random.Random(5)
    model = build_learner(LearnerSpec("logistic_regression"))  # multiclass: auto
    fast = _Fast()
    checked = 0
    for i in range(300):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        y = "up" if x["a"] > x["b"] else "down"
        if third and i >= 150 and i % 4 == 0:
            y = "sideways"  # one-vs-rest from here: the shortcut must not answer for it
        assert fast.predict(model, x) == model.predict_one(x, cleaned=True), i
        if fast.fn is not None:
            assert fast.fn.proba(x) == model.predict_proba_one(x, cleaned=True)[model._classes[1]], i
            checked += 1
        model.learn_one(x, y, cleaned=True)
    assert (fast.fn is None) == third
    assert checked >= 140  # the fast path answered (and was checked) for the binary stretch at least


def _leaf_counters(learner: Any) -> list[tuple[float, float, dict[Any, float]]]:
    tree = learner.model
    out = []
    for node in tree._root.iter_dfs() if tree._root is not None else ():
        if hasattr(node, "_nb_correct_weight"):
            out.append((node._nb_correct_weight, node._mc_correct_weight, dict(node.stats)))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_a_learning_tree_reusing_its_naive_bayes_answer_learns_the_same(seed: int) -> None:
    """The tree predicted through ``learning_tree_predictor`` (its naive Bayes answer taken back by the learn) and
    a twin predicted by River alone give the same answers and end with the same leaves and counters."""
    from learners import frozen_tree

    rng = random.Random(seed)
    spec = LearnerSpec("hoeffding_tree", {"grace_period": 50})
    fast_tree, twin = build_learner(spec), build_learner(spec)
    assert frozen_tree.learning_tree_predictor(fast_tree) is None  # no labels yet: the learner answers
    assert frozen_tree.learning_tree_predictor(build_learner(LearnerSpec("gaussian_nb"))) is None
    reused, predict, n_classes = 0, None, 0
    for i in range(1500):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.random()}
        if i % 13 == 0:
            del x["b"]  # a missing feature: the learn may walk to another leaf than the prediction
        if i % 101 == 0:
            x["late"] = rng.random()  # a feature the leaves' splitters have not seen
        y = (
            ("up" if x["a"] + x.get("b", 0.0) > 0 else "down")
            if i < 800
            else ("down" if x["a"] > 0 else "up")
        )
        xc = clean_features(x)
        if predict is None or n_classes != len(
            fast_tree._classes
        ):  # as learners.live_models._Fast rebuilds it
            predict = frozen_tree.frozen_tree_predictor(fast_tree, learning=True)
            n_classes = len(fast_tree._classes)
        got = fast_tree.predict_with_proba(xc, cleaned=True) if predict is None else predict(xc)
        assert got == twin.predict_with_proba(xc, cleaned=True), i  # equal, not just close
        recorded = len(frozen_tree._MEMO.pending)
        fast_tree.learn_one(xc, y, cleaned=True)
        reused += recorded - len(frozen_tree._MEMO.pending)
        frozen_tree.forget_recorded()
        twin.learn_one(xc, y, cleaned=True)
    assert reused > 500  # the shortcut was really taken (naive Bayes leaves answer most labels)
    assert _leaf_counters(fast_tree) == _leaf_counters(twin)
    probe = [{"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "c": rng.random()} for _ in range(200)]
    assert [fast_tree.predict_with_proba(x) for x in probe] == [twin.predict_with_proba(x) for x in probe]


def test_a_recorded_answer_is_never_given_to_another_tree_or_a_changed_leaf() -> None:
    from learners import frozen_tree

    rng = random.Random(3)
    spec = LearnerSpec("hoeffding_tree", {"grace_period": 50})
    tree = build_learner(spec)
    for _ in range(300):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        tree.learn_one(x, "up" if x["a"] > 0 else "down")
    copy = tree.copy()
    predict = frozen_tree.learning_tree_predictor(tree)
    assert predict is not None
    xc = {"a": 0.1, "b": -0.2}
    predict(xc)
    assert len(frozen_tree._MEMO.pending) == 1
    # A copy (another tree's leaf objects) computes its own answer and does not take the recorded one.
    assert copy.predict_with_proba(xc) == tree.predict_with_proba(dict(xc))
    assert len(frozen_tree._MEMO.pending) == 1
    frozen_tree.forget_recorded()
    assert frozen_tree._MEMO.pending == []


special = st.sampled_from([math.inf, -math.inf, math.nan, 1e300, -1e15, 1e12, -1e12, 1.0000001e12, 0.0, -0.0])
plain = st.one_of(st.floats(-5, 5), special)
dense = st.fixed_dictionaries({n: plain for n in ("a", "b", "c")})


@PROPS
@given(batch=st.lists(st.one_of(dense, dense, dense, example), max_size=40))
def test_batch_cleaning_equals_clean_features(batch: list[dict[str, Any]]) -> None:
    ctx = BatchContext(batch)
    for pos, x in enumerate(batch):
        got, want = ctx.cleaned(pos), clean_features(x)
        assert list(got.items()) == list(want.items()) or (
            list(got) == list(want) and all(_same(got[k], want[k]) for k in want)
        ), (x, got, want)
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
        assert got is not x  # a copy: learners may keep or change it


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _state(learner: Any) -> Any:
    model = learner.model
    steps = list(model.steps.values())
    scaler, last = steps[0], steps[-1]
    out = [learner._classes, list(learner._counts.items()), type(last).__name__]
    out += [list(scaler.counts.items()), list(scaler.means.items()), list(scaler.vars.items())]
    if hasattr(last, "_weights"):
        out += [last._weights.to_dict(), last.intercept, last.optimizer.n_iterations]
    return out


@PROPS
@given(
    stream=st.lists(st.tuples(example, st.sampled_from(["down", "up", "up", None, "sideways"])), max_size=80),
    params=st.sampled_from([{}, {"multiclass": "binary"}, {"l2": 0.01}, {"lr": 0.3}]),
    seed=st.integers(0, 3),
)
def test_fast_learn_leaves_the_same_state_as_learn_one(
    stream: list[tuple[dict[str, Any], Any]], params: dict[str, Any], seed: int
) -> None:
    """Bit for bit: the scaler's counts, means and variances (in order), the weights, intercept and SGD step count,
    the label counts; through a third label (one-vs-rest, or the binary learner's refusal) and ``None`` labels."""
    import pickle

    from learners.live_models import _FastLearn

    rng = random.Random(seed)
    spec = LearnerSpec("logistic_regression", params)
    fast_model, slow_model = build_learner(spec), build_learner(spec)
    fast = _FastLearn()
    used = 0
    for i, (x, y) in enumerate(stream):
        if i % 3 == 0:  # dense examples between the odd ones, so the weights move
            x = {"a": rng.gauss(0, 1), "b": rng.gauss(1, 2), "colour": rng.choice(["red", "green"])}
        if y == "sideways" and params.get("multiclass") != "binary" and i < 40:
            y = "up"  # the switch to one-vs-rest late in some streams, early in others
        xc = clean_features(x)
        errors = []
        for learn in (
            lambda xc=xc, y=y: fast.learn(fast_model, dict(xc), y),
            lambda xc=xc, y=y: slow_model.learn_one(dict(xc), y, cleaned=True),
        ):
            try:
                learn()
                errors.append(None)
            except Exception as exc:
                errors.append(type(exc))
        assert errors[0] == errors[1], (i, errors)
        used += fast.fn is not None
        assert _state(fast_model) == _state(slow_model), i
    assert pickle.dumps(fast_model) == pickle.dumps(slow_model)
    if len(stream) >= 60 and params.get("multiclass") == "binary":
        assert used > 0  # the fast path was taken, not only the learner's own


def test_fast_learn_is_taken_for_the_default_logistic_regression() -> None:
    from learners.live_models import _fast_binary_lr_learn

    model = build_learner(LearnerSpec("logistic_regression"))
    assert _fast_binary_lr_learn(model) is None  # no labels yet: the learner's own bookkeeping
    model.learn_one({"a": 1.0}, "up")
    model.learn_one({"a": -1.0}, "down")
    fn = _fast_binary_lr_learn(model)
    assert fn is not None
    # The default (no L2, zero-initialised weights) takes the fused pure-Python loop, which the bit-for-bit tests
    # above and below therefore check; L2 goes through River's VectorDict primitives.
    assert fn.__qualname__.startswith("_fused_lr_learn")
    l2 = build_learner(LearnerSpec("logistic_regression", {"l2": 0.01}))
    l2.learn_one({"a": 1.0}, "up")
    l2.learn_one({"a": -1.0}, "down")
    assert _fast_binary_lr_learn(l2).__qualname__.startswith("_vector_lr_learn")
    assert _fast_binary_lr_learn(build_learner(LearnerSpec("logistic_regression", {"l1": 0.1}))) is None


def test_fast_learn_over_a_long_stream_is_bitwise_river() -> None:
    from learners.live_models import _FastLearn

    rng = random.Random(11)
    fast_model = build_learner(LearnerSpec("logistic_regression"))
    slow_model = build_learner(LearnerSpec("logistic_regression"))
    fast, used = _FastLearn(), 0
    for i in range(3000):
        x = {f"f{k}": rng.gauss(k, 1 + k) for k in range(8)}
        if i % 17 == 0:
            x["colour=red"] = 1.0
        y = "up" if x["f1"] - x["f2"] / 3 + rng.gauss(0, 0.5) > 0 else "down"
        fast.learn(fast_model, dict(x), y)
        used += fast.fn is not None
        slow_model.learn_one(dict(x), y, cleaned=True)
    assert used > 2900
    assert _state(fast_model) == _state(slow_model)


@PROPS
@given(
    stream=st.lists(
        st.tuples(example, st.sampled_from(["down", "up", "up", None, "sideways"])), max_size=120
    ),
    seed=st.integers(0, 3),
)
def test_a_pool_learning_through_its_members_fast_paths_learns_the_same(
    stream: list[tuple[dict[str, Any], Any]], seed: int
) -> None:
    """The default ``auto`` pool: every member tested and trained through its fast path leaves the pool's running
    losses, its leader and every member's state as the pool's own ``learn_one`` does, bit for bit (the pickles
    are equal), through string features, ``None`` labels and a third label."""
    import pickle

    from learners.frozen_tree import forget_recorded
    from learners.live_models import _FastLearn

    rng = random.Random(seed)
    fast_model, slow_model = build_learner(LearnerSpec("auto")), build_learner(LearnerSpec("auto"))
    fast = _FastLearn()
    used = 0
    for i, (x, y) in enumerate(stream):
        if i % 2 == 0:  # dense examples between the odd ones, so the tree grows leaves and splits
            x = {"a": rng.gauss(0, 1), "b": rng.gauss(1, 2), "colour": rng.choice(["red", "green"])}
            y = "up" if x["a"] > 0 else "down"
        if y == "sideways" and i < 60:
            y = "up"
        xc = clean_features(x)
        fast.learn(fast_model, dict(xc), y)
        forget_recorded()  # as the trainer does before each label
        slow_model.learn_one(dict(xc), y, cleaned=True)
        used += fast.fn is not None
        a, b = fast_model.model, slow_model.model
        assert (a.losses, a.leader, a.weight) == (b.losses, b.leader, b.weight), i
        assert fast_model.predict_with_proba(xc) == slow_model.predict_with_proba(xc), i
    assert pickle.dumps(fast_model) == pickle.dumps(slow_model)
    if len(stream) >= 20:
        assert used > 0


def test_a_pool_over_a_long_stream_takes_its_members_fast_paths() -> None:
    """3,000 labels through the default pool: the fast path is taken, and the members (logistic regression and a
    Hoeffding tree that splits) end bit for bit where the pool's own learn leaves them."""
    import pickle

    from learners.frozen_tree import forget_recorded
    from learners.live_models import _FastLearn

    rng = random.Random(7)
    fast_model, slow_model = build_learner(LearnerSpec("auto")), build_learner(LearnerSpec("auto"))
    fast, used = _FastLearn(), 0
    for _ in range(3000):
        x = {f"f{k}": rng.gauss(0, 1) for k in range(6)}
        y = "up" if (x["f0"] > 0.3 and x["f1"] < 1.0) != (rng.random() < 0.05) else "down"
        fast.learn(fast_model, dict(x), y)
        forget_recorded()
        slow_model.learn_one(dict(x), y, cleaned=True)
        used += fast.fn is not None
    assert used > 2900
    tree = next(m for m in fast_model.model.members if m.spec.name == "hoeffding_tree")
    assert tree.model.n_nodes > 1  # it split: the recorded answers met more than one leaf
    assert pickle.dumps(fast_model) == pickle.dumps(slow_model)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_frozen_pool_led_by_its_tree_answers_as_the_pool(seed: int) -> None:
    """An ``auto`` model whose leader is the Hoeffding tree is served through the tree's frozen naive Bayes terms
    with the outer learner's normalisation: the same labels and probabilities as ``predict_with_proba``, on
    examples with missing, extra and odd features."""
    from learners.batch import _pooled_tree, batch_predictor

    rng = random.Random(seed)
    model = build_learner(LearnerSpec("auto"))
    for _ in range(4000):  # stripes, which neither linear member (nor its squares) can draw: the tree leads
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1), "c": rng.gauss(0, 1)}
        model.learn_one(x, "up" if int((x["a"] + 1) * 3) % 2 else "down")
    pool = model.model
    assert pool.members[pool.leader].spec.name == "hoeffding_tree"
    fast = _pooled_tree(model)
    assert fast is not None and batch_predictor(model).frozen_tree is not None
    probes: list[dict[str, Any]] = [
        {"a": rng.uniform(-1.5, 1.5), "b": rng.uniform(-1.5, 1.5), "c": rng.gauss(0, 3)} for _ in range(400)
    ]
    probes += [{}, {"a": 0.5}, {"b": -0.2, "d": 4.0}, {"a": 1e300, "b": -1e300, "c": 0.0}]
    for x in probes:
        xc = clean_features(x)
        assert fast(xc) == model.predict_with_proba(xc, cleaned=True), x
    assert _pooled_tree(build_learner(LearnerSpec("hoeffding_tree"))) is None
