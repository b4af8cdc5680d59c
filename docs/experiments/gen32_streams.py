"""Experiment (BENCHMARKS-accuracy.md, session 32, helper gen32): 14 labelled CSV streams from outside the suite.

    PYTHONPATH=TREE python docs/experiments/gen32_streams.py OUT_DIR [--seed 71] [--streams a,b]
    PYTHONPATH=TREE python docs/experiments/gen32_streams.py OUT_DIR --judge [--seed 71] [--streams a,b]
    PYTHONPATH=TREE python docs/experiments/gen32_streams.py OUT_DIR --look NAME [--seed 71] [--window 250]

Writes ``OUT_DIR/<name>.csv`` (label column ``y``) for each stream below and prints one JSON line per stream with
its task, length, drift points and the label delay it is run at. Generators, functions, drift points, lengths and
delays differ from ``bench/unseen.py``, ``bench/accuracy.py`` and ``docs/experiments/gen30_streams.py``: early
(1,000) and late (9,000) drifts, two and three abrupt drifts, reversals and back, 5 % positives, 8 and 12 classes,
missing values and string categories, lengths 3,000 and 20,000, label delays 0, 1, 50, 200 and 500. The streams
are then run as a user would: ``driftline replay --file OUT_DIR/<name>.csv --label-col y --delay D --json`` with the
defaults (plain ``auto`` alongside), again with ``--plain logistic_regression`` (``linear_regression``) and
``--plain hoeffding_tree``. ``--judge`` gives ``bench.unseen``'s verdict on each stream at its delay and ``--look``
windowed losses of one (served, plain LR, plain HT).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Example = tuple[dict[Any, Any], Any]  # as bench.unseen.Example
Made = tuple[list[Example], list[int], str]
Maker = Callable[[int], Made]


def _take(source: Any, n: int) -> list[Example]:
    return [
        ({str(k): v for k, v in x.items()}, y.item() if hasattr(y, "item") else y)
        for x, y in itertools.islice(source, n)
    ]


def _chain(concepts: list[Any], points: list[int], seed: int) -> Any:
    """Concept k from points[k-1] on, each switch abrupt: ConceptDriftStream's sigmoid as narrow as it goes without
    overflowing (as ``learners.synthetic._chain``; positions are relative to the inner stream's start)."""
    from river.datasets import synth

    stream = concepts[-1]
    for k in range(len(concepts) - 1, 0, -1):
        start = points[k - 1] - (points[k - 2] if k >= 2 else 0)
        stream = synth.ConceptDriftStream(
            concepts[k - 1], stream, position=start, width=max(20, 4 * start // 700 + 1), seed=seed + k
        )
    return stream


def agrawal_9_4_early(s: int) -> Made:
    """Agrawal function 9 -> 4, abrupt at 1,000 (early: the model is young when it comes)."""
    from river.datasets import synth

    pts = [1000]
    return _take(_chain([synth.Agrawal(9, seed=s), synth.Agrawal(4, seed=s + 1)], pts, s), 10000), pts, \
        "classification"  # fmt: skip


def sea_3_2_late(s: int) -> Made:
    """SEA variant 3 -> 2 (threshold 9.5 -> 7), 5 % noise, abrupt at 9,000 of 10,000 (late: an old model)."""
    from river.datasets import synth

    a, b = synth.SEA(variant=3, noise=0.05, seed=s), synth.SEA(variant=2, noise=0.05, seed=s + 1)
    return _take(_chain([a, b], [9000], s), 10000), [9000], "classification"


def stagger_three(s: int) -> Made:
    """STAGGER (balanced classes, integer categories) 1 -> 0 -> 2 -> 1: three abrupt drifts, 12,000 events."""
    from river.datasets import synth

    pts = [3000, 6000, 9000]
    cs = [synth.STAGGER(f, seed=s + k, balance_classes=True) for k, f in enumerate((1, 0, 2, 1))]
    return _take(_chain(cs, pts, s), 12000), pts, "classification"


def mixed_back(s: int) -> Made:
    """Mixed (balanced classes) function 1 -> 0 -> 1: a total reversal at 3,000 and back at 6,000."""
    from river.datasets import synth

    pts = [3000, 6000]
    cs = [synth.Mixed(f, seed=s + k, balance_classes=True) for k, f in enumerate((1, 0, 1))]
    return _take(_chain(cs, pts, s), 10000), pts, "classification"


def hyperplane20_two(s: int) -> Made:
    """Hyperplane with 20 features, 10 % noise; a new plane (another seed) at 4,000 and again at 8,000."""
    from river.datasets import synth

    pts = [4000, 8000]
    cs = [synth.Hyperplane(seed=s + k, n_features=20, noise_percentage=0.1) for k in range(3)]
    return _take(_chain(cs, pts, s), 12000), pts, "classification"


def randomtree_8class(s: int) -> Made:
    """RandomTree with 8 classes, 6 numeric and 4 categorical features (written as strings ``c0``..``c4``);
    a new tree at 10,000 of 20,000."""
    from river.datasets import synth

    def tree(k: int) -> Any:
        return synth.RandomTree(
            seed_tree=s + 2 * k, seed_sample=s + 2 * k + 1, n_classes=8, n_num_features=6, n_cat_features=4
        )

    rows = _take(_chain([tree(0), tree(1)], [10000], s), 20000)
    rows = [({k: (f"c{v}" if "cat" in k else v) for k, v in x.items()}, y) for x, y in rows]
    return rows, [10000], "classification"


def rbf_12class(s: int) -> Made:
    """RandomRBF with 12 classes, 10 features, 60 centroids; new centroids at 5,000."""
    from river.datasets import synth

    def rbf(k: int) -> Any:
        return synth.RandomRBF(
            seed_model=s + 2 * k, seed_sample=s + 2 * k + 1, n_classes=12, n_features=10, n_centroids=60
        )

    return _take(_chain([rbf(0), rbf(1)], [5000], s), 10000), [5000], "classification"


def waveform_noise_swap(s: int) -> Made:
    """Waveform with its 19 noise attributes (40 features, 3 classes); classes 0 and 2 swap at 5,000 (class 1
    keeps its meaning: a partial multi-class reversal)."""
    from river.datasets import synth

    rows = _take(synth.Waveform(seed=s, has_noise=True), 10000)
    swap = {0: 2, 2: 0, 1: 1}
    return [(x, swap[y] if i >= 5000 else y) for i, (x, y) in enumerate(rows)], [5000], "classification"


def imbalanced_5pc(s: int) -> Made:
    """Six standard normal features; y = 1 when w.x + N(0, 0.3) is above its 95th percentile (5 % positives);
    a new w at 5,000 (the positives stay 5 %)."""
    rng = random.Random(s)
    rows: list[Example] = []
    for i in range(10000):
        if i in (0, 5000):
            w = [rng.uniform(-1, 1) for _ in range(6)]
            cut = 1.645 * math.sqrt(sum(a * a for a in w) + 0.09)
        x = {f"f{j}": rng.gauss(0, 1) for j in range(6)}
        rows.append((x, int(sum(a * x[f"f{j}"] for j, a in enumerate(w)) + rng.gauss(0, 0.3) > cut)))
    return rows, [5000], "classification"


REGIONS = ("north", "south", "east", "west", "centre", "coast", "hills", "islands")


def messy_3k(s: int) -> Made:
    """3,000 events as a user's export carries them: ``amount`` (lognormal, 10 % empty), ``age`` (integer, 5 %
    empty), ``region`` (8 strings, 5 % empty), ``device`` (ios / android / web), ``score`` (normal). At 1,500 the
    regions' effects change sign and ``web`` goes from helping to hurting."""
    rng = random.Random(s)
    bias = {r: rng.gauss(0, 1.2) for r in REGIONS}
    web = 0.8
    rows: list[Example] = []
    for i in range(3000):
        if i == 1500:
            bias, web = {r: -b for r, b in bias.items()}, -0.8
        amount = math.exp(rng.gauss(3, 1))
        age = rng.randint(18, 80)
        region = rng.choice(REGIONS)
        device = rng.choice(("ios", "android", "web"))
        score = rng.gauss(0, 1)
        z = bias[region] + web * (device == "web") + 0.5 * (math.log(amount) - 3) - 0.03 * (age - 49) + score
        y = int(z + rng.gauss(0, 0.5) > 0)
        x: dict[str, Any] = {
            "amount": None if rng.random() < 0.10 else round(amount, 2),
            "age": None if rng.random() < 0.05 else age,
            "region": None if rng.random() < 0.05 else region,
            "device": device,
            "score": round(score, 4),
        }
        rows.append((x, y))
    return rows, [1500], "classification"


def friedman_gra_early_late(s: int) -> Made:
    """FriedmanDrift "gra" (global recurring abrupt): the new concept at 1,000, the old one back at 9,000."""
    from river.datasets import synth

    pos = (1000, 9000)
    return _take(synth.FriedmanDrift(drift_type="gra", position=pos, seed=s), 10000), list(pos), "regression"


def planes2d_back(s: int) -> Made:
    """Planes2D with y -> 5 - y from 3,000 to 7,000 (a reversal about 2.5 and back)."""
    from river.datasets import synth

    rows = _take(synth.Planes2D(seed=s), 10000)
    return (
        [(x, 5 - y if 3000 <= i < 7000 else y) for i, (x, y) in enumerate(rows)],
        [3000, 7000],
        "regression",
    )


def mv_level(s: int) -> Made:
    """Mv (a string feature, dependent features) with the target shifted by +15 at 4,000 (a level shift only)."""
    from river.datasets import synth

    rows = _take(synth.Mv(seed=s), 10000)
    return [(x, y + 15 if i >= 4000 else y) for i, (x, y) in enumerate(rows)], [4000], "regression"


def linear_20k_three(s: int) -> Made:
    """20,000 events: y = w.x + 0.5 x0 x1 + N(0, 1) over 8 standard normal features; a new w at 5,000, 10,000 and
    15,000."""
    rng = random.Random(s)
    rows: list[Example] = []
    for i in range(20000):
        if i % 5000 == 0:
            w = [rng.uniform(-2, 2) for _ in range(8)]
        x = {f"x{j}": rng.gauss(0, 1) for j in range(8)}
        y = sum(a * x[f"x{j}"] for j, a in enumerate(w)) + 0.5 * x["x0"] * x["x1"] + rng.gauss(0, 1)
        rows.append((x, y))
    return rows, [5000, 10000, 15000], "regression"


#: name -> (maker, label delay in events). Every stream has abrupt drift points (none is gradual or stationary).
STREAMS: dict[str, tuple[Maker, int]] = {
    "agrawal-9-4-early": (agrawal_9_4_early, 50),
    "sea-3-2-late": (sea_3_2_late, 200),
    "stagger-three": (stagger_three, 500),
    "mixed-back": (mixed_back, 50),
    "hyperplane20-two": (hyperplane20_two, 1),
    "randomtree-8class": (randomtree_8class, 50),
    "rbf-12class": (rbf_12class, 50),
    "waveform-noise-swap": (waveform_noise_swap, 200),
    "imbalanced-5pc": (imbalanced_5pc, 50),
    "messy-3k": (messy_3k, 200),
    "friedman-gra-early-late": (friedman_gra_early_late, 200),
    "planes2d-back": (planes2d_back, 0),
    "mv-level": (mv_level, 50),
    "linear-20k-three": (linear_20k_three, 500),
}


def write_csv(rows: list[Example], path: Path) -> None:
    """One column per feature (first-seen order) and ``y``; a missing or None value is an empty cell."""
    keys = list(dict.fromkeys(k for x, _ in rows for k in x))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*keys, "y"])
        for x, y in rows:
            w.writerow([*("" if x.get(k) is None else x[k] for k in keys), y])


