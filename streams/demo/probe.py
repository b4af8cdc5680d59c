"""Scrape the workers' Prometheus endpoints and boil them down to one :class:`Sample` of the pipeline.

A sample sums counters over every worker (score, join and train run in separate processes), so it reads the
same whatever the process layout. Histograms are kept as cumulative bucket counts: the difference of two
samples gives the distribution within that interval (latency over time).

>>> text = 'driftline_events_total{stage="score",outcome="ok"} 5.0\\n'
>>> Sample.from_families(parse_metrics(text), t=1.0).scored
5
"""

from __future__ import annotations

import math
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.metrics_text import Families, parse_metrics

__all__ = ["Sample", "histogram_quantile", "parse_metrics", "scrape"]


def scrape(urls: Iterable[str], timeout: float = 1.0) -> tuple[Families, int]:
    """Scrape and merge ``urls``; returns the families and how many endpoints answered."""
    families: Families = {}
    answered = 0
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                parse_metrics(resp.read().decode(), families, instance=url)
            answered += 1
        except (OSError, ValueError):
            continue
    return families, answered


def _sum(fam: Families, name: str, **match: str) -> float:
    return sum(v for labels, v in fam.get(name, []) if all(labels.get(k) == x for k, x in match.items()))


def _by(fam: Families, name: str, label: str, **match: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, v in fam.get(name, []):
        if all(labels.get(k) == x for k, x in match.items()):
            out[labels.get(label, "")] = out.get(labels.get(label, ""), 0.0) + v
    return out


def _releases(fam: Families) -> dict[str, int]:
    """Releases per reason: the trainer counts what it published and every scorer what it loaded, so the
    largest count of any one worker, not the sum."""
    per: dict[tuple[str, str], float] = {}
    for labels, v in fam.get("driftline_releases_total", []):
        key = (labels.get("instance", ""), labels.get("reason", ""))
        per[key] = per.get(key, 0.0) + v
    out: dict[str, int] = {}
    for (_, reason), v in per.items():
        out[reason] = max(out.get(reason, 0), int(v))
    return out


def _buckets(fam: Families, name: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for labels, v in fam.get(f"{name}_bucket", []):
        le = float(labels.get("le", "inf"))
        out[le] = out.get(le, 0.0) + v
    return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Quantile ``q`` of a cumulative histogram ``{upper bound: count}``, interpolated as Prometheus does.

    >>> round(histogram_quantile(0.5, {0.1: 0, 0.2: 10, math.inf: 10}), 6)
    0.15
    """
    items = sorted(buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    rank = q * items[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in items:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            span = count - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / span if span else 1.0)
        prev_le, prev_count = le, count
    return prev_le


@dataclass
class Sample:
    """The pipeline at one moment (``t`` seconds since the run started), summed over every worker."""

    t: float
    workers_up: int = 0
    scored: int = 0  # features handled by scorers (predictions out, or dead-lettered)
    labels_in: int = 0  # labels handled by the joiner
    joined: int = 0
    learned: int = 0
    pending_joins: int = 0
    deadletters: int = 0
    served_version: int = 0
    accuracy: float | None = None  # rolling accuracy of the served version (trainer's prequential metric)
    alarms: dict[str, int] = field(default_factory=dict)  # "detector/signal" -> count
    guard: dict[str, int] = field(default_factory=dict)  # "outcome/reason" -> count
    releases: dict[str, int] = field(default_factory=dict)  # reason -> count
    latency_buckets: dict[float, float] = field(default_factory=dict)  # end-to-end, cumulative
    # Filled by the runner from other sources than the metrics endpoints:
    produced: int = 0
    lag: int = 0

    @classmethod
    def from_families(cls, fam: Families, t: float, workers_up: int = 0) -> Sample:
        """Boil scraped families down to a sample."""
        # A gauge, exported by the scorer and the trainer alike: the newest one, not a sum.
        version = int(max((v for _, v in fam.get("driftline_served_model_version", [])), default=0))
        acc = None
        for labels, value in fam.get("driftline_model_metric", []):
            if labels.get("metric") == "rolling_accuracy" and labels.get("version") == str(version):
                acc = value
        alarms: dict[str, int] = {}
        for labels, value in fam.get("driftline_drift_alarms_total", []):
            key = f"{labels.get('detector')}/{labels.get('signal')}"
            alarms[key] = alarms.get(key, 0) + int(value)
        guard: dict[str, int] = {}
        for labels, value in fam.get("driftline_guard_decisions_total", []):
            key = f"{labels.get('outcome')}/{labels.get('reason')}"
            guard[key] = guard.get(key, 0) + int(value)
        return cls(
            t=t,
            workers_up=workers_up,
            scored=int(
                _sum(fam, "driftline_events_total", stage="score", outcome="ok")
                + _sum(fam, "driftline_events_total", stage="score", outcome="deadletter")
            ),
            labels_in=int(sum(_by(fam, "driftline_events_total", "outcome", stage="join").values())),
            joined=int(_sum(fam, "driftline_joins_total", outcome="joined")),
            learned=int(_sum(fam, "driftline_events_total", stage="train", outcome="ok")),
            pending_joins=int(_sum(fam, "driftline_pending_joins")),
            deadletters=int(_sum(fam, "driftline_deadletters_total")),
            served_version=version,
            accuracy=acc,
            alarms=alarms,
            guard=guard,
            releases=_releases(fam),
            latency_buckets=_buckets(fam, "driftline_end_to_end_latency_seconds"),
        )

    @property
    def total_alarms(self) -> int:
        return sum(self.alarms.values())

    def latency_quantile(self, q: float, since: Sample | None = None) -> float | None:
        """End-to-end latency quantile (seconds), over the whole run or since an earlier sample."""
        buckets = dict(self.latency_buckets)
        if since is not None:
            buckets = {le: c - since.latency_buckets.get(le, 0.0) for le, c in buckets.items()}
        return histogram_quantile(q, buckets)

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 3),
            "produced": self.produced,
            "scored": self.scored,
            "labels_in": self.labels_in,
            "joined": self.joined,
            "learned": self.learned,
            "pending_joins": self.pending_joins,
            "deadletters": self.deadletters,
            "served_version": self.served_version,
            "accuracy": self.accuracy,
            "alarms": self.total_alarms,
            "lag": self.lag,
        }
