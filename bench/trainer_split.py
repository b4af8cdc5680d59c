"""Where the train worker's CPU per label goes, without py-spy: per-part CPU time of the trainer thread, measured
inside the worker, and the same parts in process without Kafka.

- ``python -m bench.trainer_cost --split ...`` starts each worker with :data:`SITE` as its ``sitecustomize`` (a
  directory put first on its ``PYTHONPATH``): it wraps the trainer's parts (fetch, decode, ``learn_batch``,
  release publishing, the state's seal, status, ...) with ``time.thread_time()`` and appends the running totals
  to ``$DRIFTLINE_BENCH_SPLIT.<pid>.jsonl`` after every transaction. :func:`worker_split` turns the first and last
  lines into CPU microseconds per label over the run (the first transaction is the model's start, before any
  label). Parts nest (``transaction`` holds ``handle_msgs``, which holds ``decode`` and ``process``, which holds
  ``learn_batch`` and ``publish``); ``gc`` is the cyclic collector wherever it ran. Each wrapped call costs about
  0.3 us, once or twice per label (``seen_add``; ``check_input`` too in a tree that checks the input one label
  per call, before session 18's ``InputWatch.check_many``), so the split reads a few us per label high. Labels
  are counted as ``learn_batch`` is offered them.
- ``python -m bench.trainer_split [TREE ...] [--kinds K] [--events N] [--batch B] [--rounds R]``: in process, per
  tree (child processes, trees alternating, best of the rounds): the worker's exact TrainingExamples (encoded as
  ``driftline bench`` encodes them) decoded, then ``ModelLifecycle.learn_batch`` alone, then ``Trainer.process``
  (learn_batch plus the per-label bookkeeping and the releases' publishing into a producer that drops them), in
  batches of ``B``. ``process - learn_batch`` is the trainer's own work around the lifecycle; ``bookkeeping`` is
  ``Trainer.process`` with ``learn_batch`` stubbed out (best of 3 in the child): the per-label checks alone.

- ``python -m bench.trainer_split [TREE ...] --parts``: ``learn_batch`` alone on the same examples, with its parts
  wrapped in ``time.thread_time()`` (champion predict and learn, the frozen models' answers, the sentinel's
  ``observe``/``learned``, monitors, the policies' observes and ``_decide`` with its releases and judgements,
  the evaluators' flush), in CPU us per label; parts nest (``sentinel_observe`` holds the copies' ``frozen``
  answers, ``decide`` holds ``release`` and ``judge``), and each wrapped call costs ~0.3 us. ``frozen`` also
  counts ``frozen_label`` (session 18: the sentinel's and the previous model's labels), which calls ``frozen``
  itself when its rows miss (both count then).
Used for BENCHMARKS.md (session 15, the train worker's CPU per label; the tree's lifecycle per label).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The worker's instrumentation (a sitecustomize; only active with DRIFTLINE_BENCH_SPLIT set and in a worker).
# Parts missing from a tree are skipped, so any tree can be split.
SITE = r"""
import collections, functools, gc, json, os, sys, threading, time

