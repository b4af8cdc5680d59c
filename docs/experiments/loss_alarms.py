"""At every classification loss alarm: were the losses under the cap up or down? (session 13, ``CORROBORATE_LOSS``)

    PYTHONPATH=. python docs/experiments/loss_alarms.py elec
    PYTHONPATH=. python docs/experiments/loss_alarms.py led-10class 7 10000

For each loss alarm the detector raises without corroboration (``CORROBORATE`` below; True shows only the alarms
that stand), prints the warm-up's mean, std and capped losses, and over the last 100, 200 and 400
losses: capped losses, the mean, the mean under the cap and its z against the warm-up's mean under the cap.
elec replays the suite's lifecycle at delay 48 (seed 1); any other name is a ``bench.unseen`` stream.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

import learners.detectors as detectors
import learners.drift
from bench.accuracy import default_lifecycle, make_stream
from bench.unseen import DELAY, make, write_csv
from learners.drift import LOSS_CAP, DriftSignal
from learners.replay import read_rows, replay

CORROBORATE = False  # True: only the alarms that stand since session 13
LOG: list[str] = []


def _row(history: list[float], warmup: int) -> str:
    wu = history[:warmup]
    wsub = [v for v in wu if v < LOSS_CAP]
    m0, s0 = mean(wsub), pstdev(wsub) or 1e-6
    out = [f"warm-up mean {mean(wu):.3f} std {pstdev(wu):.3f} capped {len(wu) - len(wsub)}"]
    for w in (100, 200, 400):
        recent = history[-w:]
        sub = [v for v in recent if v < LOSS_CAP]
        z = (mean(sub) - m0) / (s0 / math.sqrt(len(sub))) if sub else math.nan
        out.append(
            f"W{w}: capped {len(recent) - len(sub)} mean {mean(recent):.3f} under {mean(sub):.3f} z {z:.1f}"
        )
    return " | ".join(out)


def _spy_detector() -> None:
    update = detectors.ScaledDetector.update

    def spied(self: detectors.ScaledDetector, value: float) -> dict[str, str] | None:
        loss = self.setting == "drift.loss_detector"
        if loss:
            self.__dict__.setdefault("_history", []).append(value)
        out = update(self, value)
        if loss and out is not None:
            LOG.append(_row(self.__dict__.pop("_history"), self.warmup))
        elif loss and self.detector is None and self.var.n == 0:
            self.__dict__.pop("_history", None)  # re-warming (a dropped alarm): a new history
        return out

    detectors.ScaledDetector.update = spied  # type: ignore[method-assign]


def main(name: str, seed: int, n: int) -> None:
    learners.drift.CORROBORATE_LOSS = CORROBORATE
    _spy_detector()
    if name == "elec":
        rows, _ = make_stream("elec", 0, seed)
        lc, delay = default_lifecycle("classification", seed), 48
    else:
        examples, _, task, _ = make(name, n, seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.csv"
            write_csv(examples, path)
            rows = list(read_rows(path, "y"))
        lc, delay = default_lifecycle(task, 0), DELAY
    learn_one = lc.learn_one

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        events = learn_one(x, y, **kw)
        for e in events:
            if isinstance(e, DriftSignal) and e.signal == "loss":
                print(f"{e.index:>6} {LOG[-1]}")
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    res = replay(rows, lc, delay=delay)
    print(f"{name} seed {seed}: accuracy {res.summary().get('accuracy')}")


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]) if len(sys.argv) > 2 else 1,
        int(sys.argv[3]) if len(sys.argv) > 3 else 10000,
    )
