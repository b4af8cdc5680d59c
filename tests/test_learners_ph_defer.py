"""The loss detectors' held-back values (``learners.ph_defer``, ``LossDriftMonitor.defer``): the same alarms at the
same positions and the same state, to the bit, as ``update`` value by value; with the compiled pass and without."""

from __future__ import annotations

import copy
import math
import pickle
import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.config import DriftConfig, LearnerSpec
from learners import ph_defer
from learners.detectors import ScaledDetector
from learners.drift import LOSS_CAP, LossDriftMonitor


@pytest.fixture(params=["jit", "no_jit"])
def jit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no_jit":
        monkeypatch.setenv("DRIFTLINE_NO_JIT", "1")
        assert ph_defer.run() is ph_defer._run_py
    else:
        monkeypatch.delenv("DRIFTLINE_NO_JIT", raising=False)
        monkeypatch.delenv("DRIFTLINE_JIT", raising=False)
    return str(request.param)


def _losses(seed: int, n: int, shifts: int) -> list[float]:
    """Classification-like losses: mostly small, some capped mistakes, with ``shifts`` rises of the error rate."""
    rng = random.Random(seed)
    at = sorted(rng.sample(range(n), shifts)) if shifts else []
    rate, out = 0.1, []
    for i in range(n):
        if at and i == at[0]:
            at.pop(0)
            rate = min(0.9, rate + rng.uniform(0.1, 0.5))
        if rng.random() < rate:
            p = rng.choice([rng.random() * 0.5, 0.0, 1e-300])
        else:
            p = 0.5 + rng.random() * 0.5
        loss = min(-math.log(p), LOSS_CAP) if p > 0 else LOSS_CAP
        out.append(rng.choice([loss, loss, loss, float("nan"), 0.0]) if rng.random() < 0.02 else loss)
    return out


def _pair(task: str = "classification", **params: float) -> tuple[LossDriftMonitor, LossDriftMonitor]:
    config = DriftConfig(**params)  # type: ignore[arg-type]
    return LossDriftMonitor(config, task), LossDriftMonitor(config, task)


def _feed(one: LossDriftMonitor, lazy: LossDriftMonitor, losses: list[float], rng: random.Random) -> int:
    """Feed both, comparing every label's signals; settles or copies the lazy one at random points and compares
    the pickles there. Returns how many values the lazy one held back at some point."""
    held = 0
    for i, loss in enumerate(losses):
        a, b = one.update(loss, i), lazy.defer(loss, i)
        assert b == a, f"label {i}: defer {b} != update {a}"
        held += bool(lazy._detector.__dict__.get("_pend"))
        r = rng.random()
        if r < 0.01:
            lazy.settle()
            assert pickle.dumps(lazy) == pickle.dumps(one)
        elif r < 0.015:  # a pickle mid-window (a checkpoint): the held values applied
            assert pickle.dumps(lazy) == pickle.dumps(one)
        elif r < 0.02:  # a copy mid-window (the reference snapshot's detectors are the served ones' copies)
            assert pickle.dumps(copy.deepcopy(lazy)) == pickle.dumps(copy.deepcopy(one))
        elif r < 0.03 and loss == loss:  # update after held values: they come first
            a, b = one.update(loss, i), lazy.update(loss, i)
            assert b == a
    lazy.settle()
    assert pickle.dumps(lazy) == pickle.dumps(one)
    return held


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(50, 3000), shifts=st.integers(0, 4))
def test_defer_is_update_to_the_bit(seed: int, n: int, shifts: int) -> None:
    one, lazy = _pair()
    _feed(one, lazy, _losses(seed, n, shifts), random.Random(seed))


@pytest.mark.parametrize("seed", range(4))
def test_defer_alarms_where_update_does_with_and_without_jit(jit: str, seed: int) -> None:
    """Long streams with rises: alarms happen (so the comparison has something to compare) and most values are
    held back (so it compares the held path)."""
    one, lazy = _pair()
    alarms = []
    losses = _losses(seed, 12_000, 6)
    rng = random.Random(seed)
    for i, loss in enumerate(losses):
        a, b = one.update(loss, i), lazy.defer(loss, i)
        assert b == a, f"{jit} label {i}"
        alarms += a
        if rng.random() < 0.002:
            lazy.settle()
            assert pickle.dumps(lazy) == pickle.dumps(one)
    lazy.settle()
    assert pickle.dumps(lazy) == pickle.dumps(one)
    assert alarms, "the stream must raise loss alarms"
    again, lazy2 = _pair()
    assert _feed(again, lazy2, losses, random.Random(seed + 1)) > len(losses) // 2


@pytest.mark.parametrize(
    "params",
    [
        {"ph_loss_threshold": 5.0},  # a low threshold: windows close often or never open
        {"ph_loss_delta": 0.0},
        {"ph_loss_delta": 1.0, "ph_min_instances": 30},
        {"loss_detector_params": {"alpha": 1.0}},
        {"loss_detector_params": {"mode": "both"}},  # never held back: the per-value path
        {"ph_loss": False},
    ],
)
def test_defer_under_other_settings(params: dict[str, object]) -> None:
    one, lazy = _pair(**params)  # type: ignore[arg-type]
    for seed in range(3):
        _feed(one, lazy, _losses(seed, 2500, 3), random.Random(seed))


