"""What publishing one release costs the trainer, in process, side by side on several trees.

``python -m bench.publish_cost [TREE ...] [--kinds K] [--events N] [--batch B] [--rounds R]``: per tree (child
processes, trees alternating each round, best of the rounds) the worker's exact TrainingExamples (as
``bench.trainer_split`` makes them) go through ``Trainer.process`` in batches of ``B``, as in the train worker.
``Trainer.publish`` is timed with ``time.thread_time()`` around each call, and its parts by wrapping the functions
it calls: ``build_release``, the Avro encoding (``encode_avro``: ``Codec.encode``; ``emit``: the base tree's way
to it), the explanation, the two audit entries (``audit_append``) and the audit file's commit after each batch
(``audit_commit``, as the worker commits per transaction), in us per release. The audit chain is written to a
temporary state dir and verified at the end, so a tree that writes a broken chain fails.

Used for BENCHMARKS.md (session 15, publishing a release).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = r"""
import collections, functools, gc, json, sys, tempfile, time
from bench.data import make_rows, served_answers, training_value
from connectors.batch_source import RawRecord
from driftline.settings import load_settings
from schemas.codec import default_codec
import schemas.codec as codec_mod
from streams import audit as audit_mod
from streams.runtime import WorkerContext
import streams.train as tr


class Drop:
    def produce_bytes(self, topic, value, key=None):
        pass


kind, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = load_settings(environ={}, overrides={"model.learner": {"name": kind, "params": {}}, "model.signing_key": "k" * 64,
                                          "state_dir": tempfile.mkdtemp(prefix="publish-cost-")})
rows = make_rows(n, seed=1)
answers = served_answers(s, rows)
codec = default_codec()
topic = s.topic("training")
values = codec.encode_many("TrainingExample", [training_value(r, s.model.name, 0, a) for r, a in zip(rows, answers)],
                           topic=topic)
raws = [RawRecord(topic, 0, i, s.model.name.encode(), v, 0) for i, v in enumerate(values)]
decoded = codec.decode_many("TrainingExample", [r.value for r in raws], topic=topic)
pairs = list(zip(raws, decoded))
t_, n_ = collections.defaultdict(float), collections.Counter()


def wrap(obj, name, key):
    f = getattr(obj, name)

    @functools.wraps(f)
    def timed(*a, **k):
        t0 = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            t_[key] += time.thread_time() - t0
            n_[key] += 1

    setattr(obj, name, timed)


wrap(tr.Trainer, "publish", "publish")
wrap(tr, "build_release", "build_release")
wrap(tr, "release_explanation", "explanation")
wrap(WorkerContext, "emit", "emit")  # the base tree's path to the models topic (and drift events)
wrap(codec_mod.Codec, "encode", "encode_avro")  # both trees: the ModelRelease's (and drift events') Avro
wrap(audit_mod.AuditLog, "append", "audit_append")
wrap(audit_mod.AuditLog, "commit", "audit_commit")
ctx = WorkerContext(s, codec, producer=Drop(), audit_deferred=True)
ctx._audit_logs[ctx.model] = alog = audit_mod.AuditLog(s, ctx.model, lambda d, m: None, topic_entries=lambda: [],
                                                       deferred=True)
gc.collect()
gc.freeze()  # as the worker does (session 8)
t = tr.Trainer(ctx, redis_conn=object())
t.publish(t.lifecycle.initial_release())
t0 = time.thread_time()
for k in range(0, n, batch):
    t.process(pairs[k : k + batch])
    alog.commit()
total = time.thread_time() - t0
entries = audit_mod.read_file(alog.path)
check = audit_mod.verify(entries, [t.key], model=ctx.model, head=audit_mod.read_head(alog.head_path))
assert check.ok, check.problems
releases = n_["publish"] - 1
out = {k: v / releases * 1e6 for k, v in t_.items()}
out["process_per_label"] = total / n * 1e6
out["releases"] = releases
out["entries"] = len(entries)
out["version"] = t.lifecycle.served_version
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.publish_cost", description=__doc__)
    parser.add_argument("trees", nargs="*", default=["."])
    parser.add_argument("--kinds", default="logistic_regression")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    trees = [str(Path(t).resolve()) for t in args.trees]
    result: dict[str, Any] = {"events": args.events, "batch": args.batch, "trees": trees, "best": {}}
    for kind in args.kinds.split(","):
        best: dict[str, dict[str, Any]] = {t: {} for t in trees}
        for r in range(args.rounds):
            for tree in trees if r % 2 == 0 else trees[::-1]:
                cmd = [sys.executable, "-c", CHILD, kind, str(args.events), str(args.batch)]
                env = {**os.environ, "PYTHONPATH": tree}
                got = json.loads(
                    subprocess.run(cmd, cwd=tree, env=env, capture_output=True, check=True).stdout
                )
                print(
                    f"[publish] {kind} round {r} {tree}: " + " ".join(f"{k}={v:.1f}" for k, v in got.items()),
                    file=sys.stderr,
                    flush=True,
                )
                b = best[tree]
                for key, value in got.items():
                    b[key] = (
                        value if key in ("releases", "entries", "version") else min(b.get(key, value), value)
                    )
        result["best"][kind] = {t: {k: round(v, 1) for k, v in b.items()} for t, b in best.items()}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
