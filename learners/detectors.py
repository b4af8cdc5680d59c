"""Drift detectors by name: the protocol every detector follows and the registry the drift monitors build from.

The three monitors of :mod:`learners.drift` (the served model's error, its loss, each numeric feature) each run a
detector named in :class:`~driftline.config.DriftConfig` (``error_detector``, ``loss_detector``,
``feature_detector``) with River parameters from the matching ``*_params`` mapping, e.g. in YAML::

    drift:
      error_detector: kswin
      error_detector_params: {alpha: 0.001, window_size: 200}

Registered: River's ``adwin``, ``kswin``, ``page_hinkley`` (any real value) and ``ddm``, ``eddm``, ``hddm_a``,
``hddm_w``, ``fhddm`` (0/1 values only: classification errors). Names are matched without case or underscores, so
River's class names (``ADWIN``, ``PageHinkley``, ``HDDM_A``) work too. To add a detector, call
:func:`register_detector` with a factory taking keyword parameters and returning an object with
``update(value)`` and ``drift_detected`` (every River detector qualifies).
"""

from __future__ import annotations

import bisect
import inspect
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from river import drift, stats
from river.drift import binary

from driftline.errors import ConfigError
from driftline.util import yaml_number_hint
from learners import ph_defer

__all__ = [
    "DETECTORS",
    "Detector",
    "DetectorKind",
    "ScaledDetector",
    "TailCap",
    "build_detector",
    "detector_kind",
    "detector_params",
    "register_detector",
]


class Detector(Protocol):
    """What a monitor needs of a detector: feed one value, then read whether that value raised an alarm."""

    @property
    def drift_detected(self) -> bool: ...

    def update(self, x: Any, /) -> Any: ...


