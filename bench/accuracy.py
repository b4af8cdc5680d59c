"""Accuracy benchmark of the learning core: the guarded *default* system against plain River learners.

    python bench/accuracy.py [--quick] [--seeds N] [--streams a,b] [--json] [--workers N]

For every stream and seed: the guarded system exactly as ``driftline replay`` builds it from default settings
(``driftline.settings.Settings()``: learner, challenger, release cadence, drift and guard config, no per-stream
tuning), and plain learners that learn every label at the same delay with no drift handling (classification:
LR and Hoeffding tree; regression: linear regression and Hoeffding tree; ARF(10) on elec). Everything is
prequential on what was *served*: each event is predicted, its label arrives ``delay`` events later.

Columns: the guard tax (guarded minus the best plain learner: accuracy points, or MAE in % for regression), drift
detection (alarms within 2,000 events of a known drift point, counted where they are raised: the label delay included
since session 35), false alarms per 10,000 stationary events,
rollbacks per 10,000 events, recovery after each abrupt drift (events until the served model's accuracy over the
next 500 events is within 1 point of the best plain learner's on the same events; MAE within 2 %), CPU seconds.
Also label-flip / targeted poisoning bursts with and without a reference set.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftline.config import LearnerSpec
from driftline.errors import DriftlineError
from driftline.settings import Settings
from learners.lifecycle import ModelLifecycle
from learners.replay import read_rows, replay
from learners.specs import build_learner
from learners.synthetic import GRADUAL_WIDTH, synthetic_stream

ELEC = Path(os.environ.get("DRIFTLINE_ELEC", "/work/shared/data/elec.csv"))
ARF10 = LearnerSpec("adaptive_random_forest", {"n_models": 10})
DETECT_WITHIN = 2000  # an alarm this many events after a drift point counts as its detection
RECOVERY_WINDOW = 500  # events compared after a drift to call the served model recovered
RECOVERY_STEP = 25
DELAY = 50  # label delay of the synthetic streams (elec: 48, one day)
# name -> (task, abrupt drift points are known)
STREAMS: dict[str, str] = {
    "sea-abrupt": "classification",
    "agrawal-abrupt": "classification",
    "agrawal-gradual": "classification",
    "hyperplane-abrupt": "classification",
    "hyperplane-gradual": "classification",
    "stagger-abrupt": "classification",
    "hyperplane-reversal": "classification",
    "sea-reversal": "classification",
    "rbf-incremental": "classification",
    "led-abrupt": "classification",
    "friedman-gra": "regression",
    "friedman-lea": "regression",
    "elec": "classification",
}
GRADUAL = {
    "agrawal-gradual",
    "hyperplane-gradual",
}  # drifts mixed over GRADUAL_WIDTH events around each point
CONTINUOUS = {"rbf-incremental", "elec"}  # drift with no known points: alarms are counted, not judged
# make test runs these (friedman-lea: local expanding drift, the regression stream that missed the bound before)
QUICK = ("hyperplane-reversal", "agrawal-abrupt", "led-abrupt", "friedman-gra", "friedman-lea")
QUICK_N = 4000

Row = tuple[str, int | None, dict[str, Any], Any]


def _rows_of(source: Any, n: int, flip_at: int | None = None) -> list[Row]:
    out: list[Row] = []
    for i, (x, y) in enumerate(itertools.islice(source, n)):
        y = y.item() if hasattr(y, "item") else y
        if flip_at is not None and i >= flip_at:
            y = not y if isinstance(y, bool) else 1 - y
        out.append((str(i), i * 1000, dict(x), y))
    return out


def make_stream(name: str, n: int, seed: int) -> tuple[list[Row], list[int]]:
    """Rows and abrupt drift points (empty for real data and for gradual/incremental drift)."""
    from river.datasets import synth

    if name == "elec":
        return list(read_rows(ELEC, "class")), []
    if name.endswith("-reversal"):
        # A total concept reversal halfway: every label flips (what a poisoned burst of flips also looks like).
        family = name.split("-")[0]
        rows, _ = synthetic_stream(f"{family}-stationary", n, seed)
        return [(r, t, x, (1 - y if i >= n // 2 else y)) for i, (r, t, x, y) in enumerate(rows)], [n // 2]
    if name == "rbf-incremental":
        src = synth.RandomRBFDrift(
            seed_model=seed, seed_sample=seed, n_classes=3, n_features=10, n_centroids=50,
            change_speed=0.0005, n_drift_centroids=25,
        )  # fmt: skip
        return _rows_of(src, n), []
    if name == "led-abrupt":
        from learners.synthetic import _chain

        concepts = [
            synth.LEDDrift(seed=seed + k, noise_percentage=0.1, irrelevant_features=True, n_drift_features=d)
            for k, d in enumerate((0, 7, 3))
        ]
        points = [n // 3, 2 * n // 3]
        # The narrowest width River accepts at this position (see learners/synthetic.py).
        return _rows_of(_chain(concepts, points, lambda p: max(20, 4 * p // 700 + 1), seed), n), points
    if name.startswith("friedman-"):
        kind = name.split("-")[1]
        pos = (n // 3, 2 * n // 3) if kind == "gra" else (n // 4, n // 2, 3 * n // 4)
        return _rows_of(synth.FriedmanDrift(drift_type=kind, position=pos, seed=seed), n), list(pos)
    rows, points = synthetic_stream(name, n, seed)
    return list(rows), points


def _loss(task: str, pred: Any, y: Any) -> float:
    if task == "classification":
        return 0.0 if pred == y else 1.0
    try:
        return abs(float(pred) - float(y))
    except (TypeError, ValueError):
        return abs(float(y))


def plain(rows: list[Row], spec: LearnerSpec, task: str, delay: int, seed: int) -> dict[str, Any]:
    """The learner with no drift handling: predicts, learns every label ``delay`` events late."""
    start = time.process_time()
    model = build_learner(spec, task, seed)
    pending: collections.deque[tuple[Any, Any]] = collections.deque()
    losses: list[float] = []
    for _, _, x, y in rows:
        losses.append(_loss(task, model.predict_one(x), y))
        pending.append((x, y))
        if len(pending) > delay:
            model.learn_one(*pending.popleft())
    return {"losses": losses, "cpu": time.process_time() - start}


def default_lifecycle(task: str, seed: int, reference: list[Any] | None = None) -> ModelLifecycle:
    """The lifecycle ``driftline replay`` builds from default settings (see ``streams/commands/replay.py``)."""
    s = Settings()
    m = s.model
    return ModelLifecycle(
        "bench", task, m.learner, m.challenger, s.drift, s.guard,
        reference=reference, release_every=m.release_every, seed=seed,
    )  # fmt: skip


def guarded(rows: list[Row], task: str, delay: int, seed: int) -> dict[str, Any]:
    start = time.process_time()
    try:
        lifecycle = default_lifecycle(task, seed)
        preds: list[Any] = []
        result = replay(rows, lifecycle, delay=delay, on_prediction=lambda r: preds.append(r["prediction"]))
    except DriftlineError as exc:
        return {"error": str(exc)[:120], "cpu": time.process_time() - start}
    summary = result.summary()
    return {
        "losses": [_loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)],
        "cpu": time.process_time() - start,
        "alarms": summary["alarms"],
        "rollbacks": len(summary["rollbacks"]),
        "promotions": collections.Counter(p["reason"] for p in summary["promotions"]),
        "holds": summary["holds"],
        "learner": lifecycle.learner.name,
    }


def recovery(
    task: str, served: list[float], best: list[float], points: list[int], n: int
) -> list[int | None]:
    """Events after each drift point until the served loss over the next window is within the bound of best's."""
    out: list[int | None] = []
    for k, p in enumerate(points):
        end = min(points[k + 1] if k + 1 < len(points) else n, n) - RECOVERY_WINDOW
        found = None
        for t in range(p, end + 1, RECOVERY_STEP):
            ls, lb = sum(served[t : t + RECOVERY_WINDOW]), sum(best[t : t + RECOVERY_WINDOW])
            ok = ls <= lb + 0.01 * RECOVERY_WINDOW if task == "classification" else ls <= 1.02 * lb
            if ok:
                found = t - p
                break
        out.append(found)
    return out


