"""Session 46 (helper fast46): where a release's CPU goes on the LR trainer's path (issue 16), piece by piece.

The bench's 20,000 LR TrainingExamples (as ``docs/experiments/lrcost44.py`` builds them: ``make_rows(20000,
seed=1)``, version 0's answers, decoded as the worker decodes them) through ``Trainer.process`` in batches of 900
(``learn_batch`` plus publishing each release into a producer that drops it; the defaults: ~797 releases), with
``time.thread_time`` wrappers on what ``ModelLifecycle._release`` and ``Trainer.publish`` call. Per piece: calls,
us a call, us a label, rounds' range (each round a fresh trainer). Wrappers nest (``publish`` holds
``build_release``, which holds ``header.to_json`` and ``sign``; ``audit`` holds ``audit_chain.make_line``), and
each costs ~0.3 us a call. Pieces missing from a tree are skipped, so any tree can be measured.

    PYTHONPATH=$PWD nice -n 5 python docs/experiments/fast46.py --rounds 3

``--digest``: no timing; the clocks pinned (``time.time`` fixed, ``time.perf_counter`` a counter), one
``Trainer.process`` run keeping every byte it publishes (ModelRelease values, audit lines): their sha256, to
compare trees (session 46: ``010253a7...264d`` in main and in fast46, 797 releases, 1,594 lines).

``--only``: the four outer parts alone (fewer wrappers in the way), for trees side by side::

    for i in 1 2 3; do for t in /work/main $PWD; do (cd $t && PYTHONPATH=$t python $OLDPWD/docs/experiments/fast46.py
        --only --rounds 3); done; done
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import hashlib
import itertools
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lrcost44 as L

from bench.data import make_rows, served_answers, training_value
from connectors.batch_source import RawRecord
from schemas.codec import default_codec


def _wrap(only: bool = False) -> tuple[dict[str, float], collections.Counter[str]]:
    import driftline.audit_chain as AC
    import learners.artifacts as A
    import learners.evaluation as E
    import learners.explain as X
    import learners.guard as G
    import learners.lifecycle as LC
    import learners.safe_pickle as SP
    import learners.snapshot as S
    import schemas.codec as C
    import streams.audit as AU
    import streams.train as T

    spent: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()

    def wrap(obj: Any, name: str, key: str) -> None:
        f = getattr(obj, name, None)
        if f is None:
            return

        @functools.wraps(f)
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                spent[key] += time.thread_time() - t0
                calls[key] += 1

        setattr(obj, name, timed)

    wrap(T.Trainer, "process", "process")
    wrap(LC.ModelLifecycle, "learn_batch", "learn_batch")
    wrap(LC.ModelLifecycle, "_release", "release")
    if only:
        wrap(T.Trainer, "publish", "publish")
        return spent, calls
    wrap(S, "snapshot", "release.snapshot")
    wrap(S, "linear_parts", "release.snapshot.linear_parts")
    wrap(SP, "compact", "compact (all callers)")
    wrap(SP, "check_loadable", "release.check_loadable")
    wrap(E.Evaluator, "snapshot", "release.evaluator_snapshot")
    wrap(G.Decision, "to_metrics", "decision.to_metrics")
    wrap(T.Trainer, "publish", "publish")
    wrap(T, "build_release", "publish.build_release")
    wrap(A.safe_pickle, "dumps", "publish.build_release.dumps")
    wrap(A.ArtifactHeader, "to_json", "publish.build_release.header_to_json")
    wrap(A, "sign", "publish.build_release.sign")
    wrap(T, "header_metrics", "publish.header_metrics")
    wrap(A, "header_metrics", "publish.build_release.header_metrics")
    wrap(G.Decision, "to_json", "decision.to_json")
    wrap(G.Decision, "texts", "decision.texts")
    wrap(T, "canonical_text", "publish.canonical_text")
    wrap(C.Codec, "encode", "publish.avro_encode")
    wrap(T, "release_explanation", "publish.explanation")
    wrap(X, "weight_changes", "publish.explanation.weight_changes")
    wrap(X, "feature_weights", "publish.explanation.feature_weights")
    wrap(T.Trainer, "record_decision", "publish.record_decision")
    wrap(AU.AuditLog, "append", "publish.audit_append")
    wrap(AC, "_plain", "publish.audit_append._plain")
    wrap(AC, "_mac", "publish.audit_append._mac")
    wrap(AC, "key_id", "publish.audit_append.key_id")
    wrap(AC, "_line", "publish.audit_append._line")
    wrap(AC, "canonical_text", "publish.audit_append.canonical_text")
    return spent, calls


def _pin_clocks() -> None:
    """Wall clock fixed and ``perf_counter`` a counter: the releases' ``created_at``, the audit's ``ts`` and the
    guard's timed latency are then the same in any tree that makes the same calls."""
    ticks = itertools.count()
    time.time = lambda: 1.7e9
    time.perf_counter = lambda: next(ticks) * 1e-5