def _install():
    out = os.environ.get("DRIFTLINE_BENCH_SPLIT")
    if not out or "worker" not in sys.argv:
        return
    t, n = collections.defaultdict(float), collections.Counter()
    w = collections.defaultdict(float)  # wall seconds by part (session 20: where the trainer waits)

    def wrap(obj, name, key):
        f = getattr(obj, name, None)
        if f is None:
            return

        @functools.wraps(f)
        def timed(*a, **k):
            t0, w0 = time.thread_time(), time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                t[key] += time.thread_time() - t0
                w[key] += time.perf_counter() - w0
                n[key] += 1

        setattr(obj, name, timed)

    started = [0.0]

    def collector(phase, info):
        if phase == "start":
            started[0] = time.thread_time()
        else:
            t["gc"] += time.thread_time() - started[0]
            n["gc"] += 1

    gc.callbacks.append(collector)
    import connectors.producer as prod, learners.lifecycle as lc, schemas.codec as codec
    import streams.runtime as rt, streams.train as tr, streams.trainer_transactions as tt, streams.trainers as st
    import streams.watch as wt

    for obj, name, key in (
        (st.TrainerGroup, "_fetch", "fetch"),
        (st.TrainerGroup, "_publish_status", "status"),
        (tt.TransactionalBatches, "_handle", "handle_msgs"),
        (tt.TransactionalBatches, "_learn", "learn_raws"),
        (codec.Codec, "decode_many", "decode"),
        (tr.Trainer, "process", "process"),
        (tr.Trainer, "_check_input", "check_input"),
        (lc.ModelLifecycle, "learn_batch", "learn_batch"),
        (lc.ModelLifecycle, "_release", "lifecycle_release"),
        (lc.ModelLifecycle, "_judge", "lifecycle_judge"),
        (tr.Trainer, "publish", "publish"),
        (tt, "seal", "seal"),
        (tr.RecentIds, "add", "seen_add"),
        (tr.RecentIds, "add_digest", "seen_add"),
        (prod.EventProducer, "produce_bytes", "produce_bytes"),
        (prod.EventProducer, "commit", "commit"),  # in bounded's thread: its wall is the round trips
        (tt, "bounded", "bounded"),  # the trainer thread's wait for the commit (or abort)
        (st.TrainerGroup, "_read_ahead", "read_ahead"),  # session 20: inside bounded, while the commit runs
        (rt.WorkerContext, "commit_audit", "commit_audit"),
        (wt.InputWatch, "check_many", "check_input"),
    ):
        wrap(obj, name, key)
    learn_batch = lc.ModelLifecycle.learn_batch

    @functools.wraps(learn_batch)
    def counted(self, examples, *a, **k):
        n["labels_offered"] += len(examples)  # the labels, however many calls check the input
        return learn_batch(self, examples, *a, **k)

    lc.ModelLifecycle.learn_batch = counted
    transaction = tt.TransactionalBatches._transaction

    @functools.wraps(transaction)
    def timed_transaction(*a, **k):
        t0, w0 = time.thread_time(), time.perf_counter()
        try:
            return transaction(*a, **k)
        finally:
            t["transaction"] += time.thread_time() - t0
            w["transaction"] += time.perf_counter() - w0
            n["transaction"] += 1
            line = {"t": t, "n": n, "labels": n["labels_offered"], "thread": time.thread_time(), "w": w,
                    "wall": time.perf_counter()}
            with open(f"{out}.{os.getpid()}.jsonl", "a") as fh:
                fh.write(json.dumps(line) + "\n")

    tt.TransactionalBatches._transaction = timed_transaction

_install()
"""


def install_site(directory: Path) -> Path:
    """Write :data:`SITE` as ``directory/sitecustomize.py``; put ``directory`` first on the worker's path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(SITE)
    return directory


def worker_split(prefix: str) -> dict[str, Any]:
    """CPU us per label by part, from the worker's lines written under ``prefix`` (first line to last)."""
    files = sorted(Path(prefix).parent.glob(Path(prefix).name + ".*.jsonl"))
    if not files:
        return {}
    lines = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
    first, last = lines[0], lines[-1]
    labels = last["labels"] - first["labels"]
    if labels <= 0:
        return {}
    out: dict[str, Any] = {"labels": labels, "transactions": len(lines) - 1}
    parts = {k: (v - first["t"].get(k, 0.0)) / labels * 1e6 for k, v in last["t"].items()}
    out["us_per_label"] = {k: round(v, 1) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}
    out["calls"] = {k: v - first["n"].get(k, 0) for k, v in last["n"].items()}
    out["trainer_thread_us"] = round((last["thread"] - first["thread"]) / labels * 1e6, 1)
    if "wall" in last and "wall" in first:  # a tree from session 20 on: the same parts in wall time
        walls = {k: (v - first["w"].get(k, 0.0)) / labels * 1e6 for k, v in last["w"].items()}
        out["wall_us_per_label"] = {k: round(v, 1) for k, v in sorted(walls.items(), key=lambda kv: -kv[1])}
        out["trainer_thread_wall_us"] = round((last["wall"] - first["wall"]) / labels * 1e6, 1)
    return out


