"""Experiment: a frozen snapshot as a drift sentinel, for drifts the live error misses (wired in since session 8
as ``learners/sentinel.py``).

SEA's abrupt drifts move a threshold, so 5-9 % of labels change; a model that keeps learning adapts within a few
hundred labels, and ADWIN on its error never sees a shift long enough to alarm (the suite: sea-abrupt 0/4). A
*frozen* copy of the model does not adapt: its error rises and stays up, which a sequential test can find.

Here the live model is a plain ``auto`` learner at delay 50; a copy is frozen at labels 1,000, 2,000, 4,000 and then
every ``EVERY`` labels (the previous copy kept for ``OVERLAP`` more labels, so one copy with a long history is always
watching); each copy's 0/1 error feeds a Bernoulli CUSUM whose baseline error p0 is the copy's first ``WARM``
labels, testing for p0 + ``SHIFT``, with threshold log(1 / ``ALPHA``). An alarm takes a fresh copy.

    PYTHONPATH=. python docs/experiments/snapshot_sentinel.py EVERY ALPHA STREAMS SEEDS [N] [SHIFT]
    PYTHONPATH=. python docs/experiments/snapshot_sentinel.py 8000 1e-3 \\
        sea-abrupt,sea-stationary,hyperplane-stationary,agrawal-stationary,stagger-stationary 0,1,2 20000 0.05

Results are in BENCHMARKS-accuracy.md ("A detector measured and not yet wired in").
"""

from __future__ import annotations

import collections
import math
import sys
from typing import Any

from bench.accuracy import GRADUAL, STREAMS, make_stream
from driftline.config import LearnerSpec
from learners.specs import build_learner

WARM = 1000
OVERLAP = 2000
DELAY = 50


class BernoulliCusum:
    """CUSUM of the log-likelihood ratio p1 = p0 + shift against p0, p0 from the first ``WARM`` errors."""

    def __init__(self, alpha: float, shift: float) -> None:
        self.h = math.log(1.0 / alpha)
        self.shift = shift
        self.n = self.errors = 0
        self.s = 0.0
        self.up = self.down = 0.0

    def update(self, error: bool) -> bool:
        self.n += 1
        if self.n <= WARM:
            self.errors += error
            if self.n == WARM:
                p0 = (self.errors + 1) / (WARM + 2)
                p1 = min(p0 + self.shift, 0.99)
                self.up, self.down = math.log(p1 / p0), math.log((1 - p1) / (1 - p0))
            return False
        self.s = max(0.0, self.s + (self.up if error else self.down))
        if self.s > self.h:
            self.s = 0.0
            return True
        return False


def run(name: str, seed: int, n: int, every: int, alpha: float, shift: float) -> str:
    rows, points = make_stream(name, n, seed)
    model = build_learner(LearnerSpec("auto"), STREAMS.get(name, "classification"), seed)
    copies: list[tuple[Any, BernoulliCusum, int]] = []
    next_copy, learned = 1000, 0
    pending: collections.deque[Any] = collections.deque()
    alarms: list[int] = []
    for i, (_, _, x, y) in enumerate(rows):
        pending.append((x, y, [(c, c[0].predict_one(x)) for c in copies]))
        if len(pending) <= DELAY:
            continue
        x0, y0, answers = pending.popleft()
        # Every current copy sees the label (answers of copies dropped since they answered are ignored).
        alarm = any([c[1].update(p != y0) for c, p in answers if c in copies])
        model.learn_one(x0, y0)
        learned += 1
        if alarm:
            alarms.append(i)
            copies = [(model.copy(), BernoulliCusum(alpha, shift), learned)]
            next_copy = learned + every
        elif learned >= next_copy:
            copies.append((model.copy(), BernoulliCusum(alpha, shift), learned))
            next_copy = 2 * learned if learned < 4000 else learned + every
        if len(copies) > 1 and learned - copies[-1][2] >= OVERLAP:
            copies = copies[-1:]
    lo = -500 if name in GRADUAL else 0
    delays = [min([a - p for a in alarms if p + lo <= a <= p + 2000], default=None) for p in points]
    false = [a for a in alarms if not any(p + lo <= a <= p + 2000 for p in points)]
    found = sum(d is not None for d in delays)
    return f"{name} seed {seed}: detected {found}/{len(points)}, delays {delays}, false alarms {len(false)} {false}"


def main(argv: list[str]) -> None:
    every, alpha, names, seeds = int(argv[0]), float(argv[1]), argv[2].split(","), argv[3].split(",")
    n = int(argv[4]) if len(argv) > 4 else 20000
    shift = float(argv[5]) if len(argv) > 5 else 0.05
    for name in names:
        for seed in seeds:
            print(run(name, int(seed), n, every, alpha, shift), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
