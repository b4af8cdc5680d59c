"""Experiment (BENCHMARKS-accuracy.md, session 15): streams shaped unlike the suite's, through ``bench.unseen``'s
machinery (CSV -> ``driftline replay`` with defaults, plain LR and HT at the same delay).

    PYTHONPATH=TREE python docs/experiments/odd_streams.py SEED N [name,name,...]

Prints one line per stream (guarded, best plain, tax, alarms, detection, verdict) and the results as JSON.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

import bench.unseen as U


def make(name: str, n: int, s: int = 0) -> tuple[list[Any], list[int], str, bool]:
    from river.datasets import synth

    h = n // 2
    rng = random.Random(1000 + s)
    if name == "imbalanced-agrawal":  # 5 % positives by subsampling negatives... keep order
        rows: list[Any] = []
        for x, y in synth.Agrawal(2, seed=1100 + s, perturbation=0.05):
            if y == 1 and rng.random() > 0.08:
                continue
            rows.append((dict(x), y))
            if len(rows) >= n:
                break
        return rows, [], "classification", False
    if name == "rbf20-abrupt":  # 20 classes, abrupt swap of centroids
        a = synth.RandomRBF(
            seed_model=1101 + s, seed_sample=1102 + s, n_classes=20, n_features=10, n_centroids=60
        )
        b = synth.RandomRBF(
            seed_model=1103 + s, seed_sample=1104 + s, n_classes=20, n_features=10, n_centroids=60
        )
        return U._take(U._drift(a, b, h, 20, 5), n), [h], "classification", False
    if name == "hyperplane50":  # wide: 50 features, slow drift
        src = synth.Hyperplane(
            seed=1105 + s, n_features=50, n_drift_features=10, mag_change=0.001, noise_percentage=0.05
        )
        return U._take(src, n), [], "classification", True
    if name == "friedman-bigscale-abrupt":  # target scaled by 1e6 plus an offset of 1e9, abrupt drift
        rows = U._take(synth.FriedmanDrift(drift_type="gra", position=(h, n + 1), seed=1106 + s), n)
        return [(x, y * 1e6 + 1e9) for x, y in rows], [h], "regression", False
    if name == "friedman-outliers":  # heavy-tailed label noise (1 % of labels x50)
        rows = U._take(synth.Friedman(seed=1107 + s), n)
        return [(x, y * (50 if rng.random() < 0.01 else 1)) for x, y in rows], [], "regression", False
    # Session 16: 0.2 % of labels x200; 5 % x10.
    if name in ("friedman-outliers-rare", "friedman-outliers-dense"):
        share, factor = (0.002, 200) if name.endswith("rare") else (0.05, 10)
        rows = U._take(synth.Friedman(seed=1113 + s), n)
        return [(x, y * (factor if rng.random() < share else 1)) for x, y in rows], [], "regression", False
    # Session 16: Student-t noise, 2 degrees of freedom, x2 (infinite variance).
    if name == "friedman-student-t":
        rows = U._take(synth.Friedman(seed=1114 + s), n)
        t = [rng.gauss(0.0, 1.0) / (rng.gammavariate(1.0, 2.0) / 2.0) ** 0.5 for _ in rows]
        return [(x, y + 2.0 * e) for (x, y), e in zip(rows, t, strict=True)], [], "regression", False
    if name == "sea-labels-flip-late":  # abrupt reversal at 80 %
        rows = U._take(synth.SEA(variant=1, seed=1108 + s, noise=0.05), n)
        at = int(n * 0.8)
        return U._relabel(rows, at, lambda y: not y), [at], "classification", False
    if name == "led-drift-multi":  # LEDDrift with drifting features, 10 classes
        src = U._drift(
            synth.LEDDrift(seed=1109 + s, noise_percentage=0.1, n_drift_features=0),
            synth.LEDDrift(seed=1110 + s, noise_percentage=0.1, n_drift_features=7),
            h,
            20,
            9,
        )
        return U._take(src, n), [h], "classification", False
    if name == "lognormal-feature":  # stationary SEA plus an irrelevant heavy-tailed feature (amounts)
        rows = U._take(synth.SEA(variant=0, seed=1111 + s, noise=0.05), n)
        return (
            [({**x, "amount": rng.lognormvariate(3.0, 2.0)}, y) for x, y in rows],
            [],
            "classification",
            False,
        )
    if name == "pareto-feature-reg":  # stationary Friedman plus a Pareto feature
        rows = U._take(synth.Friedman(seed=1112 + s), n)
        return [({**x, "amount": rng.paretovariate(1.2)}, y) for x, y in rows], [], "regression", False
    raise SystemExit(name)


NAMES = [
    "imbalanced-agrawal",
    "rbf20-abrupt",
    "hyperplane50",
    "friedman-bigscale-abrupt",
    "friedman-outliers",
    "sea-labels-flip-late",
    "led-drift-multi",
]
U.make = make
if __name__ == "__main__":
    seed, n = int(sys.argv[1]), int(sys.argv[2])
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else NAMES
    res = []
    for nm in names:
        try:
            r = U.job(nm, n, None, seed)
        except Exception as e:  # a crash is a result too
            r = {"stream": nm, "error": repr(e)}
            print(r, flush=True)
            res.append(r)
            continue
        res.append(r)
        print(
            f"{r['stream']:26s} n={r['n']:6d} guarded={r.get('guarded', float('nan')):.4f} best={r['best']} "
            f"{r['plain_' + r['best']]:.4f} tax={r.get('tax', float('nan')):+.2f} alarms={len(r.get('alarms', []))} "
            f"det={r.get('detection')} rb={r.get('rollbacks_per_10k')} prom={r.get('promotions')} "
            f"holds={r.get('holds')} "
            f"rec={r.get('recovery')} verdict={U.verdict(r)} {r.get('error', '')}",
            flush=True,
        )
    print(json.dumps(res, default=str))
