"""Experiment (BENCHMARKS-accuracy.md, session 30, helper gen30): labelled CSV streams from outside the suite.

    PYTHONPATH=TREE python docs/experiments/gen30_streams.py OUT_DIR [--seed 37] [--streams a,b]
    PYTHONPATH=TREE python docs/experiments/gen30_streams.py OUT_DIR --judge [--seed 37] [--streams a,b]
    PYTHONPATH=TREE python docs/experiments/gen30_streams.py OUT_DIR --look NAME [--seed 37] [--window 250]

Writes ``OUT_DIR/<name>.csv`` (label column ``y``) for each stream below and prints one JSON line per stream with
its task, length and drift points. Generators, drifts and seeds differ from ``bench/unseen.py`` and
``bench/accuracy.py``; the streams are then run as a user would:
``driftline replay --file OUT_DIR/<name>.csv --label-col y --delay 50 --json`` (defaults, plain LR alongside) and
again with ``--plain hoeffding_tree``. ``--judge`` gives ``bench.unseen``'s verdict on each stream instead and
``--look`` windowed losses of one (see those functions).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Example = tuple[dict[Any, Any], Any]  # as bench.unseen.Example
Maker = Callable[[int], tuple[list[Example], list[int], str]]


def _take(source: Any, n: int) -> list[Example]:
    return [
        ({str(k): v for k, v in x.items()}, y.item() if hasattr(y, "item") else y)
        for x, y in itertools.islice(source, n)
    ]


def _abrupt(a: Any, b: Any, at: int, seed: int) -> Any:
    from river.datasets import synth

    # An abrupt switch: ConceptDriftStream's sigmoid, as narrow as it goes without overflowing.
    return synth.ConceptDriftStream(a, b, position=at, width=max(20, 4 * at // 700 + 1), seed=seed)


def rbf_incremental(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    src = synth.RandomRBFDrift(
        seed_model=s, seed_sample=s + 1, n_classes=5, n_features=6, n_centroids=30,
        change_speed=0.001, n_drift_centroids=10,
    )  # fmt: skip  # bench/accuracy.py's rbf-incremental: 3 classes, 10 features, 50 centroids, speed 0.0005
    return _take(src, 10000), [], "classification"  # incremental drift from the first event


def hyperplane_incremental(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    src = synth.Hyperplane(
        seed=s, n_features=10, n_drift_features=5, mag_change=0.001, sigma=0.1, noise_percentage=0.05
    )
    return _take(src, 10000), [], "classification"  # incremental drift from the first event


def agrawal_3_8(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    at = 4000
    return _take(_abrupt(synth.Agrawal(3, seed=s), synth.Agrawal(8, seed=s + 1), at, s), 10000), [at], \
        "classification"  # fmt: skip  # River's classification_function 3 -> 8


def agrawal_5_9(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    at = 6000
    return _take(_abrupt(synth.Agrawal(5, seed=s), synth.Agrawal(9, seed=s + 1), at, s), 10000), [at], \
        "classification"  # fmt: skip  # functions 5 -> 9


def led_stationary(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    return (
        _take(synth.LED(seed=s, noise_percentage=0.1, irrelevant_features=True), 10000),
        [],
        "classification",
    )


def sea_1_2_noisy(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    at = 5000
    a, b = synth.SEA(variant=1, noise=0.1, seed=s), synth.SEA(variant=2, noise=0.1, seed=s + 1)
    return _take(_abrupt(a, b, at, s), 10000), [at], "classification"


def mixed_gradual(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    at = 5000  # centre of a 2,000-event-wide gradual drift (4,000-6,000)
    src = synth.ConceptDriftStream(
        synth.Mixed(0, seed=s), synth.Mixed(1, seed=s + 1), position=at, width=2000, seed=s
    )
    return _take(src, 10000), [at], "classification"


def prior_shift(s: int) -> tuple[list[Example], list[int], str]:
    """Agrawal function 1 resampled: class 1 is 50 % of the events before 5,000 and 10 % after."""
    from river.datasets import synth

    rng = random.Random(s)
    pools: dict[int, list[Example]] = {0: [], 1: []}
    src = iter(synth.Agrawal(0, seed=s, balance_classes=False))
    rows: list[Example] = []
    at, n = 5000, 10000
    while len(rows) < n:
        want = 1 if rng.random() < (0.5 if len(rows) < at else 0.1) else 0
        while not pools[want]:
            x, y = next(src)
            pools[int(y)].append(({str(k): v for k, v in x.items()}, int(y)))
        rows.append(pools[want].pop(0))
    return rows, [at], "classification"


def friedman_stationary(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    return _take(synth.Friedman(seed=s), 10000), [], "regression"


def friedman_lea(s: int) -> tuple[list[Example], list[int], str]:
    from river.datasets import synth

    pos = (3000, 6000, 8500)
    return _take(synth.FriedmanDrift(drift_type="lea", position=pos, seed=s), 10000), list(pos), "regression"


def sine_recurring(s: int) -> tuple[list[Example], list[int], str]:
    """Sine function 1 -> 3 -> 1 (a concept that comes back), abrupt at 4,000 and 8,000."""
    from river.datasets import synth

    inner = _abrupt(synth.Sine(3, seed=s + 1), synth.Sine(1, seed=s + 2), 4000, s)
    return _take(_abrupt(synth.Sine(1, seed=s), inner, 4000, s), 12000), [4000, 8000], "classification"


def noisy_wide(s: int) -> tuple[list[Example], list[int], str]:
    """30 features, 5 informative (a Hyperplane with 5 features) and 25 of uniform noise; abrupt flip of the
    plane's weights at 6,000 (a Hyperplane of another seed)."""
    from river.datasets import synth

    rng = random.Random(s)
    at = 6000
    a = synth.Hyperplane(seed=s, n_features=5, noise_percentage=0.05)
    b = synth.Hyperplane(seed=s + 1, n_features=5, noise_percentage=0.05)
    rows = []
    for x, y in _take(_abrupt(a, b, at, s), 10000):
        rows.append(({**x, **{f"z{i}": rng.random() for i in range(25)}}, y))
    return rows, [at], "classification"


