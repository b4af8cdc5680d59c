"""The guard tax under continuous drift: a family of gradual-drift streams nobody tuned on (issue 13, session 18).

    PYTHONPATH=TREE python docs/experiments/gradual_streams.py [--streams a,b] [--seeds 1,2] [--delays 10,50]
        [--n 10000] [--workers 1] [--csv-dir DIR] [--guarded-only]

Streams (all drifting all the time, no drift points):

- ``rbf2-s001`` / ``rbf2-s01`` / ``rbf2-s05``: River ``RandomRBFDrift`` (2 classes, 8 features, 25 centroids, 12 of
  them drifting) at ``change_speed`` .001 / .01 / .05; ``rbf4-s001`` / ``rbf4-s01`` / ``rbf4-s05`` with 4 classes;
- ``hyp-m001-k2`` / ``hyp-m01-k10``: River ``Hyperplane`` (10 features, noise .05) with ``mag_change`` .001 on 2
  drifting features / .01 on all 10;
- ``rotreg``: regression, ``y = w(t) . x + N(0, .3)`` over 6 standard normal features, ``w`` turning one full turn
  in a plane over the stream (plus a fixed part).

Stationary controls, only when named: ``rbf2-s0`` / ``rbf4-s0`` (``change_speed`` 0) and ``hyp-m0`` (no drift).
``elec`` (only when named): elec.csv from row SEED on (``--seeds 0,1000``), the guarded run alone, accuracy over all
events as ``coldstart_gates.py elec`` scores it. ``--patch NAME=VALUE`` sets constants of ``learners.policies``.

Each stream is written to a CSV and read back with ``learners.replay.read_rows`` (what ``driftline replay --file F
--label-col y`` reads). The guarded run is the lifecycle ``driftline replay`` builds from default settings
(``bench.accuracy.default_lifecycle``, seed 0), in process; alongside it the champion's answer as each event arrives
(``release_lag.py``'s "on arrival": the served snapshot's lag). Plain learners, test-then-train at the same delay:
River's ``StandardScaler | LogisticRegression`` (one-vs-rest for 4 classes; ``LinearRegression`` for regression),
``HoeffdingTree``, QLR (``PolynomialExtender(2) | StandardScaler | LR``) and driftline's plain ``auto`` pool. Every
learner is scored from event ``delay + 1`` on (the first label is learned after event ``delay``; River's untrained
LR answers ``False`` before it). Tax = guarded minus the best plain learner (accuracy points; % MAE for regression).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

N = 10000
SEEDS = (1, 2)
DELAYS = (10, 50)
RBF = {"s0": 0.0, "s001": 0.001, "s01": 0.01, "s05": 0.05}
STREAMS = (
    *(f"rbf{k}-{s}" for k in (2, 4) for s in RBF if s != "s0"),
    "hyp-m001-k2",
    "hyp-m01-k10",
    "rotreg",
)


def _rotreg(n: int, seed: int) -> list[tuple[dict[str, float], float]]:
    rng = random.Random(seed)
    fixed = [rng.uniform(-1, 1) for _ in range(6)]
    out = []
    for t in range(n):
        a = 2 * math.pi * t / n
        w = list(fixed)
        w[0] += 2 * math.cos(a)
        w[1] += 2 * math.sin(a)
        x = {f"x{i}": rng.gauss(0, 1) for i in range(6)}
        out.append((x, sum(wi * x[f"x{i}"] for i, wi in enumerate(w)) + rng.gauss(0, 0.3)))
    return out


def make(name: str, n: int, seed: int) -> tuple[list[tuple[dict[str, Any], Any]], str]:
    from river import datasets

    if name == "rotreg":
        return _rotreg(n, seed), "regression"
    if name.startswith("rbf"):
        k, speed = int(name[3]), RBF[name.split("-")[1]]
        src: Any = datasets.synth.RandomRBFDrift(
            seed_model=seed,
            seed_sample=seed + 100,
            n_classes=k,
            n_features=8,
            n_centroids=25,
            change_speed=speed,
            n_drift_centroids=12,
        )
    else:
        mag, k = {"hyp-m001-k2": (0.001, 2), "hyp-m01-k10": (0.01, 10), "hyp-m0": (0.0, 0)}[name]
        src = datasets.synth.Hyperplane(
            seed=seed, n_features=10, n_drift_features=k, mag_change=mag, noise_percentage=0.05, sigma=0.1
        )
    return [(dict(x), y) for x, y in src.take(n)], "classification"


def _loss(task: str, pred: Any, y: Any) -> float:
    if task == "classification":
        return 0.0 if pred == y else 1.0
    try:
        return abs(float(pred) - float(y))
    except (TypeError, ValueError):
        return abs(float(y))


def _river(kind: str, task: str, k: int) -> Any:
    from river import feature_extraction, linear_model, multiclass, preprocessing, tree

    if kind == "HT":
        return tree.HoeffdingTreeClassifier() if task == "classification" else tree.HoeffdingTreeRegressor()
    if task == "regression":
        lin: Any = linear_model.LinearRegression()
    else:
        lin = linear_model.LogisticRegression()
        if k > 2:
            lin = multiclass.OneVsRestClassifier(lin)
    scaled = preprocessing.StandardScaler() | lin
    return feature_extraction.PolynomialExtender(2) | scaled if kind == "QLR" else scaled


def plain(rows: list[Any], kind: str, task: str, k: int, delay: int) -> list[float]:
    """Test-then-train, each label ``delay`` events late; per-event losses."""
    if kind == "pool":
        from learners.specs import LearnerSpec, build_learner

        model: Any = build_learner(LearnerSpec("auto"), task, 0)
    else:
        model = _river(kind, task, k)
    pending: collections.deque[tuple[Any, Any]] = collections.deque()
    losses = []
    for _, _, x, y in rows:
        losses.append(_loss(task, model.predict_one(x), y))
        pending.append((x, y))
        if len(pending) > delay:
            model.learn_one(*pending.popleft())
    return losses


def guarded(rows: list[Any], task: str, delay: int) -> dict[str, Any]:
    from bench.accuracy import default_lifecycle
    from learners.features import clean_features
    from learners.replay import replay

    lc = default_lifecycle(task, 0)
    arrival: list[float] = []

    def feed() -> Any:
        for row in rows:  # the champion as the event arrives (the served model predicts it next)
            arrival.append(_loss(task, lc.champion.predict_one(clean_features(row[2]), cleaned=True), row[3]))
            yield row

    preds: list[Any] = []
    res = replay(feed(), lc, delay=delay, on_prediction=lambda r: preds.append(r["prediction"]))
    s = res.summary()
    inc = [p["index"] for p in s["promotions"] if p["reason"] == "incremental"]
    gaps = sorted(b - a for a, b in itertools.pairwise(inc))
    return {
        "losses": [_loss(task, p, r[3]) for p, r in zip(preds, rows, strict=True)],
        "arrival": arrival,
        "alarms": len(s["alarms"]),
        "incremental": len(inc),
        "gap_median": gaps[len(gaps) // 2] if gaps else None,
        "other": collections.Counter(p["reason"] for p in s["promotions"] if p["reason"] != "incremental"),
        "rollbacks": len(s["rollbacks"]),
        "holds": s["holds"],
    }


def _patch(patch: str) -> None:
    """``--patch NAME=VALUE,...``: module constants of learners.policies (a variant, measured in process)."""
    import learners.policies

    for item in filter(None, patch.split(",")):
        k, v = item.split("=")
        assert hasattr(learners.policies, k), k
        setattr(learners.policies, k, type(getattr(learners.policies, k))(float(v)))


def job(
    name: str, seed: int, delay: int, n: int, csv_dir: str | None, patch: str = "", plains: bool = True
) -> dict[str, Any]:
    from bench.unseen import write_csv
    from learners.replay import read_rows

    _patch(patch)
    if name.startswith("elec"):  # elec.csv from row ``seed`` on (bench.accuracy's stream), guarded only
        from bench.accuracy import make_stream

        rows, _ = make_stream("elec", 0, 1)
        return _guarded_only(name, rows[seed:], seed, delay)
    examples, task = make(name, n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(csv_dir or tmp) / f"{name}_s{seed}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(examples, path)
        rows = list(read_rows(path, "y"))
    if task == "regression":
        rows = [(r, t, x, float(y)) for r, t, x, y in rows]
    k = len({r[3] for r in rows}) if task == "classification" else 0
    start = time.process_time()
    g = guarded(rows, task, delay)
    cpu = time.process_time() - start
    lo = delay + 1

    def score(losses: list[float]) -> float:
        return sum(losses[lo:]) / (len(losses) - lo)

    out: dict[str, Any] = {
        "stream": name,
        "seed": seed,
        "delay": delay,
        "task": task,
        "cpu_guarded": round(cpu, 1),
    }
    out["guarded"], out["arrival"] = score(g["losses"]), score(g["arrival"])
    out.update({kk: g[kk] for kk in ("alarms", "incremental", "gap_median", "rollbacks", "holds")})
    out["other"] = dict(g["other"])
    if not plains:  # --guarded-only: a variant of the guarded run, compared with plain rows measured before
        return out
    for kind in ("LR", "HT", "QLR", "pool"):
        out[kind] = score(plain(rows, kind, task, k, delay))
    best = min(("LR", "HT", "QLR", "pool"), key=lambda kk: out[kk])
    out["best"] = best
    b = out[best]
    if task == "classification":
        out["tax"], out["lag"] = 100 * (out["guarded"] - b), 100 * (out["guarded"] - out["arrival"])
    else:
        out["tax"], out["lag"] = 100 * (out["guarded"] / b - 1), 100 * (out["guarded"] / out["arrival"] - 1)
    return out


def _guarded_only(name: str, rows: list[Any], seed: int, delay: int) -> dict[str, Any]:
    g = guarded(rows, "classification", delay)
    out: dict[str, Any] = {"stream": name, "seed": seed, "delay": delay, "task": "classification"}
    out["accuracy"] = round(1 - sum(g["losses"]) / len(rows), 4)  # all events, as the gates score elec
    out["arrival"] = round(1 - sum(g["arrival"]) / len(rows), 4)
    out.update({kk: g[kk] for kk in ("alarms", "incremental", "gap_median", "rollbacks", "holds")})
    out["other"] = dict(g["other"])
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| stream | seed | delay | guarded | on arrival | LR | HT | QLR | pool | tax | lag | incr. (gap) | alarms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "tax" not in r:
            continue
        acc = r["task"] == "classification"

        def f(v: float, acc: bool = acc) -> str:
            return f"{1 - v:.4f}" if acc else f"{v:.3f}"

        unit = "" if acc else " %"
        lines.append(
            f"| {r['stream']} | {r['seed']} | {r['delay']} | {f(r['guarded'])} | {f(r['arrival'])} | {f(r['LR'])} |"
            f" {f(r['HT'])} | {f(r['QLR'])} | {f(r['pool'])} | **{r['tax']:+.2f}{unit}** ({r['best']}) |"
            f" {r['lag']:+.2f}{unit} | {r['incremental']} ({r['gap_median']}) | {r['alarms']} |"
        )
    cls = [r["tax"] for r in results if r["task"] == "classification" and "tax" in r]
    if cls:
        over = sum(t > 0.5 for t in cls)
        lines.append(
            f"\nclassification: mean tax {sum(cls) / len(cls):+.3f} points, over 0.5: {over} of {len(cls)}"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--delays", default=",".join(map(str, DELAYS)))
    ap.add_argument("--n", type=int, default=N)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--csv-dir", default=None)
    ap.add_argument("--patch", default="", help="NAME=VALUE,... constants of learners.policies (a variant)")
    ap.add_argument("--guarded-only", action="store_true", help="skip the plain learners (no tax column)")
    args = ap.parse_args()
    jobs = [
        (s, int(seed), int(d), args.n, args.csv_dir, args.patch, not args.guarded_only)
        for s in args.streams.split(",")
        for seed in args.seeds.split(",")
        for d in args.delays.split(",")
    ]
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for r in pool.map(job, *zip(*jobs, strict=True)):
            print(json.dumps(r), flush=True)
            results.append(r)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
