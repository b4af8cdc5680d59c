"""Session 40 (helper tax40): the incremental test's pairs on a regression stream, as its e-processes see them.

    PYTHONPATH=TREE python docs/experiments/tax40_pairs.py STREAM SEED [--n 2000]

In process, the lifecycle ``driftline replay`` builds from default settings (delay 50). Each pair of the incremental
policy's evidence (the champion's answer when the label comes back against the served snapshot's answer at the
event) is recorded; per stretch of labels learned (200-400, 400-600, 600-900): the absolute-error difference in units
of the served snapshot's running MAE, raw and clipped to [-1, 1] (what the tests bet on), its mean and sd, the share
clipped, the mean difference and the scale; then both models' MAE over the pairs of labels 200-400.
"""

from __future__ import annotations

import argparse
import statistics as st
import sys
from pathlib import Path
from typing import Any

import learners.guard as guard
from bench.accuracy import default_lifecycle
from bench.unseen import DELAY
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import stream_rows  # type: ignore[import-not-found]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    rows, _, task, _ = stream_rows(args.stream, args.n, args.seed)
    lc = default_lifecycle(task, 0)
    rec: list[tuple[int, float, float, float, float, float]] = []
    orig = guard.PairedEvidence.add

    def add(self: guard.PairedEvidence, y: Any, cand: Any, base: Any, segment: str | None = None) -> None:
        scale = self.sum_base / (self.n - 1) if self.n > 1 else 0.0
        orig(self, y, cand, base, segment)
        if self is lc._increment.evidence and scale > 0:
            d = abs(cand - y) - abs(base - y)
            clipped = max(-1.0, min(1.0, d / scale))
            rec.append((lc._lineage.n_learned, d, scale, clipped, abs(cand - y), abs(base - y)))

    guard.PairedEvidence.add = add  # type: ignore[method-assign]
    replay(rows, lc, delay=DELAY)
    for lo, hi in ((200, 400), (400, 600), (600, 900)):
        s = [r for r in rec if lo <= r[0] < hi]
        raw, b = [r[1] / r[2] for r in s], [r[3] for r in s]
        print(
            f"{args.stream} s{args.seed} labels {lo}-{hi}: pairs {len(s)}, raw mean {st.mean(raw):.3f} sd "
            f"{st.pstdev(raw):.3f}, clipped mean {st.mean(b):.3f} sd {st.pstdev(b):.3f}, clipped "
            f"{sum(abs(v) >= 1 for v in b) / len(b):.2f}, mean d {st.mean(r[1] for r in s):.2f}, scale "
            f"{st.mean(r[2] for r in s):.2f}"
        )
    s = [r for r in rec if 200 <= r[0] < 400]
    print(
        f"  labels 200-400: champion MAE {st.mean(r[4] for r in s):.2f}, served {st.mean(r[5] for r in s):.2f}"
    )


if __name__ == "__main__":
    main()