def raised(alarms: list[int], delay: int) -> list[int]:
    """Where each alarm was raised: a replay names an alarm by the event whose label set it off, which arrives
    ``delay`` events later (session 35, gen35: the detection delays here did not count the label delay).

    >>> raised([100, 2050], 50)
    [150, 2100]
    """
    return [a + delay for a in alarms]


def detection(alarms: list[int], points: list[int], n: int, lead: int = 0) -> dict[str, Any]:
    """Alarms within DETECT_WITHIN after a drift point (from ``lead`` events before it for gradual drift)."""
    delays, matched = [], set()
    for p in points:
        hits = [a for a in alarms if p - lead <= a < p + DETECT_WITHIN]
        if hits:
            delays.append(hits[0] - p)
            matched.update(hits)
    false = [a for a in alarms if a not in matched]
    stationary = max(n - DETECT_WITHIN * len(points), 1)
    rate = 1e4 * len(false) / stationary
    return {
        "detected": len(delays),
        "delays": delays,
        "false": len(false),
        "false_per_10k": rate,
        "stationary": stationary,
    }


def stream_job(name: str, n: int, seed: int) -> dict[str, Any]:
    task = STREAMS[name]
    rows, points = make_stream(name, n, seed)
    n = len(rows)
    delay = 48 if name == "elec" else DELAY
    out: dict[str, Any] = {
        "stream": name,
        "seed": seed,
        "n": n,
        "task": task,
        "delay": delay,
        "points": points,
    }
    plains = (
        {"lr": LearnerSpec("logistic_regression", {"multiclass": "ovr"}), "ht": LearnerSpec("hoeffding_tree")}
        if task == "classification"
        else {"lr": LearnerSpec("linear_regression"), "ht": LearnerSpec("hoeffding_tree")}
    )
    if name == "elec":
        plains["arf10"] = ARF10
    runs = {k: plain(rows, spec, task, delay, seed) for k, spec in plains.items()}
    g = guarded(rows, task, delay, seed)
    for k, r in runs.items():
        out[f"plain_{k}"] = sum(r["losses"]) / n
        out[f"cpu_{k}"] = r["cpu"]
    best = min(("lr", "ht"), key=lambda k: out[f"plain_{k}"])
    out["best"] = best
    out["cpu_guarded"] = g["cpu"]
    if "error" in g:
        out["error"] = g["error"]
        return out
    out["guarded"] = sum(g["losses"]) / n
    out["learner"] = g["learner"]
    out["alarms"] = len(g["alarms"])
    out["rollbacks"] = g["rollbacks"]
    out["promotions"] = dict(g["promotions"])
    out["holds"] = g["holds"]
    lead = GRADUAL_WIDTH // 2 if name in GRADUAL else 0
    out["detection"] = detection(raised(g["alarms"], delay), points, n, lead)
    out["recovery"] = [] if name in GRADUAL else recovery(task, g["losses"], runs[best]["losses"], points, n)
    return out