CHILD = r"""
import gc, json, sys, tempfile, time
from bench.data import make_rows, served_answers, training_value
from connectors.batch_source import RawRecord
from driftline.settings import load_settings
from learners.lifecycle import Labelled
from schemas.codec import default_codec
from streams import audit as audit_mod
from streams.runtime import WorkerContext
from streams.train import Trainer


class Drop:
    def produce_bytes(self, topic, value, key=None):
        pass


kind, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = load_settings(environ={}, overrides={"model.learner": {"name": kind, "params": {}}, "model.signing_key": "k" * 64,
                                          "state_dir": tempfile.mkdtemp(prefix="trainer-split-")})
rows = make_rows(n, seed=1)
answers = served_answers(s, rows)
codec = default_codec()
topic = s.topic("training")
values = codec.encode_many("TrainingExample", [training_value(r, s.model.name, 0, a) for r, a in zip(rows, answers)],
                           topic=topic)
raws = [RawRecord(topic, 0, i, s.model.name.encode(), v, 0) for i, v in enumerate(values)]


def trainer():
    ctx = WorkerContext(s, codec, producer=Drop(), audit_deferred=True)
    ctx._audit_logs[ctx.model] = alog = audit_mod.AuditLog(s, ctx.model, lambda d, m: None,
                                                           topic_entries=lambda: [], deferred=True)
    t = Trainer(ctx, redis_conn=object())
    t.lifecycle.initial_release()
    return t, alog


try:  # the compiled LR kernel's one-time start (numba's import, compilation or cache), timed apart; only for
    # the kinds it runs, as the train worker warms it (learners.kernels.warm_for)
    from learners.kernels import warm_for
    jit_warm_s = warm_for(s.model.learner, s.model.challenger)
except ImportError:  # a tree without it
    jit_warm_s = 0.0
gc.freeze()  # as the train worker does before its loop (streams/trainers.py): modules are not walked by collections
out = {"jit_warm_s": jit_warm_s}
t0 = time.process_time()
decoded = []
for k in range(0, n, batch):
    decoded += codec.decode_many("TrainingExample", [r.value for r in raws[k : k + batch]], topic=topic)
out["decode"] = time.process_time() - t0
t, _ = trainer()
examples = [Labelled(e["features"], e["label"], e.get("prediction"), e.get("version"), e.get("proba"), i,
                     e.get("event_ts")) for i, e in enumerate(decoded)]
t0 = time.process_time()
for k in range(0, n, batch):
    t.lifecycle.learn_batch(examples[k : k + batch])
out["learn_batch"] = time.process_time() - t0
out["learn_batch_version"] = t.lifecycle.served_version
t, alog = trainer()
pairs = list(zip(raws, decoded))
t0 = time.process_time()
for k in range(0, n, batch):
    t.process(pairs[k : k + batch])
    alog._pending.clear()
out["process"] = time.process_time() - t0
out["process_version"] = t.lifecycle.served_version
best = None
for _ in range(3):  # Trainer.process with learn_batch stubbed out: the trainer's own per-label bookkeeping
    t, _ = trainer()
    t.lifecycle.learn_batch = lambda ex: [[] for _ in ex]
    t0 = time.process_time()
    for k in range(0, n, batch):
        t.process(pairs[k : k + batch])
    took = time.process_time() - t0
    best = took if best is None else min(best, took)
out["bookkeeping"] = best
# Bare River as shipped: what learners.frozen_tree routed into River's tree module (the naive Bayes memo and, from
# session 18, the class counts' copy; from session 19 the leaves' splitter update) is put back first, so a tree's
# bare learn_one pays River's own costs.
from river.tree import utils as river_tree_utils
from river.tree.nodes import htc_nodes
from river.utils import norm as river_norm
htc_nodes.do_naive_bayes_prediction = river_tree_utils.do_naive_bayes_prediction
htc_nodes.normalize_values_in_dict = river_norm.normalize_values_in_dict
try:  # session 19: the leaves' fused splitter update (learners.tree_learn)
    from learners import tree_learn
    tree_learn.uninstall()
except ImportError:  # a tree without it
    pass
model = t.lifecycle.champion.clone().model
t0 = time.process_time()
for _, x, y in rows:
    model.learn_one(x, y)
out["bare"] = time.process_time() - t0
print(json.dumps(out))
"""


