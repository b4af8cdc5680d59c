"""Experiment (BENCHMARKS-accuracy.md, session 13): decompose the guard tax on real streams nobody tuned on.

As ``decompose_lag.py`` (session 7), on a CSV file or a River dataset, classification or regression: on the same
events, default settings, in-process as ``driftline replay`` runs them: (a) served snapshot, (b) the guarded
champion predicting each event when it arrives, (c) the plain ``auto`` pool learning every label at the same
delay. (c)-(b) is what the lifecycle did to the learner, (b)-(a) the release lag. Also: the lag split by where the
served model stood (while a hold was pending, under probation, after an alarm), every hold and reject with its
failed checks, and (a)/(b)/(c) on each half of the stream.

    PYTHONPATH=. python docs/experiments/decompose_real.py weather:50 weather:7 weather:1 phishing trump
    DECOMPOSE_GUARD='{"hold_margin": 0.1}' ... runs a variant of the guard settings.

``weather`` reads /work/shared/data/weather.csv (or ../shared/data/weather.csv), label ``target``.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.accuracy import default_lifecycle
from driftline.config import LearnerSpec
from learners.guard import Decision
from learners.lifecycle import Release
from learners.replay import Row, plain_predictions, read_rows, replay
from learners.specs import build_learner


def rows_of(name: str) -> tuple[list[Row], str, int]:
    stream, _, delay = name.partition(":")
    if stream == "elec":
        from bench.accuracy import make_stream

        rows, _ = make_stream("elec", 0, 1)
        return rows, "classification", int(delay or 48)
    if stream == "weather":
        for base in (Path("/work/shared/data"), Path("../shared/data")):
            if (base / "weather.csv").exists():
                return list(read_rows(base / "weather.csv", "target")), "classification", int(delay or 50)
        raise SystemExit("weather.csv not found")
    import tempfile

    import river.datasets as D

    from bench import unseen

    data, task = {"phishing": (D.Phishing(), "classification"), "trump": (D.TrumpApproval(), "regression")}[
        stream
    ]
    with tempfile.TemporaryDirectory() as tmp:  # through a CSV, as bench.unseen and the CLI see it
        path = Path(tmp) / "s.csv"
        unseen.write_csv(list(data), path)
        return list(read_rows(path, "y")), task, int(delay or 50)


def decompose(
    name: str, seed: int = 0, guard: dict[str, Any] | None = None, log: bool = False
) -> dict[str, Any]:
    rows, task, delay = rows_of(name)
    lifecycle = default_lifecycle(task, seed)
    for key, value in (guard or {}).items():
        lifecycle._set(f"guard.{key}", str(value))
    served: list[Any] = []
    champ: list[Any] = []
    state: list[str] = []  # per event: what the served model's situation was when it answered
    kinds: collections.Counter[str] = collections.Counter()
    failed: collections.Counter[str] = collections.Counter()
    outcomes: collections.Counter[str] = collections.Counter()
    events_log: list[str] = []
    learn_one = lifecycle.learn_one
    last_alarm = [-(10**9)]

    def counting(*a: Any, **kw: Any) -> Any:
        events = learn_one(*a, **kw)
        for e in events:
            if isinstance(e, Release):
                kinds[e.reason] += 1
                if log and (e.reason != "incremental" or len(rows) < 5000):
                    events_log.append(f"{e.index} release {e.reason} v{e.version}")
            elif isinstance(e, Decision):
                outcomes[f"{e.reason}:{e.outcome}"] += 1
                failed.update(f"{e.reason}:{e.outcome}:{k}" for k, v in e.checks.items() if v is not True)
                if log:
                    events_log.append(f"{e.index} {e.outcome} {e.reason} {e.text[:160]}")
            else:  # a drift signal
                last_alarm[0] = getattr(e, "index", 0) or 0
                if log:
                    events_log.append(f"{getattr(e, 'index', '?')} alarm {getattr(e, 'detector', '')}")
        return events

    lifecycle.learn_one = counting  # type: ignore[method-assign]

    def keep(record: dict[str, Any]) -> None:
        i = record["index"]
        served.append(record["prediction"])
        champ.append(lifecycle.champion.predict_one(rows[i][2]))
        if lifecycle._held is not None:
            state.append("held")
        elif lifecycle._challenger.lineage is not None:
            state.append("challenger")
        else:
            state.append("other")

    start = time.process_time()
    result = replay(rows, lifecycle, delay=delay, on_prediction=keep)
    cpu = time.process_time() - start
    plain = plain_predictions(
        ((x, y) for _, _, x, y in rows), build_learner(LearnerSpec("auto"), task, seed), delay
    )
    ys = [y for _, _, _, y in rows]

    def score(preds: list[Any], lo: int = 0, hi: int | None = None) -> float:
        pairs = list(zip(preds, ys, strict=True))[lo:hi]
        if task == "classification":
            return sum(p == y for p, y in pairs) / len(pairs)
        return sum(abs(float(p) - float(y)) for p, y in pairs) / len(pairs)

    n = len(ys)
    h = n // 2
    out: dict[str, Any] = {"stream": name, "variant": guard or {}, "n": n}
    for part, lo, hi in (("all", 0, None), ("1st half", 0, h), ("2nd half", h, None)):
        a, b, c = score(served, lo, hi), score(champ, lo, hi), score(plain, lo, hi)
        unit = 100 if task == "classification" else 100 / c if c else 0.0
        sign = 1 if task == "classification" else -1
        out[part] = {
            "served": round(a, 4), "champion": round(b, 4), "plain": round(c, 4),
            "tax": round(sign * unit * (c - a), 2), "lifecycle c-b": round(sign * unit * (c - b), 2),
            "lag b-a": round(sign * unit * (b - a), 2),
        }  # fmt: skip
    if (
        task == "classification"
    ):  # the lag (b)-(a) in points of the whole stream, by the served model's situation
        by: collections.Counter[str] = collections.Counter()
        cnt: collections.Counter[str] = collections.Counter()
        for s, c, y, st in zip(served, champ, ys, state, strict=True):
            by[st] += (c == y) - (s == y)
            cnt[st] += 1
        out["lag by state pts (events)"] = {k: (round(100 * by[k] / n, 2), cnt[k]) for k in cnt}
    tenth = max(n // 10, 1)
    out["tax by tenth"] = [
        round(
            (100 if task == "classification" else -1)
            * (score(plain, k, k + tenth) - score(served, k, k + tenth))
            / (1 if task == "classification" else score(plain, k, k + tenth)),
            2,
        )
        for k in range(0, tenth * 10, tenth)
    ]
    out.update(
        releases=dict(kinds), decisions=dict(outcomes), failed_checks=dict(failed), alarms=len(result.alarms),
        cpu_s=round(cpu, 1),
    )  # fmt: skip
    if log:
        out["log"] = events_log
    return out


if __name__ == "__main__":
    # TrumpApproval's regression tree grows a River EBST splitter as deep as the stream is long on its monotone
    # ``ordinal_date``: pickling a copy for a release exceeds the default limit (the CLI crashes, session 13).
    sys.setrecursionlimit(20000)
    variant = json.loads(os.environ.get("DECOMPOSE_GUARD", "{}"))
    log = bool(os.environ.get("DECOMPOSE_LOG"))
    for name in sys.argv[1:] or ["weather:50"]:
        print(json.dumps(decompose(name, guard=variant, log=log)), flush=True)
