"""How much a regression stream's MAE turns on the index of the alarm that starts its challenger (session 15).

    PYTHONPATH=<tree> python docs/experiments/challenger_start.py mv-shift 13 5020,5030,5040

Replays a ``bench.unseen`` stream in process (default lifecycle, delay 50) once per index k, with one extra loss
alarm injected at label k (the tree's own detectors run as they are), and prints the MAE, the alarms and the
non-incremental releases. Why: mv-shift's MAE at seed 13 moved 10.32 -> 12.30 when session 15's trained-scale
detector alarmed 42 labels before base's first alarm, and this shows whether that is the detector or the knife edge
of the challenger's superiority test (promoted after ~2,800 of its 3,000 pairs in base).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import learners.drift as drift
from bench.accuracy import default_lifecycle
from bench.unseen import DELAY, make, write_csv
from learners.replay import read_rows, replay


def main(name: str, seed: int, ks: list[int | None]) -> None:
    examples, _, task, _ = make(name, 10000, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.csv"
        write_csv(examples, path)
        rows = list(read_rows(path, "y"))
    update = drift.LossDriftMonitor.update
    for k in ks:

        def injected(
            self: drift.LossDriftMonitor, loss: float, index: int, k: int | None = k
        ) -> list[drift.DriftSignal]:
            out = update(self, loss, index)
            if index == k and not out:
                out = [drift.DriftSignal("injected", "loss", index, {})]
            return out

        drift.LossDriftMonitor.update = injected  # type: ignore[method-assign]
        s = replay(rows, default_lifecycle(task, 0), delay=DELAY).summary()
        promos = [(p["reason"], p["index"]) for p in s["promotions"] if p["reason"] != "incremental"]
        print(
            f"{name} seed {seed} alarm at {k}: MAE {s['mae']:.4f} alarms {s['alarms']} releases {promos}",
            flush=True,
        )
    drift.LossDriftMonitor.update = update  # type: ignore[method-assign]


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [None if v == "none" else int(v) for v in sys.argv[3].split(",")])