def test_regression_losses_with_the_trained_scale() -> None:
    """Regression's monitor has a second detector and a settle count: held back only when neither applies."""
    rng = random.Random(7)
    losses = [abs(rng.gauss(0, 1)) * (3.0 if 2000 < i < 2600 else 1.0) for i in range(4000)]
    one, lazy = _pair("regression")
    _feed(one, lazy, losses, rng)
    one.reset(300), lazy.reset(300)
    _feed(one, lazy, losses, rng)


@settings(max_examples=200, deadline=None)
@given(
    n0=st.integers(1, 10**6),
    m0=st.floats(-50, 50),
    s0=st.floats(-1e4, 1e4),
    g0=st.floats(0, 200),
    alpha=st.floats(0.9, 1.0),
    delta=st.floats(0, 2),
    threshold=st.floats(1, 500),
    wmean=st.floats(-1e3, 1e3),
    wstd=st.floats(1e-6, 1e3),
    fill=st.lists(st.floats(0, 1), min_size=ph_defer.WINDOW, max_size=ph_defer.WINDOW),
)
def test_a_full_window_under_the_cap_never_alarms(
    n0: int,
    m0: float,
    s0: float,
    g0: float,
    alpha: float,
    delta: float,
    threshold: float,
    wmean: float,
    wstd: float,
    fill: list[float],
) -> None:
    """The cap's bound (the module docstring), on arbitrary states: values anywhere under the cap, as many as a
    window holds, keep the statistic under the threshold (half of it, less rounding)."""
    det = ScaledDetector(
        1, "page_hinkley", {"mode": "up", "alpha": alpha, "delta": delta}, "drift.loss_detector"
    )
    det.update(0.0)  # warmed up
    det.mean, det.std = wmean, wstd
    ph = det.detector
    assert ph is not None
    ph.threshold, ph.min_instances = threshold, 0
    ph._x_mean.n, ph._x_mean._mean = float(n0), m0
    ph._sum_increase, ph._min_increase = s0, s0 - g0
    ph_defer.open_window(det)
    if "_pend" not in det.__dict__:
        return  # no room: the per-value path
    cap = det._cap
    low = wmean - 50.0 * wstd - 1.0
    values = [low + f * (cap - low) for f in fill]
    values = [min(v, cap) for v in values]
    _, _, s_inc, _, min_inc, _, _, _, first = ph_defer._run_py(
        np.array(values),
        wmean,
        wstd,
        float(n0),
        m0,
        s0,
        ph._sum_decrease,
        s0 - g0,
        -1.0,
        alpha,
        delta,
        threshold,
        0.0,
    )
    assert first < 0
    assert s_inc - min_inc <= threshold / 2 + 1e-6 * (1 + abs(s0))


def _bits(values: tuple[float, ...]) -> list[bytes]:
    return [struct.pack("<d", float(v)) for v in values]


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=64),
    state=st.tuples(*[st.floats(-1e4, 1e4)] * 6),
    wstd=st.floats(1e-9, 1e4),
    alpha=st.floats(0.5, 1.0),
    delta=st.floats(0, 1),
)
def test_the_compiled_pass_is_the_python_one(
    values: list[float], state: tuple[float, ...], wstd: float, alpha: float, delta: float
) -> None:
    compiled = ph_defer.run()
    if compiled is ph_defer._run_py:
        pytest.skip("no numba here")
    wmean, n, mean, s_inc, s_dec, min_inc = state
    args = (
        np.array(values),
        wmean,
        wstd,
        abs(n) + 1.0,
        mean,
        s_inc,
        s_dec,
        min_inc,
        -1.0,
        alpha,
        delta,
        50.0,
        10.0,
    )
    got, want = compiled(*args), ph_defer._run_py(*args)
    assert _bits(got[:6]) == _bits(want[:6])
    assert got[6:] == want[6:]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_learn_batch_leaves_the_loss_detectors_as_learn_one(
    monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    """The lifecycle holds the served and the reference snapshots' losses back within a batch (drifts, releases,
    challengers, resets): after each batch both detectors pickle as ``learn_one`` leaves them."""
    from tests.test_learners_learn_batch import _examples, _lifecycle, _outcome, _run_one, _stream

    applied = []
    real = ph_defer.apply
    monkeypatch.setattr(ph_defer, "apply", lambda det: applied.append(len(det._pend or ())) or real(det))
    spec = LearnerSpec("logistic_regression" if task == "classification" else "linear_regression")
    rows = _stream(task, seed=11)
    examples = _examples(spec, task, rows, seed=12)
    one, batched = _lifecycle(spec, task), _lifecycle(spec, task)
    rng, k = random.Random(13), 0
    while k < len(examples):
        size = rng.choice([1, 50, 333, 900])
        part = examples[k : k + size]
        expected = [_outcome(r) for r in _run_one(one, part)]
        assert [_outcome(r) for r in batched.learn_batch(part)] == expected
        for name in ("_loss_monitor", "_ref_loss_monitor"):
            assert pickle.dumps(getattr(batched, name)) == pickle.dumps(getattr(one, name)), (k, name)
        k += size
    if task == "classification":
        assert sum(applied) > len(examples) // 2  # most losses went the held path
