"""Candidate regression loss detectors run as shadows of the real one (session 15, issue 13: friedman-gra's missed
recurring drift).

    PYTHONPATH=. python docs/experiments/loss_shadow.py friedman-gra 0,7,13,42,100 [10000]

Replays a ``bench.unseen`` stream in process with the lifecycle ``driftline replay`` builds from default settings
(the regression config), and feeds every loss the real ``LossDriftMonitor`` sees to each candidate in
``CANDIDATES`` too. A shadow resets when the real monitor does (non-incremental releases) and never acts: the
path is base's, so a shadow's *first* alarm that base does not raise is exactly where a tree using it would
part from base (later shadow alarms are only indicative). Prints per candidate: its alarms, the drifts they
detect within 2,000 events (``bench.accuracy.detection``; abrupt lead 20, gradual 500) and the false ones.
"""

from __future__ import annotations

import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import learners.drift as drift
from bench.accuracy import default_lifecycle, detection
from bench.unseen import ABRUPT_LEAD, DELAY, GRADUAL, make, write_csv
from learners.detectors import ScaledDetector, build_detector
from learners.replay import read_rows, replay


class Late:
    """A ScaledDetector whose warm-up starts only after ``settle`` losses since the monitor's reset."""

    def __init__(
        self,
        settle: int,
        warmup: int,
        name: str,
        kwargs: dict[str, Any],
        f: Callable[[float], float],
        after: int = 0,
    ):
        self.settle, self.f, self.after = settle, f, after
        self.det = ScaledDetector(warmup, name, kwargs, "drift.loss_detector")

    def update(self, loss: float) -> bool:
        """``after``: losses skipped again after an alarm before the re-warm (the model is being replaced)."""
        if self.settle:
            self.settle -= 1
            return False
        hit = self.det.update(self.f(loss)) is not None
        if hit:
            self.settle = self.after
        return hit


class Raw:
    """A River detector on the raw loss after ``settle`` losses (scale-free ones: KSWIN, ADWIN)."""

    def __init__(self, settle: int, name: str, kwargs: dict[str, Any]):
        self.settle = settle
        self.det: Any = build_detector(name, kwargs)

    def update(self, loss: float) -> bool:
        if self.settle:
            self.settle -= 1
            return False
        self.det.update(loss)
        return bool(self.det.drift_detected)


def _ph(threshold: float, delta: float = 0.05, alpha: float = 1 - 0.0001) -> dict[str, Any]:
    return {"min_instances": 100, "delta": delta, "threshold": threshold, "mode": "up", "alpha": alpha}


def _log(v: float) -> float:
    return math.log(v + 1e-3)


CANDIDATES: dict[str, Callable[[int], Any]] = {
    # settle = the real monitor's own settle at this reset (0 after "initial", 1000 after "challenger")
    "base": lambda s: Late(s, 100, "page_hinkley", _ph(100), float),
    "L1000_w300_d10_t50_a1000": lambda s: Late(max(s, 1000), 300, "page_hinkley", _ph(50, 0.1), float, 1000),
    "L1000_w500_d10_t50_a1000": lambda s: Late(max(s, 1000), 500, "page_hinkley", _ph(50, 0.1), float, 1000),
    "L1000_w500_d10_t50_a1000_A1": lambda s: Late(
        max(s, 1000), 500, "page_hinkley", _ph(50, 0.1, 1.0), float, 1000
    ),
    "L1000_w500_d10_t40_a1000_A1": lambda s: Late(
        max(s, 1000), 500, "page_hinkley", _ph(40, 0.1, 1.0), float, 1000
    ),
    "L1000_w500_d05_t50_a1000_A1": lambda s: Late(
        max(s, 1000), 500, "page_hinkley", _ph(50, 0.05, 1.0), float, 1000
    ),
    "L1000_w500_d15_t40_a1000_A1": lambda s: Late(
        max(s, 1000), 500, "page_hinkley", _ph(40, 0.15, 1.0), float, 1000
    ),
    "L1000_w300_d10_t50_a1000_A1": lambda s: Late(
        max(s, 1000), 300, "page_hinkley", _ph(50, 0.1, 1.0), float, 1000
    ),
}

ALARMS: dict[str, list[int]] = {}


def _patch() -> None:
    reset, update = drift.LossDriftMonitor.reset, drift.LossDriftMonitor.update

    def p_reset(self: drift.LossDriftMonitor, settle: int = 0) -> None:
        reset(self, settle)
        self.__dict__["_shadows"] = {k: f(settle) for k, f in CANDIDATES.items()}

    def p_update(self: drift.LossDriftMonitor, loss: float, index: int) -> list[drift.DriftSignal]:
        if math.isfinite(loss):
            for k, sh in self.__dict__["_shadows"].items():
                if sh.update(float(loss)):
                    ALARMS.setdefault(k, []).append(index)
        return update(self, loss, index)

    drift.LossDriftMonitor.reset = p_reset  # type: ignore[method-assign]
    drift.LossDriftMonitor.update = p_update  # type: ignore[method-assign]


def main(name: str, seeds: list[int], n: int) -> None:
    _patch()
    for seed in seeds:
        ALARMS.clear()
        examples, points, task, gradual = make(name, n, seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.csv"
            write_csv(examples, path)
            rows = list(read_rows(path, "y"))
        lc = default_lifecycle(task, 0)
        res = replay(rows, lc, delay=DELAY)
        s = res.summary()
        lead = GRADUAL // 2 if gradual else ABRUPT_LEAD
        real = detection(s["alarms"], points, n, lead)
        promos = [
            (p.get("reason"), p.get("index")) for p in s["promotions"] if p.get("reason") != "incremental"
        ]
        print(
            f"## {name} seed {seed}: MAE {s.get('mae'):.4f} points {points} alarms {s['alarms']} "
            f"detected {real['detected']} delays {real['delays']} false {real['false']}; resets {promos}"
        )
        for k in CANDIDATES:
            al = ALARMS.get(k, [])
            d = detection(al, points, n, lead)
            print(
                f"  {k:<26} detected {d['detected']}/{len(points)} delays {d['delays']} false {d['false']} "
                f"alarms {al}"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main(
        sys.argv[1],
        [int(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0],
        int(sys.argv[3]) if len(sys.argv) > 3 else 10000,
    )
