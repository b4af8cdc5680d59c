"""The sentinel's p0 keeps learning after the warm-up (``learners.sentinel.GROW_BASELINE``, session 13; off by
default, switched on here): a warm-up that read the copy's error low no longer fixes the baseline for the copy's
whole life."""

from __future__ import annotations

import math
import pickle
import random

import pytest

import learners.sentinel as sentinel_module
from learners.sentinel import BernoulliCusum

THRESHOLD = math.log(1000)


@pytest.fixture(autouse=True)
def _grow_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sentinel_module, "GROW_BASELINE", True)


def _warm(test: BernoulliCusum, rate_every: int = 20) -> None:
    for i in range(test.warmup):
        test.update(i % rate_every == 0)  # a warm-up that reads exactly 1 / rate_every


def test_the_baseline_learns_the_error_of_the_labels_between_excursions() -> None:
    test = BernoulliCusum(1000, 0.05, THRESHOLD)
    _warm(test)  # reads 0.05
    assert abs(test.rate - 0.051) < 0.001
    rng = random.Random(3)
    for _ in range(5000):
        test.update(rng.random() < 0.07)
    # Every label but the current excursion's is baseline: the rate is the history's, not the warm-up's.
    assert 0.062 < test.rate < 0.075
    assert test.base_n + test.run_n == 6000


def test_a_warm_up_that_read_the_error_low_raises_fewer_false_alarms() -> None:
    alarms = 0
    for seed in range(20):
        rng = random.Random(seed)
        test = BernoulliCusum(1000, 0.05, THRESHOLD)
        _warm(test)  # reads 0.05; the copy's true error is 0.07 (2.9 SE above), and stays there
        alarms += any(test.update(rng.random() < 0.07) for _ in range(8000))
    assert alarms <= 8  # 13 of 20 with the warm-up's p0 for life


def test_a_real_rise_of_the_error_is_still_alarmed() -> None:
    for seed in range(20):
        rng = random.Random(100 + seed)
        test = BernoulliCusum(1000, 0.05, THRESHOLD)
        for _ in range(4000):  # a stationary stretch first, which the baseline learns
            test.update(rng.random() < 0.1)
        delay = next((i for i in range(2000) if test.update(rng.random() < 0.2)), None)
        assert delay is not None and delay < 500


def test_a_test_pickled_before_the_growing_baseline_keeps_its_warm_up_p0() -> None:
    test = BernoulliCusum(100, 0.05, THRESHOLD)
    _warm(test)
    state = test.__dict__.copy()
    for name in ("base_n", "base_errors", "run_n", "run_errors"):
        state.pop(name, None)
    old = BernoulliCusum.__new__(BernoulliCusum)
    old.__dict__.update(state)
    old = pickle.loads(pickle.dumps(old))
    p0 = old.p0
    for i in range(500):
        old.update(i % 5 == 0)
    assert old.p0 == p0
