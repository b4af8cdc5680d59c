"""What one release costs the train worker, piece by piece, in process (issue 16).

``python -m bench.release_cost [TREE ...] [--kinds K,...] [--events N] [--release R] [--repeat N] [--rounds R]
[--json]``: learns
``bench.data`` rows with the default lifecycle until its ``R``-th incremental release, then times that release's
pieces ``--repeat`` times each (best of the repeats, in microseconds of CPU):

- ``copy``: the served snapshot's copy (``Lineage.copy``, what ``ModelLifecycle._release`` does);
- ``pickle`` and ``zlib``: the artifact payload (:func:`learners.safe_pickle.dumps`) in its two halves;
- ``build_release``: the whole signed record (payload, sha256, header JSON, HMAC);
- ``encode``: the ModelRelease record as the ``models`` topic's Avro;
- ``explanation``: :func:`learners.explain.release_explanation`;
- ``audit_decision`` and ``audit_release``: the two audit entries the release adds (hash, HMAC, JSON line,
  head; the file copy is written once per transaction, so not here);
- ``publish``: ``Trainer.publish`` end to end (everything above but the copy, plus the log line) with a producer
  that drops what it is given;
- ``copy+publish``: a fresh copy published (the release's share of the train worker, judgement aside);
- ``judge_best`` and ``judge_median``: the guard's judgements that promoted, each timed once as the lifecycle
  made them on the way to the timed release (the latency check's timed predictions, the reference set).

With source trees (A/B), each round runs this file once per tree in a child process with that tree's PYTHONPATH
(trees alternating) and keeps each piece's best round; ``publish`` is the figure to compare. The worker logs at
WARNING by default, so the audit's INFO line is not built here either.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from typing import Any


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time_ns()
        fn()
        best = min(best, time.process_time_ns() - t0)
    return best / 1000.0


class _DropProducer:
    """Stands for the EventProducer: the bytes are built (that is the cost) and dropped."""

    def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
        pass


def measure(kind: str, events: int, release: int, repeat: int) -> dict[str, Any]:
    import io
    import pickle

    from bench.data import make_rows
    from driftline.settings import load_settings
    from learners import safe_pickle
    from learners.artifacts import build_release
    from learners.explain import release_explanation
    from learners.lifecycle import Release
    from schemas.codec import TOPIC_RECORDS
    from streams import audit as audit_mod
    from streams.runtime import WorkerContext
    from streams.train import Trainer, new_lifecycle

    state = tempfile.mkdtemp(prefix="release-cost-")
    s = load_settings(
        environ={},
        overrides={
            "model.learner": {"name": kind, "params": {}},
            "model.signing_key": "k" * 64,
            "state_dir": state,
        },
    )
    import learners.lifecycle as lifecycle_mod

    judged: list[tuple[float, str]] = []
    judge = lifecycle_mod.judge

    def timed_judge(*args: Any, **kwargs: Any) -> Any:
        # The guard's judgement of a candidate, timed where the lifecycle calls it (guard10's code, measured only).
        t0 = time.process_time_ns()
        decision = judge(*args, **kwargs)
        judged.append(((time.process_time_ns() - t0) / 1000.0, decision.outcome))
        return decision

    lc = new_lifecycle(s)
    lc.initial_release()
    found: Release | None = None
    seen = 0
    lifecycle_mod.judge = timed_judge
    try:
        for i, (_, x, y) in enumerate(make_rows(events, seed=1)):
            for event in lc.learn_one(x, y, index=i, ts=i):
                if isinstance(event, Release) and event.reason == "incremental":
                    seen += 1
                    found = event
            if seen >= release:
                break
    finally:
        lifecycle_mod.judge = judge
    if found is None:
        raise SystemExit(f"{kind}: no incremental release in {events} labels")
    rel = found
    ctx = WorkerContext(s, producer=_DropProducer(), audit_deferred=True)  # type: ignore[arg-type]
    ctx._audit_logs[ctx.model] = alog = audit_mod.AuditLog(
        s, ctx.model, lambda data, model: None, topic_entries=lambda: [], deferred=True
    )
    trainer = Trainer(ctx, redis_conn=object())  # type: ignore[arg-type]
    trainer.lifecycle = lc

    def built() -> dict[str, Any]:
        return build_release(
            rel.model, name="m", version=rel.version, parent=rel.parent, reason=rel.reason,
            metrics=rel.metrics, key=trainer.key, n_learned=1, data_range=rel.data_range,
            decision=rel.decision.to_json() if rel.decision else "",
        )  # fmt: skip

    record = built()
    raw = io.BytesIO()
    safe_pickle.CompactPickler(raw, protocol=5).dump(rel.model)
    # The level dumps() uses for this size (older trees: always _ZLIB_LEVEL).
    small = len(raw.getvalue()) < getattr(safe_pickle, "_STORED_BELOW", 0)
    level = 0 if small else safe_pickle._ZLIB_LEVEL
    parsed = json.loads(rel.decision.to_json()) if rel.decision else {}
    expl = release_explanation(rel, lc)

    def pickled() -> None:
        safe_pickle.CompactPickler(io.BytesIO(), protocol=5).dump(rel.model)

    def audit(kind_: audit_mod.AuditKind, rec: dict[str, Any]) -> None:
        alog.append(kind_, rec)
        alog._pending.clear()

    lineage = lc._lineage
    pieces: dict[str, Callable[[], Any]] = {
        "copy": lineage.copy,
        "pickle": pickled,
        "zlib": lambda: zlib.compress(raw.getvalue(), level),
        "build_release": built,
        "encode": lambda: ctx.codec.encode(TOPIC_RECORDS["models"], record, topic="models"),
        "explanation": lambda: release_explanation(rel, lc),
        "audit_decision": lambda: audit("decision", parsed),
        "audit_release": lambda: audit("release", expl),
    }

    def publish() -> None:
        trainer.publish(rel)
        alog._pending.clear()

    pieces["publish"] = publish

    def release_() -> None:
        # The copy and its publishing together: a tree that pickles the copy once pickles here only once.
        trainer.publish(dataclasses.replace(rel, model=lineage.copy().model))
        alog._pending.clear()

    pieces["copy+publish"] = release_
    out: dict[str, Any] = {
        "kind": kind,
        "release_version": rel.version,
        "payload_bytes": len(record["artifact"] or b""),
        "pickle_bytes": len(raw.getvalue()),
        "plain_pickle_bytes": len(pickle.dumps(rel.model, protocol=5)),
    }
    for fn in pieces.values():
        fn()  # warm
    # Alternate the pieces across the repeats so a noisy second hurts them all alike.
    times: dict[str, float] = {}
    for _ in range(repeat):
        for name, fn in pieces.items():
            times[name] = min(times.get(name, float("inf")), _best(fn, 1))
    promoted = sorted(t for t, outcome in judged if outcome == "promote")
    # Not repeated like the pieces: each judgement of the run once (best and median of those that promoted).
    times["judge_best"] = promoted[0] if promoted else float("nan")
    times["judge_median"] = promoted[len(promoted) // 2] if promoted else float("nan")
    out["us"] = times
    out["judgements"] = len(judged)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.release_cost", description=__doc__)
    parser.add_argument("--kinds", default="logistic_regression,hoeffding_tree")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--release", type=int, default=10, help="time the R-th incremental release")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="with trees: child runs per tree")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("trees", nargs="*")
    args = parser.parse_args(argv)
    if not args.trees:
        results = [measure(k, args.events, args.release, args.repeat) for k in args.kinds.split(",")]
        if args.json:
            print(json.dumps(results, indent=1))
            return 0
        _table(results, [r["kind"] for r in results], args.repeat)
        return 0
    trees = [os.path.abspath(t) for t in args.trees]
    best: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for tree in trees:
            cmd = [sys.executable, os.path.abspath(__file__), "--json", "--kinds", args.kinds]
            cmd += [
                "--events",
                str(args.events),
                "--release",
                str(args.release),
                "--repeat",
                str(args.repeat),
            ]
            env = {**os.environ, "PYTHONPATH": tree}
            got = json.loads(subprocess.run(cmd, cwd=tree, env=env, capture_output=True, check=True).stdout)
            print(f"[release_cost] round {r} {tree}: " + json.dumps([g["us"]["publish"] for g in got]),
                  file=sys.stderr, flush=True)  # fmt: skip
            if tree not in best:
                best[tree] = got
                continue
            for old, new in zip(best[tree], got, strict=True):
                old["us"] = {k: min(v, new["us"][k]) for k, v in old["us"].items()}
    if args.json:
        print(json.dumps(best, indent=1))
        return 0
    cols = [r for t in trees for r in best[t]]
    short = {"logistic_regression": "LR", "hoeffding_tree": "tree"}
    names = [f"{short.get(r['kind'], r['kind'])} {os.path.basename(t)}" for t in trees for r in best[t]]
    _table(cols, names, args.repeat)
    return 0


def _table(results: list[dict[str, Any]], names: list[str], repeat: int) -> None:
    print(f"{'piece (us, best of ' + str(repeat) + ')':<28}" + "".join(f"{n:>24}" for n in names))
    for piece in results[0]["us"]:
        print(f"{piece:<28}" + "".join(f"{r['us'][piece]:>24.1f}" for r in results))
    for key in ("release_version", "judgements", "payload_bytes", "pickle_bytes", "plain_pickle_bytes"):
        print(f"{key:<28}" + "".join(f"{r[key]:>24}" for r in results))


if __name__ == "__main__":
    sys.exit(main())
