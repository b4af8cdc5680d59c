"""Session 46 (helper guard46): where a gate-1 row's guard tax accrues, and the release gaps behind it.

    PYTHONPATH=TREE python docs/experiments/guard46_trace.py STREAM:SEED[,STREAM:SEED...] [--n 2000]
        [--patch module.NAME=VALUE,...]

Per row: the tax (served minus best plain learner, in events and points) split over the cold start (events
0-299), the rest before the drift, the first 500 events after it and the rest; each release gap of more than 150
events (the snapshot released at A served until B); the releases' reasons and decision texts other than
incremental ones. Same stream, lifecycle and plain learners as ``regtax_gate.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle, plain
from bench.unseen import DELAY
from driftline.settings import Settings
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _loss, _patch, plain_losses, stream_rows  # type: ignore[import-not-found]


def row(name: str, seed: int, n: int) -> None:
    rows, points, task, _ = stream_rows(name, n, seed)
    lc = default_lifecycle(task, 0)
    preds: list[Any] = []
    res = replay(rows, lc, delay=DELAY, on_prediction=lambda r: preds.append(r["prediction"]))
    served = [_loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
    runs = plain_losses(rows, task)
    best = min(runs, key=lambda k: sum(runs[k]))
    b = runs[best]
    p = points[0]
    cuts = [(0, 300), (300, p), (p, p + 500), (p + 500, len(rows))]
    parts = " ".join(f"[{a},{z}) {sum(served[a:z]) - sum(b[a:z]):+.0f}" for a, z in cuts)
    tax = 100 * (sum(served) - sum(b)) / len(rows)
    # The default learner itself, unguarded, learning every label at the same delay: the learner's part of the tax.
    own = plain(rows, Settings().model.learner, task, DELAY, 0)["losses"]
    own_parts = " ".join(f"{sum(own[a:z]) - sum(b[a:z]):+.0f}" for a, z in cuts)
    s = res.summary()
    rel = [e["index"] for e in s["promotions"]]
    gaps = [(a, z) for a, z in zip([0, *rel], [*rel, len(rows)], strict=True) if z - a > 150]
    other = [(e["index"], e["reason"]) for e in s["promotions"] if e["reason"] != "incremental"]
    print(
        f"{name} s{seed} tax {tax:+.2f} (vs {best}, events {sum(served) - sum(b):+.0f}): {parts}; "
        f"plain default {sum(own) - sum(b):+.0f} ({own_parts}); releases {len(rel)}, gaps>150 {gaps}, "
        f"other {other}, alarms {s['alarms']} rollbacks {[r['index'] for r in s['rollbacks']]}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("rows")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    for item in args.rows.split(","):
        name, _, seed = item.partition(":")
        row(name, int(seed), args.n)


if __name__ == "__main__":
    main()