def judge(names: list[str], seed: int) -> None:
    """Each stream through ``bench.unseen.job`` at its own delay (the CLI with defaults and ``--out``; plain LR
    one-vs-rest / linear regression and HT in process): tax, detection, recovery after each abrupt drift and
    ``bench.unseen.verdict``."""
    import bench.unseen as U

    def make(name: str, n: int, s: int = 0) -> tuple[list[Example], list[int], str, bool]:
        rows, points, task = STREAMS[name][0](s)
        return rows, points, task, False  # every drift here is abrupt

    U.make = make
    results = []
    for name in names:
        r = U.job(name, 0, None, seed, STREAMS[name][1])
        print(json.dumps({**r, "delay": STREAMS[name][1], "verdict": U.verdict(r)}, default=str), flush=True)
        results.append(r)
    print(U.table(results))


def look(name: str, seed: int, out: Path, window: int) -> None:
    """The CLI with defaults and ``--out`` on one stream at its delay, then served, plain LR and plain HT losses
    (``bench.accuracy.plain``, same delay) per window of events, with the versions served, drift points and alarms."""
    import subprocess

    from bench.accuracy import _loss, plain
    from driftline.config import LearnerSpec
    from learners.replay import read_rows

    maker, delay = STREAMS[name]
    rows_, points, task = maker(seed)
    path, preds_path = out / f"{name}-{seed}.csv", out / f"{name}-{seed}.preds.jsonl"
    write_csv(rows_, path)
    cmd = [sys.executable, "-m", "streams.cli", "replay", "--file", str(path), "--label-col", "y"]
    cmd += ["--delay", str(delay), "--json", "--no-plain", "--out", str(preds_path)]
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
        k: plain(rows, sp, task, delay, 0)["losses"]
        for k, sp in (("LR", lr), ("HT", LearnerSpec("hoeffding_tree")))
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
    print(f"{'events':>12} {'served':>8} {'LR':>8} {'HT':>8} versions")
    for a in range(0, len(rows), window):
        b = min(a + window, len(rows))
        vs = [p["version"] for p in preds[a:b]]
        mark = " <- drift" * any(a <= p < b for p in points) + " <- alarm" * any(
            a <= x < b for x in summary["alarms"]
        )
        print(f"{a:>5}-{b:<6} {sum(served[a:b]) / (b - a):8.4f} {sum(base['LR'][a:b]) / (b - a):8.4f} "
              f"{sum(base['HT'][a:b]) / (b - a):8.4f} {min(vs)}..{max(vs)}{mark}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=71)
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
        maker, delay = STREAMS[name]
        rows, points, task = maker(args.seed)
        write_csv(rows, args.out / f"{name}.csv")
        labels = collections_counter(y for _, y in rows) if task == "classification" else None
        print(json.dumps({"stream": name, "task": task, "n": len(rows), "drift": points, "delay": delay,
                          "classes": labels}))  # fmt: skip


def collections_counter(ys: Any) -> dict[str, int]:
    """Class counts (as strings, for JSON)."""
    import collections

    return {str(k): v for k, v in sorted(collections.Counter(ys).items())}


if __name__ == "__main__":
    main()
