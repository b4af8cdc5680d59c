"""Drift monitors: one detector on the served model's error, one on its loss and one per numeric feature.

Which detector each monitor runs, and its parameters, is configuration (:class:`DriftConfig`, built from the
registry in :mod:`learners.detectors`): by default ADWIN on the error and Page-Hinkley on the loss and features.
Every monitor takes raw observations, drops NaN/inf before any detector sees them, and returns a list of
:class:`DriftSignal` (empty when nothing happened). The loss and feature detectors run on *standardised* values
(:class:`~learners.detectors.ScaledDetector`): a warm-up window estimates mean and standard deviation, so
``delta`` and ``threshold`` are in standard deviations and the same defaults work whatever the feature's units.
After an alarm the detector re-warms on the new regime (that is the cool-down), so a permanent shift raises one
alarm, not one per window.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from river.drift import ADWIN

from driftline.config import DriftConfig, check_sentinel_config
from driftline.errors import ArtifactError, ConfigError, SecurityError
from learners import ph_defer, safe_pickle
from learners.detectors import DETECTORS, ScaledDetector, build_detector, detector_kind, detector_params
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

    detector: str  # the detector's registered name ("adwin", "page_hinkley", ...)
    signal: str
    index: int
    details: dict[str, str] = field(default_factory=dict)


#: Detectors ``DriftConfig.error_detector`` may name, for the served model's error. The binary ones take 0/1 errors
#: (classification only); the others take any real-valued error.
ERROR_DETECTORS = tuple(DETECTORS)


def _defaults(config: DriftConfig, signal: str, name: str) -> dict[str, Any]:
    """driftline's defaults for detector ``name`` on ``signal`` (the user's ``*_params`` go over them)."""
    kind = detector_kind(name, f"drift.{signal}_detector").name
    if signal == "error":
        error: dict[str, dict[str, Any]] = {
            "adwin": {"delta": config.adwin_delta},
            "kswin": {"seed": 0},
            "page_hinkley": {"mode": "up"},  # only increases of the error are drift to act on
        }
        return error.get(kind, {})
    if kind != "page_hinkley":
        return {}
    if signal == "loss":
        delta, threshold, mode = config.ph_loss_delta, config.ph_loss_threshold, "up"
    else:
        delta, threshold, mode = config.ph_feature_delta, config.ph_feature_threshold, "both"
    return {"min_instances": config.ph_min_instances, "delta": delta, "threshold": threshold, "mode": mode}


def detector_config(config: DriftConfig, signal: str) -> tuple[str, dict[str, Any]]:
    """``(registered name, keyword arguments)`` of the detector on ``signal`` (error, loss or feature), checked:
    a ConfigError names the setting of an unknown detector or parameter."""
    setting = f"drift.{signal}_detector"
    name = detector_kind(getattr(config, f"{signal}_detector"), setting).name
    params = getattr(config, f"{signal}_detector_params")
    return name, detector_params(name, params, defaults=_defaults(config, signal, name), setting=setting)


def check_drift_config(config: DriftConfig, task: str = "classification") -> None:
    """Refuse, naming the setting, what would fail later in a monitor: an unknown detector or parameter, a value
    the detector refuses, or a 0/1 detector where the values are not 0/1 (a regression error, a loss, a feature).
    """
    for signal in ("error", "loss", "feature"):
        setting = f"drift.{signal}_detector"
        name, kwargs = detector_config(config, signal)
        if DETECTORS[name].binary and (signal != "error" or task == "regression"):
            what = "regression errors" if signal == "error" else f"{signal} values"
            raise ConfigError(
                f"{setting} {name!r} takes 0/1 values: not for {what} (use adwin, kswin or page_hinkley)"
            )
        check_restorable(build_detector(name, kwargs, setting), name, setting)
    check_sentinel_config(config)


def check_restorable(detector: Any, name: str, setting: str) -> None:
    """Refuse, naming ``setting``, a detector a trainer's checkpoint could not bring back: the checkpoint pickles
    the monitors' detectors, and a restarted trainer reads it with the restricted state loader
    (:func:`learners.safe_pickle.loads_state`), which admits only the classes of
    :data:`learners.pickle_allow.STATE_ALLOWED`. A detector registered from outside with a class of its own that
    the list lacks was taken at start and refused at the first restart, which then went back to older
    checkpoints, all refused, and learned from nothing again (session 44). Fed 200 values of 0 and 1 first, as a
    learner's check learns made-up labels: some detectors build their inner objects only as values come."""
    try:
        for i in range(200):
            detector.update(i % 2)
        raw = pickle.dumps(detector, protocol=5)
    except Exception as exc:
        raise ConfigError(
            f"{setting}: {name}'s detector cannot be checkpointed (fed 0/1 values, then pickled): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        safe_pickle.loads_state(raw)
    except (SecurityError, ArtifactError) as exc:
        raise ConfigError(
            f"{setting}: a trainer restarting from its checkpoint could not restore {name}'s detector ({exc}); "
            "list its classes in learners.pickle_allow.STATE_ONLY, each with why constructing it is safe "
            "(README, Extending)"
        ) from exc


class ErrorDriftMonitor:
    """A detector (``DriftConfig.error_detector``, ADWIN by default) on the served model's error (0/1 for
    classification, absolute error for regression).

    Only increases of the error raise an alarm: a drop (a better model was promoted) is not drift to act on. ADWIN
    reports its two windows' means; for the other detectors the error rate of the last ``RECENT`` examples is
    compared with the rate since the last alarm.
    """

    RECENT = 100

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the past errors (call when the served model changes)."""
        self._name, kwargs = detector_config(self.config, "error")
        self._detector: Any = build_detector(self._name, kwargs)
        self._n = 0
        self._sum = 0.0
        self._recent: list[float] = []

    def update(self, error: float, index: int) -> list[DriftSignal]:
        if not (math.isfinite(error) if type(error) is float else finite(error)):
            return []
        if self._name != "adwin":
            return self._update_other(float(error), index)
        detector = self._detector
        if type(detector) is ADWIN:
            # ADWIN.estimation without its three property layers (read every label): total / width, 0 if empty.
            helper = detector._helper
            width = helper.get_width()
            before = helper.get_total() / width if width else 0.0
            # ADWIN.update's own statements without its method and property calls (every label, twice in a quiet
            # stretch: the served and the reference snapshot's): after a drift a new window, then the update.
            if detector._drift_detected:
                detector._reset()
                helper = detector._helper
            detected = detector._drift_detected = helper.update(float(error))
        else:
            before = detector.estimation
            detector.update(float(error))
            detected = detector.drift_detected
        self._n += 1
        if not detected or self._n < self.config.adwin_grace:
            return []
        after = self._detector.estimation
        if after <= before:
            return []
        details = {
            "error_before": f"{before:.4f}",
            "error_after": f"{after:.4f}",
            "width": str(self._detector.width),
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


# The log loss of a confident wrong answer is capped so one event cannot dominate the loss monitor.
LOSS_CAP = 10.0
# A classification loss alarm stands only if the losses under LOSS_CAP rose too (``ScaledDetector``'s
# ``corroborate_below``): led-10class's false loss alarms were a few capped mistakes while its other losses fell;
# elec's 15 loss alarms all came with the losses under the cap up (BENCHMARKS-accuracy.md, session 13).
CORROBORATE_LOSS = True


# Regression's absolute error is capped once by a ``learners.detectors.TailCap`` (at most 16 times the median of the
# last 51; a value over 64 times it counts as the median) before the error and loss monitors see it
# (``ModelLifecycle._monitor``; the cap is kept across the monitors' resets: the label noise it measures does not
# change with the served model). On Friedman with 1 % of its labels x50 (stationary) they raised 3-9 false alarms per
# 10,000 events, with the cap 0-3 (BENCHMARKS-accuracy.md, "Session 16: heavy-tailed labels").
TAIL_CAP = True


# Regression's second loss detector, on the trained model's scale (``LossDriftMonitor``): it waits
# ``TRAINED_SETTLE`` losses after each reset and after each of its alarms (the model is still learning, or being
# replaced), fixes its scale over ``TRAINED_WARMUP`` losses, then runs Page-Hinkley with ``TRAINED_PH``. Why: the
# first detector's scale is fixed by the first 100 labels of the *untrained* model (friedman-gra: mean 6.6, std 5.6
# against a trained MAE of ~2.0) and River's Page-Hinkley compares with the mean of every loss since, so a recurring
# drift that lifts the trained model's MAE by ~0.6 for ~300 labels peaked at 14-23 against its threshold of 100
# (BENCHMARKS-accuracy.md, sessions 13 and 15). Measured as a shadow of the real detector on the six regression
# streams of ``bench.unseen`` at five seeds (``docs/experiments/loss_shadow.py``): delta 0.1 / threshold 50 over a
# 500-loss warm-up raised no alarm away from a drift where 0.05 / 50, 0.05 / 60 and 0.1 / 40 did. ``alpha`` 1 (no
# forgetting; River's default is 0.9999): with forgetting the statistic is an AR(1) process whose spread grows to
# ~70 standard deviations over thousands of stationary labels, so the false alarms of a threshold of 50 come late in
# long stationary runs (3 in 30 simulated streams of 10,000 labels; none with alpha 1).
# On for regression since session 16. Measured at five seeds it found friedman-gra's second drift at every one (base
# 3 of 5; a missed abrupt drift fails issue 13's bound) with no false alarm in 90 runs. Its one cost in session 15:
# by alarming on mv-shift's reversal a few labels earlier it moved that stream's MAE at seed 13 10.32 -> 12.29,
# because the challenger's tree then stalled on a tie; since session 16 a regression challenger's tree splits ties
# sooner (``learners.pool.RECOVERY_TAU``) and the same seed ends at 9.78 (BENCHMARKS-accuracy.md, sessions 15-16).
TRAINED_LOSS_TASKS: tuple[str, ...] = ("regression",)
TRAINED_SETTLE = 1000
TRAINED_WARMUP = 500
TRAINED_PH = {"delta": 0.1, "threshold": 50.0, "alpha": 1.0}


def loss_std_floor(task: str, warmup: int) -> tuple[float, float]:
    """``(std_floor, floor_below)`` of the loss detector's warm-up: for classification, a warm-up in which the true
    class never had less than even odds (every loss below log 2) fixes a std of at least that of ``warmup`` losses
    holding one capped mistake. Why: such a warm-up of a near-perfect model cannot tell an error rate of 0 from 1 %,
    yet its std (~0.001 nats) made the model merely a little less sure of right answers (0.07 nats) 50 standard
    deviations off: stagger-strings' false loss alarms at seeds 100 and 7. Floored always, elec's loss detector
    (warm-up stds 0.21-0.8 with mistakes in every window) went blunt and elec lost 1.1 points (BENCHMARKS-accuracy.md,
    session 11). Regression losses have no such scale: no floor. (The population std: River's sample std of the same
    warm-up reads 1.0, a difference of no consequence.)"""
    if task != "classification" or warmup < 2:
        return 0.0, math.inf
    q = 1.0 / warmup
    return LOSS_CAP * math.sqrt(q * (1.0 - q)), math.log(2.0)


class LossDriftMonitor:
    """A detector (``DriftConfig.loss_detector``; Page-Hinkley on increases by default) on the per-example loss of
    the served model, standardised.

    With ``TRAINED_LOSS_TASKS`` naming the task (regression) and the default Page-Hinkley, a second
    one runs on the *trained* model's scale (``TRAINED_*`` above): the first is scaled by the losses right after a
    reset, which after the initial release are the untrained model's, too wide for the drifts a trained model
    notices. Either alarm is a loss alarm. Classification never has the second detector.
    """

    # Class-level default: a monitor pickled before session 10 (a checkpoint) has no losses to skip.
    _settle = 0
    # Class-level defaults: a monitor pickled before session 15 (a checkpoint) has no trained-scale detector
    # until its next reset.
    _trained: ScaledDetector | None = None
    _trained_wait = 0

    # Class-level default: a monitor pickled before the floor existed (a checkpoint) keeps its floorless scale.
    task: str | None = None

    def __init__(self, config: DriftConfig | None = None, task: str | None = None) -> None:
        """``task``: the model's (classification floors the loss scale, :func:`loss_std_floor`)."""
        self.config = config or DriftConfig()
        self.task = task
        self.reset()

    def reset(self, settle: int = 0) -> None:
        """Start over; with ``settle``, skip that many losses before the warm-up that fixes the scale begins."""
        self._name, kwargs = detector_config(self.config, "loss")
        warmup = self.config.ph_min_instances
        floor, below = loss_std_floor(self.task, warmup) if self.task else (0.0, math.inf)
        # Classification: an alarm needs the losses under the cap to rise too (``ScaledDetector``'s
        # ``corroborate_below``), so a few capped mistakes cannot fire it alone.
        cap = LOSS_CAP if self.task == "classification" and CORROBORATE_LOSS else math.inf
        self._detector = ScaledDetector(
            warmup, self._name, kwargs, "drift.loss_detector", floor, below, corroborate_below=cap
        )
        self._settle = settle
        self._trained = None
        if self.task in TRAINED_LOSS_TASKS and self._name == "page_hinkley":
            params = {**kwargs, **TRAINED_PH}
            self._trained = ScaledDetector(TRAINED_WARMUP, self._name, params, "drift.loss_detector")
            self._trained_wait = max(settle, TRAINED_SETTLE)

    def update(self, loss: float, index: int) -> list[DriftSignal]:
        if not self.config.ph_loss or not (math.isfinite(loss) if type(loss) is float else finite(loss)):
            return []
        loss = float(loss)
        trained = None if self._trained is None else self._update_trained(loss)
        if self._settle:
            self._settle -= 1
            details = None
        else:
            details = self._detector.update(loss)
        if details is None:
            details = trained  # one signal per label, the first detector's when both fire
        return [] if details is None else [DriftSignal(self._name, "loss", index, details)]

    def defer(self, loss: float, index: int) -> list[DriftSignal]:
        """``update``, except that a loss that cannot raise an alarm may be held back (:mod:`learners.ph_defer`):
        the same alarms at the same labels, and the same state once :meth:`settle` (or a copy, a pickle, an
        ``update``) applies what is held. For ``learn_batch``, which calls :meth:`settle` at its end."""
        det = self._detector
        if type(loss) is float and -math.inf < loss <= det._cap:
            pend = det._pend
            assert pend is not None  # (a finite cap comes with the list: ph_defer.open_window)
            pend.append(loss)
            if len(pend) >= ph_defer.WINDOW:
                ph_defer.apply(det)
                ph_defer.open_window(det)
            return []
        out = self.update(loss, index)
        if self._trained is None and not self._settle and self.config.ph_loss:
            ph_defer.open_window(self._detector)
        return out

    def settle(self) -> None:
        """Apply the losses :meth:`defer` held back and hold no more (the state and pickle ``update`` leaves)."""
        ph_defer.close(self._detector)

    def _update_trained(self, loss: float) -> dict[str, str] | None:
        """Feed the trained-scale detector (regression); its alarm details (marked ``scale: trained``), else None."""
        if self._trained is None:
            return None
        if self._trained_wait:
            self._trained_wait -= 1
            return None
        details = self._trained.update(loss)
        if details is None:
            return None
        self._trained_wait = TRAINED_SETTLE  # an alarm replaces the model: its next scale waits for it again
        return {**details, "scale": "trained"}


class FeatureDriftMonitor:
    """A detector (``DriftConfig.feature_detector``; Page-Hinkley by default) per numeric feature (data drift: no
    labels needed), scale-free, with a per-feature cool-down.

    Booleans and strings are not monitored; the first ``max_features`` numeric features seen are.
    """

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        detector_config(
            self.config, "feature"
        )  # an unknown detector or parameter fails here, not at a feature
        self._detectors: dict[str, ScaledDetector] = {}
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
            out.append(DriftSignal(det.name, f"feature:{name}", index, details))
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
            out.append(DriftSignal(detectors[name].name, f"feature:{name}", index, details))
        return out

    def _new_detector(self) -> ScaledDetector:
        # Read per detector, so a live `set drift.<field>` reaches the features registered after it.
        name, kwargs = detector_config(self.config, "feature")
        return ScaledDetector(self.config.feature_warmup, name, kwargs, "drift.feature_detector")
