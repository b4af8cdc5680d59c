"""Session 22 (helper shortstream): why a ``bench.unseen`` verdict fails on a short stream. One line per 100 events:
the served loss next to plain LR's and HT's (learning every label at the same delay), plus every alarm (detector,
signal, details), non-incremental release, rollback and hold, in event order.

    PYTHONPATH=TREE python docs/experiments/short_trace.py STREAM SEED [--n 2000] [--patch module.NAME=VALUE,...]

In process, as ``docs/experiments/unseen_alarms.py``: the stream is written as CSV and read back as the CLI reads
it, then replayed through the lifecycle ``driftline replay`` builds from default settings (seed 0, delay 50).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from pathlib import Path
from typing import Any

import learners.drift as drift
from bench.accuracy import default_lifecycle, plain
from bench.unseen import DELAY, make, write_csv
from driftline.config import LearnerSpec
from learners.drift import DriftSignal
from learners.lifecycle import Release
from learners.policies import ChallengerPolicy, IncrementalPolicy
from learners.replay import read_rows, replay

_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}


def _parse(key: str, old: Any, value: str) -> Any:
    """``value`` as the type of the constant it replaces (``old``): ``bool("False")`` was True, so a bool is read
    from true/false (1/0, yes/no, on/off); ``None`` is None; a constant that is None takes an int. Anything that
    does not parse as that type is refused, naming the patch."""
    if value == "None":
        return None
    try:
        if isinstance(old, bool):
            return _BOOLS[value.lower()]
        if old is None or isinstance(old, int):
            return int(value)
        if isinstance(old, float | str):
            return type(old)(value)
    except (KeyError, ValueError):
        pass
    else:
        raise SystemExit(f"--patch {key}={value}: {key} is a {type(old).__name__}, which --patch cannot set")
    raise SystemExit(
        f"--patch {key}={value}: not a {'bool' if isinstance(old, bool) else type(old).__name__}"
    )


def _patch(patch: str) -> None:
    for item in filter(None, patch.split(",")):
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--patch {item!r}: expected module.NAME=VALUE")
        module, name = key.rsplit(".", 1)
        mod = importlib.import_module(module)
        setattr(mod, name, _parse(key, getattr(mod, name), value))


def _loss(task: str, p: Any, y: Any) -> float:
    if task == "classification":
        return 0.0 if p == y else 1.0
    try:
        return abs(float(p) - float(y))
    except (TypeError, ValueError):
        return abs(float(y))


def stream_rows(name: str, n: int, seed: int) -> tuple[list[Any], list[int], str, bool]:
    """``bench.unseen``'s stream ``name`` as ``driftline replay`` reads it: (rows, drift points, task, gradual)."""
    examples, points, task, gradual = make(name, n, seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.csv"
        write_csv(examples, path)
        rows = list(read_rows(path, "y"))
    return rows, points, task, gradual


def plain_losses(rows: list[Any], task: str) -> dict[str, list[float]]:
    """Per-event losses of ``bench.unseen``'s plain learners (LR, HT), each learning every label at its delay."""
    specs = (
        {"LR": LearnerSpec("logistic_regression", {"multiclass": "ovr"}), "HT": LearnerSpec("hoeffding_tree")}
        if task == "classification"
        else {"LR": LearnerSpec("linear_regression"), "HT": LearnerSpec("hoeffding_tree")}
    )
    return {k: plain(rows, s, task, DELAY, 0)["losses"] for k, s in specs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("seed", type=int)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--step", type=int, default=100)
    ap.add_argument("--patch", default="")
    args = ap.parse_args()
    _patch(args.patch)
    rows, points, task, _ = stream_rows(args.stream, args.n, args.seed)
    lc = default_lifecycle(task, 0)
    log: list[tuple[int, str]] = []
    learn_one = lc.learn_one

    def spy(x: dict[str, Any], y: Any, **kw: Any) -> list[Any]:
        events = learn_one(x, y, **kw)
        for e in events:
            if isinstance(e, DriftSignal) and not e.signal.startswith("feature"):
                log.append((e.index, f"ALARM {e.detector} {e.signal} {e.details}"))
            elif isinstance(e, Release) and e.reason != "incremental":
                log.append((kw["index"], f"RELEASE {e.reason} v{e.version}"))
        return events

    lc.learn_one = spy  # type: ignore[method-assign]
    # The champion's and the challenger's test-then-train losses at each label (the pairs the guard judges).
    at = {"i": 0}
    champ: dict[int, list[float]] = {}
    chall: dict[int, list[float]] = {}
    update, inc_observe, ch_observe = (
        drift.LossDriftMonitor.update,
        IncrementalPolicy.observe,
        ChallengerPolicy.observe,
    )

    def loss_update(self: Any, loss: float, index: int) -> Any:
        at["i"] = index
        return update(self, loss, index)

    def inc(self: Any, y: Any, champion_pred: Any, served_pred: Any, segment: Any) -> None:
        champ.setdefault(at["i"] // args.step, []).append(_loss(task, champion_pred, y))
        inc_observe(self, y, champion_pred, served_pred, segment)

    def ch(self: Any, y: Any, champion_pred: Any, segment: Any, predict: Any) -> None:
        if self.lineage is not None:
            chall.setdefault(at["i"] // args.step, []).append(_loss(task, predict(self.lineage.model), y))
        ch_observe(self, y, champion_pred, segment, predict)

    drift.LossDriftMonitor.update = loss_update  # type: ignore[method-assign]
    IncrementalPolicy.observe = inc  # type: ignore[method-assign]
    ChallengerPolicy.observe = ch  # type: ignore[method-assign]
    preds: list[Any] = []
    res = replay(rows, lc, delay=DELAY, on_prediction=lambda r: preds.append(r["prediction"]))
    summary = res.summary()
    served = [_loss(task, p, y) for p, (_, _, _, y) in zip(preds, rows, strict=True)]
    runs = plain_losses(rows, task)
    n = len(rows)
    print(f"{args.stream} seed {args.seed} n {n} points {points} task {task}")
    g = sum(served) / n
    print(f"whole: served {g:.4f} " + " ".join(f"{k} {sum(v) / n:.4f}" for k, v in runs.items()))
    for r in summary["rollbacks"]:
        log.append((r.get("index", -1), f"ROLLBACK {r}"))
    for p in summary["promotions"]:
        if p["reason"] != "incremental":
            log.append((p.get("index", -1), f"PROMOTION {p}"))
    log.sort(key=lambda t: t[0])
    k = 0
    for start in range(0, n, args.step):
        end = min(start + args.step, n)
        w = end - start
        cols = " ".join(f"{name} {sum(v[start:end]) / w:.3f}" for name, v in runs.items())
        c = champ.get(start // args.step, [])
        h = chall.get(start // args.step, [])
        extra = (f" champion {sum(c) / len(c):.3f}" if c else "") + (
            f" challenger {sum(h) / len(h):.3f} ({len(h)})" if h else ""
        )
        releases = sum(
            1
            for p in summary["promotions"]
            if p["reason"] == "incremental" and start <= (p["index"] or 0) < end
        )
        print(f"[{start:>5},{end:>5}) served {sum(served[start:end]) / w:.3f} {cols}{extra} incr {releases}")
        while k < len(log) and log[k][0] < end:
            print(f"    {log[k][0]:>6} {log[k][1][:300]}")
            k += 1
    print(
        "holds",
        summary["holds"],
        "incremental",
        sum(p["reason"] == "incremental" for p in summary["promotions"]),
    )


if __name__ == "__main__":
    main()
