"""Session 35 (helper sec35): what ``pickle_allow.scan`` would cost on each kind's release if it ran on every load
(the F1 sketch of docs/experiments/sec35.md). Run: ``PYTHONPATH=$PWD python docs/experiments/scancost35.py``."""

from __future__ import annotations

import pickletools
import time
import zlib

from driftline.config import LearnerSpec
from learners import pickle_allow, safe_pickle
from learners.specs import build_learner
from tests.learner_kinds import examples

KINDS = (
    ("auto", {}),
    ("logistic_regression", {}),
    ("hoeffding_tree", {}),
    ("adaptive_random_forest", {"n_models": 3}),
)

for name, params in KINDS:
    model = build_learner(LearnerSpec(name, params), "classification")
    for x, y in examples("classification", 2000, seed=1):
        model.learn_one(x, y)
    raw = safe_pickle.compact(model)
    names, strings, ops = set(), [], 0
    for op, arg, _ in pickletools.genops(raw):
        ops += 1
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE"):
            strings.append(arg)
        if op.name == "STACK_GLOBAL":
            names.add((strings[-2], strings[-1]))
    scanned = bool(names & set(pickle_allow.BOUNDED))
    t = time.perf_counter()
    pickle_allow.scan(raw)
    scan_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    safe_pickle.loads(zlib.compress(raw))
    load_ms = (time.perf_counter() - t) * 1000
    print(f"{name:24s} pickle {len(raw):>9,} B  opcodes {ops:>8,}  scanned today: {scanned!s:5s}  "
          f"scan {scan_ms:7.1f} ms  load {load_ms:7.1f} ms")  # fmt: skip
