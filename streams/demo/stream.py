"""The demo's built-in data: a SEA-style stream with an abrupt drift and then a gradual one.

Three features uniform on [0, 10]; the label says whether the sum of two of them exceeds a threshold (as in
SEA), with 5% label noise. The concept changes which features matter, so a model has to relearn, not just
shift a threshold:

- concept A (events ``0 .. n/3``): ``x0 + x1 > 8``
- concept B (abrupt switch at ``n/3``): ``x1 + x2 > 11``
- concept C (gradual, the share of C rising along a sigmoid centred on ``2n/3`` over ``n/6`` events):
  ``x0 + x2 > 9``, and ``x2`` also moves to [3, 13] (a feature drift the data monitors can see)

Deterministic for a seed.

>>> events, drifts = demo_stream(9, seed=1)
>>> [d.kind for d in drifts], [d.index for d in drifts]
(['abrupt', 'gradual'], [3, 6])
>>> rows = list(events)
>>> len(rows), sorted(rows[0].features)
(9, ['x0', 'x1', 'x2'])
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from connectors.sources import Event, Scalar

__all__ = ["DEMO_STREAM", "DriftPoint", "demo_stream"]

DEMO_STREAM = "built-in SEA-style stream: abrupt drift at n/3, gradual drift (concept and x2) around 2n/3"
NOISE = 0.05


@dataclass(frozen=True)
class DriftPoint:
    """A known drift: where it is centred (event index), ``abrupt`` or ``gradual``, and over how many events."""

    index: int
    kind: str
    width: int


def _concept(k: int, rng: random.Random) -> tuple[dict[str, Scalar], bool]:
    x0, x1 = rng.uniform(0, 10), rng.uniform(0, 10)
    x2 = rng.uniform(3, 13) if k == 2 else rng.uniform(0, 10)
    y = (x0 + x1 > 8, x1 + x2 > 11, x0 + x2 > 9)[k]
    if rng.random() < NOISE:
        y = not y
    return {"x0": round(x0, 4), "x1": round(x1, 4), "x2": round(x2, 4)}, y


def demo_stream(n: int, seed: int = 0) -> tuple[Iterator[Event], list[DriftPoint]]:
    """``(events, drift_points)``: ``n`` events with an abrupt and a gradual drift (see the module docs)."""
    abrupt, gradual = n // 3, 2 * n // 3
    width = max(1, n // 6)
    drifts = [DriftPoint(abrupt, "abrupt", 1), DriftPoint(gradual, "gradual", width)]

    def events() -> Iterator[Event]:
        rng = random.Random(seed)
        for i in range(n):
            if i < abrupt:
                k = 0
            else:
                z = min(max(4.0 * (i - gradual) / width, -700.0), 700.0)
                k = 2 if rng.random() < 1.0 / (1.0 + math.exp(-z)) else 1
            features, label = _concept(k, rng)
            yield Event(str(i), None, features, label)

    return events(), drifts
