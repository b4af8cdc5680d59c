"""Session 24 (helper wavegate): can a SEA threshold shift at 2,000 events be seen in plain LR's error at all?

    PYTHONPATH=TREE python docs/experiments/sea_detect.py [--streams sea-abrupt,sea-0-3] [--seeds 0,1,...]

Per stream and seed: the share of labels the shift changes (the new concept's labels against the old concept's on
the same inputs, noise aside: read off the drift window's generator), plain LR's error (learning every label at
``bench.unseen``'s delay) over the 400 labels before the drift, the 400 after it and the rest, and the first alarm
after the drift point of River's error detectors by name (``learners.drift.ErrorDriftMonitor``, as
``docs/experiments/short_detectors.py``) fed plain LR's 0/1 errors, plus their false alarms before it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench.accuracy import plain
from bench.unseen import DELAY, make, write_csv
from driftline.config import LearnerSpec
from learners.replay import read_rows

sys.path.insert(0, str(Path(__file__).parent))
from short_detectors import alarms

DETECTORS = ("adwin", "ddm", "eddm", "hddm_a", "hddm_w", "kswin", "page_hinkley")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--streams", default="sea-abrupt,sea-0-3")
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    lr = LearnerSpec("logistic_regression", {"multiclass": "ovr"})
    for stream in args.streams.split(","):
        for seed in map(int, args.seeds.split(",")):
            examples, points, _, _ = make(stream, args.n, seed)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "s.csv"
                write_csv(examples, path)
                rows = list(read_rows(path, "y"))
            errs = plain(rows, lr, "classification", DELAY, 0)["losses"]
            d = points[0]

            def mean(lo: int, hi: int, errs: list[float] = errs) -> float:
                seg = errs[max(lo, 0) : min(hi, len(errs))]
                return sum(seg) / max(len(seg), 1)

            cells = []
            for name in DETECTORS:
                try:
                    found = alarms(errs, name, {})
                except Exception as exc:  # a detector River does not take with default parameters
                    cells.append(f"{name} error {exc!s:.30}")
                    continue
                after = [a for a in found if a >= d]
                before = [a for a in found if a < d]
                cells.append(
                    f"{name} {after[0] if after else '-'}" + (f" (+{len(before)} before)" if before else "")
                )
            print(
                f"{stream} s{seed} drift {d}: LR error before {mean(d - 400, d):.3f} after {mean(d, d + 400):.3f} "
                f"rest {mean(d + 400, len(errs)):.3f} | " + ", ".join(cells)
            )


if __name__ == "__main__":
    main()
