"""A classification loss alarm stands only if the losses under the cap rose too (``learners.drift.CORROBORATE_LOSS``,
session 13): a model that grows confident (its right answers' losses fall) and now and then makes a capped mistake
its warm-up never saw raises no loss alarm; a real rise of the losses still does."""

from __future__ import annotations

import math
import pickle
import random

from driftline.config import DriftConfig
from learners.detectors import ScaledDetector
from learners.drift import LOSS_CAP, LossDriftMonitor


def _alarms(losses: list[float], task: str = "classification") -> list[int]:
    monitor = LossDriftMonitor(DriftConfig(), task)
    return [s.index for i, loss in enumerate(losses) for s in monitor.update(loss, i)]


def _confident_with_a_tail(seed: int, n: int = 4000) -> list[float]:
    """led-10class after a promotion: a warm-up of middling losses (1.0 +- 0.3, no capped one), then losses that
    fall (0.3 +- 0.1) with a capped mistake 2 % of the time."""
    rng = random.Random(seed)
    warm = [max(0.05, rng.gauss(1.0, 0.3)) for _ in range(100)]
    later = [LOSS_CAP if rng.random() < 0.02 else max(0.01, rng.gauss(0.3, 0.1)) for _ in range(n)]
    return warm + later


def test_capped_mistakes_while_the_other_losses_fall_raise_no_alarm() -> None:
    for seed in range(10):
        assert _alarms(_confident_with_a_tail(seed)) == []


def test_regression_losses_are_not_corroborated() -> None:
    # No cap for regression: the same values alarm as before session 13.
    assert any(_alarms(_confident_with_a_tail(seed), "regression") for seed in range(10))


def test_a_rise_of_the_losses_under_the_cap_is_still_alarmed() -> None:
    for seed in range(10):
        rng = random.Random(50 + seed)
        before = [max(0.01, rng.gauss(0.4, 0.2)) for _ in range(1000)]
        after = [LOSS_CAP if rng.random() < 0.02 else max(0.01, rng.gauss(0.9, 0.3)) for _ in range(1000)]
        alarms = _alarms(before + after)
        assert alarms and 1000 <= alarms[0] < 1300


def test_a_detector_pickled_before_corroboration_alarms_as_it_did() -> None:
    detector = ScaledDetector(100, "page_hinkley", {"mode": "up", "delta": 0.05, "threshold": 100.0}, "loss")
    for name in ("corroborate_below", "sub_mean", "recent"):
        detector.__dict__.pop(name, None)
    detector = pickle.loads(pickle.dumps(detector))
    assert detector.corroborate_below == math.inf and detector.recent is None
    alarms = [i for i, v in enumerate(_confident_with_a_tail(0)) if detector.update(v) is not None]
    assert alarms  # the old behaviour: the tail alone fires it
