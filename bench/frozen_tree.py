"""The scorer's Hoeffding-tree path in memory: ``batch_predictor`` (leaves' naive Bayes terms read once) against the
learner's own ``predict_with_proba`` per event, on the same trained tree and events, interleaved.

``python -m bench.frozen_tree [TRAIN] [PREDICT] [ROUNDS]`` prints one line per round and a JSON record (best CPU
time of each path; ``differences`` counts answers that are not identical, and must be 0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.data import make_rows
from driftline.config import LearnerSpec
from learners.batch import batch_predictor
from learners.specs import build_learner


def run(train: int = 20_000, predict: int = 10_000, rounds: int = 3) -> dict[str, Any]:
    rows = make_rows(train + predict, seed=3)
    learner = build_learner(LearnerSpec("hoeffding_tree"))
    for _, x, y in rows[:train]:
        learner.learn_one(x, y)
    xs = [x for _, x, _ in rows[train:]]
    predictor = batch_predictor(learner)
    best_learner = best_batch = float("inf")
    differences = 0
    for r in range(rounds):
        t0 = time.process_time()
        want = [learner.predict_with_proba(x) for x in xs]
        t1 = time.process_time()
        got: list[Any] = []
        for i in range(0, len(xs), 500):
            got += predictor.predict_many(xs[i : i + 500])
        t2 = time.process_time()
        best_learner, best_batch = min(best_learner, t1 - t0), min(best_batch, t2 - t1)
        differences = sum(1 for g, w in zip(got, want, strict=True) if g != w)
        print(
            f"round {r + 1}: learner {len(xs) / (t1 - t0):,.0f}/s, batch path {len(xs) / (t2 - t1):,.0f}/s",
            file=sys.stderr,
        )
    return {
        "frozen_tree_path": predictor.frozen_tree is not None,
        "learner_predict_eps": len(xs) / best_learner,
        "batch_predict_eps": len(xs) / best_batch,
        "batch_vs_learner": best_learner / best_batch,
        "differences": differences,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        prog="python -m bench.frozen_tree",
        description="The scorer's Hoeffding-tree batch path against predict_with_proba per event, interleaved; "
        "prints one line per round and a JSON record.",
    )
    ap.add_argument("train", nargs="?", type=int, default=20_000, help="training events (default 20000)")
    ap.add_argument("predict", nargs="?", type=int, default=10_000, help="predicted events (default 10000)")
    ap.add_argument("rounds", nargs="?", type=int, default=3, help="interleaved rounds (default 3)")
    a = ap.parse_args()
    print(json.dumps(run(a.train, a.predict, a.rounds), sort_keys=True))
