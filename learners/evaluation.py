"""Prequential evaluation: every prediction is scored against its label before the model learns from it.

One :class:`Evaluator` per model version. Cumulative and rolling (last ``window`` examples) metrics from
``river.metrics``, and cumulative accuracy (or MAE) per segment: the values of one configured feature.
Precision, recall and F1 are macro-averaged over the classes seen, so they mean the same for binary and multiclass.

>>> ev = Evaluator("classification", window=2)
>>> for y, p in [(1, 1), (0, 1), (1, 1)]:
...     ev.update(y, p, {1: 0.8, 0: 0.2})
>>> round(ev.snapshot()["accuracy"], 3), ev.snapshot()["rolling_accuracy"]
(0.667, 0.5)
"""

from __future__ import annotations

import math
from typing import Any

from river import metrics, utils

from learners.features import finite

# Stable names (they become Prometheus label values and ModelRelease metrics keys).
CLASSIFICATION = {
    "accuracy": metrics.Accuracy,
    "precision": metrics.MacroPrecision,
    "recall": metrics.MacroRecall,
    "f1": metrics.MacroF1,
    "log_loss": metrics.CrossEntropy,
}
REGRESSION = {"mae": metrics.MAE, "rmse": metrics.RMSE}
MAX_SEGMENTS = 100  # beyond this many distinct values new segments are pooled under "other"


def segment_of(x: dict[str, Any], feature: str | None) -> str | None:
    """The segment an event belongs to: the string form of ``x[feature]`` (``"missing"`` when absent)."""
    if feature is None:
        return None
    value = x.get(feature)
    return "missing" if value is None else str(value)


class Evaluator:
    """Prequential metrics of one model version."""

    def __init__(self, task: str, window: int = 500) -> None:
        self.task = task
        self.window = window
        kinds = CLASSIFICATION if task == "classification" else REGRESSION
        self._cumulative: dict[str, Any] = {name: cls() for name, cls in kinds.items()}
        self._rolling: dict[str, Any] = {
            name: utils.Rolling(cls(), window_size=window) for name, cls in kinds.items()
        }
        self._segments: dict[str, list[float]] = {}  # segment -> [n, sum of score]
        self.n = 0

    def update(
        self, y_true: Any, y_pred: Any, proba: dict[Any, float] | None = None, segment: str | None = None
    ) -> None:
        """Score one prediction; a missing prediction counts as wrong (classification) or is skipped (regression)."""
        if y_true is None:
            return
        if self.task == "regression":
            if not finite(y_true) or not finite(y_pred):
                return
            score = abs(float(y_pred) - float(y_true))
            for name in REGRESSION:
                self._cumulative[name].update(float(y_true), float(y_pred))
                self._rolling[name].update(float(y_true), float(y_pred))
        else:
            score = 1.0 if y_pred == y_true else 0.0
            for name in CLASSIFICATION:
                if name == "log_loss":
                    # CrossEntropy wants a probability for the true class; an empty proba means "knew nothing".
                    p = dict(proba or {})
                    if y_true not in p:
                        p[y_true] = 0.0
                    self._cumulative[name].update(y_true, p)
                    self._rolling[name].update(y_true, p)
                elif y_pred is not None:
                    self._cumulative[name].update(y_true, y_pred)
                    self._rolling[name].update(y_true, y_pred)
            if y_pred is None:
                self._cumulative["accuracy"].update(y_true, _NEVER)
                self._rolling["accuracy"].update(y_true, _NEVER)
        self.n += 1
        if segment is not None:
            if segment not in self._segments and len(self._segments) >= MAX_SEGMENTS:
                segment = "other"
            acc = self._segments.setdefault(segment, [0.0, 0.0])
            acc[0] += 1
            acc[1] += score

    def segment_scores(self) -> dict[str, tuple[int, float]]:
        """Per segment: (count, accuracy) for classification or (count, MAE) for regression."""
        return {s: (int(n), total / n) for s, (n, total) in self._segments.items() if n}

    def snapshot(self) -> dict[str, float]:
        """All metrics as finite floats: ``n``, ``accuracy``, ``rolling_accuracy``, ..., ``segment.<v>.accuracy``."""
        out: dict[str, float] = {"n": float(self.n)}
        if self.n:
            for name, metric in self._cumulative.items():
                out[name] = float(metric.get())
                out[f"rolling_{name}"] = float(self._rolling[name].get())
        key = "accuracy" if self.task == "classification" else "mae"
        for segment, (n, score) in self.segment_scores().items():
            out[f"segment.{segment}.{key}"] = score
            out[f"segment.{segment}.n"] = float(n)
        return {k: v for k, v in out.items() if math.isfinite(v)}


class _Never:
    """A prediction equal to no label: scores a missing prediction as wrong without inventing a class."""

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<no prediction>"


_NEVER = _Never()
