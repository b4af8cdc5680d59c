"""Typed configuration of the learning core (plain frozen dataclasses, every field with a default).

``driftline.settings`` embeds these in the one settings object; ``learners`` never reads the environment.
Field types are limited to int/float/str/bool/None/dict/list so the settings loader can coerce YAML into them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LearnerSpec:
    """Which estimator to build: a registered name (see ``learners.specs.KINDS``) and its keyword parameters."""

    name: str = "logistic_regression"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftConfig:
    """Drift monitor parameters.

    Concept drift: a detector (ADWIN by default) on the served model's error (0/1 error, or absolute error for
    regression) and one (Page-Hinkley by default) on the per-example loss. Data drift: a detector (Page-Hinkley by
    default) per numeric feature. The loss and the features are standardised with a running mean/std frozen after
    a warm-up (``ph_min_instances`` / ``feature_warmup`` values), so the thresholds are in standard deviations and
    work on raw values. Each detector is named from ``learners.detectors.DETECTORS`` and takes River parameters
    from its ``*_params`` mapping, over the defaults below (``adwin_delta``, ``ph_*``, which apply to ADWIN and
    Page-Hinkley). Defaults were tuned with ``bench/accuracy.py`` on SEA/Agrawal/Hyperplane ConceptDriftStreams
    (see BENCHMARKS-accuracy.md).
    """

    # Detector on the served model's error, by name: adwin, kswin, page_hinkley, or (classification only, 0/1
    # errors) ddm, eddm, hddm_a, hddm_w, fhddm. Measured per stream family in BENCHMARKS-accuracy.md.
    error_detector: str = "adwin"
    error_detector_params: dict[str, Any] = field(default_factory=dict)  # e.g. {"alpha": 0.001} for kswin
    loss_detector: str = "page_hinkley"  # any detector but the 0/1 ones
    loss_detector_params: dict[str, Any] = field(default_factory=dict)
    feature_detector: str = "page_hinkley"  # page_hinkley has a vectorised batch path; others run per event
    feature_detector_params: dict[str, Any] = field(default_factory=dict)
    adwin_delta: float = 0.002
    adwin_grace: int = (
        100  # no error alarm before this many labelled examples (a cold model's error still falls)
    )
    ph_loss: bool = True
    ph_loss_delta: float = 0.05
    ph_loss_threshold: float = 100.0
    ph_min_instances: int = 100
    feature_drift: bool = True
    feature_warmup: int = 500
    ph_feature_delta: float = 0.5  # in standard deviations: mean shifts smaller than this are ignored
    ph_feature_threshold: float = 100.0  # cumulative standardised deviation needed for an alarm
    feature_cooldown: int = 2000  # examples after an alarm before that feature may alarm again
    max_features: int = 64  # features monitored (the first numeric ones seen); bounds memory and time
    # Frozen-snapshot sentinel (learners.sentinel): copies of the champion frozen after
    # sentinel_first labels, doubling while under half of sentinel_every, then every sentinel_every labels (the
    # previous copy kept sentinel_overlap more labels); each copy's 0/1 error in Page's CUSUM for p0 +
    # sentinel_margin against p0, an upper bound (+1 SE) of its error over its first sentinel_warmup labels, alarm above
    # sentinel_threshold (log 1000). It sees drifts the learning model adapts to before ADWIN can (SEA).
    sentinel: bool = True
    sentinel_threshold: float = 6.907755278982137
    sentinel_margin: float = 0.05
    sentinel_warmup: int = 1000
    sentinel_first: int = 1000
    sentinel_every: int = 8000
    sentinel_overlap: int = 2000
    # Regression too (learners.sentinel.ExceedanceCusum): a copy's "error" is whether its absolute error exceeds q,
    # the 0.75 quantile of its absolute errors over the first half of its warm-up; the same schedule, margin and
    # threshold (both need ``sentinel`` on).
    sentinel_regression: bool = True


@dataclass(frozen=True)
class GuardConfig:
    """Guard parameters: statistical tests, sanity checks, challengers and probation."""

    alpha: float = 0.05
    min_examples: int = 50  # paired examples before a challenger may be judged (the test is anytime-valid)
    max_examples: int = 3000  # paired examples after which a challenger that has not won is dropped
    challenger_grace: int = 30  # first examples a fresh challenger learns from without being scored
    non_inferiority_margin: float = 0.03  # error-rate (or relative loss) margin for incremental updates
    # A challenger must be shown better than the champion by more than this error rate (or relative loss);
    # probation's rollback test stays at margin 0. Not 0: a fresh model can win a short window of an
    # autocorrelated stream and then lose the long memory it replaced (elec: 10 such promotions cost the
    # champion 0.95 points; with 0.05, one or two still did, 0.1-0.4 points; BENCHMARKS-accuracy.md). A new
    # concept's challenger wins by far more.
    superiority_margin: float = 0.1
    segment_margin: float = 0.1
    reference_margin: float = 0.02
    max_disagreement: float = (
        0.5  # above this share of changed answers a candidate needs hold_margin (or an operator)
    )
    hold_margin: float = 0.2  # error-rate (or relative loss) gain that promotes a high-disagreement candidate
    max_predict_latency_ms: float = 5.0
    collapse_share: float = 0.05  # collapse check: one predicted class while another label had >= this share
    max_reference: int = 2000  # reference examples scored per decision
    probation_examples: int = 500
    # Labels between incremental releases while the non-inferiority evidence is carried over releases
    # (learners.policies.IncrementalPolicy); 0 restarts the evidence at every release (the old behaviour).
    carry_release_every: int = 50
    # Regression: after a drift alarm on the served model, for recovery_labels labels, the champion's
    # non-inferiority is tested at recovery_margin (relative MAE, when wider than non_inferiority_margin): the
    # served model is failing, and a snapshot that learned the new concept would otherwise wait hundreds of labels
    # for a 3 % margin of a noisy MAE (learners.policies.IncrementalPolicy). 0 labels: never. Classification keeps
    # its margin (0.03 of an error rate is already ~15 % of a typical one).
    recovery_margin: float = 0.1
    recovery_labels: int = 1000
    probation_alpha: float = 0.01
    # Fairness (with model.segment_feature): refuse a candidate whose demographic-parity or equalized-odds gap
    # (MAE gap for regression) is over this bound and wider than the served model's. None: not checked.
    fairness_max_gap: float | None = None


# Shares and significance levels of the guard: strictly between 0 and 1.
_GUARD_SHARES = ("alpha", "probation_alpha", "max_disagreement", "collapse_share")


def check_guard_config(guard: GuardConfig) -> None:
    """The ranges the guard's tests need, for a config file, the environment and a live ``set`` alike;
    :class:`~driftline.errors.ConfigError` names the field.

    The non-inferiority margin bets against an error rate: at 1 or more the test has nothing to bet on (a margin of
    1 divided by zero in the e-process). The other margins are gains a candidate must show: never negative.
    """
    from driftline.errors import ConfigError

    for name in _GUARD_SHARES:
        value = getattr(guard, name)
        if not 0 < value < 1:
            raise ConfigError(f"guard.{name}: must be between 0 and 1, got {value}")
    for name in ("non_inferiority_margin", "recovery_margin"):
        value = getattr(guard, name)
        if not 0 <= value < 1:
            raise ConfigError(f"guard.{name}: must be at least 0 and below 1, got {value}")
    for name in (
        "superiority_margin",
        "hold_margin",
        "segment_margin",
        "reference_margin",
        "max_predict_latency_ms",
    ):
        value = getattr(guard, name)
        if not 0 <= value < float("inf"):
            raise ConfigError(f"guard.{name}: must be a finite number >= 0, got {value}")
    for name in (
        "min_examples",
        "max_examples",
        "challenger_grace",
        "max_reference",
        "probation_examples",
        "carry_release_every",
        "recovery_labels",
    ):
        if getattr(guard, name) < 0:
            raise ConfigError(f"guard.{name}: must be >= 0, got {getattr(guard, name)}")
    if guard.max_examples < guard.min_examples:  # a challenger would be dropped before it could be judged
        raise ConfigError(
            f"guard.max_examples: must be at least guard.min_examples ({guard.min_examples}), got {guard.max_examples}"
        )
    gap = guard.fairness_max_gap  # the largest accuracy gap between segments (None: no fairness check)
    if gap is not None and not 0 <= gap <= 1:
        raise ConfigError(f"guard.fairness_max_gap: must be between 0 and 1 (or null), got {gap}")


def check_sentinel_config(config: DriftConfig) -> None:
    """The ranges the drift sentinel (``learners.sentinel``) needs, for a config file, the environment and a live
    ``set`` alike; :class:`~driftline.errors.ConfigError` names the field."""
    from driftline.errors import ConfigError

    threshold = config.sentinel_threshold
    if not (isinstance(threshold, (int, float)) and 0 < threshold < float("inf")):
        raise ConfigError(f"drift.sentinel_threshold: must be a finite number > 0, got {threshold!r}")
    margin = config.sentinel_margin
    if not (isinstance(margin, (int, float)) and 0 < margin < 1):
        raise ConfigError(f"drift.sentinel_margin: must be between 0 and 1, got {margin!r}")
    for name in ("sentinel_warmup", "sentinel_first", "sentinel_every"):
        value = getattr(config, name)
        if not (isinstance(value, int) and value >= 1):
            raise ConfigError(f"drift.{name}: must be an integer >= 1, got {value!r}")
    if not (isinstance(config.sentinel_overlap, int) and config.sentinel_overlap >= 0):
        raise ConfigError(f"drift.sentinel_overlap: must be an integer >= 0, got {config.sentinel_overlap!r}")


def check_drift_numbers(config: DriftConfig) -> None:
    """The ranges a live ``set`` gives every number of the drift section (``learners.lifecycle_control``), for a
    config file and the environment too: finite and >= 0, and ``adwin_delta`` (a significance level) strictly
    between 0 and 1; :class:`~driftline.errors.ConfigError` names the field."""
    from driftline.errors import ConfigError

    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"drift.{f.name}: must be a finite number >= 0, got {value!r}")
    if not 0 < config.adwin_delta < 1:
        raise ConfigError(f"drift.adwin_delta: must be between 0 and 1, got {config.adwin_delta!r}")
