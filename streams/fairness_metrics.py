"""The trainer's live fairness view of the served model: per-segment rates and gaps as Prometheus gauges.

Fed with every TrainingExample the trainer handles (its ``prediction`` is what the served model answered), so it
measures what users got. The rates are computed at most once a second (:data:`PUBLISH_EVERY_S`), not per example.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from driftline.settings import Settings
from learners.fairness import FairnessMonitor
from streams.metrics import Metrics

PUBLISH_EVERY_S = 1.0


class ServedFairness:
    """Rates per value of ``model.segment_feature`` and the gaps between them, published as metrics."""

    def __init__(self, settings: Settings, metrics: Metrics, window: int = 1000) -> None:
        self.feature = str(settings.model.segment_feature)
        self.model = settings.model.name
        self.metrics = metrics
        self.monitor = FairnessMonitor(settings.model.task, window=window)
        self._next = 0.0
        self._published: dict[str, set[str]] = {}  # segment -> the rate names set for it
        self._gaps: set[str] = set()  # the gap names set

    def add(self, example: Mapping[str, Any]) -> None:
        features = example.get("features") or {}
        self.monitor.add(features.get(self.feature), example.get("label"), example.get("prediction"))
        now = time.monotonic()
        if now >= self._next:
            self._next = now + PUBLISH_EVERY_S
            self.publish()

    def publish(self) -> dict[str, Any]:
        rates = self.monitor.rates()
        rate, gap = self.metrics.fairness_rate, self.metrics.fairness_gap
        # A segment the monitor no longer tracks (folded into _other) loses its series: the label set stays
        # bounded by the monitor's segments however many values the stream sends over time.
        for segment in [s for s in self._published if s not in rates]:
            for name in self._published.pop(segment):
                rate.remove(self.model, segment, name)
        for segment, values in rates.items():
            names = self._published.setdefault(segment, set())
            for name, value in values.items():
                if value == value:  # NaN (e.g. no positive label in the segment yet) is left unset
                    rate.labels(model=self.model, segment=segment, rate=name).set(value)
                    names.add(name)
        gaps = self.monitor.gaps()
        if sum(1 for r in rates.values() if r.get("n", 0) >= self.monitor.min_n) < 2:
            # Fewer than two segments with enough examples: no gap is measured. Its series is left out, not set
            # to 0.0, which a dashboard cannot tell from "no gap" (outside36).
            for name in self._gaps:
                gap.remove(self.model, name)
            self._gaps.clear()
            return {"rates": rates, "gaps": {}}
        for name, value in gaps.items():
            gap.labels(model=self.model, gap=name).set(value)
            self._gaps.add(name)
        return {"rates": rates, "gaps": gaps}