def category200(s: int) -> tuple[list[Example], list[int], str]:
    """A string feature ``shop`` of 200 values, each with its own hidden bias, plus 3 numeric features;
    y = 1 when bias(shop) + x0 - x1 + noise > 0. At 5,000 half of the shops' biases change sign."""
    rng = random.Random(s)
    bias = [rng.gauss(0, 1.5) for _ in range(200)]
    at = 5000
    rows: list[Example] = []
    for i in range(10000):
        if i == at:
            bias = [-b if k % 2 else b for k, b in enumerate(bias)]
        k = min(int(rng.paretovariate(1.2)) - 1, 199)  # a long tail: a few shops are frequent
        x: dict[str, Any] = {
            "shop": f"shop{k:03d}",
            "x0": rng.gauss(0, 1),
            "x1": rng.gauss(0, 1),
            "x2": rng.gauss(0, 1),
        }
        rows.append((x, int(bias[k] + x["x0"] - x["x1"] + rng.gauss(0, 0.5) > 0)))
    return rows, [at], "classification"


#: Drifts with no abrupt point (incremental from the first event, or 2,000 events wide): recovery is not judged
#: and an alarm is matched to a gradual drift from 1,000 events before its centre (``bench.unseen``'s rules).
GRADUAL = ("rbf-incremental", "hyperplane-incremental", "mixed-gradual")
STREAMS: dict[str, Maker] = {
    "rbf-incremental": rbf_incremental,
    "hyperplane-incremental": hyperplane_incremental,
    "agrawal-3-8": agrawal_3_8,
    "agrawal-5-9": agrawal_5_9,
    "led-stationary": led_stationary,
    "sea-1-2-noisy": sea_1_2_noisy,
    "mixed-gradual": mixed_gradual,
    "prior-shift": prior_shift,
    "friedman-stationary": friedman_stationary,
    "friedman-lea": friedman_lea,
    "sine-recurring": sine_recurring,
    "noisy-wide": noisy_wide,
    "category200": category200,
}


def write_csv(rows: list[Example], path: Path) -> None:
    keys = list(dict.fromkeys(k for x, _ in rows for k in x))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*keys, "y"])
        for x, y in rows:
            w.writerow([*(x.get(k, "") for k in keys), y])