# learn_batch's parts (``--parts``): the examples as CHILD builds them, the parts wrapped before the timed loop.
PARTS = r"""
import collections, functools, gc, json, sys, tempfile, time
from bench.data import make_rows, served_answers, training_value
from driftline.settings import load_settings
from learners import batch as B, evaluation as E, lifecycle as L, policies as P, sentinel as S
from learners.lifecycle import Labelled
from schemas.codec import default_codec
from streams.runtime import WorkerContext
from streams.train import Trainer

kind, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = load_settings(environ={}, overrides={"model.learner": {"name": kind, "params": {}}, "model.signing_key": "k" * 64,
                                          "state_dir": tempfile.mkdtemp(prefix="trainer-parts-")})
rows = make_rows(n, seed=1)
answers = served_answers(s, rows)
codec = default_codec()
topic = s.topic("training")
values = codec.encode_many("TrainingExample", [training_value(r, s.model.name, 0, a) for r, a in zip(rows, answers)],
                           topic=topic)
decoded = codec.decode_many("TrainingExample", values, topic=topic)
examples = [Labelled(e["features"], e["label"], e.get("prediction"), e.get("version"), e.get("proba"), i,
                     e.get("event_ts")) for i, e in enumerate(decoded)]
t = Trainer(WorkerContext(s, codec, producer=None, audit_deferred=True), redis_conn=object())
lc = t.lifecycle
lc.initial_release()
try:  # the compiled LR kernel's one-time start (numba's import, compilation or cache), timed apart; only for
    # the kinds it runs, as the train worker warms it (learners.kernels.warm_for)
    from learners.kernels import warm_for
    jit_warm_s = warm_for(s.model.learner, s.model.challenger)
except ImportError:  # a tree without it
    jit_warm_s = 0.0
gc.freeze()  # as the train worker does before its loop (streams/trainers.py): modules are not walked by collections
T = collections.defaultdict(float)
def wrap(obj, name, key):
    f = getattr(obj, name, None)
    if f is None:
        return
    @functools.wraps(f)
    def timed(*a, **k):
        t0 = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            T[key] += time.thread_time() - t0
    setattr(obj, name, timed)
for obj, name, key in [
    (B.BatchContext, "champion", "champion_predict"), (B.BatchContext, "learn_champion", "champion_learn"),
    (B.BatchContext, "frozen", "frozen"), (B.BatchContext, "frozen_label", "frozen"),
    (S.SnapshotSentinel, "observe", "sentinel_observe"),
    (S.SnapshotSentinel, "learned", "sentinel_learned"), (L.ModelLifecycle, "_monitor", "monitors"),
    (L.ModelLifecycle, "_decide", "decide"), (L.ModelLifecycle, "_release", "release"),
    (L.ModelLifecycle, "_judge", "judge"), (P.IncrementalPolicy, "observe", "incremental_observe"),
    (P.ProbationPolicy, "observe", "probation_observe"), (E.Evaluator, "flush", "evaluator_flush"),
]:
    wrap(obj, name, key)
t0 = time.thread_time()
for k in range(0, n, batch):
    lc.learn_batch(examples[k : k + batch])
T["learn_batch"] = time.thread_time() - t0
print(json.dumps({**T, "learn_batch_version": lc.served_version, "jit_warm_s": jit_warm_s}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trainer_split", description=__doc__)
    parser.add_argument("trees", nargs="*", default=["."])
    parser.add_argument("--kinds", default="logistic_regression")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--parts", action="store_true", help="learn_batch's parts instead (see the docstring)"
    )
    args = parser.parse_args(argv)
    trees = [str(Path(t).resolve()) for t in args.trees]
    result: dict[str, Any] = {"events": args.events, "batch": args.batch, "trees": trees, "best": {}}
    for kind in args.kinds.split(","):
        best: dict[str, dict[str, Any]] = {t: {} for t in trees}
        for r in range(args.rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                child = PARTS if args.parts else CHILD
                cmd = [sys.executable, "-c", child, kind, str(args.events), str(args.batch)]
                env = {**os.environ, "PYTHONPATH": tree}
                got = json.loads(
                    subprocess.run(cmd, cwd=tree, env=env, capture_output=True, check=True).stdout
                )
                print(f"[split] {kind} round {r} {tree}: {got}", file=sys.stderr, flush=True)
                for key, value in got.items():
                    b = best[tree]
                    b[key] = min(b.get(key, value), value) if not key.endswith(("version", "_s")) else value
        for b in best.values():
            if args.parts:
                for key in [k for k in b if not k.endswith(("version", "_s"))]:
                    b[f"{key}_us"] = round(b.pop(key) / args.events * 1e6, 2)
                continue
            for key in ("decode", "learn_batch", "process", "bookkeeping", "bare"):
                b[f"{key}_us"] = round(b.pop(key) / args.events * 1e6, 2)
            b["outside_learn_batch_us"] = round(b["process_us"] - b["learn_batch_us"], 2)
        result["best"][kind] = best
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
