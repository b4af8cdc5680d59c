"""The drift-detector registry: detectors by name in config, with per-detector parameters, checked up front."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from driftline.config import DriftConfig, GuardConfig
from driftline.errors import ConfigError
from driftline.settings import load_settings
from learners.detectors import DETECTORS, build_detector, detector_kind, register_detector
from learners.drift import (
    ErrorDriftMonitor,
    FeatureDriftMonitor,
    LossDriftMonitor,
    check_drift_config,
    detector_config,
)
from learners.lifecycle_control import check_setting
from learners.pickle_allow import STATE_ONLY


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("ADWIN", "adwin"),
        ("PageHinkley", "page_hinkley"),
        ("HDDM_A", "hddm_a"),
        ("hddmw", "hddm_w"),
        ("KSWIN", "kswin"),
    ],
)
def test_river_class_names_and_driftline_names_resolve_to_one_detector(spelling: str, name: str) -> None:
    assert detector_kind(spelling).name == name


def test_every_registered_detector_builds_and_alarms_on_a_step() -> None:
    """Each registered detector, fed 0/1 errors that step from 10% to 60% at 2000, alarms within 600 events of it."""
    for name in DETECTORS:
        rng = random.Random(3)
        det = build_detector(name, detector_config(DriftConfig(error_detector=name), "error")[1])
        alarms = []
        for i in range(4000):
            det.update(float(rng.random() < (0.1 if i < 2000 else 0.6)))
            if det.drift_detected:
                alarms.append(i)
        assert any(2000 <= i < 2600 for i in alarms), (name, alarms[:10])


def test_defaults_come_from_the_flat_settings_and_params_override_them() -> None:
    assert detector_config(DriftConfig(adwin_delta=0.01), "error") == ("adwin", {"delta": 0.01})
    config = DriftConfig(adwin_delta=0.01, error_detector_params={"delta": 0.5, "clock": 8})
    assert detector_config(config, "error") == ("adwin", {"delta": 0.5, "clock": 8})
    name, kwargs = detector_config(
        DriftConfig(ph_loss_threshold=42.0, loss_detector_params={"alpha": 0.99}), "loss"
    )
    assert (
        name == "page_hinkley"
        and kwargs["threshold"] == 42.0
        and kwargs["alpha"] == 0.99
        and kwargs["mode"] == "up"
    )
    # Page-Hinkley's defaults are not handed to another detector that happens to share a parameter name.
    assert detector_config(DriftConfig(loss_detector="adwin"), "loss") == ("adwin", {})


@pytest.mark.parametrize(
    ("config", "task", "message"),
    [
        (
            DriftConfig(error_detector="nope"),
            "classification",
            "drift.error_detector: unknown detector 'nope'",
        ),
        (
            DriftConfig(error_detector_params={"window": 3}),
            "classification",
            "adwin has no parameter 'window'",
        ),
        (
            DriftConfig(feature_detector_params={"colour": 1}),
            "classification",
            "drift.feature_detector_params",
        ),
        (DriftConfig(loss_detector="ddm"), "classification", "drift.loss_detector 'ddm' takes 0/1 values"),
        (DriftConfig(error_detector="eddm"), "regression", "not for regression errors"),
        (
            DriftConfig(error_detector="kswin", error_detector_params={"alpha": 2.0}),
            "classification",
            "kswin refused",
        ),
        # Text where the detector takes a number: PyYAML reads `threshold: 1.0e9` as the string "1.0e9". It was
        # valid, then River's first comparison ended replay and the trainer with a TypeError (session 41).
        (
            DriftConfig(error_detector="page_hinkley", error_detector_params={"threshold": "1.0e9"}),
            "classification",
            r"drift.error_detector_params: page_hinkley threshold must be a number .* got '1.0e9' .*1.0e\+9",
        ),
        (
            DriftConfig(loss_detector="adwin", loss_detector_params={"clock": True}),
            "classification",
            "drift.loss_detector_params: adwin clock must be a number",
        ),
        # Parameters that default to None reached River unchecked: KSWIN kept window "abc" as a deque of letters
        # and took seed 1.5 (session 41, misc41).
        (
            DriftConfig(error_detector="kswin", error_detector_params={"window": "abc"}),
            "classification",
            "drift.error_detector_params: kswin window must be a list of finite numbers .* got 'abc'",
        ),
        (
            DriftConfig(feature_detector="kswin", feature_detector_params={"seed": 1.5}),
            "classification",
            "drift.feature_detector_params: kswin seed must be a whole number, got 1.5",
        ),
        (
            DriftConfig(error_detector="kswin", error_detector_params={"seed": "7"}),
            "classification",
            "kswin seed must be a whole number, got '7'",
        ),
        (
            DriftConfig(error_detector="kswin", error_detector_params={"window": [0.1, float("nan")]}),
            "classification",
            "kswin window must be a list of finite numbers",
        ),
        (
            DriftConfig(error_detector="fhddm", error_detector_params={"short_window_size": 2.5}),
            "classification",
            "fhddm short_window_size must be a whole number",
        ),
    ],
)
def test_bad_detector_config_is_refused_naming_the_setting(
    config: DriftConfig, task: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_drift_config(config, task)


def test_none_default_parameters_of_the_right_type_are_taken() -> None:
    params = {"seed": 3, "window": [0.1, 0.2, 0.3], "window_size": 60, "stat_size": 20}
    check_drift_config(DriftConfig(error_detector="kswin", error_detector_params=params), "classification")
    check_drift_config(
        DriftConfig(error_detector="fhddm", error_detector_params={"short_window_size": 20}), "classification"
    )


def test_monitors_run_the_configured_detectors() -> None:
    rng = random.Random(4)
    loss = LossDriftMonitor(DriftConfig(loss_detector="adwin", loss_detector_params={"delta": 0.001}))
    alarms = [s for i in range(4000) for s in loss.update(rng.expovariate(1 / (0.3 if i < 2000 else 1.0)), i)]
    assert alarms and alarms[0].detector == "adwin" and alarms[0].signal == "loss" and alarms[0].index >= 2000

    xs = [{"a": rng.gauss(0, 1) + (3.0 if i >= 1500 else 0.0), "b": rng.gauss(5, 2)} for i in range(3000)]
    config = DriftConfig(
        feature_detector="kswin", feature_warmup=200, feature_detector_params={"seed": 1, "alpha": 1e-4}
    )
    one, many = FeatureDriftMonitor(config), FeatureDriftMonitor(config)
    per_event = [s for i, x in enumerate(xs) for s in one.update(x, i)]
    batched = [
        s for start in range(0, len(xs), 500) for s in many.update_many(xs[start : start + 500], start)
    ]
    assert per_event == batched  # a detector without a vectorised path takes the per-value path, same alarms
    # KSWIN's own alpha (River's default 0.005 alarms on the stationary "b" here) reached the detector.
    assert [(s.detector, s.signal) for s in per_event] == [("kswin", "feature:a")]
    assert 1500 <= per_event[0].index < 1600

    errors = ErrorDriftMonitor(DriftConfig(error_detector="PageHinkley", adwin_grace=0))
    alarms = [
        s for i in range(4000) for s in errors.update(float(rng.random() < (0.1 if i < 2000 else 0.6)), i)
    ]
    assert alarms and alarms[0].detector == "page_hinkley" and alarms[0].index >= 2000


class _Threshold:
    """A toy detector: alarms when a value exceeds ``limit``."""

    def __init__(self, limit: float = 1.0) -> None:
        self.limit = limit
        self.drift_detected = False

    def update(self, x: float) -> None:
        self.drift_detected = x > self.limit


def test_a_registered_detector_is_usable_by_name_with_its_parameters() -> None:
    register_detector("threshold", _Threshold)
    try:
        with pytest.raises(ConfigError, match="already registered"):
            register_detector("Threshold", _Threshold)
        monitor = ErrorDriftMonitor(
            DriftConfig(error_detector="threshold", error_detector_params={"limit": 5.0}, adwin_grace=0)
        )
        # The alarm is reported because the last 100 errors (ErrorDriftMonitor.RECENT) are worse than all of them.
        values: list[Any] = [1.0] * 150 + [9.0]
        alarms = [s for i, v in enumerate(values) for s in monitor.update(v, i)]
        assert [(a.detector, a.index) for a in alarms] == [("threshold", 150)]
    finally:
        del DETECTORS["threshold"]


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_registered_detector_passes_the_start_check_a_restart_could_restore(name: str) -> None:
    """README's detectors, each as the error detector: a trainer's checkpoint holding it restores (kswin, ddm, eddm,
    hddm_a, hddm_w and fhddm were missing from the state's allow-list: their trainers restarted from nothing)."""
    check_drift_config(DriftConfig(error_detector=name))


def test_a_registered_detector_a_restarted_trainer_could_not_restore_is_refused_at_start() -> None:
    """A trainer's checkpoint pickles its detectors and a restart reads it with the state's allow-list: a detector
    class of one's own missing from ``STATE_ONLY`` was taken at start and refused at the first restart (a new
    lineage, learned from nothing). Now the start check refuses it, saying what to list."""
    register_detector("threshold_state", _Threshold)
    config = DriftConfig(error_detector="threshold_state")
    try:
        with pytest.raises(ConfigError, match=r"^drift\.error_detector: .*_Threshold.*STATE_ONLY"):
            check_drift_config(config)
        STATE_ONLY[(__name__, "_Threshold")] = "plain attributes, no __reduce__ or __setstate__ of its own"
        try:
            check_drift_config(config)
        finally:
            del STATE_ONLY[(__name__, "_Threshold")]
    finally:
        del DETECTORS["threshold_state"]


def test_settings_file_and_live_set_reach_the_registry(tmp_path: Path) -> None:
    path = tmp_path / "driftline.yaml"
    path.write_text(
        "drift:\n  error_detector: kswin\n  error_detector_params: {alpha: 0.001, window_size: 200}\n"
    )
    drift = load_settings(path, environ={}).drift
    assert detector_config(drift, "error") == ("kswin", {"seed": 0, "alpha": 0.001, "window_size": 200})

    assert check_setting("drift.error_detector", "hddm_w", GuardConfig(), DriftConfig())[2] == "hddm_w"
    with pytest.raises(ConfigError, match="unknown detector 'nope'"):
        check_setting("drift.error_detector", "nope", GuardConfig(), DriftConfig())
