"""Experiment (BENCHMARKS-accuracy.md, "Where the elec and waveform taxes come from"): decompose the guard tax.

On the same events, with default settings, in-process as ``driftline replay`` runs them, three prequential scores:
(a) the served snapshot (what users got), (b) the guarded *champion* predicting each event when it arrives (it has
learned the same labels the served model's lineage could have, at the same delay), (c) the plain ``auto`` pool
learning every label at the same delay. (c)-(b) is what the lifecycle does to the learner, (b)-(a) the release lag.

    PYTHONPATH=. python docs/experiments/decompose_lag.py [elec] [waveform-permute:0] [waveform-permute:100]
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle, make_stream
from driftline.config import LearnerSpec
from learners.guard import Decision
from learners.lifecycle import Release
from learners.replay import plain_predictions, read_rows, replay
from learners.specs import build_learner


def rows_of(name: str) -> tuple[list[Any], str, int]:
    if name == "elec":
        rows, _ = make_stream("elec", 0, 1)
        return rows, "classification", 48
    from bench import unseen

    stream, _, seed = name.partition(":")
    examples, _, task, _ = unseen.make(stream, 10000, int(seed or 0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.csv"
        unseen.write_csv(examples, path)
        return list(read_rows(path, "y")), task, 50


def decompose(name: str, seed: int = 0, guard: dict[str, Any] | None = None) -> dict[str, Any]:
    """``guard``: GuardConfig fields to override (a variant), e.g. {"superiority_margin": 0.99}."""
    rows, task, delay = rows_of(name)
    lifecycle = default_lifecycle(task, seed)
    if guard:
        for key, value in guard.items():
            lifecycle._set(f"guard.{key}", str(value))
    served: list[Any] = []
    champ: list[Any] = []
    kinds: collections.Counter[str] = collections.Counter()
    failed: collections.Counter[str] = collections.Counter()  # the checks that rejected or held a candidate
    resets = holds = rejects = 0
    learn_one = lifecycle.learn_one

    def counting(*a: Any, **kw: Any) -> Any:
        nonlocal resets, holds, rejects
        events = learn_one(*a, **kw)
        for e in events:
            if isinstance(e, Release):
                kinds[e.reason] += 1
            elif isinstance(e, Decision):
                holds += e.outcome == "hold"
                rejects += e.outcome == "reject"
                failed.update(f"{e.reason}:{k}" for k, v in e.checks.items() if v is not True)
                resets += e.reason == "incremental" and e.checks.get("reference") not in (True, None)
        return events

    lifecycle.learn_one = counting  # type: ignore[method-assign]

    def keep(record: dict[str, Any]) -> None:
        served.append(record["prediction"])
        champ.append(lifecycle.champion.predict_one(rows[record["index"]][2]))

    start = time.process_time()
    result = replay(rows, lifecycle, delay=delay, on_prediction=keep)
    cpu = time.process_time() - start
    plain = plain_predictions(
        ((x, y) for _, _, x, y in rows), build_learner(LearnerSpec("auto"), task, seed), delay
    )
    ys = [y for _, _, _, y in rows]

    def acc(preds: list[Any]) -> float:
        return sum(p == y for p, y in zip(preds, ys, strict=True)) / len(ys)

    a, b, c = acc(served), acc(champ), acc(plain)
    tenth = max(len(ys) // 10, 1)
    lag_by_tenth = [  # b - a per tenth of the stream, in points: where the lag is
        round(
            100
            * sum(
                (c == y) - (s == y)
                for s, c, y in zip(
                    served[k : k + tenth], champ[k : k + tenth], ys[k : k + tenth], strict=True
                )
            )
            / tenth,
            2,
        )
        for k in range(0, tenth * 10, tenth)
    ]
    return {
        "stream": name,
        "variant": guard or {},
        "served (a)": round(a, 4),
        "champion (b)": round(b, 4),
        "plain pool (c)": round(c, 4),
        "lifecycle c-b pts": round(100 * (c - b), 2),
        "lag b-a pts": round(100 * (b - a), 2),
        "lag by tenth pts": lag_by_tenth,
        "releases": dict(kinds),
        "holds": holds,
        "rejects": rejects,
        "failed checks": dict(failed),
        "reference resets": resets,
        "alarms": len(result.alarms),
        "guarded cpu s (incl. champion predictions)": round(cpu, 1),
    }


if __name__ == "__main__":
    # DECOMPOSE_GUARD='{"superiority_margin": 0.99}' runs a variant of the guard settings.
    variant = json.loads(os.environ.get("DECOMPOSE_GUARD", "{}"))
    for name in sys.argv[1:] or ["elec", "waveform-permute:0", "waveform-permute:100"]:
        print(json.dumps(decompose(name, guard=variant)), flush=True)
