"""A learning Hoeffding tree leaf's Gaussians in arrays (``learners.tree_learn.LeafMirror``, session 20) are
River's, bit for bit: the champion's answers computed from the arrays, what the arrays learn, and what they write
back into River's objects when something reads them (a split attempt, a pickle, a deep copy, River's own naive
Bayes, the Python path).

Two learners learn the same stream: one predicts through ``frozen_tree.learning_tree_predictor`` (the leaf's
mirror answers and learns) and learns with ``learn_one``; its twin predicts with River's own ``predict_one`` and
learns through the Python path (``tree_learn.fused_update_splitters``' River statements, themselves River's:
tests/test_learners_tree_learn.py). Their answers must be equal at every step, their copies (pickle, deep copy)
at random steps, and their trees at the end; the streams have new features mid-stream, missing features, ints,
``None``, NaN, infinities, huge values, three classes, and trees that split. A lifecycle replays a drifting stream
with and without the mirrors: the same releases, alarms and verdicts. Every test here fails on the base (no
``LeafMirror``).
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from driftline.config import GuardConfig, LearnerSpec
from learners import frozen_tree, nb_kernel, tree_learn
from learners.drift import DriftSignal
from learners.features import clean_features
from learners.lifecycle import ModelLifecycle
from learners.specs import build_learner
from tests.test_learners_frozen_tree_rows import _float_examples
from tests.test_learners_learn_batch import FAST_SENTINEL, _outcome, _run_batch, _run_one
from tests.test_learners_tree_learn import _dump


@pytest.fixture(autouse=True)
def _jit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_JIT", raising=False)
    monkeypatch.delenv("DRIFTLINE_NO_JIT", raising=False)
    assert nb_kernel.compiled() is not None, "numba is a dependency: the kernels must compile"
    assert nb_kernel.mirror_ready() is not None
    assert tree_learn.install()  # (another test file may have put River's own update back)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many learns the mirrors took, and how many answers they gave."""
    calls = {"learn": 0, "answer": 0}
    learn, answer = tree_learn.LeafMirror.learn, tree_learn.LeafMirror.answer

    def counted_learn(self: Any, *a: Any) -> bool:
        took = learn(self, *a)
        calls["learn"] += took
        return took

    def counted_answer(self: Any, *a: Any) -> Any:
        got = answer(self, *a)
        calls["answer"] += got is not None
        return got

    monkeypatch.setattr(tree_learn.LeafMirror, "learn", counted_learn)
    monkeypatch.setattr(tree_learn.LeafMirror, "answer", counted_answer)
    return calls


def _same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)


def _learn(learner: Any, x: dict[str, Any], y: Any) -> Any:
    try:
        learner.learn_one(x, y, cleaned=True)
    except (
        Exception
    ) as exc:  # River's own failure (an overflow, None in its naive Bayes): the twin fails alike
        return type(exc)
    finally:
        frozen_tree.forget_recorded()
    return None


def _twins(
    rows: list[tuple[dict[str, Any], Any]], seed: int, clean: bool = True, **params: Any
) -> tuple[Any, Any, dict[str, int]]:
    """The mirrored learner and its twin over ``rows`` (cleaned as the trainer cleans them, or as they are: ints,
    None, NaN, infinities reach the tree), compared at every step; (mirrored, twin, checks)."""
    spec = LearnerSpec("hoeffding_tree", params)
    mirrored, twin = build_learner(spec), build_learner(spec)
    rng = random.Random(seed)
    checks = {"answers": 0, "copies": 0}
    predict, known = None, -1
    for x, y in rows:
        xc = clean_features(x) if clean else dict(x)
        if predict is None or len(mirrored._classes) != known or rng.random() < 0.01:
            known = len(mirrored._classes)
            # (rebuilt now and then, as a new batch does; None until the learner has two classes)
            predict = frozen_tree.frozen_tree_predictor(mirrored, learning=True)
        if predict is not None:
            try:
                got = predict(xc)
            except Exception as exc:  # River's own failure: the twin must fail alike
                got = type(exc)
            try:
                want = twin.predict_with_proba(xc, cleaned=True)
            except Exception as exc:
                want = type(exc)
            assert _same(got, want)
            checks["answers"] += 1
        assert _learn(mirrored, xc, y) == _learn(twin, xc, y)
        roll = rng.random()
        if roll < 0.03:  # a pickle (a release's copy, a checkpoint) reads what the mirrors learned
            assert _dump(pickle.loads(pickle.dumps(mirrored.model))) == _dump(twin.model)
            checks["copies"] += 1
        elif roll < 0.05:
            assert _dump(copy.deepcopy(mirrored.model)) == _dump(twin.model)
            checks["copies"] += 1
        elif roll < 0.07:  # River's own answer (the memo misses: River reads the Gaussians)
            assert _same(_river_answer(mirrored, xc), _river_answer(twin, xc))
    tree_learn.flush_all()
    assert _dump(mirrored.model) == _dump(twin.model)
    return mirrored, twin, checks


