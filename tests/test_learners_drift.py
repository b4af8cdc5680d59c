"""Drift monitors: detection on stepped streams within a bound, silence on stationary raw features."""

from __future__ import annotations

import math
import random

from driftline.config import DriftConfig
from learners.drift import LOSS_CAP, ErrorDriftMonitor, FeatureDriftMonitor, LossDriftMonitor, loss_std_floor
from learners.synthetic import synthetic_stream


def test_error_monitor_detects_a_step_within_bound_and_ignores_improvements() -> None:
    rng = random.Random(0)
    monitor = ErrorDriftMonitor(DriftConfig())
    alarms = []
    for i in range(6000):
        p = 0.1 if i < 3000 else 0.4
        alarms += monitor.update(float(rng.random() < p), i)
    assert alarms and 3000 <= alarms[0].index < 3300
    assert alarms[0].detector == "adwin" and alarms[0].signal == "error"
    better = ErrorDriftMonitor(DriftConfig())
    assert not [
        s for i in range(6000) for s in better.update(float(rng.random() < (0.4 if i < 3000 else 0.1)), i)
    ]


def test_loss_monitor_detects_increase() -> None:
    rng = random.Random(1)
    monitor = LossDriftMonitor(DriftConfig())
    alarms = [
        s for i in range(4000) for s in monitor.update(rng.expovariate(1 / (0.3 if i < 2000 else 1.0)), i)
    ]
    assert alarms and 2000 <= alarms[0].index < 2300 and alarms[0].signal == "loss"
    assert all(a.index >= 2000 for a in alarms)


def test_a_near_perfect_classifier_a_little_less_sure_is_no_loss_drift_but_its_mistakes_are() -> None:
    """stagger-strings: a warm-up of 100 losses with no mistake fixed a std of ~0.001 nats, so right answers given
    at p 0.93 instead of 0.999 read 50 standard deviations off and alarmed. The classification floor (one capped
    mistake in a warm-up whose losses all stayed under log 2) keeps them quiet; a model now wrong one time in ten is
    still caught."""
    rng = random.Random(4)
    floor, below = loss_std_floor("classification", DriftConfig().ph_min_instances)
    assert loss_std_floor("regression", 100) == (0.0, math.inf) and 0.9 < floor < 1.0 and below == math.log(2)

    def losses(i: int) -> float:
        if i < 3000:
            return rng.uniform(0.0005, 0.002)  # confident and right
        if i < 6000:
            return rng.uniform(0.05, 0.09)  # right, a little less sure
        return LOSS_CAP if rng.random() < 0.1 else 0.07  # wrong one time in ten

    stream = [losses(i) for i in range(9000)]
    bare, floored = LossDriftMonitor(DriftConfig()), LossDriftMonitor(DriftConfig(), "classification")
    bare_alarms = [s.index for i, v in enumerate(stream) for s in bare.update(v, i)]
    floored_alarms = [s.index for i, v in enumerate(stream) for s in floored.update(v, i)]
    assert any(3000 <= i < 6000 for i in bare_alarms)  # what the floor is for
    assert not any(i < 6000 for i in floored_alarms)
    assert any(6000 <= i < 6500 for i in floored_alarms)


def test_the_loss_floor_leaves_a_warm_up_with_mistakes_alone() -> None:
    """elec: warm-ups holding mistakes (losses over log 2) keep their own std, however small, so the loss detector
    stays as sensitive as without the floor."""
    rng = random.Random(5)
    floor = loss_std_floor("classification", 100)[0]
    stream = [
        rng.choice((0.2, 0.3, 0.4, 0.8)) if i < 2000 else rng.choice((0.5, 0.6, 0.7, 1.1))
        for i in range(3000)
    ]
    monitors = LossDriftMonitor(DriftConfig()), LossDriftMonitor(DriftConfig(), "classification")
    alarms = [[s.index for i, v in enumerate(stream) for s in m.update(v, i)] for m in monitors]
    assert alarms[0] == alarms[1] and alarms[0] and alarms[0][0] >= 2000
    assert monitors[1]._detector.std < floor  # its own std, ~0.23


def test_the_loss_floor_follows_a_warm_up_length_set_live_and_regression_has_none() -> None:
    monitor = LossDriftMonitor(DriftConfig(), "classification")
    monitor.config = DriftConfig(ph_min_instances=1000)  # what ModelLifecycle._set does on `models set`
    monitor.reset()
    assert (
        monitor._detector.std_floor == loss_std_floor("classification", 1000)[0]
        and 0.3 < monitor._detector.std_floor < 0.33
    )
    assert LossDriftMonitor(DriftConfig(), "regression")._detector.std_floor == 0.0
    assert (
        LossDriftMonitor(DriftConfig())._detector.std_floor == 0.0
    )  # a monitor without a task (older checkpoints)


def test_feature_monitor_step_in_raw_units_detected_once_within_bound() -> None:
    rng = random.Random(2)
    monitor = FeatureDriftMonitor(DriftConfig())
    alarms = []
    for i in range(10000):
        x = {"price": 1000 + 50 * rng.gauss(0, 1) + (100 if i >= 5000 else 0), "flag": rng.random() < 0.5}
        alarms += monitor.update(x, i)
    assert [a.signal for a in alarms] == ["feature:price"]
    assert 5000 <= alarms[0].index < 5300 and alarms[0].detector == "page_hinkley"


def test_no_feature_alarm_on_stationary_raw_streams() -> None:
    for name in ("agrawal-stationary", "hyperplane-stationary", "sea-stationary"):
        rows, _ = synthetic_stream(name, 20000, seed=3)
        monitor = FeatureDriftMonitor(DriftConfig())
        alarms = [s for i, (_, _, x, _) in enumerate(rows) for s in monitor.update(x, i)]
        assert alarms == [], name


def test_nan_and_inf_never_reach_a_detector() -> None:
    monitor = FeatureDriftMonitor(DriftConfig(feature_warmup=10))
    error = ErrorDriftMonitor()
    for i in range(200):
        assert monitor.update({"a": float("nan"), "b": float("inf"), "c": None, "d": "x"}, i) == []
        assert error.update(float("nan"), i) == []
    assert monitor._detectors == {}
