"""Session 44 (helper lrcost44): how much of an LR label's trainer cost is the release cadence.

Issue 16 asks LR learning at 0.5x bare River ``learn_one`` with every piece of guard evidence on every label. This
measures, in process and side by side in the same minutes, ``ModelLifecycle.learn_batch`` and ``Trainer.process``
(learn_batch plus publishing each release into a producer that drops it, as ``bench.trainer_split``'s CHILD) on the
bench's 20,000 LR TrainingExamples (``bench.data.make_rows(20000, seed=1)``, version 0's answers, batches of 900),
and bare River ``learn_one`` on the same rows once a round, with the lifecycle's ``release_every`` and
``guard.carry_release_every`` at the defaults (``0`` below: 25 and 50) and both raised to R. **Raising R changes
the guard's decisions** (fewer incremental releases): a what-if that splits the cost into a per-label floor and a
per-release part, not a proposal. Configurations alternate within each round; each run builds a fresh trainer;
CPU time of this thread (``time.thread_time``) in us a label.

``--parts``: the default cadence only, with ``time.thread_time`` wrappers on what a release sets off (``_release``;
``safe_pickle.compact``, from every caller: the release's snapshot and the sentinel's copies; ``_judge``; the
kernel's ``sync``; a new frozen model's mirror entry and numpy passes; the evaluator's snapshot): [calls, us a
call, us a label] each (a wrapper costs ~0.3 us a call).

    PYTHONPATH=$PWD nice -n 5 python docs/experiments/lrcost44.py --rounds 3 --every 0,100,400,100000
    PYTHONPATH=$PWD nice -n 5 python docs/experiments/lrcost44.py --parts
"""

from __future__ import annotations

import argparse
import collections
import functools
import gc
import json
import tempfile
import time
from typing import Any

from bench.data import make_rows, served_answers, training_value
from connectors.batch_source import RawRecord
from driftline.settings import load_settings
from learners.lifecycle import Labelled
from schemas.codec import default_codec
from streams import audit as audit_mod
from streams.runtime import WorkerContext
from streams.train import Trainer

N, BATCH = 20000, 900


class _Drop:
    def produce_bytes(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        pass


def _settings(every: int) -> Any:
    overrides: dict[str, Any] = {
        "model.learner": {"name": "logistic_regression", "params": {}},
        "model.signing_key": "k" * 64,
        "state_dir": tempfile.mkdtemp(prefix="lrcost44-"),
    }
    if every:
        overrides["guard.carry_release_every"] = every
    return load_settings(environ={}, overrides=overrides)


def _trainer(s: Any, codec: Any, every: int) -> tuple[Trainer, Any]:
    ctx = WorkerContext(s, codec, producer=_Drop(), audit_deferred=True)
    ctx._audit_logs[ctx.model] = alog = audit_mod.AuditLog(
        s, ctx.model, lambda d, m: None, topic_entries=lambda: [], deferred=True
    )
    t = Trainer(ctx, redis_conn=object())
    t.lifecycle.initial_release()
    if every:
        t.lifecycle.release_every = every
    return t, alog


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", default="0,100,400,100000", help="release_every values; 0 = the default")
    parser.add_argument("--parts", action="store_true")
    args = parser.parse_args()
    everies = [0] if args.parts else [int(v) for v in args.every.split(",")]
    settings = {e: _settings(e) for e in everies}
    s0 = settings[everies[0]]
    rows = make_rows(N, seed=1)
    answers = served_answers(s0, rows)
    codec = default_codec()
    topic = s0.topic("training")
    values = codec.encode_many(
        "TrainingExample",
        [training_value(r, s0.model.name, 0, a) for r, a in zip(rows, answers, strict=True)],
        topic=topic,
    )
    raws = [RawRecord(topic, 0, i, s0.model.name.encode(), v, 0) for i, v in enumerate(values)]
    decoded = codec.decode_many("TrainingExample", values, topic=topic)
    examples = [
        Labelled(
            e["features"],
            e["label"],
            e.get("prediction"),
            e.get("version"),
            e.get("proba"),
            i,
            e.get("event_ts"),
        )
        for i, e in enumerate(decoded)
    ]
    pairs = list(zip(raws, decoded, strict=True))
    from learners.kernels import warm_for

    warm_for(s0.model.learner, s0.model.challenger)
    parts = _wrap() if args.parts else None
    gc.freeze()
    out: dict[str, dict[str, list[float]]] = {str(e): collections.defaultdict(list) for e in everies}
    for _ in range(args.rounds):
        # Bare River ``learn_one`` on the same rows (the champion's model as built, as bench.trainer_split's CHILD)
        t, _ = _trainer(s0, codec, 0)
        model = t.lifecycle.champion.clone().model
        t0 = time.thread_time()
        for _, x, y in rows:
            model.learn_one(x, y)
        out.setdefault("bare_river_learn_one", collections.defaultdict(list))["us"].append(
            round((time.thread_time() - t0) / N * 1e6, 2)
        )
        for e in everies:
            t, _ = _trainer(settings[e], codec, e)
            if parts is not None:
                parts[0].clear()
                parts[1].clear()
            t0 = time.thread_time()
            for k in range(0, N, BATCH):
                t.lifecycle.learn_batch(examples[k : k + BATCH])
            out[str(e)]["learn_batch_us"].append(round((time.thread_time() - t0) / N * 1e6, 2))
            out[str(e)]["releases"].append(t.lifecycle.served_version)
            if parts is not None:
                out[str(e)]["parts"].append(_report(parts))  # type: ignore[arg-type]
                continue
            t, alog = _trainer(settings[e], codec, e)
            t0 = time.thread_time()
            for k in range(0, N, BATCH):
                t.process(pairs[k : k + BATCH])
                alog._pending.clear()
            out[str(e)]["process_us"].append(round((time.thread_time() - t0) / N * 1e6, 2))
    print(json.dumps(out, indent=1))


def _wrap() -> tuple[dict[str, float], collections.Counter[str]]:
    import learners.batch as B
    import learners.evaluation as E
    import learners.kernels as K
    import learners.lifecycle as L
    import learners.snapshot as S

    spent: dict[str, float] = collections.defaultdict(float)
    calls: collections.Counter[str] = collections.Counter()

    def wrap(obj: Any, name: str, key: str) -> None:
        f = getattr(obj, name)

        @functools.wraps(f)
        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.thread_time()
            try:
                return f(*a, **k)
            finally:
                spent[key] += time.thread_time() - t0
                calls[key] += 1

        setattr(obj, name, timed)

    wrap(L.ModelLifecycle, "_release", "release")
    wrap(S.safe_pickle, "compact", "compact_pickle_all_callers")
    wrap(L.ModelLifecycle, "_judge", "judge")
    wrap(K.KernelLR, "sync", "kernel_sync")
    wrap(B.BatchContext, "_entry", "frozen_entry")
    wrap(B.BatchContext, "_predict_rows", "frozen_numpy_pass")
    wrap(E.Evaluator, "snapshot", "release.evaluator_snapshot")
    wrap(L.ModelLifecycle, "learn_batch", "learn_batch")
    return spent, calls


def _report(parts: tuple[dict[str, float], collections.Counter[str]]) -> dict[str, list[float]]:
    spent, calls = parts
    return {
        k: [calls[k], round(spent[k] / calls[k] * 1e6, 1), round(spent[k] / N * 1e6, 2)]
        for k in sorted(spent)
    }


if __name__ == "__main__":
    main()
