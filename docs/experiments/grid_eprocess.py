"""Experiment (BENCHMARKS-accuracy.md, session 13): a mixture-of-bets ("grid Kelly") e-process instead of aGRAPA.

The wealth is the average over a fixed grid of bets lambda_j = c_j / (1 - m) of prod(1 + lambda_j (m - d)); an
average of test supermartingales is one, so Ville's inequality holds as for :class:`learners.guard.EProcess`. It
pays log(len(grid)) up front and never over-bets the way aGRAPA at its cap does after a run of ties. Swapped into
every test of the guard (non-inferiority, superiority, hold, probation), then ``decompose_real.py``'s streams:

    PYTHONPATH=. python docs/experiments/grid_eprocess.py 0.1,0.3,0.5,0.7,0.9 weather:50 phishing trump
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence

import learners.guard as guard

GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8)


class GridEProcess:
    __slots__ = ("_lw", "logs", "m", "n", "s", "s2")

    def __init__(self, m: float) -> None:
        self.m, self.n, self.s, self.s2 = m, 0, 0.0, 0.0
        self.logs = [0.0] * len(GRID)
        self._lw = 0.0

    def add(self, d: float) -> None:
        x, scale = self.m - d, 1.0 / (1.0 - self.m)
        logs = self.logs
        for j, c in enumerate(GRID):
            logs[j] += math.log1p(c * scale * x)
        top = max(logs)
        self._lw = top + math.log(sum(math.exp(v - top) for v in logs) / len(logs))
        self.n += 1
        self.s += d
        self.s2 += d * d

    @property
    def log_wealth(self) -> float:
        return self._lw

    @log_wealth.setter
    def log_wealth(self, value: float) -> None:  # the carried-evidence cap scales every component
        delta = value - self._lw
        self.logs = [v + delta for v in self.logs]
        self._lw = value

    def rejects(self, alpha: float) -> bool:
        return self._lw >= -math.log(alpha)


def _add_each(tests: Sequence[GridEProcess], n: int, s: float, s2: float, d: float) -> None:
    for test in tests:
        test.add(d)


if __name__ == "__main__":
    sys.setrecursionlimit(20000)
    GRID = tuple(float(c) for c in sys.argv[1].split(","))
    guard.EProcess = GridEProcess  # type: ignore[misc, assignment]
    guard._add_shared = _add_each  # type: ignore[assignment]
    sys.path.insert(0, "docs/experiments")
    from decompose_real import decompose

    for name in sys.argv[2:]:
        print(json.dumps(decompose(name)), flush=True)
