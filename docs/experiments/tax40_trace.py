"""Session 40 (helper tax40): where a regression row's MAE tax accrues, one table per stream and seed.

    PYTHONPATH=TREE python docs/experiments/tax40_trace.py --rows mv-shift:4,linear-reversal:2 [--n 2000]
        [--patch module.NAME=VALUE,...]

In process, as ``regtax_trace.py`` (the lifecycle ``driftline replay`` builds from default settings, delay 50, the
best plain learner of ``bench.unseen`` at the same delay). Per row: the tax, the drift and alarm indices, the
releases by reason, the longest stretch one snapshot was served before the drift (events), and the excess loss
(served minus best plain) in stretches: before the drift, its first 100 events, the next 200, the rest; each split
into the release lag (served minus the champion's answer at the event) and the champion's own (champion minus best
plain), in % of the best plain's total; the same stretches for the plain ``auto`` pool (the default learner, no guard)
minus the best plain. Then the excess per 100 events.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _loss, _patch, plain_losses, stream_rows  # type: ignore[import-not-found]

from bench.accuracy import default_lifecycle, plain
from bench.unseen import DELAY
from driftline.config import LearnerSpec
from learners.lifecycle import Release
from learners.replay import replay


def row(name: str, seed: int, n: int) -> None:
    rows, points, task, _ = stream_rows(name, n, seed)
    lc = default_lifecycle(task, 0)
    n = len(rows)
    champ: list[float] = [0.0] * n
    served_at: list[int] = [0] * n  # labels the served snapshot had learned at the event
    reasons: collections.Counter[str] = collections.Counter()
    learn_one = lc.learn_one

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        events = learn_one(x, y, **kw)
        for e in events:
            if isinstance(e, Release):
                reasons[e.reason] += 1
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    preds: list[Any] = []

    def on_pred(r: dict[str, Any]) -> None:
        preds.append(r["prediction"])
        k = len(preds) - 1
        if k < n:
            served_at[k] = lc._served.n_learned
            champ[k] = _loss(task, lc._lineage.model.predict_one(rows[k][2]), rows[k][3])

    res = replay(rows, lc, delay=DELAY, on_prediction=on_pred)
    alarms = res.summary()["alarms"]
    served = [_loss(task, p, r[3]) for p, r in zip(preds, rows, strict=True)]
    runs = plain_losses(rows, task)
    best = min(runs, key=lambda k: sum(runs[k]))
    b = runs[best]
    total = sum(b)
    drift = points[0]
    # The longest run of events served by one snapshot before the drift (a snapshot = its labels learned).
    longest, start, run_from = 0, 0, 0
    for i in range(1, drift):
        if served_at[i] != served_at[i - 1]:
            run_from = i
        if i - run_from + 1 > longest:
            longest, start = i - run_from + 1, run_from
    print(
        f"{name} s{seed}: tax {100 * (sum(served) / total - 1):+.2f} % vs plain {best}; drift {points}; "
        f"alarms {[a.get('index', a) if isinstance(a, dict) else a for a in alarms]}; releases {dict(reasons)}; "
        f"longest pre-drift snapshot {longest} events from {start} (learned {served_at[start]})"
    )
    cuts = [(0, drift), (drift, drift + 100), (drift + 100, drift + 300), (drift + 300, n)]
    parts = []
    for a, z in cuts:
        lag = sum(served[a:z]) - sum(champ[a:z])
        own = sum(champ[a:z]) - sum(b[a:z])
        parts.append(
            f"[{a},{z}) {100 * (lag + own) / total:+.2f} (lag {100 * lag / total:+.2f}, champ {100 * own / total:+.2f})"
        )
    print("   % of plain total: " + "; ".join(parts))
    pool = plain(rows, LearnerSpec("auto"), task, DELAY, 0)["losses"]
    own = [f"[{a},{z}) {100 * (sum(pool[a:z]) - sum(b[a:z])) / total:+.2f}" for a, z in cuts]
    print(f"   plain auto pool - {best}, % of its total: " + "; ".join(own))
    per = [sum(served[a : a + 100]) - sum(b[a : a + 100]) for a in range(0, n, 100)]
    print("   excess per 100: " + " ".join(f"{100 * v / total:+.2f}" for v in per))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", required=True)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    for item in args.rows.split(","):
        name, seed = item.split(":")
        row(name, int(seed), args.n)


if __name__ == "__main__":
    main()
