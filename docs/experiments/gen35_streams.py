"""Experiment (BENCHMARKS-accuracy.md, session 35, helper gen35): 18 more labelled CSV streams nobody had run.

    PYTHONPATH=TREE python docs/experiments/gen35_streams.py OUT_DIR [--seed 45] [--streams a,b]
    PYTHONPATH=TREE python docs/experiments/gen35_streams.py OUT_DIR --judge [--seed 45] [--streams a,b]
    PYTHONPATH=TREE python docs/experiments/gen35_streams.py OUT_DIR --look NAME [--seed 45] [--window 250]

Writes ``OUT_DIR/<name>.csv`` (label column ``y``) for each stream below and prints one JSON line per stream with
its task, length, drift points, kind and the label delay it is run at. None of the streams, generators' settings or
drift points is one of ``bench/accuracy.py``, ``bench/unseen.py``, ``docs/experiments/gen30_streams.py`` or
``gen32_streams.py``: unbalanced STAGGER recurring every 2,000; Sine without noise 2 -> 0; RandomRBFDrift at change
speeds 0.01 and 0.002; LEDDrift from 0 to 7 drifting attributes (10 classes); Agrawal 4 -> 7 in 4,000 events and
8 -> 2 at 14,000 of 20,000; FriedmanDrift "gsg" with 2,000-event transitions; nested gradual ConceptDriftStreams
2,000 wide;
one total reversal of a stream where plain LR is ~0.95 at delays 0, 10, 50 and 200; 3 classes at 80 / 15 / 5 %;
a regression A-B-A-B every 2,500; integer-coded and string categories mixed; one feature's units x1000 halfway; and
10,000 stationary events. ``--judge`` runs each through ``bench.unseen.job`` (``driftline replay --file X --label-col
y --delay D --json --no-plain --out F`` with defaults, ``model.task: regression`` for regression streams; plain LR
one-vs-rest / linear regression and plain HT in process, same delay) and prints ``bench.unseen.verdict``; ``--look``
windowed losses of one stream (served, plain LR, plain HT).
"""

from __future__ import annotations

import argparse
import collections
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


