"""Session 14: the vocabulary bounds swept on a plain learner (test-then-train, no guard).

For each bound, a fresh learner of ``--learner`` reads ``FILE`` (label ``y``) predicting each row before learning
it; prints one JSON line per bound: prequential accuracy, seconds, the final release pickle size and the keys.

    PYTHONPATH=. python docs/experiments/vocab_sweep.py /tmp/vocab/city-20000.csv --values 33 128 256 512 1024
    PYTHONPATH=. python docs/experiments/vocab_sweep.py /tmp/vocab/names-20000.jsonl --keys 512 1024 2048 4096 8192
"""

from __future__ import annotations

import argparse
import json
import time

import learners.specs as specs
from driftline.config import LearnerSpec
from learners import safe_pickle
from learners.replay import read_rows


def one(path: str, learner: str, max_keys: int, max_values: int) -> dict[str, object]:
    specs.MAX_KEYS, specs.MAX_VALUES = max_keys, max_values
    model = specs.build_learner(LearnerSpec(learner))
    rows = [(x, y) for _, _, x, y in read_rows(path, "y")]
    correct = 0
    start = time.perf_counter()
    for x, y in rows:
        correct += model.predict_one(x) == y
        model.learn_one(x, y)
    seconds = time.perf_counter() - start
    known = model._known
    return {
        "learner": learner,
        "max_keys": max_keys,
        "max_values": max_values,
        "accuracy": correct / len(rows),
        "seconds": round(seconds, 2),
        "release_bytes": len(safe_pickle.compact(model)),
        "keys": None if known is None else len(known),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("--learner", default="logistic_regression")
    parser.add_argument("--values", type=int, nargs="*", default=[])
    parser.add_argument("--keys", type=int, nargs="*", default=[])
    args = parser.parse_args()
    for k in args.values:
        print(json.dumps(one(args.file, args.learner, 10**9, k)), flush=True)
    for f in args.keys:
        print(json.dumps(one(args.file, args.learner, f, 10**9)), flush=True)


if __name__ == "__main__":
    main()