def _river_answer(learner: Any, xc: dict[str, Any]) -> Any:
    """River's ``predict_proba_one``, or the type of what it raised (a feature of 1e154 overflows River's squared
    distance: the mirrored tree must fail alike)."""
    try:
        return learner.model.predict_proba_one(xc)
    except Exception as exc:
        return type(exc)


def _stream(n: int, seed: int, classes: int = 2, features: int = 8) -> list[tuple[dict[str, Any], Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {f"f{k}": rng.gauss(0, 1 + k) for k in range(features)}
        s = x["f0"] + 0.5 * x["f1"] - 0.3 * x["f4"] + rng.gauss(0, 0.4)
        y = s > 0 if classes == 2 else ("a" if s < -1 else "b" if s < 1.5 else "c")
        out.append((x, y))
    return out


@pytest.mark.parametrize(("seed", "classes"), [(1, 2), (2, 3), (3, 2)])
def test_the_mirrored_tree_is_rivers_on_a_growing_tree(
    seed: int, classes: int, counted: dict[str, int]
) -> None:
    mirrored, _, checks = _twins(_stream(4000, seed, classes, features=20), seed, grace_period=100)
    assert mirrored.model.n_nodes >= 3, "the tree must have split"
    assert counted["learn"] > 3000 and counted["answer"] > 3000, counted  # the mirrors did the work
    assert checks["copies"] > 50


def test_a_new_feature_a_missing_one_and_a_new_class_leave_the_mirror(counted: dict[str, int]) -> None:
    rows = [(x, "yes" if y else "no") for x, y in _stream(1200, 5, 2)]
    for k in range(300, 1200, 97):
        rows[k][0]["late"] = float(k)  # a feature seen now and then: a new splitter, rows of other features
    for k in range(400, 1200, 89):
        del rows[k][0]["f3"]
    for k in range(600, 1200, 7):
        rows[k] = (rows[k][0], "third")  # a third class mid-stream: River creates its Gaussians
    _twins(rows, 5, grace_period=50)
    assert counted["learn"] > 300


value = st.one_of(
    st.floats(-5, 5),
    st.floats(-1e6, 1e6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e300, 1e300),
    st.integers(-(10**6), 10**6),
    st.none(),
)


@given(
    rows=st.lists(
        st.tuples(
            st.fixed_dictionaries({"a": value, "b": st.floats(-5, 5), "c": value}, optional={"d": value}),
            st.sampled_from(["yes", "no", "no", "third"]),
        ),
        min_size=1,
        max_size=150,
    ),
    grace=st.sampled_from([5, 20, 200]),
    seed=st.integers(0, 1000),
    clean=st.booleans(),
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(  # found by CI: River's own answer overflows on a feature of 1e154 (the mirrored tree must raise alike)
    rows=[
        ({"a": 0.0, "b": 0.0, "c": 0.0}, "yes"),
        ({"a": 0.0, "b": 0.0, "c": 1.0}, "yes"),
        ({"a": 2.4929931943717163, "b": -2.1247188218911268e-268, "c": 0.0}, "no"),
        ({"a": None, "b": -1.9765647868803433, "c": 0.0}, "no"),
        ({"a": None, "b": -4.944609386417038e-53, "c": 1.3407807929942597e154}, "no"),
    ],
    grace=20,
    seed=3,
    clean=False,
)
def test_any_stream_learns_and_answers_as_river(
    rows: list[tuple[dict[str, Any], Any]], grace: int, seed: int, clean: bool
) -> None:
    _twins(rows, seed, clean, grace_period=grace)


@given(
    values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=8, max_size=60),
    scale=st.sampled_from([1.0, 1e-3, 1e8, 1e150]),
)
@settings(max_examples=150, deadline=None)
def test_the_arrays_learn_rivers_bits(values: list[float], scale: float) -> None:
    """One leaf, two classes, three features: the kernel's Welford update and terms against River's, every bit
    (``Mean.n``, ``Mean._mean``, ``Var._S``, the bounds), the answers against River's naive Bayes."""
    spec = LearnerSpec("hoeffding_tree", {"grace_period": 10**6})
    mirrored, twin = build_learner(spec), build_learner(spec)
    rows = [({"p": v * scale, "q": -v, "r": v - values[k - 1]}, k % 3 == 0) for k, v in enumerate(values)]
    predict = None
    for x, y in rows:
        if predict is None:
            predict = frozen_tree.frozen_tree_predictor(mirrored, learning=True)
        if predict is not None:
            try:
                got = predict(x)
            except ArithmeticError as exc:
                got = type(exc)
            try:
                want = twin.predict_with_proba(x, cleaned=True)
            except ArithmeticError as exc:
                want = type(exc)
            assert _same(got, want)
        assert _learn(mirrored, x, y) == _learn(twin, x, y)
    tree_learn.flush_all()
    assert _dump(mirrored.model) == _dump(twin.model)


def test_a_split_attempt_reads_what_the_mirror_learned(counted: dict[str, int]) -> None:
    """The split attempt comes right after a learn through the mirror (River's objects are written back first):
    the same splits at the same labels."""
    rows = _stream(3000, 9, 2, features=20)
    spec = LearnerSpec("hoeffding_tree", {"grace_period": 40})
    mirrored, twin = build_learner(spec), build_learner(spec)
    predict = None
    for i, (x, y) in enumerate(rows):
        if predict is None:
            predict = frozen_tree.learning_tree_predictor(mirrored)
        if predict is not None:
            predict(x)
        mirrored.learn_one(x, y, cleaned=True)
        frozen_tree.forget_recorded()
        twin.learn_one(x, y, cleaned=True)
        assert mirrored.model.n_nodes == twin.model.n_nodes, i
    assert twin.model.n_nodes >= 3 and counted["learn"] > 2000
    tree_learn.flush_all()
    assert _dump(mirrored.model) == _dump(twin.model)


def test_without_the_kernels_no_mirror_is_made(
    monkeypatch: pytest.MonkeyPatch, counted: dict[str, int]
) -> None:
    monkeypatch.setenv("DRIFTLINE_NO_JIT", "1")
    assert nb_kernel.mirror_ready() is None
    _twins(_stream(600, 4, 2), 4, grace_period=50)
    assert counted["learn"] == 0 and counted["answer"] == 0


@pytest.mark.parametrize("seed", [3, 8])
def test_learn_batch_with_mirrors_matches_without(
    seed: int, monkeypatch: pytest.MonkeyPatch, counted: dict[str, int]
) -> None:
    """A replayed drifting stream: the lifecycle's releases, alarms and verdicts with the mirrors, without them
    (the Python path) and through ``learn_one``, and the champions' trees at the end."""
    spec = LearnerSpec("hoeffding_tree")
    drift = dataclasses.replace(FAST_SENTINEL, sentinel_threshold=2.0)

    def lifecycle() -> ModelLifecycle:
        lc = ModelLifecycle("m", "classification", spec, None, drift, GuardConfig(), release_every=25)
        lc.initial_release()
        return lc

    examples = _float_examples(seed)
    mirrored = lifecycle()
    got = _run_batch(mirrored, examples, seed=seed)
    assert counted["learn"] > 1000, counted
    monkeypatch.setattr(nb_kernel, "_mirror", None)  # the Python path
    assert nb_kernel.mirror_ready() is None
    plain, one = lifecycle(), lifecycle()
    want = _run_batch(plain, examples, seed=seed)
    assert [_outcome(r) for r in got] == [_outcome(r) for r in want]
    assert [_outcome(r) for r in got] == [_outcome(r) for r in _run_one(one, examples)]
    events = [e for r in got if isinstance(r, list) for e in r]
    assert mirrored.served_version == plain.served_version > 5
    assert any(isinstance(e, DriftSignal) for e in events)
    tree_learn.flush_all()
    assert _dump(mirrored.champion.model) == _dump(plain.champion.model)
    for x in [e.x for e in examples[-300:]]:
        assert mirrored.served_model.predict_with_proba(x) == plain.served_model.predict_with_proba(x)


def test_a_champion_and_a_challenger_keep_their_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lifecycle's order with a challenger tree: both predict, then both learn. Each learn goes through its
    own leaf's mirror (a second prediction does not take the first one's expectation), few mirrors are built, and
    both trees are River's."""
    built = {"n": 0}
    init = tree_learn.LeafMirror.__init__

    def counted_init(self: Any, leaf: Any) -> None:
        init(self, leaf)
        built["n"] += 1

    monkeypatch.setattr(tree_learn.LeafMirror, "__init__", counted_init)
    learned = {"n": 0}
    learn = tree_learn.LeafMirror.learn

    def counted_learn(self: Any, *a: Any) -> bool:
        took = learn(self, *a)
        learned["n"] += took
        return took

    monkeypatch.setattr(tree_learn.LeafMirror, "learn", counted_learn)
    rows = _stream(3000, 11, 2, features=12)
    champion, challenger = (
        build_learner(LearnerSpec("hoeffding_tree", {"grace_period": g})) for g in (100, 60)
    )
    twins = [build_learner(LearnerSpec("hoeffding_tree", {"grace_period": g})) for g in (100, 60)]
    predictors: list[Any] = [None, None]
    for x, y in rows:
        for k, learner in enumerate((champion, challenger)):
            if predictors[k] is None:
                predictors[k] = frozen_tree.frozen_tree_predictor(learner, learning=True)
            if predictors[k] is not None:
                assert _same(predictors[k](x), twins[k].predict_with_proba(x, cleaned=True))
        champion.learn_one(x, y, cleaned=True)
        challenger.learn_one(x, y, cleaned=True)
        frozen_tree.forget_recorded()
        for twin in twins:
            twin.learn_one(x, y, cleaned=True)
    tree_learn.flush_all()
    assert _dump(champion.model) == _dump(twins[0].model)
    assert _dump(challenger.model) == _dump(twins[1].model)
    assert learned["n"] > 2 * 2500, learned
    assert built["n"] < 100, built  # a few per leaf (its classes' first labels), not one per label
