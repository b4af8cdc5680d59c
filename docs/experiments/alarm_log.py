"""Where each drift alarm of the guarded default fires on a suite stream: detector, the sentinel's copy, p0, and
whether the alarm falls in a detection window (``bench.accuracy.detection``'s rule) or counts as false.

    PYTHONPATH=. python docs/experiments/alarm_log.py STREAM SEED [N]
    PYTHONPATH=. python docs/experiments/alarm_log.py hyperplane-gradual 1 20000

Prints one line per error/loss alarm (index, detector, signal, details, window or FALSE) and the sentinel's copy
schedule (label frozen, stream index, p0 once warmed up).
"""

from __future__ import annotations

import sys
from typing import Any

from bench.accuracy import DELAY, DETECT_WITHIN, GRADUAL, STREAMS, default_lifecycle, make_stream
from learners.drift import DriftSignal
from learners.replay import replay
from learners.synthetic import GRADUAL_WIDTH


def main(name: str, seed: int, n: int) -> None:
    task = STREAMS[name]
    rows, points = make_stream(name, n, seed)
    lead = GRADUAL_WIDTH // 2 if name in GRADUAL else 0
    lc = default_lifecycle(task, seed)
    signals: list[DriftSignal] = []
    learn_one = lc.learn_one
    copies: list[tuple[int, int]] = []  # (label frozen, stream index of the label)

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        sentinel = lc._sentinel
        before = [c.label for c in sentinel.copies] if sentinel else []
        events = learn_one(x, y, **kw)
        signals.extend(e for e in events if isinstance(e, DriftSignal) and not e.signal.startswith("feature"))
        if sentinel is not None and lc._sentinel is sentinel:
            for c in sentinel.copies:
                if c.label not in before:
                    copies.append((c.label, kw["index"]))
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    res = replay(rows, lc, delay=DELAY)
    print(
        f"{name} seed {seed} n {n}: accuracy {res.summary().get('accuracy')} drift points {points} lead {lead}"
    )
    for s in signals:
        window = [p for p in points if p - lead <= s.index < p + DETECT_WITHIN]
        where = f"window of {window[0]}" if window else "FALSE"
        d = s.details or {}
        extra = " ".join(f"{k}={v}" for k, v in d.items() if k not in ("test", "statistic", "threshold"))
        print(f"  {s.index:>6} {s.detector:<13} {s.signal:<6} {where:<16} {extra}")
    print("  copies frozen (label, index):", copies)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 20000)
