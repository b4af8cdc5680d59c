"""The compiled naive Bayes answer of a frozen Hoeffding tree's leaf (``learners.nb_kernel``) is the Python path's
(``frozen_tree._naive_bayes``, River's arithmetic) to the bit, and ``learn_batch`` with it makes the same releases,
alarms and verdicts as ``learn_one``.

Exact, not within tolerance: the answers feed the sentinel's 0/1 errors, the evaluators and the loss detector. The
traps the kernel must not fall into, each checked here: a square computed as ``d * d`` (libm's ``pow``, which
CPython's ``**`` calls, differs in the last bit for ~0.08 % of doubles), a square that overflows (CPython raises
and the caller hands the row to River), NaN and infinite features, features missing from the row, several
classes, ties, and CPython's order of the log-sum-exp. Every test here fails on the base (no ``nb_kernel``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.config import GuardConfig, LearnerSpec
from learners import frozen_tree, kernels, nb_kernel
from learners.drift import DriftSignal
from learners.features import clean_features
from learners.lifecycle import ModelLifecycle
from learners.specs import build_learner
from tests.test_learners_frozen_tree_rows import _float_examples, _stream
from tests.test_learners_learn_batch import FAST_SENTINEL, _outcome, _run_batch, _run_one

PROPS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NAMES = [f"f{k}" for k in range(6)]


@pytest.fixture(autouse=True)
def _jit_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_JIT", raising=False)
    monkeypatch.delenv("DRIFTLINE_NO_JIT", raising=False)


@pytest.fixture
def row() -> Any:
    compiled = nb_kernel.compiled()
    assert compiled is not None, "numba is a dependency: the kernel must compile"
    return compiled[0]


def _same(a: Any, b: Any) -> bool:
    """Equal to the bit: ``repr`` tells every double apart (-0.0 included) and lets NaN equal NaN."""
    return repr(a) == repr(b)


def _python(terms: Any, x: dict[str, float]) -> Any:
    try:
        return frozen_tree._naive_bayes(terms, x)
    except ArithmeticError as exc:
        return exc


def _answer(row: Any, terms: Any, x: dict[str, float]) -> Any:
    """The kernel's answer as :func:`frozen_tree.frozen_tree_predictor` takes it (normalised by the Python path
    where CPython's ``sum`` is not plain addition)."""
    got = nb_kernel.LeafArrays(terms).answer(row, x)
    return got if got is None or nb_kernel.NORMALISES else frozen_tree._normalise(got)


finite = st.floats(allow_nan=False, allow_infinity=False)
moderate = st.floats(-1e6, 1e6)
variance = st.one_of(
    st.floats(1e-300, 1e300), st.floats(1e-3, 1e3), st.sampled_from([5e-324, 1e-160, 2.0**-1074])
)
feature = st.one_of(
    moderate, moderate, finite, st.sampled_from([math.nan, math.inf, -math.inf, 1e154, -3e200])
)


@st.composite
def leaves(draw: Any) -> Any:
    """A leaf's terms as ``frozen_tree._class_terms`` builds them: per class (its log prior, then per feature in
    the splitters' order: mean, -2 variance, half the log variance), a class's features a subset of the leaf's."""
    n_classes = draw(st.integers(1, 4))
    order = draw(st.permutations(NAMES))
    terms = []
    for c in range(n_classes):
        feats = []
        for att in order:
            if draw(st.integers(0, 5)) == 0:
                continue  # this class has no Gaussian for the feature (or its variance is 0): no term
            var = draw(variance)
            feats.append((att, draw(st.one_of(moderate, finite)), -2.0 * var, 0.5 * math.log(var)))
        prior = draw(st.one_of(st.floats(-50, 0), st.sampled_from([0.0, -math.log(2), -1e-300])))
        terms.append((("a", "b", True, 3)[c], prior, feats))
    return tuple(terms)


@given(terms=leaves(), x=st.dictionaries(st.sampled_from(NAMES), feature, min_size=4, max_size=6))
@PROPS
def test_a_leafs_answer_is_the_python_paths(row: Any, terms: Any, x: dict[str, float]) -> None:
    got = _answer(row, terms, x)
    want = _python(terms, x)
    if got is not None:
        assert not isinstance(want, Exception)
        assert _same(got, want)
        return
    # Left to the Python path only where that path may differ from plain arithmetic: a feature of the terms absent
    # from the row, a non-finite difference, or a square CPython raises on.
    atts = {att for _, _, feats in terms for att, *_ in feats}
    odd = not atts <= set(x) or isinstance(want, Exception)
    odd = odd or any(not math.isfinite(x[att] - mu) for _, _, feats in terms for att, mu, *_ in feats)
    assert odd


def test_plain_rows_are_answered(row: Any) -> None:
    rng = random.Random(5)
    for _ in range(300):
        terms = tuple(
            (
                c,
                math.log(rng.random()),
                [(n, rng.gauss(0, 2), -2.0 * (v := rng.uniform(0.1, 9)), 0.5 * math.log(v)) for n in NAMES],
            )
            for c in (False, True)
        )
        x = {n: rng.gauss(0, 3) for n in NAMES}
        got = _answer(row, terms, x)
        assert got is not None and _same(got, frozen_tree._naive_bayes(terms, x))


