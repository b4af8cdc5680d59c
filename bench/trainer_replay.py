"""The train worker's examples replayed in process: ``ModelLifecycle.learn_batch`` on exactly what
``bench.trainer_cost`` (and ``driftline bench``) put on ``training``, without Kafka, per source tree.

``python -m bench.trainer_replay [TREE ...] [--kinds K] [--events N] [--batch B] [--rounds R]``: for each kind,
one child process per tree and round (trees alternating) times, in CPU time of the child, bare River
``learn_one`` and ``learn_batch`` in batches of ``B`` (the worker's mean transaction is 4,000 labels) over the
same rows with three kinds of examples:

- ``worker``: the served answers as the bench fills them (:func:`bench.data.served_answers`: labels 100 events
  after their prediction, so an answer is from the version served when the event was scored);
- ``none``: no prediction, proba or version (the lifecycle predicts the served model itself);
- ``current``: every answer from the version served at the label (``bench.learning``'s examples).

It also counts how many of the worker's examples carry the answer of the version served when their label is
learned: only those take the lifecycle's "answer came from the served version" shortcut. Each figure keeps its
best round; ``*_vs_bare`` divides by the bare loop of the same child. Used for BENCHMARKS.md (issue 16).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = r"""
import json, sys, time
from bench.data import make_rows, served_answers
from driftline.config import LearnerSpec
from driftline.settings import load_settings
from learners.lifecycle import Labelled
from learners.specs import build_learner
from streams.train import new_lifecycle

kind, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = load_settings(environ={}, overrides={"model.learner": {"name": kind, "params": {}}})
rows = make_rows(n, seed=1)
answers = served_answers(s, rows)
worker = [Labelled(r[1], r[2], served_prediction=a[0], served_version=a[2], served_proba=a[1], index=i, ts=0)
          for i, (r, a) in enumerate(zip(rows, answers))]
none = [Labelled(r[1], r[2], index=i, ts=0) for i, r in enumerate(rows)]
lc, current, fresh = new_lifecycle(s), [], 0
lc.initial_release()
for e in worker:
    fresh += e.served_version == lc.served_version
    pred, proba = lc.served_model.predict_with_proba(e.x)
    current.append(Labelled(e.x, e.y, served_prediction=pred, served_version=lc.served_version,
                            served_proba={str(k): v for k, v in proba.items()} or None, index=e.index, ts=0))
    lc.learn_one(e.x, e.y, index=e.index, ts=0)
out = {"answers_from_served_version": fresh / n, "releases": lc.served_version - 1}
model = build_learner(LearnerSpec(kind)).model
t0 = time.process_time()
for _, x, y in rows:
    model.learn_one(x, y)
out["bare"] = time.process_time() - t0
for name, examples in (("worker", worker), ("none", none), ("current", current)):
    lc = new_lifecycle(s)
    lc.initial_release()
    t0 = time.process_time()
    for k in range(0, n, batch):
        lc.learn_batch(examples[k : k + batch])
    out[name] = time.process_time() - t0
    out[name + "_version"] = lc.served_version
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trainer_replay", description=__doc__)
    parser.add_argument("trees", nargs="*", default=["."])
    parser.add_argument("--kinds", default="logistic_regression")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    trees = [str(Path(t).resolve()) for t in args.trees]
    result: dict[str, Any] = {"events": args.events, "batch": args.batch, "trees": trees, "best": {}}
    for kind in args.kinds.split(","):
        best: dict[str, dict[str, Any]] = {t: {} for t in trees}
        for r in range(args.rounds):
            for tree in trees:
                cmd = [sys.executable, "-c", CHILD, kind, str(args.events), str(args.batch)]
                env = {**os.environ, "PYTHONPATH": tree}
                got = json.loads(
                    subprocess.run(cmd, cwd=tree, env=env, capture_output=True, check=True).stdout
                )
                b = best[tree]
                for key, value in got.items():
                    if key in ("bare", "worker", "none", "current"):
                        b[key] = min(b.get(key, value), value)
                    else:
                        b[key] = value
                print(f"[replay] {kind} round {r} {tree}: {got}", file=sys.stderr, flush=True)
        for b in best.values():
            n = args.events
            for key in ("worker", "none", "current"):
                b[f"{key}_us"] = b[key] / n * 1e6
                b[f"{key}_vs_bare"] = b["bare"] / b[key]
            b["bare_us"] = b["bare"] / n * 1e6
        result["best"][kind] = best
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
