"""Session 22 (helper shortstream): River's error detectors by name, fed the 0/1 errors the guarded default actually
served on ``bench.unseen`` streams (a screen, offline: an alarm here changes nothing downstream, so only a
detector's *first* alarms near a drift and its alarms on stationary stretches are meaningful).

    PYTHONPATH=TREE python -m bench.unseen --n 2000 --seed S --workers 1 --keep DIR   # served predictions
    PYTHONPATH=TREE python docs/experiments/short_detectors.py DIR S [--n 2000] [--detectors adwin,ddm,...]

Each detector runs as ``learners.drift.ErrorDriftMonitor`` runs it (``adwin_grace`` 100; an alarm stands only if the
error rose: ADWIN's windows, or the last 100 errors against those since the last alarm), and is rebuilt after each
alarm. Alarms are judged by ``bench.accuracy.detection`` with ``bench.unseen``'s lead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.accuracy import detection
from bench.unseen import ABRUPT_LEAD, GRADUAL, STREAMS, make
from driftline.config import DriftConfig
from learners.drift import ErrorDriftMonitor
from learners.replay import read_rows


def alarms(errors: list[float], name: str, params: dict[str, Any]) -> list[int]:
    config = DriftConfig(error_detector=name, error_detector_params=params)
    monitor = ErrorDriftMonitor(config)
    out = []
    for i, e in enumerate(errors):
        if monitor.update(e, i):
            out.append(i)
            monitor.reset()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--detectors", default="adwin,ddm,eddm,hddm_a,hddm_w,kswin")
    ap.add_argument("--params", default="{}", help="JSON: detector name -> params")
    args = ap.parse_args()
    params = json.loads(args.params)
    names = args.detectors.split(",")
    totals = {d: [0, 0, 0] for d in names}  # detected, drifts, false
    for stream in STREAMS:
        _, points, task, gradual = make(stream, args.n, args.seed)
        if task != "classification":
            continue
        preds_path = Path(args.dir) / stream / "preds.jsonl"
        if not preds_path.exists():
            continue
        rows = list(read_rows(Path(args.dir) / f"{stream}.csv", "y"))
        preds = [json.loads(line)["prediction"] for line in preds_path.open()]
        errors = [0.0 if p == y else 1.0 for p, (_, _, _, y) in zip(preds, rows, strict=True)]
        # The errors arrive at the label: the first 50 events' predictions are before any label (cold start).
        lead = GRADUAL // 2 if gradual else ABRUPT_LEAD
        cells = []
        for d in names:
            a = alarms(errors, d, params.get(d, {}))
            det = detection(a, points, len(rows), lead)
            totals[d][0] += det["detected"] if not gradual else 0
            totals[d][1] += len(points) if not gradual else 0
            totals[d][2] += det["false"]
            cells.append(f"{d} {det['detected']}/{len(points)} f{det['false']} {a[:6]}")
        print(f"{stream:<18} {points} | " + " | ".join(cells))
    print("abrupt detected / false: " + ", ".join(f"{d} {t[0]}/{t[1]} f{t[2]}" for d, t in totals.items()))


if __name__ == "__main__":
    main()
