"""Accuracy benchmark of the learning core: guarded system vs the same learner without drift handling vs ARF(10).

    python bench/accuracy.py [--quick] [--json]

Streams: /work/shared/data/elec.csv (label ``class``, delay 48) when present, and River's SEA, Agrawal and Hyperplane
joined by ConceptDriftStream (abrupt and gradual, drifts at n/3 and 2n/3, delay 10). Also: detection delay and false
alarms on known drift points, false alarms of the feature monitor vs River's Page-Hinkley defaults on raw features,
and label-flip / targeted poisoning bursts with and without a reference set. Prints a table and one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from learners.config import DriftConfig, GuardConfig, LearnerSpec
from learners.drift import FeatureDriftMonitor
from learners.lifecycle import ModelLifecycle
from learners.replay import read_rows, replay
from learners.specs import build_learner
from learners.synthetic import synthetic_stream

ELEC = Path(os.environ.get("DRIFTLINE_ELEC", "/work/shared/data/elec.csv"))
WINDOW_LR = LearnerSpec("window_refit", {"window": 3000, "every": 100, "degree": 2})
ARF10 = LearnerSpec("adaptive_random_forest", {"n_models": 10})
DETECT_WITHIN = 2000  # an alarm this many events after a drift point counts as its detection


def _rows(name: str, n: int, seed: int) -> tuple[list[Any], list[int]]:
    if name == "elec":
        return list(read_rows(ELEC, "class")), []
    rows, points = synthetic_stream(name, n, seed)
    return list(rows), points


def plain(rows: list[Any], spec: LearnerSpec, delay: int) -> dict[str, float]:
    """The learner with no drift handling: predicts, learns every label ``delay`` events late."""
    model = build_learner(spec)
    pending: collections.deque[tuple[Any, Any]] = collections.deque()
    correct, start = 0, time.perf_counter()
    for _, _, x, y in rows:
        correct += model.predict_one(x) == y
        pending.append((x, y))
        if len(pending) > delay:
            model.learn_one(*pending.popleft())
    return {"accuracy": correct / len(rows), "seconds": time.perf_counter() - start}


def guarded(
    rows: list[Any], spec: LearnerSpec, delay: int, release_every: int, reference: list[Any] | None = None
) -> dict[str, Any]:
    lifecycle = ModelLifecycle(
        "bench",
        "classification",
        spec,
        None,
        DriftConfig(),
        GuardConfig(),
        reference=reference,
        release_every=release_every,
    )
    start = time.perf_counter()
    result = replay(rows, lifecycle, delay=delay)
    out = result.summary()
    out["seconds"] = time.perf_counter() - start
    out["outcomes"] = list(result.outcomes)
    return out


def detection(alarms: list[int], points: list[int]) -> dict[str, Any]:
    delays, matched = [], set()
    for p in points:
        hits = [a for a in alarms if p <= a < p + DETECT_WITHIN]
        if hits:
            delays.append(hits[0] - p)
            matched.update(hits)
    false = [a for a in alarms if a not in matched]
    return {"detected": len(delays), "drifts": len(points), "delays": delays, "false_alarms": len(false)}


def stream_job(name: str, n: int, seed: int, quick: bool) -> dict[str, Any]:
    rows, points = _rows(name, n, seed)
    delay = 48 if name == "elec" else 10
    release = 50
    out: dict[str, Any] = {"stream": name, "n": len(rows), "delay": delay, "drift_points": points}
    bases = [LearnerSpec("logistic_regression"), LearnerSpec("hoeffding_tree")]
    if name == "elec":
        bases.append(WINDOW_LR)
    for spec in bases:
        label = spec.name if spec.name != "window_refit" else "window_refit_lr"
        g = guarded(rows, spec, delay, release)
        out[f"guarded_{label}"] = round(g["accuracy"], 4)
        out[f"guarded_{label}_seconds"] = round(g["seconds"], 1)
        out[f"plain_{label}"] = round(plain(rows, spec, delay)["accuracy"], 4)
        out[f"guarded_{label}_promotions"] = collections.Counter(p["reason"] for p in g["promotions"])
        out[f"guarded_{label}_rollbacks"] = len(g["rollbacks"])
        if points:
            out[f"detection_{label}"] = detection(g["alarms"], points)
        else:
            out[f"alarms_{label}"] = len(g["alarms"])
    if not quick or name != "elec":
        arf = plain(rows, ARF10, delay)
        out["arf10"] = round(arf["accuracy"], 4)
        out["arf10_seconds"] = round(arf["seconds"], 1)
    return out


def feature_false_alarms(n: int, seed: int) -> dict[str, Any]:
    """Alarms on stationary raw features: our scale-free monitor vs River's PageHinkley() defaults."""
    from river import drift

    out: dict[str, Any] = {}
    for name in ("sea-stationary", "agrawal-stationary", "hyperplane-stationary"):
        rows, _ = synthetic_stream(name, n, seed)
        ours = FeatureDriftMonitor(DriftConfig())
        river_ph: collections.defaultdict[str, drift.PageHinkley] = collections.defaultdict(drift.PageHinkley)
        n_ours = n_river = 0
        for i, (_, _, x, _) in enumerate(rows):
            n_ours += len(ours.update(x, i))
            for k, v in x.items():
                det = river_ph[k]
                det.update(float(v))
                n_river += det.drift_detected
        out[name] = {"driftline": n_ours, "river_defaults": n_river}
    # And a detection: a 2-sigma step in one raw feature (units of 1000s).
    rng = random.Random(seed)
    mon = FeatureDriftMonitor(DriftConfig())
    hit: int | None = None
    for i in range(10000):
        alarms = mon.update({"a": 1000 + 50 * rng.gauss(0, 1) + (100 if i >= 5000 else 0)}, i)
        if alarms and hit is None and i >= 5000:
            hit = i - 5000
    out["step_2sd_detection_delay"] = hit
    return out


def poisoning(n: int, seed: int) -> dict[str, Any]:
    """A burst of wrong labels (all flipped, or flipped only where x0 > 0.5), then clean labels again.

    Accuracy on the true labels after the burst: guarded with/without a reference set, the plain learner that
    learned the burst, and the plain learner that never saw the burst's labels.
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
            lifecycle = ModelLifecycle(
                "p",
                "classification",
                spec,
                None,
                DriftConfig(),
                GuardConfig(),
                reference=ref,
                release_every=50,
            )
            preds: list[Any] = []

            def keep(record: dict[str, Any], out: list[Any] = preds) -> None:
                out.append(record["prediction"])

            replay(poisoned, lifecycle, delay=10, on_prediction=keep)
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter streams, no ARF on elec")
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args()
    n = 6000 if args.quick else 20000
    names = [f"{f}-{k}" for f in ("sea", "agrawal", "hyperplane") for k in ("abrupt", "gradual")]
    if ELEC.exists():
        names.insert(0, "elec")
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        jobs = [pool.submit(stream_job, name, n, args.seed, args.quick) for name in names]
        features = pool.submit(feature_false_alarms, n, args.seed)
        poison = pool.submit(poisoning, n // 2 if args.quick else 12000, args.seed)
        streams = [j.result() for j in jobs]
        report = {
            "streams": streams,
            "feature_monitor": features.result(),
            "poisoning": poison.result(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}",
            "command": " ".join(["python", "bench/accuracy.py", *sys.argv[1:]]),
            "seconds": round(time.perf_counter() - start, 1),
        }
    if not args.json:
        for s in streams:
            cols = {k: v for k, v in s.items() if isinstance(v, float) and not k.endswith("seconds")}
            print(s["stream"], json.dumps(cols))
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
