"""Experiment: the frozen-snapshot sentinel's regression analogue (session 8), to decide whether to wire it in.

As ``snapshot_sentinel.py`` (live model: a plain ``auto`` regressor at delay 50; copies frozen at labels 1,000,
2,000, 4,000 then every 8,000, the previous kept 2,000 more labels; an alarm takes a fresh copy), but each copy's
*absolute* error is standardised by its own first 1,000 labels (mean, std) and fed to a one-sided CUSUM
``s = max(0, s + z - K)`` with alarm above ``H``. Drifts are the suite's (friedman-gra, friedman-lea); false alarms
are alarms more than 2,000 events after every drift point (and the stationary stream: positions past the end).

    PYTHONPATH=. python docs/experiments/snapshot_sentinel_regression.py K H SEEDS [N]
"""

from __future__ import annotations

import collections
import math
import sys
from typing import Any

from river import stats
from river.datasets import synth

from bench.accuracy import _rows_of, make_stream
from driftline.config import LearnerSpec
from learners.specs import build_learner

WARM, OVERLAP, DELAY, FIRST, EVERY = 1000, 2000, 50, 1000, 8000


class ZCusum:
    def __init__(self, k: float, h: float) -> None:
        self.k, self.h, self.var, self.s = k, h, stats.Var(), 0.0
        self.mean = self.std = math.nan

    def update(self, e: float) -> bool:
        if self.var.n < WARM:
            self.var.update(e)
            if self.var.n == WARM:
                self.mean, self.std = self.var.mean.get(), math.sqrt(self.var.get()) or 1e-6
            return False
        z = max(-50.0, min(50.0, (e - self.mean) / self.std))
        self.s = max(0.0, self.s + z - self.k)
        return self.s > self.h


def run(
    rows: list[Any], points: list[int], seed: int, k: float, h: float
) -> tuple[int, list[int | None], int]:
    model = build_learner(LearnerSpec("auto"), "regression", seed)
    copies: list[tuple[Any, ZCusum, int]] = []
    next_copy, learned, alarms = FIRST, 0, []
    pending: collections.deque[Any] = collections.deque()
    for i, (_, _, x, y) in enumerate(rows):
        pending.append((x, y))
        if len(pending) <= DELAY:
            continue
        x0, y0 = pending.popleft()
        alarm = False
        for c in copies:
            alarm |= c[1].update(abs(float(c[0].predict_one(x0)) - float(y0)))
        model.learn_one(x0, y0)
        learned += 1
        if alarm:
            alarms.append(i)
            copies, next_copy = [(model.copy(), ZCusum(k, h), learned)], learned + EVERY
        elif learned >= next_copy:
            copies.append((model.copy(), ZCusum(k, h), learned))
            next_copy = 2 * learned if 2 * learned < EVERY else learned + EVERY
        if len(copies) > 1 and learned - copies[-1][2] >= OVERLAP:
            copies = copies[-1:]
    delays = [min([a - p for a in alarms if p <= a <= p + 2000], default=None) for p in points]
    false = [a for a in alarms if not any(p <= a <= p + 2000 for p in points)]
    return len(alarms), delays, len(false)


def main(argv: list[str]) -> None:
    k, h, seeds = float(argv[0]), float(argv[1]), [int(s) for s in argv[2].split(",")]
    n = int(argv[3]) if len(argv) > 3 else 20000
    for seed in seeds:
        for name in ("friedman-gra", "friedman-lea", "friedman-stationary"):
            if name == "friedman-stationary":
                rows, points = (
                    _rows_of(synth.FriedmanDrift("gra", position=(10**9, 2 * 10**9), seed=seed), n),
                    [],
                )
            else:
                rows, points = make_stream(name, n, seed)
            n_alarms, delays, false = run(rows, points, seed, k, h)
            print(f"{name} seed {seed}: alarms {n_alarms}, delays {delays}, false {false}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
