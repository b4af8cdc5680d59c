"""Session 25 (helper younglag): elec's served accuracy over the first 3,000 rows of each gate path, by stretch.

    PYTHONPATH=TREE python docs/experiments/young_elec_early.py [--patch module.NAME=VALUE,...]

The guarded default (``bench.accuracy.guarded``) at label delay 48 on elec.csv from rows 0, 1,000, 2,000 and 3,000
(``coldstart_gates.py``'s paths), 3,000 rows each: the served accuracy over rows [0, 250), [250, 500), [500, 1,000),
[1,000, 2,000) and [2,000, 3,000) of the path, the whole and the rollbacks. What a change to the young snapshot's
releases (the first ``policies.YOUNG_SERVED`` labels) costs or gains there, before the path's chaos takes over.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.accuracy import guarded, make_stream

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _patch  # type: ignore[import-not-found]

STRETCHES = ((0, 250), (250, 500), (500, 1000), (1000, 2000), (2000, 3000))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    rows, _ = make_stream("elec", 0, 1)
    for offset in (0, 1000, 2000, 3000):
        part = rows[offset : offset + 3000]
        g = guarded(part, "classification", 48, 1)
        losses = g["losses"]
        cells = " ".join(f"[{a},{b}) {1 - sum(losses[a:b]) / (b - a):.4f}" for a, b in STRETCHES)
        whole = 1 - sum(losses) / len(losses)
        print(f"from row {offset}: {cells} all {whole:.4f} rollbacks {g['rollbacks']}", flush=True)


if __name__ == "__main__":
    main()
