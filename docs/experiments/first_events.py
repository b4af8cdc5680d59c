"""The first delay + 1 events of a replay: what a plain learner answers before any label has arrived.

    PYTHONPATH=. python docs/experiments/first_events.py FILE.csv DELAY [FILE.csv DELAY ...]
    PYTHONPATH=. python docs/experiments/first_events.py /tmp/stall-fresh/csv/np_stationary_s0.csv 50

For River's ``StandardScaler | LogisticRegression`` and driftline's ``logistic_regression`` (``build_learner``),
test-then-train at DELAY on a binary CSV (label column ``y``): accuracy over all events, the right answers among
the first DELAY + 1 events (no label has arrived yet), and accuracy after them. River's untrained model answers
``False``, which equals a label ``0`` (``int(False) == 0``); driftline's answers ``None``. BENCHMARKS-accuracy.md,
session 17: that alone made three of session 16's outsider taxes fail the 0.5-point bound.
"""

from __future__ import annotations

import collections
import sys
from typing import Any

from river import linear_model, preprocessing

from driftline.config import LearnerSpec
from learners.replay import read_rows
from learners.specs import build_learner


def main(path: str, delay: int) -> None:
    rows = [(x, int(y)) for _, _, x, y in read_rows(path, "y")]

    def run(model: Any) -> list[bool]:
        pending: collections.deque[tuple[dict[str, Any], int]] = collections.deque()
        right = []
        for x, y in rows:
            pred = model.predict_one(x)
            right.append(pred is not None and int(pred) == y)
            pending.append((x, y))
            if len(pending) > delay:
                model.learn_one(*pending.popleft())
        return right

    k, n = delay + 1, len(rows)
    for name, model in (
        ("river LR", preprocessing.StandardScaler() | linear_model.LogisticRegression()),
        ("driftline LR", build_learner(LearnerSpec("logistic_regression"), "classification", 0)),
    ):
        r = run(model)
        print(
            f"{path} delay {delay} {name}: all {sum(r) / n:.4f}, right in the first {k}: {sum(r[:k])},"
            f" after them {sum(r[k:]) / (n - k):.4f}"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    for i in range(0, len(args), 2):
        main(args[i], int(args[i + 1]))
