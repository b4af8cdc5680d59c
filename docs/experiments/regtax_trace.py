"""Session 24 (helper regtax): where a regression stream's served MAE loses against plain LR, label by label.

    PYTHONPATH=TREE python docs/experiments/regtax_trace.py STREAM SEED [--n 2000] [--from A --to B] [--step 25]
        [--patch module.NAME=VALUE,...]

In process, as ``short_trace.py``: the stream is written as CSV, read back as the CLI reads it and replayed through
the lifecycle ``driftline replay`` builds from default settings (delay 50). Prints the tax split into stretches
(before the first drift, each drift's first ``--after`` events, the rest) and, per ``--step`` events between
``--from`` and ``--to``: the served MAE against plain LR's, the served snapshot's lag behind the champion in labels
(at the event: labels the champion had learned when the event was served minus the served snapshot's), the
incremental judgements (promoted / rejected, with the checks that failed) and every alarm and non-incremental
release.
"""

from __future__ import annotations

import argparse
import collections
import itertools
from typing import Any

from short_trace import _loss, _patch, plain_losses, stream_rows  # type: ignore[import-not-found]

from bench.accuracy import default_lifecycle
from bench.unseen import DELAY
from learners.drift import DriftSignal
from learners.guard import Decision
from learners.lifecycle import Release
from learners.replay import replay


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--step", type=int, default=25)
    ap.add_argument("--from", dest="start", type=int, default=None)
    ap.add_argument("--to", dest="end", type=int, default=None)
    ap.add_argument("--after", type=int, default=300, help="events after each drift counted as its recovery")
    ap.add_argument("--patch", default="")
    ap.add_argument(
        "--labels", default="", help="A:B: print the incremental policy's state after each label in it"
    )
    args = ap.parse_args()
    _patch(args.patch)
    rows, points, task, _ = stream_rows(args.stream, args.n, args.seed)
    lc = default_lifecycle(task, 0)
    label_lo, label_hi = (int(v) for v in args.labels.split(":")) if args.labels else (0, 0)
    n = len(rows)
    # Per label index: what the judgement said; per event: the served snapshot's and champion's labels learned.
    judged: dict[int, list[str]] = collections.defaultdict(list)
    lag: list[int] = [0] * n
    champ_loss: list[float] = [
        0.0
    ] * n  # the champion's answer at the event (what no release lag would serve)
    learn_one = lc.learn_one

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        events = learn_one(x, y, **kw)
        i = kw["index"]
        if label_lo <= i < label_hi:
            p = lc._increment
            t = p.evidence.not_worse
            print(
                f"  label {i}: since_release {p.since_release} recovery_left {p.recovery_left} pairs {t.n} "
                f"m {t.m:.2f} log_wealth {t.log_wealth:6.2f} wide {getattr(p.evidence.wide, 'log_wealth', None)} "
                f"carried {p.carried} served_n {p.served_n} "
                f"champion_n {lc._lineage.n_learned} {[type(e).__name__ for e in events]}"
            )
        for e in events:
            if isinstance(e, DriftSignal) and not e.signal.startswith("feature"):
                judged[i].append(f"ALARM {e.detector} {e.signal}")
            elif isinstance(e, Release):
                if e.reason != "incremental":
                    judged[i].append(f"RELEASE {e.reason} v{e.version}")
                else:
                    judged[i].append("inc")
            elif isinstance(e, Decision):
                bad = [k for k, v in e.checks.items() if v is not True]
                judged[i].append(f"{e.outcome}:{e.reason}:{','.join(bad)}")
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    preds: list[Any] = []

    def on_pred(r: dict[str, Any]) -> None:
        preds.append(r["prediction"])
        k = len(preds) - 1
        if k < n:
            lag[k] = lc._lineage.n_learned - lc._served.n_learned
            _, _, x, y = rows[k]
            champ_loss[k] = _loss(task, lc._lineage.model.predict_one(x), y)

    res = replay(rows, lc, delay=DELAY, on_prediction=on_pred)
    summary = res.summary()
    served = [_loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
    runs = plain_losses(rows, task)
    best = min(runs, key=lambda k: sum(runs[k]))
    b = runs[best]
    print(f"{args.stream} seed {args.seed} n {n} points {points}; best plain {best}")
    g, lb = sum(served), sum(b)
    print(f"whole: served MAE {g / n:.4f}, {best} {lb / n:.4f}, tax {100 * (g / lb - 1):+.2f} %")
    print(f"alarms {summary['alarms']}")
    cuts = sorted({0, n, *points, *(min(p + args.after, n) for p in points)})
    parts = []
    for a, z in itertools.pairwise(cuts):
        d = sum(served[a:z]) - sum(b[a:z])
        lag_part = sum(served[a:z]) - sum(champ_loss[a:z])
        parts.append(f"[{a},{z}) {d:+.1f} ({100 * d / lb:+.2f} %; release lag {lag_part:+.1f})")
    print("served - best plain, loss units (% of best plain's total):", "; ".join(parts))
    lo = args.start if args.start is not None else 0
    hi = args.end if args.end is not None else n
    for start in range(lo, hi, args.step):
        end = min(start + args.step, n)
        w = end - start
        s_, l_ = sum(served[start:end]) / w, sum(b[start:end]) / w
        c_ = sum(champ_loss[start:end]) / w
        lags = lag[start:end]
        notes = [f"{i}:{'/'.join(judged[i])}" for i in range(start, end) if judged.get(i)]
        compact = collections.Counter(v for i in range(start, end) for v in judged.get(i, []))
        print(
            f"[{start:>5},{end:>5}) served {s_:7.3f} champion {c_:7.3f} {best} {l_:7.3f} "
            f"diff {w * (s_ - l_):+7.1f} (lag {w * (s_ - c_):+6.1f}, champion {w * (c_ - l_):+6.1f}) "
            f"lag {min(lags):>3}-{max(lags):>3}  {dict(compact)}"
        )
        for note in notes:
            if "ALARM" in note or "RELEASE" in note:
                print("      ", note)


if __name__ == "__main__":
    main()
