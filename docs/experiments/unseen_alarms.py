"""Where each drift alarm of the guarded default fires on a ``bench.unseen`` stream, and what was served around it:
detector, the sentinel's copy and p0, window or FALSE (``bench.unseen``'s rule), and every challenger promotion.

    PYTHONPATH=. python docs/experiments/unseen_alarms.py STREAM SEED [N] [off]
    PYTHONPATH=. python docs/experiments/unseen_alarms.py hyperplane5-flip 100 20000

``off`` undoes session 10's two changes for an A/B run (the loss detector's settling after a promotion,
``lifecycle.LOSS_SETTLE``, and the sentinel's restart at a promotion, ``SnapshotSentinel.promoted``).

In process: the stream is written as CSV and read back as the CLI reads it, then replayed through the lifecycle
``driftline replay`` builds from default settings (seed 0, delay 50), so the alarm list is the CLI's.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import learners.lifecycle
from bench.accuracy import DETECT_WITHIN, default_lifecycle
from bench.unseen import ABRUPT_LEAD, DELAY, GRADUAL, make, write_csv
from learners.drift import DriftSignal
from learners.lifecycle import Release
from learners.replay import read_rows, replay
from learners.sentinel import SnapshotSentinel


def main(name: str, seed: int, n: int) -> None:
    examples, points, task, gradual = make(name, n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.csv"
        write_csv(examples, path)
        rows = list(read_rows(path, "y"))
    lead = GRADUAL // 2 if gradual else ABRUPT_LEAD
    lc = default_lifecycle(task, 0)
    log: list[tuple[int, str]] = []
    learn_one = lc.learn_one

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        events = learn_one(x, y, **kw)
        for e in events:
            if isinstance(e, DriftSignal) and not e.signal.startswith("feature"):
                window = [p for p in points if p - lead <= e.index < p + DETECT_WITHIN]
                where = f"window of {window[0]}" if window else "FALSE"
                d = e.details or {}
                extra = " ".join(
                    f"{k}={v}" for k, v in d.items() if k not in ("test", "statistic", "threshold")
                )
                log.append((e.index, f"ALARM {e.detector:<13} {e.signal:<6} {where:<16} {extra}"))
            elif isinstance(e, Release) and e.reason not in ("incremental",):
                log.append((kw["index"], f"RELEASE {e.reason} v{e.version}"))
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    res = replay(rows, lc, delay=DELAY)
    print(
        f"{name} seed {seed} n {n}: {res.summary().get('accuracy', res.summary().get('mae'))} points {points}"
    )
    for index, line in log:
        print(f"  {index:>6} {line}")


if __name__ == "__main__":
    if sys.argv[4:] == ["off"]:
        learners.lifecycle.LOSS_SETTLE = 0
        SnapshotSentinel.promoted = lambda self, champion: None  # type: ignore[method-assign]
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 20000)
