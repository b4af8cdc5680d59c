"""River's synthetic streams with known drift points, for ``driftline replay --stream`` and the benchmarks.

Each stream is built from ``river.datasets.synth`` generators joined by ``ConceptDriftStream``: ``abrupt`` drifts
switch concept within a few dozen events (River's sigmoid overflows for a width of 1 far from the drift point, so
the narrowest safe width is used), ``gradual`` ones mix the two concepts over ``GRADUAL_WIDTH`` events.

>>> rows, drifts = synthetic_stream("sea-abrupt", n=9, seed=1)
>>> drifts
[3, 6]
>>> len(list(rows))
9
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from driftline.errors import ConfigError

GRADUAL_WIDTH = 1000

Row = tuple[str, int, dict[str, Any], Any]  # (id, ts, features, label)


def _concepts(family: str, seed: int) -> list[Any]:
    from river.datasets import synth

    if family == "sea":
        return [synth.SEA(variant=v, noise=0.1, seed=seed + v) for v in (0, 1, 3)]
    if family == "agrawal":
        return [synth.Agrawal(classification_function=f, seed=seed + f) for f in (0, 2, 4)]
    if family == "hyperplane":
        return [synth.Hyperplane(n_features=10, noise_percentage=0.05, seed=seed + k) for k in range(3)]
    if family == "stagger":
        return [synth.STAGGER(classification_function=f, seed=seed + f) for f in (0, 1, 2)]
    raise ConfigError(f"unknown stream family {family!r}")


def _chain(concepts: list[Any], points: list[int], width: Callable[[int], int], seed: int) -> Any:
    """Nest ConceptDriftStreams so concept k starts at points[k-1] (positions are relative to the inner start)."""
    from river.datasets import synth

    stream = concepts[-1]
    for k in range(len(concepts) - 1, 0, -1):
        start = points[k - 1] - (points[k - 2] if k >= 2 else 0)
        stream = synth.ConceptDriftStream(
            concepts[k - 1], stream, position=start, width=width(start), seed=seed + k
        )
    return stream


def synthetic_stream(name: str, n: int, seed: int = 0) -> tuple[Iterator[Row], list[int]]:
    """``(rows, drift_points)`` for a stream named ``<family>-<abrupt|gradual|stationary>``.

    Families: ``sea``, ``agrawal``, ``hyperplane``, ``stagger``; drifts at n/3 and 2n/3.
    """
    family, _, kind = name.partition("-")
    kind = kind or "abrupt"
    if kind not in ("abrupt", "gradual", "stationary"):
        raise ConfigError(
            f"unknown stream {name!r}; use <family>-abrupt|gradual|stationary, one of {STREAMS}"
        )
    concepts = _concepts(family, seed)
    if kind == "stationary":
        points: list[int] = []
        source: Any = concepts[0]
    else:
        points = [n // 3, 2 * n // 3]
        if kind == "gradual":
            source = _chain(concepts, points, lambda _p: GRADUAL_WIDTH, seed)
        else:
            # exp(4 * position / width) must stay below float max (~e^709).
            source = _chain(concepts, points, lambda p: max(20, 4 * p // 700 + 1), seed)
    rows = (
        (str(i), i * 1000, dict(x), y.item() if hasattr(y, "item") else y)
        for i, (x, y) in enumerate(itertools.islice(source, n))
    )
    return rows, points


STREAMS = tuple(
    f"{f}-{k}"
    for f in ("sea", "agrawal", "hyperplane", "stagger")
    for k in ("abrupt", "gradual", "stationary")
)
