"""Where an early drift alarm loses on a regression stream: per-window MAE of the served snapshot, the champion and
the challenger, the served pool's member weights, and every non-incremental release (session 16, helper mvshift).

    PYTHONPATH=<tree> python docs/experiments/recovery_trace.py mv-shift 13 none,5010,5060 [--from 4750 --to 8500]

Like ``challenger_start.py``: the stream replayed in process (default lifecycle, delay 50), once per k with one
extra loss alarm injected at label k. The champion's and challenger's MAE are their test-then-train answers on the
labels the lifecycle pairs them on (no label delay: an upper bound on what serving them would give); the served
MAE is what the scorers answered (delay and release cadence included).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import learners.drift as drift
import learners.policies as policies
from bench.accuracy import default_lifecycle
from bench.unseen import DELAY, make, write_csv
from learners.replay import read_rows, replay

WINDOW = 250


def run(rows: list[Any], task: str, k: int | None, lo: int, hi: int) -> None:
    update = drift.LossDriftMonitor.update
    inc_observe = policies.IncrementalPolicy.observe
    ch_observe = policies.ChallengerPolicy.observe
    champ: dict[int, list[float]] = {}
    chall: dict[int, list[float]] = {}
    served: dict[int, list[float]] = {}
    state = {"i": 0}

    def injected(self: Any, loss: float, index: int) -> list[drift.DriftSignal]:
        state["i"] = index
        out = update(self, loss, index)
        if index == k and not out:
            out = [drift.DriftSignal("injected", "loss", index, {})]
        return out

    def inc(self: Any, y: Any, champion_pred: Any, served_pred: Any, segment: Any) -> None:
        w = state["i"] // WINDOW
        champ.setdefault(w, []).append(abs(champion_pred - y))
        served.setdefault(w, []).append(abs(served_pred - y))
        inc_observe(self, y, champion_pred, served_pred, segment)

    def ch(self: Any, y: Any, champion_pred: Any, segment: Any, predict: Any) -> None:
        if self.lineage is not None:
            chall.setdefault(state["i"] // WINDOW, []).append(abs(predict(self.lineage.model) - y))
        ch_observe(self, y, champion_pred, segment, predict)

    drift.LossDriftMonitor.update = injected  # type: ignore[method-assign]
    policies.IncrementalPolicy.observe = inc  # type: ignore[method-assign]
    policies.ChallengerPolicy.observe = ch  # type: ignore[method-assign]
    try:
        lc = default_lifecycle(task, 0)
        s = replay(rows, lc, delay=DELAY).summary()
    finally:
        drift.LossDriftMonitor.update = update  # type: ignore[method-assign]
        policies.IncrementalPolicy.observe = inc_observe  # type: ignore[method-assign]
        policies.ChallengerPolicy.observe = ch_observe  # type: ignore[method-assign]
    promos = [(p["reason"], p["index"]) for p in s["promotions"] if p["reason"] != "incremental"]
    incs = [
        p["index"] for p in s["promotions"] if p["reason"] == "incremental" and lo <= (p["index"] or 0) <= hi
    ]
    print(f"== alarm at {k}: MAE {s['mae']:.4f} alarms {s['alarms']} releases {promos}")
    print(f"   incremental releases in [{lo},{hi}]: {len(incs)}: {incs[:40]}")
    holds = [d for d in s.get("decisions", []) if lo <= (d.get("index") or 0) <= hi]
    for d in holds[:30]:
        print("   decision", {kk: d.get(kk) for kk in ("index", "kind", "outcome", "reason")})
    print("   window  served  champion  challenger")
    for w in range(lo // WINDOW, hi // WINDOW + 1):
        cells = [f"{sum(d[w]) / len(d[w]):8.2f}" if d.get(w) else "       -" for d in (served, champ, chall)]
        print(f"   {w * WINDOW:6d} {' '.join(cells)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stream")
    ap.add_argument("seed", type=int)
    ap.add_argument("ks")
    ap.add_argument("--from", dest="lo", type=int, default=4750)
    ap.add_argument("--to", dest="hi", type=int, default=9999)
    ap.add_argument("--no-trained", action="store_true", help="session 15's base: no trained-scale detector")
    a = ap.parse_args()
    if a.no_trained:
        drift.TRAINED_LOSS_TASKS = ()
    examples, _, task, _ = make(a.stream, 10000, a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{a.stream}.csv"
        write_csv(examples, path)
        rows = list(read_rows(path, "y"))
    for v in a.ks.split(","):
        run(rows, task, None if v == "none" else int(v), a.lo, a.hi)


if __name__ == "__main__":
    main()
