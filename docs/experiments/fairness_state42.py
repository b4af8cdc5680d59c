"""What the served-fairness window adds to each trainer checkpoint (session 42, helper gov42).

The trainer pickles its state after every batch; since session 42 the state holds the served-fairness window
(``learners.fairness.FairnessMonitor``: the last 1,000 labelled examples per segment, at most 50 segments), every
batch while it holds at most ``streams.train.FAIRNESS_SAVE_EVERY_BATCH`` examples, else at most every
``FAIRNESS_SAVE_S``. This prints the pickle size and time of a full window of 2, 10 and 50 segments.

    PYTHONPATH=$PWD python docs/experiments/fairness_state42.py
"""

from __future__ import annotations

import json
import pickle
import random
import time

from learners.fairness import FairnessMonitor


def main() -> None:
    rng = random.Random(42)
    for segments in (2, 10, 50):
        monitor = FairnessMonitor("classification", window=1000)
        for i in range(segments * 1000):
            monitor.add(str(i % segments), rng.random() < 0.5, rng.random() < 0.5)
        t0 = time.perf_counter()
        for _ in range(50):
            data = pickle.dumps(monitor, protocol=5)
        ms = (time.perf_counter() - t0) / 50 * 1000
        print(
            json.dumps({"segments": segments, "examples": len(monitor), "bytes": len(data), "pickle_ms": ms})
        )


if __name__ == "__main__":
    main()
