"""Typed configuration of the learning core (plain frozen dataclasses, every field with a default).

``streams.settings`` embeds these in the one settings object; ``learners`` never reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LearnerSpec:
    """Which estimator to build: a registered name and its keyword parameters."""

    name: str = "logistic_regression"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftConfig:
    """Drift monitor parameters (ADWIN on error, Page-Hinkley on loss and features)."""

    adwin_delta: float = 0.002
    ph_loss_delta: float = 0.005
    ph_loss_threshold: float = 50.0
    ph_feature_delta: float = 0.005
    ph_feature_threshold: float = 50.0
    ph_min_instances: int = 30
    feature_drift: bool = True


@dataclass(frozen=True)
class GuardConfig:
    """Guard parameters: statistical test, sanity checks, probation."""

    alpha: float = 0.05
    min_examples: int = 200
    non_inferiority_margin: float = 0.01
    segment_margin: float = 0.05
    reference_margin: float = 0.02
    max_disagreement: float = 0.5
    max_predict_latency_ms: float = 5.0
    probation_examples: int = 500