def judge(names: list[str], seed: int) -> None:
    """Each stream through ``bench.unseen.job`` (the CLI with defaults and ``--out``, plain LR one-vs-rest and HT
    in process): tax, detection, recovery after each abrupt drift and ``bench.unseen.verdict``. A stream with no
    drift point goes in as "gradual": ``bench.unseen.judged([], n)`` raises (``zip(strict=True)`` of 0 points and 1
    end), and a gradual stream skips it; with no point there is no recovery to judge either way."""
    import bench.unseen as U

    def make(name: str, n: int, s: int = 0) -> tuple[list[Example], list[int], str, bool]:
        rows, points, task = STREAMS[name](s)
        return rows, points, task, name in GRADUAL or not points  # see judge()

    U.make = make
    results = []
    for name in names:
        r = U.job(name, 0, None, seed)
        r["false_judged"] = "incremental" not in name  # drifting from the first event: no stationary stretch
        print(json.dumps({**r, "verdict": U.verdict(r)}, default=str), flush=True)
        results.append(r)
    print(U.table(results))


def look(name: str, seed: int, out: Path, window: int) -> None:
    """The CLI with defaults and ``--out`` on one stream, then served, plain LR and plain HT losses (at the same
    delay, ``bench.accuracy.plain``) per window of events, with the versions served and the drift points and
    alarms in each window."""
    import subprocess

    from bench.accuracy import _loss, plain
    from driftline.config import LearnerSpec
    from learners.replay import read_rows

    rows_, points, task = STREAMS[name](seed)
    path, preds_path = out / f"{name}-{seed}.csv", out / f"{name}-{seed}.preds.jsonl"
    write_csv(rows_, path)
    cmd = [
        sys.executable,
        "-m",
        "streams.cli",
        "replay",
        "--file",
        str(path),
        "--label-col",
        "y",
        "--delay",
        "50",
        "--json",
    ]
    cmd += ["--no-plain", "--out", str(preds_path)]
    print("#", " ".join(cmd))
    run = subprocess.run(cmd, capture_output=True, text=True, check=True)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    rows = list(read_rows(path, "y"))
    preds = [json.loads(line) for line in preds_path.open()]
    served = [_loss(task, p["prediction"], r[3]) for p, r in zip(preds, rows, strict=True)]
    lr = LearnerSpec("logistic_regression", {"multiclass": "ovr"})
    if task == "regression":
        lr = LearnerSpec("linear_regression")
    base = {
        k: plain(rows, s, task, 50, 0)["losses"]
        for k, s in (("LR", lr), ("HT", LearnerSpec("hoeffding_tree")))
    }
    print(
        "points",
        points,
        "alarms",
        summary["alarms"],
        "rollbacks",
        summary["rollbacks"],
        "holds",
        summary["holds"],
    )
    print(f"{'events':>12} {'served':>7} {'LR':>7} {'HT':>7} versions")
    for a in range(0, len(rows), window):
        b = min(a + window, len(rows))
        vs = [p["version"] for p in preds[a:b]]
        mark = " <- drift" * any(a <= p < b for p in points) + " <- alarm" * any(
            a <= x < b for x in summary["alarms"]
        )
        print(f"{a:>5}-{b:<6} {sum(served[a:b]) / (b - a):7.4f} {sum(base['LR'][a:b]) / (b - a):7.4f} "
              f"{sum(base['HT'][a:b]) / (b - a):7.4f} {min(vs)}..{max(vs)}{mark}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=37)
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument(
        "--judge", action="store_true", help="run bench.unseen's judgement instead of writing CSVs"
    )
    ap.add_argument("--look", metavar="NAME", help="served and plain losses per window on one stream (--out)")
    ap.add_argument("--window", type=int, default=250, help="events per window of --look")
    args = ap.parse_args()
    if args.look:
        args.out.mkdir(parents=True, exist_ok=True)
        look(args.look, args.seed, args.out, args.window)
        return
    if args.judge:
        judge(args.streams.split(","), args.seed)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.streams.split(","):
        rows, points, task = STREAMS[name](args.seed)
        write_csv(rows, args.out / f"{name}.csv")
        labels = {y for _, y in rows}
        print(json.dumps({"stream": name, "task": task, "n": len(rows), "drift": points,
                          "n_labels": len(labels) if task == "classification" else None}))  # fmt: skip


if __name__ == "__main__":
    main()
