"""Session 25's cheaper paths in ``learners.batch`` give what they replace, bit for bit (the previous code is kept
here as the reference):

- ``LinearMirror``'s arrays, built from Python lists instead of numpy elements set one by one;
- ``BatchPredictor.probabilities`` without ``np.errstate`` (the logits clipped to [-30, 30] before ``exp``);
- ``BatchContext._predict_rows``' labels taken from an object array instead of a dict per row;
- ``BatchContext.blocks`` and ``_clean_all``: a block of Python floats made from one flat list, and its types
  found once for both.

Every array is compared by its bits (``view(np.int64)``: NaN, -0.0 and the infinities included).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.data import make_rows, pretrained
from driftline.config import LearnerSpec
from learners.batch import CLIP, BatchContext, BatchPredictor, LinearMirror
from learners.features import clean_features

PROPS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.array_equal(a.view(np.int64), b.view(np.int64)))


# --- the previous code (3f298ed) ----------------------------------------------------------------------------------


def _old_mirror_arrays(
    means: dict[str, float], variances: dict[str, float], weights: dict[str, float], indicators: bool
) -> tuple[dict[str, int], np.ndarray, np.ndarray, np.ndarray]:
    names = list(dict.fromkeys([*means, *variances, *weights]))
    index = {n: j for j, n in enumerate(names)}
    d = len(names)
    mean, std, weight = np.zeros(d + 1), np.ones(d + 1), np.zeros(d + 1)
    for n, j in index.items():
        v = float(variances.get(n, 0.0))
        if v:
            mean[j] = float(means.get(n, 0.0))
            std[j] = v**0.5
            weight[j] = float(weights.get(n, 0.0))
        elif indicators and float(means.get(n, 0.0)) == 1.0:
            weight[j] = float(weights.get(n, 0.0))
    return index, mean, std, weight


def _old_probabilities(logits: np.ndarray, renormalise: bool) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.where(logits < -30, 0.0, np.where(logits > 30, 1.0, 1.0 / (1.0 + np.exp(-logits))))
    q0, q1 = 1.0 - p, p
    if renormalise:
        total = q0 + q1
        q0, q1 = q0 / total, q1 / total
    return q0, q1


def _old_labels(q0: np.ndarray, q1: np.ndarray, c0: Any, c1: Any, first: Any) -> list[Any]:
    labels = {1: c1, 0: c0, -1: first}
    return [labels[k] for k in np.where(q1 > q0, 1, np.where(q0 > q1, 0, -1)).tolist()]


def _old_blocks(xs: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, x in enumerate(xs):
        groups.setdefault(tuple(x), []).append(i)
    blocks = []
    for names, rows in groups.items():
        try:
            values = np.array([list(xs[i].values()) for i in rows])
        except (ValueError, TypeError, OverflowError):
            continue
        if values.dtype.kind in "fiub" and values.ndim == 2:
            blocks.append((names, np.array(rows), values.astype(np.float64, copy=False)))
    return blocks


def _old_clean_all(xs: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    out: list[Any] = [None] * len(xs)
    where: list[Any] = [None] * len(xs)
    for b, (_names, rows, values) in enumerate(_old_blocks(xs)):
        idx = rows.tolist()
        if set(map(type, itertools.chain.from_iterable(xs[i].values() for i in idx))) != {float}:
            continue
        with np.errstate(invalid="ignore"):
            good = (np.abs(values) <= CLIP).all(axis=1)
        for r, (i, ok) in enumerate(zip(idx, good.tolist(), strict=True)):
            if ok:
                out[i] = dict(xs[i])
                where[i] = (b, r)
    return out, where


# --- the mirror ---------------------------------------------------------------------------------------------------

_NAME = st.sampled_from([f"f{i}" for i in range(8)])
_STAT = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.just(0.0),
    st.just(1.0),
    st.integers(-3, 3),
    st.floats(1e-300, 1e-250),
)


@PROPS
@given(
    means=st.dictionaries(_NAME, _STAT, max_size=8),
    variances=st.dictionaries(
        _NAME, st.one_of(st.just(0.0), st.floats(0.0, 1e9), st.integers(0, 4)), max_size=8
    ),
    weights=st.dictionaries(_NAME, _STAT, max_size=8),
    indicators=st.booleans(),
)
def test_the_mirror_s_arrays_are_the_previous_ones(
    means: dict[str, float], variances: dict[str, float], weights: dict[str, float], indicators: bool
) -> None:
    mirror = LinearMirror(means, variances, weights, 0.25, indicators)
    index, mean, std, weight = _old_mirror_arrays(means, variances, weights, indicators)
    assert mirror.index == index
    assert mirror.unseen == len(index)
    for got, want in ((mirror.mean, mean), (mirror.std, std), (mirror.weight, weight)):
        assert got.dtype == np.float64 and got.flags["C_CONTIGUOUS"]
        assert _same_bits(got, want)


def test_a_negative_variance_fails_the_mirror_as_before() -> None:
    # (v ** 0.5 of a negative float is complex in Python: numpy refused it before, and does now.)
    old = lambda: _old_mirror_arrays({}, {"a": -1.0}, {}, False)  # noqa: E731
    for build in (old, lambda: LinearMirror({}, {"a": -1.0}, {}, 0.0)):
        try:
            build()
        except TypeError:
            continue
        raise AssertionError("a complex standard deviation was accepted")


# --- probabilities and labels -------------------------------------------------------------------------------------

_EDGES = [
    -1e308,
    -800.0,
    -30.000001,
    -30.0,
    -29.999,
    -0.0,
    0.0,
    1e-300,
    29.999,
    30.0,
    30.000001,
    800.0,
    1e308,
]
_LOGIT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(_EDGES), st.floats(-40, 40)
)


@PROPS
@given(logits=st.lists(_LOGIT, min_size=0, max_size=60), renormalise=st.booleans())
def test_probabilities_are_the_previous_ones_to_the_bit(logits: list[float], renormalise: bool) -> None:
    predictor = BatchPredictor(object())  # no mirror: only its probabilities are asked
    predictor.renormalise = renormalise
    z = np.array(logits, dtype=np.float64)
    with np.errstate(all="raise"):  # (and no warning or error of numpy's on any input)
        got = predictor.probabilities(z)
    want = _old_probabilities(z, renormalise)
    assert _same_bits(got[0], want[0]) and _same_bits(got[1], want[1])


@PROPS
@given(
    logits=st.lists(_LOGIT, min_size=1, max_size=40),
    classes=st.sampled_from(
        [(False, True, False), (True, False, True), ("no", "yes", "yes"), (0, 1, 1), (2, 7, 7)]
    ),
)
def test_predicted_rows_label_as_before(logits: list[float], classes: tuple[Any, Any, Any]) -> None:
    c0, c1, first = classes

    class _Learner:
        _classes = [first, c1 if first == c0 else c0]

    class _Mirror:
        def logits_plain(self, values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
            return values[:, 0]

    predictor = BatchPredictor(object())
    predictor.mirror, predictor.inner_classes = _Mirror(), [c0, c1]  # type: ignore[assignment]
    xs = [{"z": float(v)} for v in logits]
    ctx = BatchContext(xs)
    ctx._blocks, ctx._floats, ctx._plain = (
        [(("z",), np.arange(len(xs)), np.array(logits)[:, None])],
        [True],
        [True],
    )
    preds, q0, q1, ok, pair = ctx._predict_rows(_Learner(), predictor, 0, len(xs))
    w0, w1 = _old_probabilities(np.array(logits), False)
    want = _old_labels(w0, w1, c0, c1, first)
    assert preds == want
    assert _same_bits(np.array(q0), w0) and _same_bits(np.array(q1), w1)
    assert [type(p) for p in preds] == [type(p) for p in want]
    assert ok == (np.isfinite(w0) & np.isfinite(w1)).tolist()
    assert pair == (c0, c1)


# --- blocks and cleaning ------------------------------------------------------------------------------------------

_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e3, 1e3),
    st.floats(-1e3, 1e3),
    st.integers(-5, 5),
    st.integers(2**62, 2**70),
    st.booleans(),
    st.none(),
    st.sampled_from(["a", "b"]),
    st.just(2e12),
)


@PROPS
@given(
    rows=st.lists(
        st.tuples(st.sampled_from([("a", "b"), ("b", "a"), ("a",), ("a", "b", "c"), ()]), st.data()),
        min_size=1,
        max_size=30,
    ),
    floats_only=st.booleans(),
)
def test_blocks_and_cleaning_are_the_previous_ones(rows: list[Any], floats_only: bool) -> None:
    xs: list[dict[str, Any]] = []
    for names, data in rows:
        value = st.floats(-1e3, 1e3) if floats_only else _VALUE
        xs.append({n: data.draw(value) for n in names})
    ctx = BatchContext(xs)
    got, want = ctx.blocks(), _old_blocks(xs)
    assert len(got) == len(want) == len(ctx._floats)
    for (gn, gr, gv), (wn, wr, wv) in zip(got, want, strict=True):
        assert gn == wn and np.array_equal(gr, wr)
        assert gv.dtype == wv.dtype == np.float64 and gv.flags["C_CONTIGUOUS"]
        assert _same_bits(gv, wv)
    clean, where = ctx._clean_all(), ctx._where
    old_clean, old_where = _old_clean_all(xs)
    assert where == old_where
    for pos, (c, o) in enumerate(zip(clean, old_clean, strict=True)):
        assert (c is None) == (o is None)
        if c is not None:
            assert c == o and c is not xs[pos]  # a copy, as before
            assert [type(v) for v in c.values()] == [type(v) for v in o.values()]
        # and what a learner is given for the row is clean_features' answer either way
        cleaned = ctx.cleaned(pos)
        want_clean = clean_features(xs[pos])
        assert list(cleaned) == list(want_clean)
        assert [type(v) for v in cleaned.values()] == [type(v) for v in want_clean.values()]
        assert _same_bits(np.array(list(cleaned.values())), np.array(list(want_clean.values())))


def test_a_trained_snapshot_answers_the_worker_s_rows_as_its_learner_does() -> None:
    # End to end through the new paths: the served snapshot's rows from the batch equal its own predict_with_proba.
    learner = pretrained(LearnerSpec("logistic_regression"), make_rows(600, seed=3))
    xs = [x for _, x, _ in make_rows(300, seed=4)]
    ctx = BatchContext(xs)
    for pos, x in enumerate(xs):
        xc = ctx.cleaned(pos)
        pred, proba = ctx.frozen(learner, pos, xc)
        want_pred, want_proba = learner.predict_with_proba(x)
        assert pred == want_pred
        assert proba.keys() == want_proba.keys()
        assert all(math.isclose(proba[k], want_proba[k], rel_tol=1e-9, abs_tol=1e-12) for k in proba)
