"""Session 46 (helper guard46): the incremental test over a release gap, label by label.

    PYTHONPATH=TREE python docs/experiments/guard46_gap.py STREAM SEED [--n 2000] [--every 25] [--to 1200]
        [--patch module.NAME=VALUE,...]

Every ``--every`` labels up to label ``--to``: the served snapshot's labels learned (``served_n``), labels since the
release, the non-inferiority evidence (pairs, champion-only-right / snapshot-only-right, log-wealth against the
threshold), and every judgement (``IncrementalPolicy.decide``'s decision: outcome and text) as it comes.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import learners.policies as policies
from bench.accuracy import default_lifecycle
from bench.unseen import DELAY
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _patch, stream_rows  # type: ignore[import-not-found]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--to", type=int, default=1200)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    rows, points, task, _ = stream_rows(args.stream, args.n, args.seed)
    lc = default_lifecycle(task, 0)
    print(f"{args.stream} s{args.seed} points {points} alpha {lc.guard.alpha}")
    count = {"n": 0}
    observe, decide = policies.IncrementalPolicy.observe, policies.IncrementalPolicy.decide

    def obs(self: Any, *a: Any, **kw: Any) -> None:
        observe(self, *a, **kw)
        count["n"] += 1
        k = count["n"]
        if k <= args.to and k % args.every == 0:
            ev = self.evidence
            nw = ev.not_worse
            print(
                f"  label {k:5} served_n {self.served_n:5} since_release {self.since_release:4} pairs {ev.n:4} "
                f"cand_only {ev.cand_only:3} base_only {ev.base_only:3} logW {nw.log_wealth:+6.2f} "
                f"({type(nw).__name__}, m {nw.m:.3f}, threshold {-math.log(self.guard.alpha):.2f}) "
                f"carried {self.carried} since_alarm {min(self.since_alarm, 99999)}"
            )

    def dec(self: Any, index: int, **kw: Any) -> Any:
        d = decide(self, index, **kw)
        if d is not None and count["n"] <= args.to:
            print(f"    decide at label {count['n']} (event index {index}): {d.outcome} {d.text[:200]}")
        return d

    policies.IncrementalPolicy.observe = obs  # type: ignore[method-assign]
    policies.IncrementalPolicy.decide = dec  # type: ignore[method-assign]
    replay(rows, lc, delay=DELAY)


if __name__ == "__main__":
    main()
