"""Session 40 (helper tax40): the plain ``auto`` pool against plain LR at delay 50, by stretch around the drift.

    PYTHONPATH=TREE python docs/experiments/tax40_pool.py --rows linear-reversal:2,mv-shift:4 [--fade 0.99]

No guard: ``bench.accuracy.plain`` for both learners (each learns every label 50 events late). Prints the pool's MAE
minus LR's in % of LR's total, over the whole stream and over: before the first drift, its first 100 events, the next
200, the rest. ``--fade`` sets ``learners.pool.FADE`` (all tasks; a screen, not a setting).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import learners.pool as pool
from bench.accuracy import plain
from bench.unseen import DELAY
from driftline.config import LearnerSpec

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import stream_rows  # type: ignore[import-not-found]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--fade", type=float, default=None)
    args = ap.parse_args()
    if args.fade is not None:
        pool.FADE = args.fade
    for item in args.rows.split(","):
        name, seed = item.split(":")
        rows, points, task, _ = stream_rows(name, args.n, int(seed))
        lr = plain(rows, LearnerSpec("linear_regression"), task, DELAY, 0)["losses"]
        auto = plain(rows, LearnerSpec("auto"), task, DELAY, 0)["losses"]
        d, n, total = points[0], len(rows), sum(lr)
        cuts = [(0, d), (d, d + 100), (d + 100, d + 300), (d + 300, n)]
        parts = " ".join(f"[{a},{z}) {100 * (sum(auto[a:z]) - sum(lr[a:z])) / total:+.2f}" for a, z in cuts)
        print(f"{item} fade {pool.FADE}: auto - LR whole {100 * (sum(auto) / total - 1):+.2f} %; {parts}")


if __name__ == "__main__":
    main()