def poisoning(n: int, seed: int) -> dict[str, Any]:
    """A burst of wrong labels (all flipped, or flipped only where x0 > 0.5), then clean labels again.

    Accuracy on the true labels after the burst: the guarded default with/without a reference set, the plain
    learner that learned the burst, and the plain learner that never saw the burst's labels.
    """
    stream, _ = synthetic_stream("hyperplane-stationary", n + 1000, seed)
    everything = list(stream)
    reference, rows = [(x, y) for _, _, x, y in everything[:1000]], everything[1000:]
    lo, hi = n // 2, n // 2 + n // 10
    out: dict[str, Any] = {"burst": [lo, hi], "n": n}
    spec = LearnerSpec("logistic_regression")
    for kind in ("flip", "targeted"):

        def bad(i: int, x: dict[str, Any], y: Any, kind: str = kind) -> Any:
            if not lo <= i < hi or (kind == "targeted" and x[next(iter(x))] <= 0.5):
                return y
            return 1 - y

        poisoned = [(rid, ts, x, bad(i, x, y)) for i, (rid, ts, x, y) in enumerate(rows)]
        truth = [y for _, _, _, y in rows]
        res: dict[str, float] = {}
        for label, ref in (("guarded_reference", reference), ("guarded_no_reference", None)):
            preds: list[Any] = []

            def keep(record: dict[str, Any], out: list[Any] = preds) -> None:
                out.append(record["prediction"])

            replay(poisoned, default_lifecycle("classification", seed, ref), delay=10, on_prediction=keep)
            res[label] = sum(p == t for p, t in zip(preds[hi:], truth[hi:], strict=True)) / len(truth[hi:])
        for label, skip in (("plain_saw_burst", False), ("plain_never_saw", True)):
            model, correct = build_learner(spec), 0
            for i, ((_, _, x, y), t) in enumerate(zip(poisoned, truth, strict=True)):
                if i >= hi:
                    correct += model.predict_one(x) == t
                if not (skip and lo <= i < hi):
                    model.learn_one(x, y)
            res[label] = correct / (len(rows) - hi)
        out[kind] = {k: round(v, 4) for k, v in res.items()}
    return out


