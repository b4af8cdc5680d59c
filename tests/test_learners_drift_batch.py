"""FeatureDriftMonitor.update_many: the same alarms (and state) as update() per event, however the stream is cut."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import learners.drift_batch
from driftline.config import DriftConfig
from learners.drift import SCALAR_BATCH, DriftSignal, FeatureDriftMonitor
from learners.drift_batch import BLOCK

# Small warm-up / threshold / cool-down so short streams see several alarms, re-warms and cool-downs.
FAST = DriftConfig(
    feature_warmup=40,
    ph_min_instances=25,
    ph_feature_threshold=25.0,
    ph_feature_delta=0.5,
    feature_cooldown=150,
    max_features=5,
)


def stream(n: int, seed: int, dirty: float = 0.1, newcomer_at: int = 300) -> list[dict[str, Any]]:
    """Events with steps in some features, missing / NaN / inf / None / strings / bools / ints mixed in, and a
    feature that appears only after ``newcomer_at`` (placed first in the key order, to test registration order)."""
    rng = random.Random(seed)
    names = [f"f{j}" for j in range(7)]
    steps = {name: sorted(rng.sample(range(50, n), 3)) for name in names[:4]}
    out = []
    for i in range(n):
        x: dict[str, Any] = {}
        if i >= newcomer_at:
            x["late"] = rng.gauss(10.0, 2.0) + (8.0 if i >= newcomer_at + 400 else 0.0)
        for name in names:
            shift = sum(3.0 for s in steps.get(name, []) if i >= s) * (1 if name != "f1" else -1)
            value: Any = rng.gauss(0.0, 1.0) + shift
            r = rng.random()
            if r < dirty:
                value = rng.choice([None, math.nan, math.inf, -math.inf, "red", True, False, 3, -2, [1]])
            elif r < dirty * 1.5:
                continue  # missing from this event
            x[name] = value
        x["flag"] = rng.random() < 0.5
        x["colour"] = rng.choice(["red", "blue"])
        if i > 5 and rng.random() < 0.2:  # key order varies between events (after the first few)
            x = dict(reversed(list(x.items())))
        out.append(x)
    return out


def per_event(monitor: FeatureDriftMonitor, xs: Sequence[dict[str, Any]], start: int) -> list[DriftSignal]:
    return [s for i, x in enumerate(xs) for s in monitor.update(x, start + i)]


def batched(monitor: FeatureDriftMonitor, xs: Sequence[dict[str, Any]], start: int, sizes: Sequence[int]):
    out: list[DriftSignal] = []
    pos, k = 0, 0
    while pos < len(xs):
        size = sizes[k % len(sizes)]
        out += monitor.update_many(xs[pos : pos + size], start + pos)
        pos, k = pos + size, k + 1
    return out


def assert_same_state(a: FeatureDriftMonitor, b: FeatureDriftMonitor) -> None:
    assert list(a._detectors) == list(b._detectors)
    assert a._quiet_until == b._quiet_until
    for name, da in a._detectors.items():
        db = b._detectors[name]
        assert (da.detector is None) == (db.detector is None), name
        # repr: a warm-up on overflowing values leaves NaN in both, and NaN != NaN.
        assert repr((da.var.n, da.mean, da.std)) == repr((db.var.n, db.mean, db.std)), name
        if da.detector is None:
            continue
        pa: Any = da.detector
        pb: Any = db.detector
        assert pa._x_mean.n == pb._x_mean.n
        for attr in ("_sum_increase", "_sum_decrease", "_min_increase", "_max_decrease"):
            assert math.isclose(getattr(pa, attr), getattr(pb, attr), rel_tol=1e-9, abs_tol=1e-9), attr
        assert math.isclose(pa._x_mean.get(), pb._x_mean.get(), rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=6),
    dirty=st.sampled_from([0.0, 0.05, 0.3]),
)
def test_update_many_matches_update_for_any_cut(seed: int, sizes: list[int], dirty: float) -> None:
    xs = stream(2500, seed, dirty)
    one, many = FeatureDriftMonitor(FAST), FeatureDriftMonitor(FAST)
    expected = per_event(one, xs, 7)
    assert batched(many, xs, 7, sizes) == expected
    assert_same_state(one, many)


def test_alarms_mid_batch_new_feature_and_max_features(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[int, int]] = []
    vectorised = learners.drift_batch._run

    def counted(dets: Any, values: Any) -> Any:
        runs.append(values.shape)
        return vectorised(dets, values)

    monkeypatch.setattr(learners.drift_batch, "_run", counted)
    xs = stream(4000, seed=11, dirty=0.05, newcomer_at=1000)
    one, many = FeatureDriftMonitor(FAST), FeatureDriftMonitor(FAST)
    expected = per_event(one, xs, 0)
    got = batched(many, xs, 0, [500])
    assert got == expected
    assert sum(rows * cols for rows, cols in runs) > 3 * len(xs)  # most values went through the numpy path
    # The property is not vacuous: several features alarm, inside vectorised batches, and the cap bit.
    assert len({s.signal for s in got}) >= 3
    assert any(s.index % 500 not in (0, 499) for s in got)
    assert len(many._detectors) == FAST.max_features
    assert "late" not in many._detectors  # it appeared after the cap was reached
    wide = DriftConfig(**{**FAST.__dict__, "max_features": 64})
    one, many = FeatureDriftMonitor(wide), FeatureDriftMonitor(wide)
    expected = per_event(one, xs, 0)
    got = batched(many, xs, 0, [500])
    assert got == expected
    assert "feature:late" in {s.signal for s in got}  # a feature first seen mid-stream, then its step
    assert list(many._detectors) == list(one._detectors)


def test_default_config_twenty_features_long_batches() -> None:
    rng = random.Random(5)
    xs = [
        {
            f"f{j:02d}": rng.gauss(100.0 * j, 1.0 + j) + (2.0 * (1 + j) if i >= 9000 and j % 3 == 0 else 0.0)
            for j in range(20)
        }
        for i in range(15000)
    ]
    one, many = FeatureDriftMonitor(DriftConfig()), FeatureDriftMonitor(DriftConfig())
    expected = per_event(one, xs, 0)
    got = batched(many, xs, 0, [BLOCK * 3 + 17, 64, SCALAR_BATCH - 1, 333])
    assert got == expected
    assert {s.signal for s in expected} == {f"feature:f{j:02d}" for j in range(0, 20, 3)}
    assert_same_state(one, many)


def test_mixing_update_and_update_many_and_pickling_mid_stream() -> None:
    xs = stream(3000, seed=3, dirty=0.1)
    reference = FeatureDriftMonitor(FAST)
    expected = per_event(reference, xs, 100)
    mixed = FeatureDriftMonitor(FAST)
    got = mixed.update_many(xs[:700], 100) + per_event(mixed, xs[700:760], 800)
    restored: FeatureDriftMonitor = pickle.loads(pickle.dumps(mixed))
    got += restored.update_many(xs[760:1900], 860)
    restored = pickle.loads(pickle.dumps(restored))
    got += per_event(restored, xs[1900:1905], 2000) + batched(restored, xs[1905:], 2005, [40, 300])
    assert got == expected
    assert_same_state(reference, restored)


def test_edge_cases() -> None:
    monitor = FeatureDriftMonitor(FAST)
    assert monitor.update_many([], 0) == []
    junk = [{"a": math.nan, "b": None, "c": "x", "d": True, "e": math.inf}] * 100
    assert monitor.update_many(junk, 0) == [] and monitor._detectors == {}
    huge = [{"a": 1e308 if i % 2 else -1e308} for i in range(200)]  # finite, but their sum overflows
    reference = FeatureDriftMonitor(FAST)
    assert monitor.update_many(huge, 0) == per_event(reference, huge, 0)
    assert_same_state(reference, monitor)
    off = FeatureDriftMonitor(DriftConfig(feature_drift=False))
    assert off.update_many(stream(200, 1), 0) == [] and off._detectors == {}
