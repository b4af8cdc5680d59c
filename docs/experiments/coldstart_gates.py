"""Experiment (BENCHMARKS-accuracy.md, session 14): the gates a cold-start change must pass, over seeds.

Session 13's cold start by doubling was dropped on two single runs (elec at delay 48, the poisoning bursts at
seed 1) whose paths are chaotic: a change in the first 64 labels moved rollbacks 45,000 labels later. One run
cannot tell a lost protection from path noise, so this runs each gate over several paths:

- ``poison``: ``bench.accuracy.poisoning(12000, seed)`` (flip and targeted bursts, with and without the reference
  set) for seeds 1..5, each seed and the mean;
- ``elec``: the guarded default on elec.csv at label delays 24, 48 and 96 (ARF(10) is 0.7808 at 48);
  ``elec-offsets``: at delay 48 from rows 1,000, 2,000 and 3,000 (independent paths, see ``ELEC_OFFSETS``);
- ``short``: the short streams the cold start dominates (River's Phishing, ChickWeights, AirlinePassengers) and
  weather.csv at delay 50, through ``bench.unseen``'s machinery (``driftline replay`` as a user runs it, plain LR
  and HT at the same delay).

Run it against any tree (the code measured is the one on PYTHONPATH; this file only drives it)::

    PYTHONPATH=TREE python docs/experiments/coldstart_gates.py poison elec short [elec-offsets] [--seeds 1,2,3]
        [--patch learners.policies.COLD_START=128]

Prints one JSON line per job and a summary table per part.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

SEEDS = (1, 2, 3, 4, 5)
ELEC_DELAYS = (24, 48, 96)
# The delays share one decision path (the lifecycle decides on labels in the same order: the same releases and
# rollbacks at every delay), so they are not independent draws; elec started 1,000 / 2,000 / 3,000 rows in is.
ELEC_OFFSETS = (1000, 2000, 3000)
SHORT = ("phishing", "chickweights", "airline", "weather")


def poison_job(seed: int) -> dict[str, Any]:
    from bench.accuracy import poisoning

    return {"part": "poison", "seed": seed, **poisoning(12000, seed)}


def elec_job(delay: int, offset: int = 0) -> dict[str, Any]:
    from bench.accuracy import guarded, make_stream

    rows, _ = make_stream("elec", 0, 1)
    rows = rows[offset:]
    g = guarded(rows, "classification", delay, 1)
    if "error" in g:
        return {"part": "elec", "delay": delay, "offset": offset, "error": g["error"]}
    return {
        "part": "elec",
        "delay": delay,
        "offset": offset,
        "accuracy": round(1 - sum(g["losses"]) / len(rows), 4),
        "rollbacks": g["rollbacks"],
        "promotions": dict(g["promotions"]),
        "holds": g["holds"],
    }


def elec_offset_job(offset: int) -> dict[str, Any]:
    return elec_job(48, offset)


def _short_make(name: str, n: int, s: int = 0) -> tuple[list[Any], list[int], str, bool]:
    import river.datasets as datasets

    import bench.unseen as unseen

    if name == "chickweights":
        return [(dict(x), float(y)) for x, y in datasets.ChickWeights()], [], "regression", False
    if name == "airline":  # the month as numbers (the CSV cannot carry a datetime)
        rows = [
            ({"year": x["month"].year, "month": x["month"].month, "t": i}, float(y))
            for i, (x, y) in enumerate(datasets.AirlinePassengers())
        ]
        return rows, [], "regression", False
    return unseen._real(name, n)


def short_job(name: str) -> dict[str, Any]:
    import bench.unseen as unseen

    unseen.make = _short_make  # type: ignore[assignment]
    r = unseen.job(name, 10**6, None, 0, 50)
    r.pop("alarms", None)
    return {"part": "short", "verdict": unseen.verdict(r), **r}


def _fmt(xs: list[float]) -> str:
    return " | ".join(f"{x:.4f}" for x in xs) + f" | **{statistics.fmean(xs):.4f}**"


def summary(results: list[dict[str, Any]]) -> None:
    poison = sorted((r for r in results if r["part"] == "poison"), key=lambda r: r["seed"])
    if poison:
        seeds = " | ".join(str(r["seed"]) for r in poison)
        print(f"| poisoning (12,000, burst 6,000-7,200) | {seeds} | mean |")
        print("|---|" + "---:|" * (len(poison) + 1))
        for kind, k in itertools.product(("flip", "targeted"), ("guarded_reference", "guarded_no_reference")):
            print(f"| {kind}, {k} | {_fmt([r[kind][k] for r in poison])} |")
    elec = sorted((r for r in results if r["part"] == "elec"), key=lambda r: (r["offset"], r["delay"]))
    if elec:
        accs = [r.get("accuracy", float("nan")) for r in elec]
        print(
            "| elec delay (from row) | "
            + " | ".join(f"{r['delay']} ({r['offset']})" for r in elec)
            + " | mean |"
        )
        print("|---|" + "---:|" * (len(elec) + 1))
        print(f"| accuracy | {_fmt(accs)} |")
        print("| rollbacks | " + " | ".join(str(r.get("rollbacks")) for r in elec) + " | |")
    for r in (r for r in results if r["part"] == "short"):
        if "error" in r:
            print(f"| {r['stream']} | error {r['error']} |")
            continue
        acc = r["task"] == "classification"
        g, b = r["guarded"], r[f"plain_{r['best']}"]
        show = (lambda v: f"{1 - v:.4f}") if acc else (lambda v: f"MAE {v:.3f}")
        unit = "pts" if acc else "%"
        print(
            f"| {r['stream']} ({r['n']}) | {show(g)} | {show(b)} ({r['best']}) | {r['tax']:+.2f} {unit} | "
            f"{r['promotions']} / {r['holds']} | {r['rollbacks_per_10k']:.1f} | {r['verdict']} |"
        )


def _patch(patches: list[str]) -> None:
    import importlib
    import os
    import tempfile

    lines = ["import importlib"]
    for p in patches:
        target, value = p.split("=", 1)
        module, name = target.rsplit(".", 1)
        setattr(importlib.import_module(module), name, json.loads(value))
        lines.append(f"setattr(importlib.import_module({module!r}), {name!r}, {json.loads(value)!r})")
    site = tempfile.mkdtemp(prefix="coldstart-patch-")
    with open(os.path.join(site, "sitecustomize.py"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (site, os.environ.get("PYTHONPATH", "")) if p)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("parts", nargs="+", choices=("poison", "elec", "elec-offsets", "short"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--short", default=",".join(SHORT), help="short streams to run")
    ap.add_argument(
        "--patch", action="append", default=[], metavar="MODULE.NAME=VALUE",
        help="set a module constant (a variant), here and in the CLI subprocesses (via sitecustomize)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.patch:
        _patch(args.patch)
    jobs: list[tuple[Any, Any]] = []
    if "poison" in args.parts:
        jobs += [(poison_job, int(s)) for s in args.seeds.split(",")]
    if "elec" in args.parts:
        jobs += [(elec_job, d) for d in ELEC_DELAYS]
    if "elec-offsets" in args.parts:
        jobs += [(elec_offset_job, k) for k in ELEC_OFFSETS]
    if "short" in args.parts:
        jobs += [(short_job, s) for s in args.short.split(",")]
    results = []
    if args.workers <= 1:
        for f, a in jobs:
            results.append(f(a))
            print(json.dumps(results[-1], default=str), flush=True)
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            for r in pool.map(lambda_call, jobs):
                results.append(r)
                print(json.dumps(r, default=str), flush=True)
    summary(results)
    return 0


def lambda_call(job: tuple[Any, Any]) -> dict[str, Any]:
    f, a = job
    return f(a)  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.setrecursionlimit(20000)
    sys.exit(main())
