"""The guard's decisions around a drift of a ``bench.unseen`` stream: every decision (incremental or challenger,
with its outcome, the failed checks and the test's numbers), every release but incremental ones, every alarm, and
the served model's and the champion's mean loss per 250 labels, between two stream indexes.

    PYTHONPATH=. python docs/experiments/guard_log.py STREAM SEED N FROM TO
    PYTHONPATH=. python docs/experiments/guard_log.py mv-shift 100 20000 9900 13000

In process, through the CSV round trip and the lifecycle ``driftline replay`` builds from default settings (seed 0,
delay 50), as ``unseen_alarms.py``. Incremental promotions are counted per 250 labels rather than printed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle
from bench.unseen import DELAY, _loss, make, write_csv
from learners.drift import DriftSignal
from learners.guard import Decision
from learners.lifecycle import Release
from learners.replay import read_rows, replay


def main(name: str, seed: int, n: int, lo: int, hi: int) -> None:
    examples, points, task, _ = make(name, n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.csv"
        write_csv(examples, path)
        rows = list(read_rows(path, "y"))
    lc = default_lifecycle(task, 0)
    learn_one = lc.learn_one
    bucket: dict[str, float] = {"served": 0.0, "champion": 0.0, "n": 0, "inc": 0}

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        index = kw["index"]
        inside = lo <= index < hi
        if inside:
            from learners.features import clean_features

            xc = clean_features(x)
            bucket["served"] += _loss(task, lc.served_model.predict_one(xc, cleaned=True), y)
            bucket["champion"] += _loss(task, lc.champion.predict_one(xc, cleaned=True), y)
            bucket["n"] += 1
        events = learn_one(x, y, **kw)
        if not inside:
            return events
        for e in events:
            if isinstance(e, DriftSignal) and not e.signal.startswith("feature"):
                print(f"  {index:>6} ALARM {e.detector} {e.signal}")
            elif isinstance(e, Release):
                if e.reason == "incremental":
                    bucket["inc"] += 1
                else:
                    print(
                        f"  {index:>6} RELEASE {e.reason} v{e.version}: {e.decision.text if e.decision else ''}"
                    )
            elif isinstance(e, Decision):
                ev = e.evidence
                print(
                    f"  {index:>6} {e.reason:<11} {e.outcome:<7} n={ev.get('n', 0):.0f} "
                    f"log_e={ev.get('log_e_value', float('nan')):.2f} "
                    f"cand={ev.get('candidate_mae', ev.get('candidate_accuracy', float('nan'))):.3f} "
                    f"base={ev.get('baseline_mae', ev.get('baseline_accuracy', float('nan'))):.3f} "
                    f"failed={[k for k, v in e.checks.items() if v is not True]}"
                )
        if bucket["n"] == 250:
            c = lc._challenger
            print(
                f"  {index:>6} per 250: served {bucket['served'] / 250:.3f} champion "
                f"{bucket['champion'] / 250:.3f} incremental releases {bucket['inc']:.0f} challenger "
                f"{'none' if c.lineage is None else f'started {c.started}, pairs {c.evidence.n}'} "
                f"inc pairs {lc._increment.evidence.n} log_e {lc._increment.evidence.not_worse.log_wealth:.2f}"
            )
            bucket.update(served=0.0, champion=0.0, n=0, inc=0)
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    replay(rows, lc, delay=DELAY)
    print(f"{name} seed {seed} n {n} points {points}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
