"""Before/after of the trainer's learning cost: two source trees measured side by side in one invocation.

``python -m bench.ab BEFORE_TREE AFTER_TREE [--kinds logistic_regression,hoeffding_tree] [--events N]
[--rounds R]`` runs, ``R`` times and alternating between the trees, a child process in each tree that times (CPU
time of that process) bare River ``learn_one``, ``ModelLifecycle.learn_one`` per example and, where the tree has
it, ``learn_batch`` per 500, on the same examples carrying the served answers (as the trainer receives them).
Each figure keeps its best round; ``*_vs_bare`` ratios are to the bare River loop timed in the same child,
``*_vs_best_bare`` to the best bare time of either tree (the same code: the steadier yardstick). The child code is
inline (below) so it runs on a tree that predates ``bench/learning.py``. Used for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

CHILD = r"""
import dataclasses, json, sys, time
from bench.data import make_rows
from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners import lifecycle as L
from learners.specs import build_learner

kind, n = sys.argv[1], int(sys.argv[2])
spec = LearnerSpec(kind)
rows = make_rows(n, seed=1)

def new():
    lc = L.ModelLifecycle("bench", "classification", spec, None,
                          dataclasses.replace(DriftConfig(), feature_drift=False), GuardConfig())
    lc.initial_release()
    return lc

lc, answers = new(), []
for i, (_, x, y) in enumerate(rows):
    pred, proba = lc.served_model.predict_with_proba(x)
    answers.append((pred, {str(k): v for k, v in proba.items()} or None, lc.served_version))
    lc.learn_one(x, y, index=i)

model = build_learner(spec).model
t0 = time.process_time()
for _, x, y in rows:
    model.learn_one(x, y)
out = {"bare": time.process_time() - t0}

lc = new()
t0 = time.process_time()
for i, (_, x, y) in enumerate(rows):
    p, pr, v = answers[i]
    lc.learn_one(x, y, served_prediction=p, served_proba=pr, served_version=v, index=i)
out["learn_one"] = time.process_time() - t0
versions = [lc.served_version]

if hasattr(L.ModelLifecycle, "learn_batch"):
    examples = [
        L.Labelled(x, y, served_prediction=answers[i][0], served_version=answers[i][2],
                   served_proba=answers[i][1], index=i)
        for i, (_, x, y) in enumerate(rows)
    ]
    lc = new()
    t0 = time.process_time()
    for k in range(0, n, 500):
        lc.learn_batch(examples[k : k + 500])
    out["learn_batch"] = time.process_time() - t0
    versions.append(lc.served_version)
out["served_versions"] = versions
print(json.dumps(out))
"""


def child(tree: str, kind: str, events: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": tree}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(events)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


def compare(before: str, after: str, kinds: list[str], events: int, rounds: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind in kinds:
        best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
        versions: dict[str, Any] = {}
        for _ in range(rounds):
            for name, tree in (("before", before), ("after", after)):
                got = child(tree, kind, events)
                versions[name] = got.pop("served_versions")
                for key, seconds in got.items():
                    best[name][key] = min(best[name].get(key, float("inf")), seconds)
        # The bare River loop is the same code in both trees: its best time over both is the steadiest yardstick.
        bare = min(best["before"]["bare"], best["after"]["bare"])
        result[kind] = {
            name: {
                **{f"{k}_eps": events / s for k, s in figures.items()},
                **{f"{k}_vs_bare": figures["bare"] / s for k, s in figures.items() if k != "bare"},
                **{f"{k}_vs_best_bare": bare / s for k, s in figures.items() if k != "bare"},
                "served_versions": versions[name],
            }
            for name, figures in best.items()
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--kinds", default="logistic_regression,hoeffding_tree")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    print(json.dumps(compare(args.before, args.after, kinds, args.events, args.rounds), indent=1))


if __name__ == "__main__":
    main()
