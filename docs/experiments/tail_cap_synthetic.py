"""Experiment (BENCHMARKS-accuracy.md, session 16): the regression error and loss monitors fed synthetic absolute
errors (half-normal) with heavy-tailed labels, with ``TailCap`` at several factors or off.

    PYTHONPATH=TREE python docs/experiments/tail_cap_synthetic.py [SEEDS] [FACTORS]

Per variant: false alarms over SEEDS stationary streams of 10,000 errors with 1 % x50 (error / loss monitor), and
the median delay to the first alarm after (a) every error x4 at 3,000 (b) 10 % of the errors x10 at 3,000 (a drift
of a subpopulation, which looks most like outliers), each on a stream that also has 1 % x50.
"""

from __future__ import annotations

import random
import statistics
import sys

import learners.detectors as D
import learners.drift as M
from driftline.config import DriftConfig


def errors(rng: random.Random, n: int, share: float, factor: float, level: float = 1.0) -> list[float]:
    return [abs(rng.gauss(0.0, level)) * (factor if rng.random() < share else 1.0) for _ in range(n)]


def alarms(es: list[float]) -> tuple[list[int], list[int]]:
    e, lo = M.ErrorDriftMonitor(DriftConfig()), M.LossDriftMonitor(DriftConfig(), "regression")
    return [s.index for i, x in enumerate(es) for s in e.update(x, i)], [
        s.index for i, x in enumerate(es) for s in lo.update(x, i)
    ]


def delay(a: list[int], at: int) -> float:
    after = [i - at for i in a if i >= at]
    return after[0] if after else float("inf")


RUN = int(sys.argv[3]) if len(sys.argv) > 3 else 3
WINDOW = int(sys.argv[4]) if len(sys.argv) > 4 else 51
WILD = float(sys.argv[5]) if len(sys.argv) > 5 else 64.0


def main() -> None:
    seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    factors = [
        float(f) if f != "off" else None for f in (sys.argv[2] if len(sys.argv) > 2 else "off,16").split(",")
    ]
    for f in factors:
        M.TAIL_CAP = f is not None
        if f is not None:
            D.TailCap.__init__.__defaults__ = (WINDOW, f, min(11, WINDOW), RUN, WILD)
        fa_e = fa_l = 0
        d_all: list[tuple[float, float]] = []
        d_sub: list[tuple[float, float]] = []
        for s in range(seeds):
            ae, al = alarms(errors(random.Random(s), 10_000, 0.01, 50.0))
            fa_e, fa_l = fa_e + len(ae), fa_l + len(al)
            rng = random.Random(1000 + s)
            es = errors(rng, 3000, 0.01, 50.0) + errors(rng, 3000, 0.01, 50.0, 4.0)
            ae, al = alarms(es)
            d_all.append((delay(ae, 3000), delay(al, 3000)))
            rng = random.Random(2000 + s)
            es = errors(rng, 3000, 0.01, 50.0) + [
                abs(rng.gauss(0, 1)) * (10 if rng.random() < 0.1 else 1) * (50 if rng.random() < 0.01 else 1)
                for _ in range(3000)
            ]
            ae, al = alarms(es)
            d_sub.append((delay(ae, 3000), delay(al, 3000)))

        def med(v: list[tuple[float, float]], k: int) -> str:
            xs = [x[k] for x in v]
            return f"{statistics.median(xs):g} (missed {sum(x == float('inf') for x in xs)})"

        print(
            f"factor {f}: false alarms error {fa_e} loss {fa_l} in {seeds} x 10,000 | all x4: error {med(d_all, 0)}"
            f" loss {med(d_all, 1)} | 10 % x10: error {med(d_sub, 0)} loss {med(d_sub, 1)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
