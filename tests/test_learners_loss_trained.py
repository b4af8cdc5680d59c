"""Regression's second loss detector, on the trained model's scale (``learners.drift.TRAINED_*``; on since session 16).

The scenario is friedman-gra's recurring drift as the served model sees it: the absolute error of an untrained
model (MAE ~6.6) falls to ~2.0 as it learns, and a concept the model knew before comes back at label 8,000,
lifting the MAE to ~2.7 for a few hundred labels while the model re-adapts.
"""

from __future__ import annotations

import math
import pickle
import random

import pytest

import learners.drift as drift
from driftline.config import DriftConfig
from learners.drift import LossDriftMonitor

RISE_AT = 8000


def _abs_normal(rng: random.Random, mae: float) -> float:
    """|N(0, s)| with mean ``mae``."""
    return abs(rng.gauss(0.0, mae / math.sqrt(2.0 / math.pi)))


def _curve(seed: int, rise: float) -> list[float]:
    """The learning curve (MAE 6.6 -> 2.0 over the first 1,500 labels), then ``rise`` more for 400 labels."""
    rng = random.Random(seed)
    out = []
    for i in range(10_000):
        mae = 2.0 + 4.6 * math.exp(-i / 300)
        if RISE_AT <= i < RISE_AT + 400:
            mae += rise
        out.append(_abs_normal(rng, mae))
    return out


def _alarms(monitor: LossDriftMonitor, losses: list[float]) -> list[int]:
    return [s.index for i, v in enumerate(losses) for s in monitor.update(v, i)]


def test_the_recurring_rise_is_alarmed_on_the_trained_scale() -> None:
    hits = 0
    for seed in range(10):
        alarms = _alarms(LossDriftMonitor(DriftConfig(), "regression"), _curve(seed, 0.7))
        hits += any(RISE_AT <= a < RISE_AT + 400 for a in alarms)
    assert hits >= 9


def test_the_untrained_scale_alone_misses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first detector alone (main before session 16) sees the rise at no more than a few seeds."""
    monkeypatch.setattr(drift, "TRAINED_LOSS_TASKS", ())
    hits = 0
    for seed in range(10):
        alarms = _alarms(LossDriftMonitor(DriftConfig(), "regression"), _curve(seed, 0.7))
        hits += any(RISE_AT <= a < RISE_AT + 400 for a in alarms)
    assert hits <= 3


def test_no_alarm_on_the_learning_curve_alone() -> None:
    for seed in range(10):
        assert _alarms(LossDriftMonitor(DriftConfig(), "regression"), _curve(seed, 0.0)) == []


def test_the_trained_detector_waits_for_the_model_and_marks_its_alarms() -> None:
    monitor = LossDriftMonitor(DriftConfig(), "regression")
    rng = random.Random(3)
    # A step far above the scale right after the reset: only the first detector can see it (the second waits).
    early = [_abs_normal(rng, 2.0) for _ in range(150)] + [_abs_normal(rng, 8.0) for _ in range(100)]
    signals = [s for i, v in enumerate(early) for s in monitor.update(v, i)]
    assert signals and all("scale" not in s.details for s in signals)
    monitor = LossDriftMonitor(DriftConfig(), "regression")
    signals = [s for i, v in enumerate(_curve(0, 0.7)) for s in monitor.update(v, i)]
    assert any(s.details.get("scale") == "trained" for s in signals)
    assert all(s.index >= drift.TRAINED_SETTLE + drift.TRAINED_WARMUP for s in signals)


@pytest.mark.parametrize("task", ["classification", None])
def test_classification_has_no_trained_detector(task: str | None) -> None:
    assert LossDriftMonitor(DriftConfig(), task)._trained is None


def test_a_chosen_loss_detector_runs_alone() -> None:
    config = DriftConfig(loss_detector="adwin", loss_detector_params={"delta": 0.001})
    assert LossDriftMonitor(config, "regression")._trained is None


def test_a_monitor_pickled_before_session_15_keeps_working() -> None:
    monitor = LossDriftMonitor(DriftConfig(), "regression")
    for key in ("_trained", "_trained_wait"):
        del monitor.__dict__[key]
    restored = pickle.loads(pickle.dumps(monitor))
    assert restored._trained is None
    assert _alarms(restored, _curve(1, 0.0)[:3000]) == []
    restored.reset()
    assert restored._trained is not None
