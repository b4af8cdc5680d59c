"""Warm-started challengers (session 17, helper warmpool): the guarded stream's served loss with the warm start off
and with ``learners.pool.WARM_PRUNE`` at several values, in process (the default lifecycle, delay 50).

    PYTHONPATH=<tree> python docs/experiments/warm_prune.py A.csv[,B.csv] off,none,1000,2000 [--task regression]

Per run: the served loss (MAE, or error rate for classification) over the stream, the non-incremental releases,
the served loss per 250 events from the first alarm on (first 12 windows), and the CPU seconds of the process.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import learners.pool as pool
from bench.accuracy import default_lifecycle
from learners.replay import read_rows, replay

WINDOW = 250


def run(rows: list[Any], task: str, variant: str, delay: int) -> None:
    pool.WARM_START = variant != "off"
    pool.WARM_BLEND_BY_KIND = not variant.endswith("-all")
    variant = variant.removesuffix("-all")
    pool.WARM_PRUNE = None if variant in ("none", "off") else int(variant)
    preds: list[Any] = []
    start = time.process_time()
    lc = default_lifecycle(task, 0)
    s = replay(rows, lc, delay=delay, on_prediction=lambda r: preds.append(r["prediction"])).summary()
    cpu = time.process_time() - start
    ys = [r[3] for r in rows]
    if task == "regression":
        losses = [abs(float(p) - float(y)) for p, y in zip(preds, ys, strict=True)]
    else:
        losses = [0.0 if p is not None and str(p) == str(y) else 1.0 for p, y in zip(preds, ys, strict=True)]
    promos = [(p["reason"], p["index"]) for p in s["promotions"] if p["reason"] != "incremental"]
    alarms = [a["index"] if isinstance(a, dict) else a for a in s["alarms"]]
    first = alarms[0] if alarms else len(rows) // 2
    w0 = first // WINDOW
    wins = [
        sum(losses[w * WINDOW : (w + 1) * WINDOW]) / WINDOW
        for w in range(w0, min(w0 + 12, len(rows) // WINDOW))
    ]
    print(
        f"{variant:>5}: loss {sum(losses) / len(losses):.4f} cpu {cpu:5.1f}s members {len(lc.champion.model.members)} "
        f"alarms {alarms[:6]} releases {promos}\n       from {w0 * WINDOW}: "
        + " ".join(f"{v:.3f}" for v in wins)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files")
    ap.add_argument("variants")
    ap.add_argument("--task", default="classification")
    ap.add_argument("--delay", type=int, default=50)
    a = ap.parse_args()
    for f in a.files.split(","):
        rows = list(read_rows(f, "y"))
        if a.task == "classification":
            rows = [(i, ts, x, int(y)) for i, ts, x, y in rows]
        print(f"== {f}")
        for v in a.variants.split(","):
            run(rows, a.task, v, a.delay)


if __name__ == "__main__":
    main()
