"""Session 24 (helper regtax): ``bench.unseen``'s verdict columns for streams x seeds, in process, with patches.

    PYTHONPATH=TREE python docs/experiments/regtax_gate.py [--n 2000] [--seeds 0-7|11,12] [--streams a,b]
        [--patch module.NAME=VALUE,...]

The same stream, plain learners, detection and recovery rules as ``bench.unseen`` (its ``job`` without the CLI
subprocess: the lifecycle ``driftline replay`` builds from default settings, replayed as ``short_trace.py`` does),
one line per stream and seed ("-" for a drift it does not judge for recovery, as `bench.unseen`), then the failing
verdicts per stream.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle, detection, raised, recovery
from bench.unseen import ABRUPT_LEAD, DELAY, GRADUAL, judged, verdict
from learners.replay import replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _loss, _patch, plain_losses, stream_rows  # type: ignore[import-not-found]

REGRESSION = "friedman-gsg,friedman-gra,planes2d-reversal,mv-shift,friedman-gra-early,linear-reversal"


def job(name: str, n: int, seed: int) -> dict[str, Any]:
    rows, points, task, gradual = stream_rows(name, n, seed)
    lc = default_lifecycle(task, 0)
    preds: list[Any] = []
    res = replay(rows, lc, delay=DELAY, on_prediction=lambda r: preds.append(r["prediction"]))
    summary = res.summary()
    runs = plain_losses(rows, task)
    out: dict[str, Any] = {"stream": name, "task": task, "n": len(rows), "points": points, "gradual": gradual}
    out["seed"] = seed
    for k, r in runs.items():
        out[f"plain_{k}"] = sum(r) / len(rows)
    best = min(runs, key=lambda k: out[f"plain_{k}"])
    losses = [_loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
    g = sum(losses) / len(rows)
    b = out[f"plain_{best}"]
    out["guarded"] = g
    out["tax"] = 100 * (g - b) if task == "classification" else (100 * (g / b - 1) if b else 0.0)
    out["alarms"] = summary["alarms"]
    out["detection"] = detection(  # as bench.unseen: each alarm where it was raised (session 35)
        raised(summary["alarms"], DELAY), points, len(rows), GRADUAL // 2 if gradual else ABRUPT_LEAD
    )
    out["rollbacks_per_10k"] = 1e4 * len(summary["rollbacks"]) / len(rows)
    out["promotions"], out["holds"] = len(summary["promotions"]), summary["holds"]
    out["recovery"] = [] if gradual else recovery(task, losses, runs[best], points, len(rows))
    out["recovery_judged"] = [] if gradual else judged(points, len(rows))  # as bench.unseen: "not judged"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--streams", default=REGRESSION)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    seeds: list[int] = []
    for part in args.seeds.split(","):  # "0-7", "11,12" or "11-12,19"
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    fails: dict[str, int] = {}
    taxes: dict[str, list[float]] = {}
    for name in args.streams.split(","):
        for seed in seeds:
            r = job(name, args.n, seed)
            v = verdict(r)
            fails[name] = fails.get(name, 0) + (v != "ok")
            taxes.setdefault(name, []).append(r["tax"])
            d = r["detection"]
            rec = (
                ",".join(
                    ("-" if not j else ">w" if x is None else str(x))
                    for x, j in zip(r["recovery"], r["recovery_judged"], strict=True)
                )
                or "-"
            )
            print(
                f"{name:18} s{seed} tax {r['tax']:+6.2f} alarms {r['alarms']} det {d['detected']}/{len(r['points'])} "
                f"false {d['false']} rb {r['rollbacks_per_10k']:.1f} rec {rec} rel {r['promotions']} "
                f"holds {r['holds']} {v}",
                flush=True,
            )
    for name, t in taxes.items():
        print(f"# {name}: mean tax {sum(t) / len(t):+.2f}, max {max(t):+.2f}, failing {fails[name]}/{len(t)}")


if __name__ == "__main__":
    main()