@dataclass(frozen=True)
class DetectorKind:
    """A registered detector: how to build it and whether it only takes 0/1 values."""

    name: str
    factory: Callable[..., Detector]
    binary: bool = False

    def parameters(self) -> list[str]:
        """The keyword parameters the factory accepts (what ``*_params`` may set)."""
        return [
            p.name
            for p in inspect.signature(self.factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]

    def defaults(self) -> dict[str, Any]:
        """The factory's default of each keyword parameter that has one (read once per kind: a detector is built
        at every reset, and ``inspect.signature`` costs ~20 us)."""
        found = _DEFAULTS.get(self)
        if found is None:
            found = _DEFAULTS[self] = self._defaults()
        return found

    def _defaults(self) -> dict[str, Any]:
        return {
            p.name: p.default
            for p in inspect.signature(self.factory).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty
        }


_DEFAULTS: dict[DetectorKind, dict[str, Any]] = {}

#: Registered detectors by canonical name (see :func:`register_detector`).
DETECTORS: dict[str, DetectorKind] = {}


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def register_detector(name: str, factory: Callable[..., Detector], *, binary: bool = False) -> None:
    """Make ``name`` usable in ``drift.*_detector``. ``factory(**params)`` returns a fresh detector; ``binary``
    marks one that only takes 0/1 values (refused for regression errors and for the loss and features)."""
    if any(_key(k) == _key(name) for k in DETECTORS):
        raise ConfigError(f"drift detector {name!r} is already registered")
    DETECTORS[name] = DetectorKind(name, factory, binary)


def detector_kind(name: str, setting: str = "drift.error_detector") -> DetectorKind:
    """The registered detector called ``name`` (any case, underscores optional), or ConfigError naming
    ``setting`` and listing the known names."""
    for kind in DETECTORS.values():
        if _key(kind.name) == _key(str(name)):
            return kind
    raise ConfigError(f"{setting}: unknown detector {name!r}; known: {', '.join(DETECTORS)}")


def detector_params(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    setting: str = "drift.error_detector",
) -> dict[str, Any]:
    """The keyword arguments of detector ``name``: ``defaults`` (driftline's own) under ``params`` (the user's,
    each of which must be a parameter of the detector). Errors name ``setting``."""
    kind = detector_kind(name, setting)
    known = kind.parameters()
    unknown = sorted(set(params or {}) - set(known))
    if unknown:
        raise ConfigError(
            f"{setting}_params: {kind.name} has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {', '.join(known) or 'none'})"
        )
    return {**(defaults or {}), **(params or {})}


# Significance and confidence levels of the registered detectors: strictly between 0 and 1.
_SHARES: dict[str, tuple[str, ...]] = {
    "adwin": ("delta",),
    "hddm_a": ("drift_confidence", "warning_confidence"),
    "hddm_w": ("drift_confidence", "warning_confidence"),
    "fhddm": ("confidence_level",),
}


# Upper bounds of the parameters that size what a detector allocates or waits for, checked before it is built. Why:
# River allocates ADWIN's bucket rows by ``max_buckets``: 10^9 took 22 GB and the kernel's OOM killer ended
# `config validate` (a live `set` of drift.error_detector_params runs the same check in the trainer; session 45).
_SIZES: dict[str, dict[str, int]] = {
    "adwin": {"max_buckets": 1_000, "clock": 100_000},
    "kswin": {"window_size": 100_000},
    "fhddm": {"sliding_window_size": 100_000},
}


# Parameters whose default is None, so the numeric rule below cannot see their type: what each must be. River
# took KSWIN's seed 1.5 and window "abc" (a deque of letters, compared with numbers at the first test) without a word.
_OPTIONAL: dict[str, dict[str, str]] = {
    "kswin": {"seed": "whole", "window": "numbers"},
    "fhddm": {"short_window_size": "whole"},
}


def _optional_problem(kind: str, key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for a None-default parameter of :data:`_OPTIONAL`, or None."""
    want = _OPTIONAL.get(kind, {}).get(key)
    if value is None or want is None:
        return None
    if want == "whole":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be a whole number"
    ok = isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    return None if ok else "must be a list of finite numbers (the values the detector starts from)"


def build_detector(name: str, kwargs: Mapping[str, Any], setting: str = "drift.error_detector") -> Detector:
    """A fresh detector ``name`` built with ``kwargs`` (see :func:`detector_params`); a value the detector
    refuses is a ConfigError naming ``setting``."""
    kind = detector_kind(name, setting)
    # River takes some values it cannot use without a word: ADWIN with delta <= 0 or >= 1 never alarms. The rule of a
    # live `set` for every number (finite, >= 0; learners.lifecycle_control), and (0, 1) for confidence levels.
    defaults = kind.defaults()
    for key, value in kwargs.items():
        problem = _optional_problem(kind.name, key, value)
        if problem:
            hint = yaml_number_hint(value)
            raise ConfigError(f"{setting}_params: {kind.name} {key} {problem}, got {value!r}{hint}")
        default = defaults.get(key)
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
            # River's Page-Hinkley took threshold "1.0e9" (YAML 1.1 reads a float without an exponent sign as text)
            # and `config validate` said valid; the first comparison then ended replay and the trainer with a
            # TypeError (session 41, arch41.md).
            hint = yaml_number_hint(value)
            raise ConfigError(
                f"{setting}_params: {kind.name} {key} must be a number like its default {default!r}, "
                f"got {value!r}{hint}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(
                f"{setting}_params: {kind.name} {key} must be a finite number >= 0, got {value!r}"
            )
        limit = _SIZES.get(kind.name, {}).get(key)
        if limit is not None and value > limit:
            raise ConfigError(f"{setting}_params: {kind.name} {key} must be at most {limit:,}, got {value!r}")
        if key in _SHARES.get(kind.name, ()) and not 0 < value < 1:
            raise ConfigError(f"{setting}_params: {kind.name} {key} must be between 0 and 1, got {value!r}")
    try:
        detector = kind.factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{setting}_params: {kind.name} refused {dict(kwargs)!r}: {exc}") from exc
    # A factory registered from outside (README, "Extending") that builds no detector failed only at the first
    # value, with an AttributeError traceback mid-stream, after `config validate` had said "valid".
    missing = [m for m in ("update", "drift_detected") if not hasattr(detector, m)]
    if missing or not callable(detector.update):
        raise ConfigError(
            f"{setting}: {kind.name} built a {type(detector).__name__} without {', '.join(missing) or 'update()'}: "
            "a detector needs update(value) and a drift_detected attribute"
        )
    return detector


class FHDDMOnErrors:
    """River's FHDDM fed ``1 - x``: it alarms when the share of 1s *drops* (the method watches accuracy, whatever
    its docstring says), so on errors it would only see models getting better. Measured: fed 0/1 errors stepping
    from 10% to 60% it never alarms; fed their complement it alarms 49 events after the step."""

    def __init__(
        self,
        sliding_window_size: int = 100,
        confidence_level: float = 1e-6,
        short_window_size: int | None = None,
    ) -> None:
        self.detector = binary.FHDDM(sliding_window_size, confidence_level, short_window_size)

    @property
    def drift_detected(self) -> bool:
        return bool(self.detector.drift_detected)

    def update(self, x: Any) -> None:
        self.detector.update(1.0 - float(x))


register_detector("adwin", drift.ADWIN)
register_detector("kswin", drift.KSWIN)
register_detector("page_hinkley", drift.PageHinkley)
register_detector("ddm", binary.DDM, binary=True)
register_detector("eddm", binary.EDDM, binary=True)
register_detector("hddm_a", binary.HDDMA, binary=True)
register_detector("hddm_w", binary.HDDMW, binary=True)
register_detector("fhddm", FHDDMOnErrors, binary=True)


def page_hinkley_update(detector: Any, x: float) -> bool:
    """``detector.update(x)`` then ``detector.drift_detected`` for a River ``drift.PageHinkley``: River's own
    statements on its own attributes (``stats.Mean.update`` with weight 1.0 included), without its three calls per
    value (the loss detector is fed on every label). A detector whose running mean is not a plain ``stats.Mean``
    goes to River. tests/test_learners_detectors_fast.py feeds both the same streams and compares every state."""
    if detector.drift_detected:
        detector._reset()
    mean = detector._x_mean
    if type(mean) is not stats.Mean:
        detector.update(x)
        return bool(detector.drift_detected)
    mean.n += 1.0
    mean._mean += (1.0 / mean.n) * (x - mean._mean)
    dev = x - mean._mean
    up = detector._sum_increase = detector.alpha * detector._sum_increase + dev - detector.delta
    down = detector._sum_decrease = detector.alpha * detector._sum_decrease + dev + detector.delta
    if up < detector._min_increase:
        detector._min_increase = up
    if down > detector._max_decrease:
        detector._max_decrease = down
    if mean.n >= detector.min_instances:
        detector._drift_detected = detector._test_drift(
            up - detector._min_increase, detector._max_decrease - down
        )
    return bool(detector._drift_detected)


class ScaledDetector:
    """A detector fed values standardised by a warm-up window, so its thresholds are in standard deviations and
    the same defaults work whatever the units. After an alarm it re-warms on the new regime (the cool-down): a
    permanent shift raises one alarm, not one per window.

    ``std_floor`` is the least standard deviation a warm-up whose values all stayed below ``floor_below`` may fix
    (the classification loss sets both: see :func:`learners.drift.loss_std_floor`).

    With a finite ``corroborate_below`` an alarm stands only if the values under it rose too: the mean of the last
    ``warmup`` values below ``corroborate_below`` must exceed the warm-up's mean of its values below it; otherwise the
    alarm is dropped and the detector re-warms (so the tail that fired it becomes part of the scale). Why: the
    classification loss is capped (``learners.drift.LOSS_CAP``), and a few capped mistakes that a warm-up happened
    not to see are 20-35 standard deviations each, a Page-Hinkley alarm in three (led-10class, whose model grows
    confident after a promotion: its losses under the cap *fell*, 12-31 standard errors, at every such alarm).
    elec's loss alarms, which start the challengers elec needs, came with its losses under the cap up at all 15
    (BENCHMARKS-accuracy.md, session 13).

    Holds the detector's name and parameters rather than a factory, so a monitor pickles into a checkpoint.
    """

    # Class-level defaults: a detector pickled before the floor existed (a checkpoint) has none.
    std_floor = 0.0
    floor_below = math.inf
    peak = -math.inf
    # Class-level defaults: a detector pickled before session 13 (a checkpoint) corroborates nothing.
    corroborate_below = math.inf
    sub_mean = math.nan  # the warm-up's mean of its values below ``corroborate_below``
    recent: deque[float] | None = None  # the last ``warmup`` values after the warm-up (when corroborating)
    # Values held back and the cap under which a value may be (``learners.ph_defer``; only while a batch feeds the
    # detector through ``LossDriftMonitor.defer``). Instance attributes only then: a pickle never carries them.
    _pend: list[float] | None = None
    _cap = -math.inf

    def __init__(
        self,
        warmup: int,
        name: str,
        kwargs: Mapping[str, Any],
        setting: str,
        std_floor: float = 0.0,
        floor_below: float = math.inf,
        corroborate_below: float = math.inf,
    ) -> None:
        self.warmup = warmup
        self.name = name
        self.kwargs = dict(kwargs)
        self.setting = setting
        self.std_floor = std_floor
        self.floor_below = floor_below
        self.corroborate_below = corroborate_below
        self._start()

    def __getstate__(self) -> dict[str, Any]:
        # Copies and pickles see the state every value fed so far leaves: the held-back ones applied, the window
        # closed (the next ``LossDriftMonitor.defer`` opens another), so no attribute of it is pickled.
        if "_pend" in self.__dict__:
            ph_defer.close(self)
        return self.__dict__

    def _start(self) -> None:
        self.var = stats.Var()
        self.peak = -math.inf  # the warm-up's largest value
        self.mean = 0.0
        self.std = 1.0
        self.detector: Detector | None = None
        if self.corroborate_below < math.inf:
            self._sub = stats.Mean()
            self.sub_mean = math.nan
            self.recent = deque(maxlen=self.warmup)

    def update(self, value: float) -> dict[str, str] | None:
        """Feed one finite value; returns alarm details or None."""
        if self._pend is not None:  # values held back (``learners.ph_defer``) come first; the window's cap
            ph_defer.close(self)  # holds only for values under it, so this one closes it
        if self.detector is None:
            self.var.update(value)
            self.peak = max(self.peak, value)
            if self.recent is not None and value < self.corroborate_below:
                self._sub.update(value)
            if self.var.n >= self.warmup:
                if self.recent is not None and self._sub.n:
                    self.sub_mean = self._sub.get()
                self.mean = self.var.mean.get()
                floor = self.std_floor if self.peak < self.floor_below else 0.0
                # A constant feature gets a tiny std so any later movement is visible but bounded.
                self.std = max(math.sqrt(self.var.get()), floor) or 1e-6
                self.detector = build_detector(self.name, self.kwargs, self.setting)
            return None
        z = (value - self.mean) / self.std
        z = max(-50.0, min(50.0, z))  # one wild outlier must not be an alarm by itself
        detector = self.detector
        if type(detector) is drift.PageHinkley:
            detected = page_hinkley_update(detector, z)
        else:
            detector.update(z)
            detected = detector.drift_detected
        if self.recent is not None:
            self.recent.append(value)
        if not detected:
            return None
        if self.recent is not None and not self._corroborated():
            self._start()
            return None
        details = {
            "warmup_mean": f"{self.mean:.6g}",
            "warmup_std": f"{self.std:.6g}",
            "last_value": f"{value:.6g}",
        }
        self._start()
        return details

    def _corroborated(self) -> bool:
        """Whether the values under ``corroborate_below`` rose too (see the class docstring); True when there is
        nothing to compare (a warm-up or a recent window with no value under it)."""
        below = [v for v in self.recent or () if v < self.corroborate_below]
        if not below or not math.isfinite(self.sub_mean):
            return True
        return sum(below) / len(below) > self.sub_mean


class TailCap:
    """Caps a non-negative real-valued signal (a regression model's absolute error) at ``factor`` times the median
    of its last ``window`` raw values, so an isolated heavy-tailed value weighs at most a few typical ones while a
    sustained rise lifts the cap with it.

    Why a median over a recent window: a label x50 among ordinary ones moves the median of 51 values by one rank,
    so 0.2-5 % of wild labels are capped; when the error itself rises (a drift), the median follows once about half
    the window is new (26 labels). Session 15's caps were fixed from a warm-up (median + 6 robust sds): a
    reversal's errors were held at the old regime's cap and its alarms came late or never (BENCHMARKS-accuracy.md,
    sessions 15 and 16).

    Why a factor of 16 (with half-normal errors, ~11 standard deviations): a reversal's first alarm often rests on
    two or three errors 10-25 times the median (linear-reversal at 2,000 events, seed 3: 8.9 and 5.5 against a
    median of 0.33; mv-shift: 112 and 102 against ~15), and at 2,000 events the index of that first alarm decides
    the challenger's fate. A factor of 8 moved those alarms 25-30 labels later (linear-reversal +4.25 -> +7.82 %
    MAE, mv-shift +4.27 -> +6.07 %: session 15's numbers again); 16 and 24 left both exactly as on main; at seeds 0
    and 1, 24 let friedman-outliers keep 3 and 0 false alarms, 16 left 1 and 1. A median over 11 values instead of 51
    (lifting within 6 labels) restored linear-reversal but not mv-shift, whose wide errors make a short median
    noisy.

    A value over ``wild`` times the median (64: ~43 standard deviations of half-normal errors) counts as the median,
    as if its label had said nothing: capped at 16 times the median, three x50 labels within 15 events (friedman-
    outliers at seed 2: errors ~700 against a median of 2.5, so 40 each against a mean of 2.5) still made an ADWIN
    alarm, and seeds 2, 3 and 5 kept 4-5 false alarms (seeds 0..5: 34 on main, 17 capped, 8 with the wild rule). A
    reversal's first errors (10-25 times the median) are not wild; a reversal so large that they are counts whole
    from its third label on, by the rule below.

    A value over the cap that follows ``run - 1`` others over it is passed whole: a reversal's errors are large
    label after label, wild labels are isolated. (Measured alone at a factor of 8 it did not give the reversals'
    first alarms back: their errors dip under the cap between large ones.)

    No cap until ``min_values`` values are in, nor while the median is 0 (a model exact on most labels has no
    scale to cap by).
    """

    def __init__(
        self, window: int = 51, factor: float = 16.0, min_values: int = 11, run: int = 3, wild: float = 64.0
    ) -> None:
        self.window = window
        self.factor = factor
        self.wild = wild
        self.min_values = min_values
        self.run = run
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []
        self._over = 0  # values over the cap in a row, this one included

    def cap(self) -> float:
        """The cap the next value meets."""
        n = len(self._sorted)
        if n < self.min_values:
            return math.inf
        median = self._sorted[n // 2]
        return self.factor * median if median > 0 else math.inf

    def __call__(self, value: float) -> float:
        """``value`` capped by the values before it; it joins the window raw (the median tracks the raw errors)."""
        cap = self.cap()
        self._over = self._over + 1 if value > cap else 0
        if self._over >= self.run:
            capped = value
        elif value > cap * self.wild / self.factor:
            # Wild: the median, as if the label had said nothing.
            capped = self._sorted[len(self._sorted) // 2]
        else:
            capped = min(value, cap)
        self._recent.append(value)
        bisect.insort(self._sorted, value)
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        return capped