DETECTOR_STREAMS = (
    "sea-abrupt", "agrawal-abrupt", "hyperplane-abrupt", "stagger-abrupt", "led-abrupt",
    "sea-stationary", "agrawal-stationary", "hyperplane-stationary",
)  # fmt: skip


def detectors(n: int, seeds: list[int]) -> dict[str, dict[str, Any]]:
    """Each error detector by name on the 0/1 error of the default learner (plain, every label at delay 50).

    The same ``ErrorDriftMonitor`` the lifecycle runs (increases only, grace period), fed the error sequence of
    the default learner without releases, so every detector sees the same signal.
    """
    from driftline.config import DriftConfig
    from learners.drift import ERROR_DETECTORS, ErrorDriftMonitor

    default = Settings().model.learner
    out: dict[str, dict[str, Any]] = {d: {"detected": 0, "drifts": 0, "delays": [], "false": 0, "stationary": 0}
                                      for d in ERROR_DETECTORS}  # fmt: skip
    for name in DETECTOR_STREAMS:
        for seed in seeds:
            rows: list[Row]
            points: list[int]
            if name.endswith("-stationary"):
                rows, points = list(synthetic_stream(name, n, seed)[0]), []
            else:
                rows, points = make_stream(name, n, seed)
            errors = plain(rows, default, "classification", DELAY, seed)["losses"]
            for det in ERROR_DETECTORS:
                monitor = ErrorDriftMonitor(DriftConfig(error_detector=det))
                alarms = [i for i, e in enumerate(errors) if monitor.update(e, i)]
                found = detection(alarms, points, len(rows))
                acc = out[det]
                acc["detected"] += found["detected"]
                acc["drifts"] += len(points)
                acc["delays"] += found["delays"]
                acc["false"] += found["false"]
                acc["stationary"] += max(len(rows) - DETECT_WITHIN * len(points), 1)
    for acc in out.values():
        acc["false_per_10k"] = 1e4 * acc["false"] / acc["stationary"]
        acc["median_delay"] = statistics.median(acc["delays"]) if acc["delays"] else None
    return out


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def aggregate(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stream: means over seeds; the tax of each seed is guarded minus best plain on that seed."""
    rows = []
    by: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in results:
        by[r["stream"]].append(r)
    for name, rs in by.items():
        task = rs[0]["task"]
        row: dict[str, Any] = {"stream": name, "task": task, "delay": rs[0]["delay"], "seeds": len(rs)}
        row["n"] = rs[0]["n"]
        for k in ("lr", "ht", "arf10"):
            if f"plain_{k}" in rs[0]:
                row[f"plain_{k}"] = _mean([r[f"plain_{k}"] for r in rs])
                row[f"cpu_{k}"] = _mean([r[f"cpu_{k}"] for r in rs])
        row["cpu_guarded"] = _mean([r["cpu_guarded"] for r in rs])
        errors = [r["error"] for r in rs if "error" in r]
        if errors:
            row["error"] = errors[0]
            rows.append(row)
            continue
        row["guarded"] = _mean([r["guarded"] for r in rs])
        row["best_plain"] = _mean([r[f"plain_{r['best']}"] for r in rs])
        if task == "classification":
            # Accuracy points (positive = the guard costs accuracy); losses are error rates.
            taxes = [100 * (r["guarded"] - r[f"plain_{r['best']}"]) for r in rs]
        else:
            taxes = [100 * (r["guarded"] / r[f"plain_{r['best']}"] - 1) for r in rs]
        row["tax"] = _mean(taxes)
        row["tax_max"] = max(taxes)
        row["detected"] = sum(r["detection"]["detected"] for r in rs)
        row["drifts"] = sum(len(r["points"]) for r in rs)
        delays = [d for r in rs for d in r["detection"]["delays"]]
        row["detect_delay"] = _mean(delays) if delays else None
        row["false_per_10k"] = (
            None if name in CONTINUOUS else _mean([r["detection"]["false_per_10k"] for r in rs])
        )
        row["alarms"] = _mean([r["alarms"] for r in rs])
        row["rollbacks_per_10k"] = _mean([1e4 * r["rollbacks"] / r["n"] for r in rs])
        rec = [d for r in rs for d in r["recovery"]]
        row["recovery"] = rec
        row["promotions"] = dict(
            sum((collections.Counter(r["promotions"]) for r in rs), collections.Counter())
        )
        row["holds"] = sum(r["holds"] for r in rs)
        row["learner"] = rs[0]["learner"]
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| stream (delay) | task | seeds | guarded | plain LR | plain HT | guard tax (mean / worst) | detected | "
        "detection delay | false alarms /10k | rollbacks /10k | recovery after abrupt drifts | CPU s guarded / "
        "best plain |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        acc = r["task"] == "classification"

        def fmt(loss: float | None, acc: bool = acc) -> str:
            return "-" if loss is None else (f"{1 - loss:.4f}" if acc else f"MAE {loss:.3f}")

        best_cpu = r.get(f"cpu_{'lr' if r.get('plain_lr', 9) <= r.get('plain_ht', 9) else 'ht'}", 0.0)
        name = f"{r['stream']} ({r['delay']})"
        if "error" in r:
            lines.append(
                f"| {name} | {r['task']} | {r['seeds']} | fails: {r['error']} | {fmt(r.get('plain_lr'))} | "
                f"{fmt(r.get('plain_ht'))} | - | - | - | - | - | - | - |"
            )
            continue
        unit = " pts" if acc else " %"
        rec = r["recovery"]
        rec_s = ", ".join(">window" if d is None else str(d) for d in rec) if rec else "-"
        det = f"{r['detected']}/{r['drifts']}" if r["drifts"] else "-"
        dd = "-" if r["detect_delay"] is None else f"{r['detect_delay']:.0f}"
        fa = f"{r['false_per_10k']:.2f}" if r["false_per_10k"] is not None else f"({r['alarms']:.0f} alarms)"
        extra = (
            f" (ARF(10) {1 - r['plain_arf10']:.4f}, CPU {r['cpu_arf10']:.1f} s)" if "plain_arf10" in r else ""
        )
        lines.append(
            f"| {name} | {r['task']} | {r['seeds']} | {fmt(r['guarded'])}{extra} | {fmt(r['plain_lr'])} | "
            f"{fmt(r['plain_ht'])} | {r['tax']:+.2f} / {r['tax_max']:+.2f}{unit} | {det} | {dd} | "
            f"{fa} | {r['rollbacks_per_10k']:.2f} | {rec_s} | "
            f"{r['cpu_guarded']:.1f} / {best_cpu:.1f} |"
        )
    return "\n".join(lines)


def run(names: list[str], n: int, seeds: list[int], workers: int) -> list[dict[str, Any]]:
    jobs = [(name, s) for name in names for s in (seeds if name != "elec" else seeds[:1])]
    if workers <= 1:
        return aggregate([stream_job(name, n, s) for name, s in jobs])
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(stream_job, name, n, s) for name, s in jobs]
        return aggregate([f.result() for f in futures])


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help=f"only {', '.join(QUICK)}; {QUICK_N} events, one seed"
    )
    ap.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    ap.add_argument("--n", type=int, help="events per synthetic stream (default 20,000; --quick 4,000)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per synthetic stream (default 3)")
    ap.add_argument("--streams", help=f"comma-separated subset of: {', '.join(STREAMS)}")
    ap.add_argument("--no-poisoning", action="store_true", help="skip the poisoning bursts")
    ap.add_argument("--detectors", action="store_true", help="only compare the error detectors by name")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    return ap.parse_args()


def main() -> int:
    args = _parse()
    names = list(QUICK) if args.quick else list(STREAMS)
    if args.streams:
        names = [s for s in args.streams.split(",") if s]
        unknown = set(names) - set(STREAMS)
        if unknown:
            raise SystemExit(f"unknown streams {sorted(unknown)}; known: {', '.join(STREAMS)}")
    if "elec" in names and not ELEC.exists():
        names.remove("elec")
    n = args.n or (QUICK_N if args.quick else 20000)
    seeds = list(range(1, 1 + (1 if args.quick else args.seeds)))
    start = time.perf_counter()
    if args.detectors:
        print(
            "| detector | detected / drifts | median delay | false alarms /10k stationary |\n|---|---|---|---|"
        )
        for det, r in detectors(n, seeds).items():
            print(
                f"| {det} | {r['detected']}/{r['drifts']} | {r['median_delay']} | {r['false_per_10k']:.2f} |"
            )
        return 0
    rows = run(names, n, seeds, args.workers)
    poison = None if args.no_poisoning or args.quick else poisoning(12000, 1)
    print(table(rows))
    if poison:
        for kind in ("flip", "targeted"):
            print(kind, json.dumps(poison[kind]))
    print(f"# {time.perf_counter() - start:.0f} s wall; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; command: python bench/accuracy.py "
          f"{' '.join(sys.argv[1:])}")  # fmt: skip
    if args.json:
        print(json.dumps({"streams": rows, "poisoning": poison}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
