"""Session 43: three regression labels of 1e99 (under the label cap, ``MAX_REGRESSION_LABEL`` 1e100) in a stream
with an abrupt drift, replayed with defaults (``driftline replay``, label delay 20) per learner; served MAE on the
clean labels per phase, with the versions served.

    PYTHONPATH=TREE python docs/experiments/poison43.py [--cap 1e308]

``--cap 1e308`` sets ``learners.guard.SCALE_CAP`` so high that the paired differences' unit is the plain mean of
the baseline's errors, as before session 43.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import random
import tempfile
from pathlib import Path

import learners.guard
from streams.cli import main

PHASES = ((0, 600), (600, 1500), (1500, 2500), (2500, 4000))


def write(path: Path, poison: bool) -> list[float]:
    rng = random.Random(3)
    labels = []
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["a", "b", "c", "y"])
        for i in range(4000):
            a, b, c = rng.random(), rng.random(), rng.random()
            y = (3 * a - 2 * b if i < 1500 else -3 * a + 2 * b + 5) + rng.gauss(0, 0.1)
            if poison and i in (600, 900, 1200):
                y = 1e99
            out.writerow([a, b, c, y])
            labels.append(y)
    return labels


def main_() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cap", type=float, default=None)
    args = ap.parse_args()
    if args.cap is not None:
        learners.guard.SCALE_CAP = args.cap
    work = Path(tempfile.mkdtemp())
    for name, poison in (("clean", False), ("poisoned", True)):
        labels = write(work / f"{name}.csv", poison)
        for learner in ("auto", "linear_regression", "hoeffding_tree"):
            out = work / f"{name}-{learner}.jsonl"
            argv = ["replay", "--file", str(work / f"{name}.csv"), "--label-col", "y", "--delay", "20", "--task",
                    "regression", "--learner", learner, "--plain", learner, "--out", str(out), "--json"]  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()) as buf:
                main(argv)
            summary = json.loads(buf.getvalue())
            served = [json.loads(line) for line in out.read_text().splitlines()]
            cells = []
            for lo, hi in PHASES:
                errs = [
                    abs(float(p["prediction"]) - labels[p["index"]])
                    for p in served[lo:hi]
                    if labels[p["index"]] < 1e90
                ]
                cells.append(
                    f"{lo}-{hi} {sum(errs) / len(errs):.3g} (v{served[lo]['version']}-{served[hi - 1]['version']})"
                )
            print(
                f"| {name} | {learner} | " + " | ".join(cells) + f" | {len(summary['alarms'])} |", flush=True
            )


if __name__ == "__main__":
    main_()