def _digest(s0: Any, codec: Any, pairs: list[Any]) -> dict[str, Any]:
    """sha256 over every ModelRelease value and audit line ``Trainer.process`` publishes on ``pairs``."""
    from streams import audit as audit_mod
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    out: list[tuple[str, bytes]] = []

    class Keep:
        def produce_bytes(self, topic: str, value: bytes, key: Any = None) -> None:
            out.append((topic, bytes(value)))

    ctx = WorkerContext(s0, codec, producer=Keep(), audit_deferred=True)  # type: ignore[arg-type]
    ctx._audit_logs[ctx.model] = alog = audit_mod.AuditLog(
        s0, ctx.model, lambda d, m: out.append(("audit", bytes(d))), topic_entries=lambda: [], deferred=True
    )
    t = Trainer(ctx, redis_conn=object())  # type: ignore[arg-type]
    t.lifecycle.initial_release()
    for k in range(0, L.N, L.BATCH):
        t.process(pairs[k : k + L.BATCH])
        alog._pending.clear()
    h = hashlib.sha256()
    for topic, value in out:
        h.update(topic.encode() + b"\0" + value + b"\0")
    return {"sha256": h.hexdigest(), "released": t.released, "values": collections.Counter(t for t, _ in out)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--only", action="store_true", help="wrap only process, learn_batch, _release and publish"
    )
    parser.add_argument(
        "--digest", action="store_true", help="the published bytes' sha256 (see the docstring)"
    )
    args = parser.parse_args()
    if args.digest:
        _pin_clocks()
    s0 = L._settings(0)
    rows = make_rows(L.N, seed=1)
    answers = served_answers(s0, rows)
    codec = default_codec()
    topic = s0.topic("training")
    values = codec.encode_many(
        "TrainingExample",
        [training_value(r, s0.model.name, 0, a) for r, a in zip(rows, answers, strict=True)],
        topic=topic,
    )
    raws = [RawRecord(topic, 0, i, s0.model.name.encode(), v, 0) for i, v in enumerate(values)]
    pairs = list(zip(raws, codec.decode_many("TrainingExample", values, topic=topic), strict=True))
    if args.digest:
        print(json.dumps(_digest(s0, codec, pairs)))
        return
    from learners.kernels import warm_for

    warm_for(s0.model.learner, s0.model.challenger)
    spent, calls = _wrap(args.only)
    gc.freeze()
    out: dict[str, list[list[float]]] = collections.defaultdict(list)
    for _ in range(args.rounds):
        spent.clear()
        calls.clear()
        t, alog = L._trainer(s0, codec, 0)
        for k in range(0, L.N, L.BATCH):
            t.process(pairs[k : k + L.BATCH])
            alog._pending.clear()
        out["releases"].append([t.released])
        for key in spent:
            out[key].append(
                [calls[key], round(spent[key] / calls[key] * 1e6, 1), round(spent[key] / L.N * 1e6, 2)]
            )
    print(f"{'piece':<48}{'calls':>8}{'us a call':>18}{'us a label':>18}")
    for key in sorted(k for k in out if k != "releases"):
        got = out[key]
        n = got[0][0]
        call = f"{min(g[1] for g in got)}-{max(g[1] for g in got)}"
        label = f"{min(g[2] for g in got)}-{max(g[2] for g in got)}"
        print(f"{key:<48}{n:>8}{call:>18}{label:>18}")
    print(json.dumps({"releases": out["releases"]}))


if __name__ == "__main__":
    main()
