"""Session 33 (helper floor33): where a failing unseen row's guard tax is, by phase of the served snapshot.

    PYTHONPATH=TREE python docs/experiments/floor_decompose.py --n N STREAM:SEED [STREAM:SEED ...]
        [--patch module.NAME=VALUE,...]

In process, as ``regtax_gate.py`` (the lifecycle ``driftline replay`` builds from default settings, delay 50, plain LR
and HT as ``bench.unseen``). Each event is put in one phase, by the incremental policy's state when it is served:

- ``alarm-floor`` / ``alarm-ev``: fewer than ``policies.QUIET_LABELS`` labels after a drift alarm on the served
  model, where the carried floor ``guard.carry_release_every`` binds: ``-floor`` when the non-inferiority test is
  carried and rejects as the event is served (only the floor waits), ``-ev`` otherwise (the evidence waits);
- ``undet``: after the first drift point and before any alarm since it (detection delay, or a missed drift);
- ``young``: otherwise, the served snapshot's lineage has learned fewer than ``policies.YOUNG_SERVED`` labels;
- ``quiet``: the rest.

Per phase: events, the tax (served minus the best plain learner, in points of the whole stream; regression in % of
the best plain MAE), of which the *lag* (served minus the champion answering the same event when it arrives) and the
*champion* part (champion minus best plain), and the mean lag in labels (champion's lineage minus the served one's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle
from bench.unseen import DELAY
from learners import policies
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _loss, _patch, plain_losses, stream_rows  # type: ignore[import-not-found]

PHASES = ("young", "quiet", "undet", "alarm-ev", "alarm-floor")


def decompose(name: str, seed: int, n: int) -> dict[str, Any]:
    rows, points, task, _ = stream_rows(name, n, seed)
    lc = default_lifecycle(task, 0)
    pol = lc._increment
    served: list[Any] = []
    champ: list[Any] = []
    phase: list[str] = []
    lag_labels: list[int] = []
    alarmed_after: dict[str, int] = {"last": -1}

    def keep(record: dict[str, Any]) -> None:
        i = record["index"]
        x = rows[i][2]
        served.append(record["prediction"])
        champ.append(lc.champion.predict_one(x))
        since = pol.since_alarm
        if since < policies.QUIET_LABELS:
            alarmed_after["last"] = i
            # Shown (the test rejects) and only the floor waits: ``alarm-floor``; else ``alarm-ev``.
            shown = pol.evidence.not_worse.rejects(lc.guard.alpha)
            p = "alarm-floor" if shown and pol.carried else "alarm-ev"
        elif (
            points
            and i >= points[0]
            and not any(pt <= i and alarmed_after["last"] >= pt for pt in points if pt <= i)
        ):
            p = "undet"
        elif lc._served.n_learned < policies.YOUNG_SERVED:
            p = "young"
        else:
            p = "quiet"
        phase.append(p)
        lag_labels.append(lc._lineage.n_learned - lc._served.n_learned)

    replay(rows, lc, delay=DELAY, on_prediction=keep)
    runs = plain_losses(rows, task)
    best = min(runs, key=lambda k: sum(runs[k]))
    ys = [r[3] for r in rows]
    ls = [_loss(task, p, y) for p, y in zip(served, ys, strict=True)]
    lc_ = [_loss(task, p, y) for p, y in zip(champ, ys, strict=True)]
    lb = runs[best]
    unit = 100 / len(rows) if task == "classification" else 100 / sum(lb)
    out: dict[str, Any] = {"row": f"{name}:{seed}", "n": len(rows), "best": best, "points": points}
    out["tax"] = unit * (sum(ls) - sum(lb))
    for p in PHASES:
        idx = [i for i, q in enumerate(phase) if q == p]
        if not idx:
            continue
        out[p] = {
            "events": len(idx),
            "tax": round(unit * sum(ls[i] - lb[i] for i in idx), 2),
            "lag": round(unit * sum(ls[i] - lc_[i] for i in idx), 2),
            "champion": round(unit * sum(lc_[i] - lb[i] for i in idx), 2),
            "lag_labels": round(sum(lag_labels[i] for i in idx) / len(idx), 1),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("rows", nargs="+")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    for item in args.rows:
        name, _, seed = item.partition(":")
        r = decompose(name, int(seed), args.n)
        parts = " | ".join(
            f"{p} {r[p]['events']}ev tax {r[p]['tax']:+.2f} (lag {r[p]['lag']:+.2f}, champ {r[p]['champion']:+.2f},"
            f" {r[p]['lag_labels']} lbl)"
            for p in PHASES
            if p in r
        )
        print(f"{r['row']:22} tax {r['tax']:+.2f} best {r['best']} | {parts}", flush=True)


if __name__ == "__main__":
    main()
