"""Session 39 (helper regsent39): the regression sentinel's cost in the trainer's batch path, side by side.

    PYTHONPATH=TREE python docs/experiments/regsent39_cost.py [--n 10000] [--batch 500] [--rounds 2]

A regression lifecycle from default settings (the ``auto`` learner) learns ``regsent39.py``'s stationary
``friedman`` stream through ``learn_batch`` in batches of ``--batch`` (as a trainer does), once with
``drift.sentinel_regression`` on and once off, alternated ``--rounds`` times; prints CPU seconds per 1,000 labels.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle
from learners.lifecycle import Labelled

sys.path.insert(0, str(Path(__file__).parent))
from regsent39 import make  # type: ignore[import-not-found]


def run(rows: list[Any], on: bool, batch: int) -> float:
    lc = default_lifecycle("regression", 0)
    lc.drift = dataclasses.replace(lc.drift, sentinel_regression=on)
    start = time.process_time()
    for lo in range(0, len(rows), batch):
        part = rows[lo : lo + batch]
        lc.learn_batch([Labelled(x, y, index=lo + i) for i, (x, y) in enumerate(part)])
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    rows = make("friedman", args.n, 0)
    for r in range(args.rounds):
        for on in (True, False):
            cpu = run(rows, on, args.batch)
            print(
                f"round {r} sentinel_regression {on}: {1000 * cpu / args.n:.3f} s per 1,000 labels",
                flush=True,
            )


if __name__ == "__main__":
    main()
