"""Session 35 (sec35): what pickle_allow.scan would cost on each kind's release if it ran on every load (F1 sketch). Run: PYTHONPATH=$PWD python docs/experiments/scancost35.py"""

import pickletools
import time
import zlib

from driftline.config import LearnerSpec
from learners import pickle_allow, safe_pickle
from learners.specs import build_learner
from tests.learner_kinds import examples

for name, params in (
    ("auto", {}),
    ("logistic_regression", {}),
    ("hoeffding_tree", {}),
    ("adaptive_random_forest", {"n_models": 3}),
):
    m = build_learner(LearnerSpec(name, params), "classification")
    for x, y in examples("classification", 2000, seed=1):
        m.learn_one(x, y)
    raw = safe_pickle.compact(m)
    names = set()
    strs = []
    ops = 0
    for op, arg, pos in pickletools.genops(raw):
        ops += 1
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE"):
            strs.append(arg)
        if op.name == "STACK_GLOBAL":
            names.add((strs[-2], strs[-1]))
    bounded = bool(names & set(pickle_allow.BOUNDED))
    t = time.perf_counter()
    pickle_allow.scan(raw)
    dt = time.perf_counter() - t
    t = time.perf_counter()
    safe_pickle.loads(zlib.compress(raw))
    dl = time.perf_counter() - t
    print(
        f"{name:24s} pickle {len(raw):>9,} B  opcodes {ops:>8,}  already scanned: {bounded!s:5s}  scan {dt * 1000:7.1f} ms  load {dl * 1000:7.1f} ms"
    )
