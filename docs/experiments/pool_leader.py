"""The ``auto`` pool against its own best member on a continuously drifting stream (issue 13, session 18).

    PYTHONPATH=TREE python docs/experiments/pool_leader.py [--streams hyp-m01-k10] [--seeds 1,2] [--delays 50]
        [--n 10000] [--fade F] [--margin M] [--loss zero_one|log]

The plain ``auto`` pool, test-then-train with each label ``delay`` events late (``gradual_streams.plain``), and at
every event each member's own answer at that moment (the members are the pool's own: the same learned state as a
plain run of that member at the same delay). Prints the pool's accuracy, each member's, River's QLR, the share of
events each member leads, the pool's accuracy while each leads, and the number of leader switches. ``--fade``,
``--margin`` (the challenger must be ahead by this much faded loss), ``--loss`` patch ``learners.pool`` in process.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def patch(fade: float | None, margin: float, loss: str) -> None:
    import learners.pool as lp

    if fade is not None:
        lp.FADE = fade
    if margin == 0.0 and loss == "zero_one":
        return
    orig_learn = lp.Pool.learn_one

    def learn_one(self: Any, x: dict[str, Any], y: Any, fast: Any = None) -> None:
        if loss == "log" and self.task == "classification":
            probas = [m.predict_proba_one(x, cleaned=True) for m in self.members]
        leader = self.leader
        orig_learn(self, x, y, fast)
        if loss == "log" and self.task == "classification":
            # replace the 0-1 loss just added by the log loss of the same (pre-learn) answers
            for k, p in enumerate(probas):
                pred = max(p, key=p.get) if p else None
                zo = 0.0 if pred == y else 1.0
                ll = -math.log(min(max(p.get(y, 0.0), 1e-6), 1.0))
                self.losses[k] += ll - zo
            self.leader = min(range(len(self.members)), key=lambda k: (self.losses[k], k != leader))
        ahead = self.leader != leader and leader < len(self.members)
        if margin and ahead and self.losses[self.leader] > self.losses[leader] - margin:
            self.leader = leader

    lp.Pool.learn_one = learn_one  # type: ignore[method-assign]


def run(name: str, seed: int, delay: int, n: int) -> dict[str, Any]:
    from gradual_streams import _river, make

    from learners.features import clean_features
    from learners.specs import LearnerSpec, build_learner

    examples, task = make(name, n, seed)
    model: Any = build_learner(LearnerSpec("auto"), task, 0)
    qlr = _river("QLR", task, 2)
    pool = model.model
    pending: collections.deque[tuple[Any, Any]] = collections.deque()
    names = ["LR", "QLR", "HT"]
    right = collections.Counter()
    lead = collections.Counter()
    lead_right = collections.Counter()
    switches = 0
    last = None
    lo = delay + 1
    for i, (x, y) in enumerate(examples):
        p = model.predict_one(x)
        q = qlr.predict_one(x)
        if i >= lo:
            xc = clean_features(x)
            for k, m in enumerate(pool.members):
                right[names[k]] += m.predict_one(xc, cleaned=True) == y
            right["pool"] += p == y
            right["riverQLR"] += q == y
            who = names[pool.leader]
            lead[who] += 1
            lead_right[who] += p == y
            if last is not None and who != last:
                switches += 1
            last = who
        pending.append((x, y))
        if len(pending) > delay:
            xo, yo = pending.popleft()
            model.learn_one(xo, yo)
            qlr.learn_one(xo, yo)
    m = n - lo
    return {
        "stream": name,
        "seed": seed,
        "delay": delay,
        "acc": {k: round(v / m, 4) for k, v in right.items()},
        "lead_share": {k: round(v / m, 3) for k, v in lead.items()},
        "acc_when_leading": {k: round(lead_right[k] / v, 4) for k, v in lead.items()},
        "switches": switches,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="hyp-m01-k10")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--delays", default="50")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--fade", type=float, default=None)
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--loss", default="zero_one", choices=("zero_one", "log"))
    args = ap.parse_args()
    patch(args.fade, args.margin, args.loss)
    for s in args.streams.split(","):
        for seed in args.seeds.split(","):
            for d in args.delays.split(","):
                print(json.dumps(run(s, int(seed), int(d), args.n)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
