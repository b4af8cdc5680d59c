"""Experiment (BENCHMARKS-accuracy.md, session 13: the pool under label delay): how much of each ``auto`` member's
score should come from what its copy in the served snapshot answered (``learners.pool.SERVED_SHARE``).

The same events as ``driftline replay`` with default settings (in-process, ``bench.accuracy.default_lifecycle``),
the delay of ``bench.unseen`` (50) or elec's 48, for each share: the served model's MAE (regression) or accuracy
(classification), and the plain ``auto`` pool (which learns labels itself, never scored on a snapshot) for scale.

    PYTHONPATH=. python docs/experiments/pool_served_share.py trump phishing weather --shares 0,0.25,0.5,0.75,1

Share 0 is the scoring before (test-then-train only). Streams as ``docs/experiments/decompose_real.py`` reads them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from decompose_real import rows_of

from bench.accuracy import default_lifecycle
from driftline.config import LearnerSpec
from learners import pool as pool_module
from learners.replay import plain_predictions, replay
from learners.specs import build_learner


def score(task: str, preds: list[Any], ys: list[Any]) -> float:
    if task == "classification":
        return sum(p == y for p, y in zip(preds, ys, strict=True)) / len(ys)
    return sum(abs(float(p) - float(y)) for p, y in zip(preds, ys, strict=True)) / len(ys)


def run(name: str, share: float, seed: int) -> dict[str, Any]:
    rows, task, delay = rows_of(name)
    pool_module.SERVED_SHARE[task] = share
    lifecycle = default_lifecycle(task, seed)
    preds: list[Any] = []
    start = time.process_time()
    replay(rows, lifecycle, delay=delay, on_prediction=lambda r: preds.append(r["prediction"]))
    cpu = time.process_time() - start
    ys = [y for _, _, _, y in rows]
    return {
        "stream": name,
        "share": share,
        "task": task,
        "served": round(score(task, preds, ys), 4),
        "cpu": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("streams", nargs="+")
    parser.add_argument("--shares", default="0,0.5,1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.streams:
        rows, task, delay = rows_of(name)
        plain = plain_predictions(
            ((x, y) for _, _, x, y in rows), build_learner(LearnerSpec("auto"), task, args.seed), delay
        )
        ys = [y for _, _, _, y in rows]
        print(json.dumps({"stream": name, "plain_auto": round(score(task, plain, ys), 4)}), flush=True)
        for share in (float(s) for s in args.shares.split(",")):
            print(json.dumps(run(name, share, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
