"""``streams.score.observe_many``: a batch of observations lands in a prometheus_client Histogram exactly as
``observe`` per value would put it (every bucket, the count and the sum)."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from streams.metrics import LATENCY_BUCKETS
from streams.score import observe_many


def _samples(h: Histogram) -> dict[tuple[str, str], float]:
    out = {}
    for metric in h.collect():
        for s in metric.samples:
            if s.name.endswith("_created"):
                continue
            out[(s.name, s.labels.get("le", ""))] = s.value
    return out


def test_observe_many_equals_observe_per_value() -> None:
    rng = random.Random(3)
    values = [0.0, *LATENCY_BUCKETS[:3], 1e9]  # exactly on bounds, zero, past the last finite bound
    values += [rng.expovariate(20.0) for _ in range(500)]
    one, many = (
        Histogram("lat", "x", buckets=LATENCY_BUCKETS, registry=CollectorRegistry()) for _ in range(2)
    )
    for v in values:
        one.observe(v)
    for start in range(0, len(values), 37):  # in batches, as the scorer observes them
        observe_many(many, values[start : start + 37])
    observe_many(many, [])
    got, want = _samples(many), _samples(one)
    # Every bucket and the count exactly; the sum up to float rounding (added per batch, not per value).
    assert got.pop(("lat_sum", "")) == pytest.approx(want.pop(("lat_sum", "")), rel=1e-12)
    assert got == want
    assert want[("lat_count", "")] == len(values)


def test_anything_else_is_observed_one_by_one() -> None:
    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, v: float) -> None:
            self.seen.append(v)

    plain = Plain()
    observe_many(plain, [0.5, 0.25])
    assert plain.seen == [0.5, 0.25]