def _chain(concepts: list[Any], points: list[int], seed: int, width: int = 0) -> Any:
    """Concept k from points[k-1] on. ``width`` 0: each switch abrupt (ConceptDriftStream's sigmoid as narrow as it
    goes without overflowing, as ``learners.synthetic._chain``); else that wide (gradual). Positions are relative to
    the inner stream's start."""
    from river.datasets import synth

    stream = concepts[-1]
    for k in range(len(concepts) - 1, 0, -1):
        start = points[k - 1] - (points[k - 2] if k >= 2 else 0)
        w = width or max(20, 4 * start // 700 + 1)
        stream = synth.ConceptDriftStream(concepts[k - 1], stream, position=start, width=w, seed=seed + k)
    return stream


def stagger_unbalanced_recur(s: int) -> Made:
    """STAGGER with its natural (unbalanced) classes, function 0 -> 2 -> 0 -> 2 every 2,000 of 8,000 events."""
    from river.datasets import synth

    pts = [2000, 4000, 6000]
    cs = [synth.STAGGER(f, seed=s + k) for k, f in enumerate((0, 2, 0, 2))]
    return _take(_chain(cs, pts, s), 8000), pts, "classification"


def sine_2_0_clean(s: int) -> Made:
    """Sine without noise, function 2 (y < 0.5 + 0.3 sin(3 pi x)) -> 0 (y < sin x) at 3,000 of 8,000."""
    from river.datasets import synth

    pts = [3000]
    return _take(_chain([synth.Sine(2, seed=s), synth.Sine(0, seed=s + 1)], pts, s), 8000), pts, \
        "classification"  # fmt: skip


def rbfdrift_fast(s: int) -> Made:
    """RandomRBFDrift, 4 classes, 8 features, 25 centroids all moving at change speed 0.01 (20x bench/accuracy's
    rbf-incremental): incremental drift from the first event, 10,000 events."""
    from river.datasets import synth

    src = synth.RandomRBFDrift(
        seed_model=s, seed_sample=s + 1, n_classes=4, n_features=8, n_centroids=25,
        change_speed=0.01, n_drift_centroids=25,
    )  # fmt: skip
    return _take(src, 10000), [], "classification"


def rbfdrift_medium(s: int) -> Made:
    """As ``rbfdrift_fast`` at change speed 0.002 (added after rbfdrift-fast failed its tax bound: where between
    bench/accuracy's 0.0005 and 0.01 does the tax start?)."""
    from river.datasets import synth

    src = synth.RandomRBFDrift(
        seed_model=s, seed_sample=s + 1, n_classes=4, n_features=8, n_centroids=25,
        change_speed=0.002, n_drift_centroids=25,
    )  # fmt: skip
    return _take(src, 10000), [], "classification"


def leddrift_10class(s: int) -> Made:
    """LEDDrift (10 classes, 17 irrelevant attributes, 10 % noise): no drifting attribute, then 7 at 3,000 of 10,000."""
    from river.datasets import synth

    a = synth.LEDDrift(seed=s, noise_percentage=0.1, irrelevant_features=True, n_drift_features=0)
    b = synth.LEDDrift(seed=s + 1, noise_percentage=0.1, irrelevant_features=True, n_drift_features=7)
    return _take(_chain([a, b], [3000], s), 10000), [3000], "classification"


def agrawal_4_7_short(s: int) -> Made:
    """Agrawal function 4 -> 7 at 2,000 of 4,000 (a short stream: both halves with a young model)."""
    from river.datasets import synth

    return _take(_chain([synth.Agrawal(4, seed=s), synth.Agrawal(7, seed=s + 1)], [2000], s), 4000), [2000], \
        "classification"  # fmt: skip


def agrawal_8_2_long(s: int) -> Made:
    """Agrawal function 8 -> 2 with 5 % perturbation, at 14,000 of 20,000."""
    from river.datasets import synth

    a, b = synth.Agrawal(8, seed=s, perturbation=0.05), synth.Agrawal(2, seed=s + 1, perturbation=0.05)
    return _take(_chain([a, b], [14000], s), 20000), [14000], "classification"


def friedman_gsg_wide(s: int) -> Made:
    """FriedmanDrift "gsg" (global, slow, gradual) with 2,000-event transitions from 3,000 and 8,000 of 12,000
    (River's: from the position half the events follow the new function, from position + 2,000 all of them)."""
    from river.datasets import synth

    pos = (3000, 8000)
    src = synth.FriedmanDrift(drift_type="gsg", position=pos, transition_window=2000, seed=s)
    return _take(src, 12000), list(pos), "regression"


def nested_wide(s: int) -> Made:
    """Nested gradual ConceptDriftStreams 2,000 events wide: Agrawal 0 -> 1 centred at 4,000 and 1 -> 6 at 9,000
    of 12,000 (balanced classes)."""
    from river.datasets import synth

    cs = [synth.Agrawal(f, seed=s + k, balance_classes=True) for k, f in enumerate((0, 1, 6))]
    pts = [4000, 9000]
    return _take(_chain(cs, pts, s, width=2000), 12000), pts, "classification"


def _reversal95(s: int) -> Made:
    """Five standard normal features, y = [w.x + N(0, 0.158 |w|) > 0] (plain LR ~0.95: the noise flips ~5 %), every
    label reversed at 5,000 of 10,000 (the issue's outage)."""
    rng = random.Random(s)
    w = [rng.uniform(-2, 2) for _ in range(5)]
    sd = math.tan(0.05 * math.pi) * math.sqrt(sum(a * a for a in w))
    rows: list[Example] = []
    for i in range(10000):
        x = {f"f{j}": rng.gauss(0, 1) for j in range(5)}
        y = int(sum(a * x[f"f{j}"] for j, a in enumerate(w)) + rng.gauss(0, sd) > 0)
        rows.append((x, 1 - y if i >= 5000 else y))
    return rows, [5000], "classification"


def imbalanced_3class(s: int) -> Made:
    """Three classes at 80 / 15 / 5 %, four Gaussian features around a class mean (sd 1, means 1.8 apart on
    average); at 5,000 the two minority classes' means are drawn anew (the majority stays)."""
    rng = random.Random(s)

    def mean() -> list[float]:
        return [rng.uniform(-1.5, 1.5) for _ in range(4)]

    means = {0: [0.0] * 4, 1: mean(), 2: mean()}
    rows: list[Example] = []
    for i in range(10000):
        if i == 5000:
            means[1], means[2] = mean(), mean()
        u = rng.random()
        y = 0 if u < 0.80 else 1 if u < 0.95 else 2
        rows.append(({f"f{j}": rng.gauss(m, 1) for j, m in enumerate(means[y])}, y))
    return rows, [5000], "classification"


def regression_abab(s: int) -> Made:
    """y = w.x + 0.4 x0^2 + N(0, 0.5) over six standard normal features, w = A, B, A, B for 2,500 events each."""
    rng = random.Random(s)
    ws = ([rng.uniform(-2, 2) for _ in range(6)], [rng.uniform(-2, 2) for _ in range(6)])
    rows: list[Example] = []
    for i in range(10000):
        w = ws[(i // 2500) % 2]
        x = {f"x{j}": rng.gauss(0, 1) for j in range(6)}
        y = sum(a * x[f"x{j}"] for j, a in enumerate(w)) + 0.4 * x["x0"] ** 2 + rng.gauss(0, 0.5)
        rows.append((x, y))
    return rows, [2500, 5000, 7500], "regression"


CHANNELS = ("app", "web", "store", "phone")


def mixed_types(s: int) -> Made:
    """5,000 events: ``shop`` an integer code 0-11 (read as a number, as a user's export carries it), ``channel``
    a string of 4, ``hour`` 0-23, ``amount`` lognormal. y = 1 when bias(shop) + bias(channel) + 0.8 cos(2 pi
    hour / 24) + 0.5 (log amount - 3) + N(0, 0.5) > 0. At 2,500 the shops' biases are permuted and ``phone`` turns
    from the best channel to the worst."""
    rng = random.Random(s)
    shop = [rng.gauss(0, 1.2) for _ in range(12)]
    chan = {"app": 0.3, "web": -0.2, "store": 0.0, "phone": 0.9}
    rows: list[Example] = []
    for i in range(5000):
        if i == 2500:
            rng.shuffle(shop)
            chan = {**chan, "phone": -0.9}
        k, c, h = rng.randrange(12), rng.choice(CHANNELS), rng.randrange(24)
        amount = math.exp(rng.gauss(3, 0.8))
        z = shop[k] + chan[c] + 0.8 * math.cos(2 * math.pi * h / 24) + 0.5 * (math.log(amount) - 3)
        x = {"shop": k, "channel": c, "hour": h, "amount": round(amount, 2)}
        rows.append((x, int(z + rng.gauss(0, 0.5) > 0)))
    return rows, [2500], "classification"


def scale_x1000(s: int) -> Made:
    """Five standard normal features, y = [w.x + N(0, 0.5) > 0] with f0 the strongest; from 5,000 of 10,000 f0 is
    written in other units (x 1,000: kilograms to grams). The concept in real units never changes."""
    rng = random.Random(s)
    w = [2.0, *(rng.uniform(-1, 1) for _ in range(4))]
    rows: list[Example] = []
    for i in range(10000):
        x = {f"f{j}": rng.gauss(0, 1) for j in range(5)}
        y = int(sum(a * x[f"f{j}"] for j, a in enumerate(w)) + rng.gauss(0, 0.5) > 0)
        if i >= 5000:
            x["f0"] *= 1000.0
        rows.append((x, y))
    return rows, [5000], "classification"


def stationary_10k(s: int) -> Made:
    """10,000 stationary events: six features (four normal, one uniform, one string of three), y ~ Bernoulli(
    sigmoid(w.x + 0.8 x0 x1 + bias(kind))): irreducible noise, no drift at all."""
    rng = random.Random(s)
    w = [rng.uniform(-1.5, 1.5) for _ in range(5)]
    kind = {"a": 0.6, "b": -0.4, "c": 0.0}
    rows: list[Example] = []
    for _ in range(10000):
        x: dict[str, Any] = {f"x{j}": rng.gauss(0, 1) for j in range(4)}
        x["u"] = rng.random()
        x["kind"] = rng.choice("abc")
        z = sum(a * v for a, v in zip(w, (x["x0"], x["x1"], x["x2"], x["x3"], x["u"]), strict=True))
        z += 0.8 * x["x0"] * x["x1"] + kind[x["kind"]]
        rows.append((x, int(rng.random() < 1 / (1 + math.exp(-2 * z)))))
    return rows, [], "classification"


#: Streams with no abrupt point (incremental from the first event, gradual over 2,000 events, or stationary):
#: judged as ``bench.unseen``'s "gradual" (no recovery bound; an alarm matches a drift from ``GRADUAL_WIDTH // 2``
#: events before its point). A stream with no point has no recovery to judge either way (every alarm on it is false).
GRADUAL = ("rbfdrift-fast", "rbfdrift-medium", "friedman-gsg-wide", "nested-wide", "stationary-10k")
#: The gradual drifts here are 2,000 events wide (``bench.unseen.GRADUAL`` is 1,000): nested-wide's sigmoid already
#: draws 12 % of its events from the new concept 1,000 events before the centre, so an alarm there detects it.
GRADUAL_WIDTH = 2000

#: name -> (maker, label delay in events).
STREAMS: dict[str, tuple[Maker, int]] = {
    "stagger-unbalanced-recur": (stagger_unbalanced_recur, 10),
    "sine-2-0-clean": (sine_2_0_clean, 200),
    "rbfdrift-fast": (rbfdrift_fast, 50),
    "rbfdrift-medium": (rbfdrift_medium, 50),
    "leddrift-10class": (leddrift_10class, 50),
    "agrawal-4-7-short": (agrawal_4_7_short, 10),
    "agrawal-8-2-long": (agrawal_8_2_long, 200),
    "friedman-gsg-wide": (friedman_gsg_wide, 50),
    "nested-wide": (nested_wide, 50),
    "reversal95-d0": (_reversal95, 0),
    "reversal95-d10": (_reversal95, 10),
    "reversal95-d50": (_reversal95, 50),
    "reversal95-d200": (_reversal95, 200),
    "imbalanced-3class": (imbalanced_3class, 50),
    "regression-abab": (regression_abab, 50),
    "mixed-types": (mixed_types, 50),
    "scale-x1000": (scale_x1000, 50),
    "stationary-10k": (stationary_10k, 50),
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
        return rows, points, task, name in GRADUAL

    U.make = make
    U.GRADUAL = GRADUAL_WIDTH  # the detection lead of a gradual drift (``bench.unseen.job``)
    results = []
    for name in names:
        delay = STREAMS[name][1]
        r = U.job(name, 0, None, seed, delay)
        r["false_judged"] = "rbf" not in name  # incremental from the first event: no stationary stretch
        print(json.dumps({**r, "delay": delay, "verdict": U.verdict(r)}, default=str), flush=True)
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
    cmd += ["--task", task, "--delay", str(delay), "--json", "--no-plain", "--out", str(preds_path)]
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
    print("points", points, "alarms", summary["alarms"], "rollbacks", summary["rollbacks"], "holds",
          summary["holds"])  # fmt: skip
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
    ap.add_argument("--seed", type=int, default=45)
    ap.add_argument("--streams", default=",".join(STREAMS))
    ap.add_argument(
        "--judge", action="store_true", help="run bench.unseen's judgement instead of writing CSVs"
    )
    ap.add_argument("--look", metavar="NAME", help="served and plain losses per window on one stream (--out)")
    ap.add_argument("--window", type=int, default=250, help="events per window of --look")
    args = ap.parse_args()
    names = args.streams.split(",")
    unknown = [n for n in [*names, args.look or names[0]] if n not in STREAMS]
    if unknown:
        raise SystemExit(f"unknown streams {unknown}; known: {', '.join(STREAMS)}")
    if args.look:
        args.out.mkdir(parents=True, exist_ok=True)
        look(args.look, args.seed, args.out, args.window)
        return
    if args.judge:
        judge(names, args.seed)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        maker, delay = STREAMS[name]
        rows, points, task = maker(args.seed)
        write_csv(rows, args.out / f"{name}.csv")
        classes = (
            {str(k): v for k, v in sorted(collections.Counter(y for _, y in rows).items())}
            if task == "classification"
            else None
        )
        kind = "gradual" if name in GRADUAL and points else "stationary" if not points and "rbf" not in name \
            else "incremental" if not points else "abrupt"  # fmt: skip
        print(json.dumps({"stream": name, "task": task, "n": len(rows), "drift": points, "kind": kind,
                          "delay": delay, "classes": classes}))  # fmt: skip


if __name__ == "__main__":
    main()
