"""Session 39 (helper regsent39): alarms on long stationary regression streams (the regression sentinel's false
alarms), in process, with patches.

    PYTHONPATH=TREE python docs/experiments/regsent39.py [--n 10000] [--seeds 0,1] [--streams friedman,mv,linear,
        student-t] [--patch module.NAME=VALUE,...]

The lifecycle ``driftline replay`` builds from default settings, replayed at ``bench.unseen``'s label delay (as
``regtax_gate.py``) on a stream with no drift at all, so every alarm is a false one. Per stream and seed: the alarms
(label index, detector, and for the sentinel the copy and its p0), then per stream the count per 10,000 events.
Streams: River's ``Friedman`` (no drift), River's ``Mv`` (string features), ``linear`` (y = w.x + N(0, 0.5) over
six standard normal features, as ``bench.unseen``'s linear-reversal without its reversal) and ``student-t`` (the
same w.x with Student-t noise of 2 degrees of freedom times 0.5: infinite variance, the heavy tail a robust test
must not alarm on).
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle
from bench.unseen import DELAY, write_csv
from learners.drift import DriftSignal
from learners.replay import read_rows, replay

sys.path.insert(0, str(Path(__file__).parent))
from short_trace import _patch  # type: ignore[import-not-found]

STREAMS = "friedman,mv,linear,student-t"


def _linear(n: int, seed: int, noise: str) -> list[tuple[dict[str, float], float]]:
    rng = random.Random(seed)
    w = [rng.uniform(-2, 2) for _ in range(6)]
    rows = []
    for _ in range(n):
        x = {f"x{j}": rng.gauss(0, 1) for j in range(6)}
        if noise == "t":  # Student-t, 2 degrees of freedom: N(0, 1) / sqrt(chi2_2 / 2)
            e = rng.gauss(0, 1) / math.sqrt(rng.gammavariate(1.0, 2.0) / 2)
        else:
            e = rng.gauss(0, 1)
        rows.append((x, sum(a * x[f"x{j}"] for j, a in enumerate(w)) + 0.5 * e))
    return rows


def make(name: str, n: int, seed: int) -> list[tuple[dict[str, Any], Any]]:
    from river.datasets import synth

    if name == "friedman":
        src: Any = synth.Friedman(seed=900 + seed)
    elif name == "mv":
        src = synth.Mv(seed=910 + seed)
    elif name == "linear":
        return _linear(n, 920 + seed, "gauss")
    elif name == "student-t":
        return _linear(n, 930 + seed, "t")
    else:
        raise SystemExit(f"unknown stream {name!r}; known: {STREAMS}")
    return [(dict(x), float(y)) for x, y in itertools.islice(src, n)]


def job(name: str, n: int, seed: int) -> list[tuple[int, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.csv"
        write_csv(make(name, n, seed), path)
        rows = list(read_rows(path, "y"))
    lc = default_lifecycle("regression", 0)
    alarms: list[tuple[int, str]] = []
    learn_one = lc.learn_one

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        events = learn_one(x, y, **kw)
        for e in events:
            if isinstance(e, DriftSignal) and not e.signal.startswith("feature"):
                d = e.details
                what = f"{e.detector} {e.signal}"
                if d.get("test") == "frozen_snapshot":
                    what += f" sentinel copy {d['snapshot_label']} p0 {d['p0']} q {d.get('quantile')}"
                alarms.append((e.index, what))
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    replay(rows, lc, delay=DELAY)
    return alarms


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--streams", default=STREAMS)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    seeds = [int(s) for s in args.seeds.split(",")]
    for name in args.streams.split(","):
        total = sentinel = 0
        for seed in seeds:
            alarms = job(name, args.n, seed)
            total += len(alarms)
            sentinel += sum("sentinel" in a for _, a in alarms)
            print(f"{name:10} s{seed} n {args.n} alarms {len(alarms)} {alarms}", flush=True)
        events = args.n * len(seeds)
        print(
            f"# {name}: {events} events, {total} alarms ({sentinel} sentinel), {1e4 * total / events:.2f} per 10,000",
            flush=True,
        )


if __name__ == "__main__":
    main()
