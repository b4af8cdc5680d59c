"""The faded MAE of each member of a warm-started challenger pool (session 17, helper warmpool), every 250 labels
after the warm start, on a regression CSV replayed in process (the default lifecycle, delay 50, never pruned).

    PYTHONPATH=<tree> python docs/experiments/warm_members.py reg_neg_s0.csv [--to 3000]

Members are printed in the pool's order: the fresh ones first, then the copies of the champion's (marked ``(w)``).
"""

from __future__ import annotations

import argparse
from typing import Any

import learners.pool as pool
from bench.accuracy import default_lifecycle
from learners.replay import read_rows, replay


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--to", type=int, default=3000)
    a = ap.parse_args()
    rows = list(read_rows(a.csv, "y"))
    learn = pool.Pool.learn_one

    def traced(self: pool.Pool, x: dict[str, Any], y: Any, fast: Any = None) -> None:
        n = self._since_warm
        if self._warm and self.weight and n % 250 == 0 and 0 < n <= a.to:
            fresh = len(self.members) // 2
            cells = [
                f"{m.spec.name}{'(w)' if k >= fresh else ''} {loss / self.weight:.3f}"
                for k, (m, loss) in enumerate(zip(self.members, self.losses, strict=True))
            ]
            print(n, " | ".join(cells), flush=True)
        learn(self, x, y, fast)

    pool.Pool.learn_one = traced  # type: ignore[method-assign]
    pool.WARM_PRUNE = None
    replay(rows, default_lifecycle("regression", 0), delay=50)


if __name__ == "__main__":
    main()