def test_squares_are_libms_pow_not_the_product(row: Any) -> None:
    """Differences whose ``d ** 2`` (libm's ``pow``) is not ``d * d``: a kernel squaring by multiplication fails."""
    rng = random.Random(11)
    ds = []
    while len(ds) < 50:
        d = rng.uniform(-1e3, 1e3)
        if d**2 != d * d:
            ds.append(d)
    for d in ds:
        terms = ((0, -0.5, [("f0", 0.0, -2.0, 0.0)]), (1, -1.0, [("f0", 0.25, -3.0, 0.1)]))
        x = {"f0": d}
        got = _answer(row, terms, x)
        assert got is not None and _same(got, frozen_tree._naive_bayes(terms, x))
    # and the votes themselves differ between the two squares for these differences (the test can fail)
    d = ds[0]
    assert (d**2) / -2.0 != (d * d) / -2.0


def test_an_overflowing_square_goes_to_the_python_path(row: Any) -> None:
    terms = ((0, -0.5, [("f0", 0.0, -2.0, 0.0)]), (1, -1.0, [("f0", 1.0, -3.0, 0.1)]))
    x = {"f0": 1e200}
    assert isinstance(_python(terms, x), OverflowError)
    assert _answer(row, terms, x) is None


def _trained(seed: int, classes: int) -> tuple[Any, list[dict[str, float]]]:
    rows = _stream(4000, seed, classes)
    learner = build_learner(LearnerSpec("hoeffding_tree"))
    for x, y in rows[:3000]:
        learner.learn_one(x, y)
    xs = [clean_features(x) for x, _ in rows[3000:]]
    rng = random.Random(seed)
    for k in rng.sample(range(len(xs)), 60):  # far outside the training range: terms near 0, -inf, overflow
        xs[k] = {n: v * rng.choice([1e3, 1e6, 1e11, 1e160]) for n, v in xs[k].items()}
    for k in rng.sample(range(len(xs)), 10):
        xs[k] = {**xs[k], "f2": rng.choice([math.nan, math.inf])}
    return learner, xs


@pytest.mark.parametrize(("seed", "classes"), [(1, 2), (2, 2), (3, 3)])
def test_frozen_tree_paths_compiled_equal_python_and_river(
    seed: int, classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    learner, xs = _trained(seed, classes)
    assert nb_kernel.compiled() is not None
    compiled_rows = frozen_tree.FrozenTreeRows(learner)
    names = tuple(xs[0])
    values = np.array([list(x.values()) for x in xs])
    calls = {"row": 0, "rows": 0}
    row, rows = nb_kernel.compiled()  # type: ignore[misc]

    def counted_row(*a: Any) -> Any:
        calls["row"] += 1
        return row(*a)

    def counted_rows(*a: Any) -> Any:
        calls["rows"] += 1
        return rows(*a)

    monkeypatch.setattr(nb_kernel, "_compiled", (counted_row, counted_rows))
    compiled_fn = frozen_tree.frozen_tree_predictor(learner)
    got_rows = compiled_rows.predict(xs, names, values)
    with monkeypatch.context() as m:
        m.setenv("DRIFTLINE_NO_JIT", "1")
        assert nb_kernel.ready() is None
        python_fn = frozen_tree.frozen_tree_predictor(learner)
        python_rows = frozen_tree.FrozenTreeRows(learner).predict(xs, names, values)
    assert compiled_fn is not None and python_fn is not None
    answered = 0
    for x, g, p in zip(xs, got_rows, python_rows, strict=True):
        want = learner.predict_with_proba(x, cleaned=True)
        assert _same(compiled_fn(x), want)
        assert _same(python_fn(x), want)
        assert (g is None) == (p is None)  # the same rows left to the per-row path
        if g is not None:
            answered += 1
            assert _same(g, want)
    assert answered > 0.9 * len(xs)
    assert calls["row"] > 0.9 * len(xs) and calls["rows"] == 1


def test_ready_only_once_warmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nb_kernel, "_tried", False)
    monkeypatch.setattr(nb_kernel, "_compiled", None)
    assert nb_kernel.ready() is None  # a scorer's release never compiles
    assert kernels.warm_for(LearnerSpec("logistic_regression")) >= 0.0
    assert nb_kernel.ready() is None
    kernels.warm_for(LearnerSpec("hoeffding_tree"))
    assert nb_kernel.ready() is not None
    monkeypatch.setenv("DRIFTLINE_NO_JIT", "1")
    assert nb_kernel.ready() is None


@pytest.mark.parametrize("seed", [3, 8])
def test_learn_batch_with_the_kernel_matches_learn_one(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = nb_kernel.compiled()
    assert compiled is not None
    calls = {"row": 0, "rows": 0}

    def counted(key: str, fn: Any) -> Any:
        def call(*a: Any) -> Any:
            calls[key] += 1
            return fn(*a)

        return call

    monkeypatch.setattr(nb_kernel, "_compiled", (counted("row", compiled[0]), counted("rows", compiled[1])))
    spec = LearnerSpec("hoeffding_tree")
    drift = dataclasses.replace(FAST_SENTINEL, sentinel_threshold=2.0)

    def lifecycle() -> ModelLifecycle:
        lc = ModelLifecycle("m", "classification", spec, None, drift, GuardConfig(), release_every=25)
        lc.initial_release()
        return lc

    examples = _float_examples(seed)
    one, batched = lifecycle(), lifecycle()
    a, b = _run_one(one, examples), _run_batch(batched, examples, seed=seed)
    assert [_outcome(r) for r in b] == [_outcome(r) for r in a]
    assert calls["row"] > 0 and calls["rows"] > 0, "the batch must have used the kernel"
    events = [e for r in a if isinstance(r, list) for e in r]
    assert one.served_version > 5
    assert any(isinstance(e, DriftSignal) and e.details.get("test") == "frozen_snapshot" for e in events)
    for x in [e.x for e in examples[-300:]]:
        assert batched.served_model.predict_with_proba(x) == one.served_model.predict_with_proba(x)
