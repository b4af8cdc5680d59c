"""Scrape the workers' Prometheus endpoints and boil them down to one :class:`Sample` of the pipeline.

A sample sums counters over every worker (score, join and train run in separate processes), so it reads the
same whatever the process layout.

>>> text = 'driftline_events_total{stage="score",outcome="ok"} 5.0\\n'
>>> Sample.from_families(parse_metrics(text), t=1.0).scored
5
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.metrics_text import Families, parse_metrics

__all__ = ["Sample", "scrape"]


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


def _pairs(fam: Families, name: str, first: str, second: str) -> dict[str, int]:
    """Counts of ``name`` summed per ``"<first>/<second>"`` label pair (over every worker)."""
    out: dict[str, int] = {}
    for labels, value in fam.get(name, []):
        key = f"{labels.get(first)}/{labels.get(second)}"
        out[key] = out.get(key, 0) + int(value)
    return out


def _releases(fam: Families) -> dict[str, int]:
    """Releases per reason: what trainers published (``stage`` train), summed over workers (each model has one
    trainer). Series without a stage (workers before it) count what a trainer published and every scorer what
    it loaded, so for those the largest count of any one worker, not the sum."""
    series = fam.get("driftline_releases_total", [])
    if any("stage" in labels for labels, _ in series):
        published: dict[str, int] = {}
        for labels, v in series:
            if labels.get("stage") == "train":
                reason = labels.get("reason", "")
                published[reason] = published.get(reason, 0) + int(v)
        return published
    per: dict[tuple[str, str], float] = {}
    for labels, v in series:
        key = (labels.get("instance", ""), labels.get("reason", ""))
        per[key] = per.get(key, 0.0) + v
    out: dict[str, int] = {}
    for (_, reason), v in per.items():
        out[reason] = max(out.get(reason, 0), int(v))
    return out


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
    accuracy: float | None = None  # rolling accuracy of what was served, every version (trainer's metric)
    alarms: dict[str, int] = field(default_factory=dict)  # "detector/signal" -> count
    guard: dict[str, int] = field(default_factory=dict)  # "outcome/reason" -> count
    releases: dict[str, int] = field(default_factory=dict)  # reason -> count
    # Filled by the runner from other sources than the metrics endpoints:
    produced: int = 0
    lag: int = 0

    @classmethod
    def from_families(cls, fam: Families, t: float, workers_up: int = 0) -> Sample:
        """Boil scraped families down to a sample."""
        # A gauge, exported by the scorer and the trainer alike: the newest one, not a sum.
        version = int(max((v for _, v in fam.get("driftline_served_model_version", [])), default=0))
        # What users saw, every version: the served version's own metric has no label yet most of the time
        # (releases every ~50 labels, labels arrive hundreds of events late), so it is only the fallback.
        found: dict[str, float] = {}
        for labels, value in fam.get("driftline_model_metric", []):
            if labels.get("version") == str(version):
                found[labels.get("metric", "")] = value
        acc = found.get("overall.rolling_accuracy", found.get("rolling_accuracy"))
        return cls(
            t=t,
            workers_up=workers_up,
            scored=int(
                _sum(fam, "driftline_events_total", stage="score", outcome="ok")
                + _sum(fam, "driftline_events_total", stage="score", outcome="deadletter")
            ),
            labels_in=int(_sum(fam, "driftline_events_total", stage="join")),
            joined=int(_sum(fam, "driftline_joins_total", outcome="joined")),
            learned=int(_sum(fam, "driftline_events_total", stage="train", outcome="ok")),
            pending_joins=int(_sum(fam, "driftline_pending_joins")),
            deadletters=int(_sum(fam, "driftline_deadletters_total")),
            served_version=version,
            accuracy=acc,
            alarms=_pairs(fam, "driftline_drift_alarms_total", "detector", "signal"),
            guard=_pairs(fam, "driftline_guard_decisions_total", "outcome", "reason"),
            releases=_releases(fam),
        )

    @property
    def total_alarms(self) -> int:
        return sum(self.alarms.values())
