"""Quadratic.transform_one time per event: W numbers plus a one-hot category of K values (K feature sets).

Usage: python docs/experiments/quad_plan_cache31.py <tree> W K [N]   (session 31, review31; <tree> is a checkout)
"""

from __future__ import annotations

import importlib
import random
import sys
import time

root = sys.argv[1]
sys.path.insert(0, root)
Quadratic = importlib.import_module("learners.features").Quadratic
W, K = int(sys.argv[2]), int(sys.argv[3])
N = int(sys.argv[4]) if len(sys.argv) > 4 else 300
rng = random.Random(0)
events = [{**{f"f{i}": rng.random() for i in range(W)}, f"color=c{n % K}": 1.0} for n in range(N)]
q = Quadratic()
for e in events[:K]:
    q.learn_one(e)
t = time.perf_counter()
for e in events:
    q.transform_one(e)
print(
    f"{root.rstrip('/').split('/')[-1]:10s} W={W} K={K}: {(time.perf_counter() - t) / N * 1e3:.4f} ms/event N={N}"
)
