"""Drift monitors: ADWIN on the served model's error, Page-Hinkley on the loss and on each numeric feature.

Every monitor takes raw observations, drops NaN/inf before any detector sees them, and returns a list of
:class:`DriftSignal` (empty when nothing happened). Page-Hinkley runs on *standardised* values: a warm-up window
estimates mean and standard deviation, so ``delta`` and ``threshold`` are in standard deviations and the same
defaults work whatever the feature's units. After an alarm the detector re-warms on the new regime (that is the
cool-down), so a permanent shift raises one alarm, not one per window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from river import drift, stats

from driftline.config import DriftConfig
from driftline.errors import ConfigError
from learners.drift_batch import BLOCK, feed_batch, new_features
from learners.features import finite

#: ``FeatureDriftMonitor.update_many`` takes the per-event path for batches under ``SCALAR_BATCH`` events or under
#: ``SCALAR_CELLS`` (events x monitored features): numpy's fixed cost per batch (~100 us with 20 features) is not
#: repaid. Measured crossovers: ~6 events with 20 features, ~16 with 5, ~40 with 1.
SCALAR_BATCH = 8
SCALAR_CELLS = 96


@dataclass(frozen=True)
class DriftSignal:
    """One alarm. ``signal`` is ``error``, ``loss`` or ``feature:<name>``; ``index`` the stream position."""

    detector: str  # "adwin" | "page_hinkley" | another ERROR_DETECTORS name
    signal: str
    index: int
    details: dict[str, str] = field(default_factory=dict)


#: Detectors ``DriftConfig.error_detector`` may name, for the served model's error. The binary ones take 0/1 errors
#: (classification only); ADWIN, KSWIN and Page-Hinkley take any real-valued error.
ERROR_DETECTORS = ("adwin", "kswin", "page_hinkley", "ddm", "eddm", "hddm_a", "hddm_w", "fhddm")
BINARY_DETECTORS = ("ddm", "eddm", "hddm_a", "hddm_w", "fhddm")


def error_detector(name: str, config: DriftConfig, seed: int = 0) -> Any:
    """A fresh River detector by name (River's defaults, ADWIN with ``adwin_delta``)."""
    from river.drift import binary

    makers: dict[str, Any] = {
        "adwin": lambda: drift.ADWIN(delta=config.adwin_delta),
        "kswin": lambda: drift.KSWIN(seed=seed),
        "page_hinkley": lambda: drift.PageHinkley(mode="up"),
        "ddm": binary.DDM,
        "eddm": binary.EDDM,
        "hddm_a": binary.HDDMA,
        "hddm_w": binary.HDDMW,
        "fhddm": binary.FHDDM,
    }
    if name not in makers:
        raise ConfigError(
            f"drift.error_detector: unknown detector {name!r}; known: {', '.join(ERROR_DETECTORS)}"
        )
    return makers[name]()


class ErrorDriftMonitor:
    """A detector (``DriftConfig.error_detector``, ADWIN by default) on the served model's error (0/1 for
    classification, absolute error for regression).

    Only increases of the error raise an alarm: a drop (a better model was promoted) is not drift to act on. ADWIN
    reports its two windows' means; for the other detectors the error rate of the last ``RECENT`` examples is
    compared with the rate since the last reset.
    """

    RECENT = 100

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the past errors (call when the served model changes)."""
        self._name = getattr(self.config, "error_detector", "adwin")
        self._detector = error_detector(self._name, self.config)
        self._adwin = self._detector  # the attribute name older checkpoints and tests know
        self._n = 0
        self._sum = 0.0
        self._recent: list[float] = []

    def update(self, error: float, index: int) -> list[DriftSignal]:
        if not finite(error):
            return []
        if getattr(self, "_name", "adwin") != "adwin":
            return self._update_other(float(error), index)
        before = self._adwin.estimation
        self._adwin.update(float(error))
        self._n += 1
        if not self._adwin.drift_detected or self._n < self.config.adwin_grace:
            return []
        after = self._adwin.estimation
        if after <= before:
            return []
        details = {
            "error_before": f"{before:.4f}",
            "error_after": f"{after:.4f}",
            "width": str(self._adwin.width),
        }
        return [DriftSignal("adwin", "error", index, details)]

    def _update_other(self, error: float, index: int) -> list[DriftSignal]:
        self._n += 1
        self._sum += error
        self._recent.append(error)
        if len(self._recent) > self.RECENT:
            self._recent.pop(0)
        self._detector.update(error)
        if not self._detector.drift_detected or self._n < self.config.adwin_grace:
            return []
        before, after = self._sum / self._n, sum(self._recent) / len(self._recent)
        name = self._name
        # The detector is left to reset itself (River's do after a drift); the rates restart with it.
        self._n, self._sum, self._recent = 0, 0.0, []
        if after <= before:
            return []
        return [
            DriftSignal(
                name, "error", index, {"error_before": f"{before:.4f}", "error_after": f"{after:.4f}"}
            )
        ]


class _ScaledPageHinkley:
    """Page-Hinkley on values standardised by a warm-up window; re-warms after every alarm."""

    def __init__(self, warmup: int, delta: float, threshold: float, min_instances: int, mode: str) -> None:
        self.warmup = warmup
        self.delta = delta
        self.threshold = threshold
        self.min_instances = min_instances
        self.mode = mode
        self._start()

    def _start(self) -> None:
        self._var = stats.Var()
        self._mean = 0.0
        self._std = 1.0
        self._ph: drift.PageHinkley | None = None

    def update(self, value: float) -> dict[str, str] | None:
        """Feed one finite value; returns alarm details or None."""
        if self._ph is None:
            self._var.update(value)
            if self._var.n >= self.warmup:
                self._mean = self._var.mean.get()
                # A constant feature gets a tiny std so any later movement is visible but bounded.
                self._std = math.sqrt(self._var.get()) or 1e-6
                self._ph = drift.PageHinkley(
                    min_instances=self.min_instances,
                    delta=self.delta,
                    threshold=self.threshold,
                    mode=self.mode,
                )
            return None
        z = (value - self._mean) / self._std
        z = max(-50.0, min(50.0, z))  # one wild outlier must not be an alarm by itself
        self._ph.update(z)
        if not self._ph.drift_detected:
            return None
        details = {
            "warmup_mean": f"{self._mean:.6g}",
            "warmup_std": f"{self._std:.6g}",
            "last_value": f"{value:.6g}",
        }
        self._start()
        return details


class LossDriftMonitor:
    """Page-Hinkley (increases only) on the per-example loss of the served model, standardised."""

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self.reset()

    def reset(self) -> None:
        c = self.config
        self._ph = _ScaledPageHinkley(
            c.ph_min_instances, c.ph_loss_delta, c.ph_loss_threshold, c.ph_min_instances, "up"
        )

    def update(self, loss: float, index: int) -> list[DriftSignal]:
        if not self.config.ph_loss or not finite(loss):
            return []
        details = self._ph.update(float(loss))
        return [] if details is None else [DriftSignal("page_hinkley", "loss", index, details)]


class FeatureDriftMonitor:
    """Page-Hinkley per numeric feature (data drift: no labels needed), scale-free, with a per-feature cool-down.

    Booleans and strings are not monitored; the first ``max_features`` numeric features seen are.
    """

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self._detectors: dict[str, _ScaledPageHinkley] = {}
        self._quiet_until: dict[str, int] = {}

    def update(self, x: Mapping[str, Any], index: int) -> list[DriftSignal]:
        c = self.config
        if not c.feature_drift:
            return []
        out: list[DriftSignal] = []
        for name, value in x.items():
            if not finite(value):
                continue
            det = self._detectors.get(name)
            if det is None:
                if len(self._detectors) >= c.max_features:
                    continue
                det = self._detectors[name] = self._new_detector()
            details = det.update(float(value))
            if details is None:
                continue
            if index < self._quiet_until.get(name, -1):
                continue
            self._quiet_until[name] = index + c.feature_cooldown
            out.append(DriftSignal("page_hinkley", f"feature:{name}", index, details))
        return out

    def update_many(self, xs: Sequence[Mapping[str, Any]], start_index: int) -> list[DriftSignal]:
        """Same alarms as ``update(xs[i], start_index + i)`` for each ``i`` in order, computed column-wise.

        Each feature's values are fed to its detector with numpy (see :mod:`learners.drift_batch`); features are
        registered, alarms ordered and the cool-down applied exactly as the per-event path does. Small batches
        take the per-event path. The two may be mixed freely on one monitor.

        >>> import random
        >>> rng = random.Random(0)
        >>> xs = [{"a": rng.gauss(0, 1) + (3.0 if i >= 1000 else 0.0)} for i in range(2000)]
        >>> [(s.signal, s.index) for s in FeatureDriftMonitor().update_many(xs, 0)]
        [('feature:a', 1044)]
        """
        c = self.config
        if not c.feature_drift:
            return []
        width = len(self._detectors) or (len(xs[0]) if xs else 0)
        if len(xs) < SCALAR_BATCH or len(xs) * width < SCALAR_CELLS:
            return [s for i, x in enumerate(xs) for s in self.update(x, start_index + i)]
        out: list[DriftSignal] = []
        for start in range(0, len(xs), BLOCK):
            out += self._update_block(xs[start : start + BLOCK], start_index + start)
        return out

    def _update_block(self, xs: Sequence[Mapping[str, Any]], start_index: int) -> list[DriftSignal]:
        c = self.config
        detectors = self._detectors
        # Features enter at their first finite value, in event then key order, while there is room: which ones
        # does not depend on any detector, so it can be settled for the whole block before feeding the columns.
        for name in new_features(detectors, xs, c.max_features - len(detectors)):
            detectors[name] = self._new_detector()
        alarms = feed_batch(detectors, xs)
        # Per-event order: by event, then by the feature's position in that event.
        alarms.sort(key=lambda a: (a[0], list(xs[a[0]]).index(a[1])))
        out: list[DriftSignal] = []
        for position, name, details in alarms:
            index = start_index + position
            if index < self._quiet_until.get(name, -1):
                continue
            self._quiet_until[name] = index + c.feature_cooldown
            out.append(DriftSignal("page_hinkley", f"feature:{name}", index, details))
        return out

    def _new_detector(self) -> _ScaledPageHinkley:
        c = self.config
        return _ScaledPageHinkley(
            c.feature_warmup, c.ph_feature_delta, c.ph_feature_threshold, c.ph_min_instances, "both"
        )
