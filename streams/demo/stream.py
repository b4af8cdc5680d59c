"""The demo's built-in data: a SEA stream with an abrupt drift and then a gradual one.

SEA labels a point ``x0 + x1 <= theta``; each concept is a different ``theta`` (River's ``variant``). The
stream starts on concept A, switches abruptly to concept B at ``n/3`` and then drifts gradually to concept C:
the share of C rises along a sigmoid centred on ``2n/3`` over ``n/6`` events. Deterministic for a seed.

>>> events, drifts = demo_stream(9, seed=1)
>>> [d.kind for d in drifts], [d.index for d in drifts]
(['abrupt', 'gradual'], [3, 6])
>>> len(list(events))
9
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from connectors.sources import Event, Scalar

__all__ = ["DEMO_STREAM", "DriftPoint", "demo_stream"]

DEMO_STREAM = "sea (abrupt drift at n/3, gradual drift around 2n/3)"

# SEA variants: 0 -> theta 8, 3 -> theta 9.5, 2 -> theta 7; each step flips 13-20% of the labels.
_CONCEPTS = (0, 3, 2)
_NOISE = 0.05


@dataclass(frozen=True)
class DriftPoint:
    """A known drift: where it is centred (event index), ``abrupt`` or ``gradual``, and over how many events."""

    index: int
    kind: str
    width: int


def demo_stream(n: int, seed: int = 0) -> tuple[Iterator[Event], list[DriftPoint]]:
    """``(events, drift_points)``: ``n`` SEA events with an abrupt and a gradual drift (see module docs)."""
    from river.datasets import synth

    abrupt, gradual = n // 3, 2 * n // 3
    width = max(1, n // 6)
    drifts = [DriftPoint(abrupt, "abrupt", 1), DriftPoint(gradual, "gradual", width)]

    def events() -> Iterator[Event]:
        rng = random.Random(seed)
        concepts = [
            iter(synth.SEA(variant=v, noise=_NOISE, seed=seed + 97 * k)) for k, v in enumerate(_CONCEPTS)
        ]
        for i in range(n):
            if i < abrupt:
                concept = 0
            else:
                z = min(max(4.0 * (i - gradual) / width, -700.0), 700.0)
                concept = 2 if rng.random() < 1.0 / (1.0 + math.exp(-z)) else 1
            x, y = next(concepts[concept])
            features: dict[str, Scalar] = {f"x{k}": float(v) for k, v in x.items()}
            yield Event(str(i), None, features, bool(y))

    return events(), drifts
