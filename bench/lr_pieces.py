"""The LR train worker's per-batch and per-release pieces, timed alone in each tree (session 25, issue 16).

``python -m bench.lr_pieces [TREE ...] [--rounds R]``: in a child process per tree (trees alternating, best of the
rounds), on the bench's rows (``make_rows(seed=1)``) as a trained logistic regression's trainer sees them (its
served snapshot after 2,000 labels through ``Trainer.process``), the CPU microseconds (``time.process_time``, best
of 15 repeats inside each child) of:

- ``blocks_and_clean_900``: a 900-row batch's float blocks and cleaned rows (``BatchContext`` then ``cleaned(0)``),
  once per batch in the worker;
- ``mirror_entry``: the served snapshot's batch mirror (``BatchContext._entry``: ``BatchPredictor``,
  ``LinearMirror``), once per release (from session 26 a frozen LR snapshot keeps its mirror across batches, so
  this piece, asked again of the same snapshot, reads the kept one: compare ``release_snapshot_and_mirror``);
- ``entry_and_pass_128``: that and its first numpy pass over 128 rows (``_predict_rows``);
- ``compact``, ``loads``, ``copy``: the served copy's pickle (the release artifact's bytes), its unpickle, and
  ``Learner.copy`` whole, once per release;
- ``release_snapshot_and_mirror`` (session 26): the served snapshot as ``ModelLifecycle._release`` makes it inside
  ``learn_batch`` (``learners.snapshot.snapshot`` where the tree has it, else ``Learner.copy``) and its batch
  mirror, the replaced snapshots freed as a release frees them, once per release;
- ``publish`` (session 26): ``Trainer.publish`` of the last release of the 2,000 labels (its pickle recorded for
  it again each time, as a release's copy leaves it), into a producer that drops what it is given.

Used for BENCHMARKS.md (sessions 25 and 26: the LR train worker).
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
import gc, json, pickle, sys, tempfile, time
from bench.data import make_rows, served_answers, training_value
from connectors.batch_source import RawRecord
from driftline.settings import load_settings
from learners import batch as B, safe_pickle as sp
from schemas.codec import default_codec
from streams import audit as audit_mod
from streams.runtime import WorkerContext
from streams.train import Trainer


class Drop:
    def produce_bytes(self, topic, value, key=None):
        pass


s = load_settings(environ={}, overrides={"model.learner": {"name": "logistic_regression", "params": {}},
                                          "model.signing_key": "k" * 64,
                                          "state_dir": tempfile.mkdtemp(prefix="lr-pieces-")})
n = 2000
rows = make_rows(n, seed=1)
codec = default_codec()
topic = s.topic("training")
values = codec.encode_many("TrainingExample", [training_value(r, s.model.name, 0, a)
                                               for r, a in zip(rows, served_answers(s, rows))], topic=topic)
decoded = codec.decode_many("TrainingExample", values, topic=topic)
raws = [RawRecord(topic, 0, i, s.model.name.encode(), v, 0) for i, v in enumerate(values)]
ctx = WorkerContext(s, codec, producer=Drop(), audit_deferred=True)
ctx._audit_logs[ctx.model] = alog = audit_mod.AuditLog(s, ctx.model, lambda d, m: None, topic_entries=lambda: [],
                                                       deferred=True)
t = Trainer(ctx, redis_conn=object())
t.lifecycle.initial_release()
pairs = list(zip(raws, decoded))
published = []
publish = t.publish
t.publish = lambda r: (published.append(r), publish(r))[1]
for k in range(0, n, 500):
    t.process(pairs[k : k + 500])
    alog._pending.clear()
t.publish = publish
served, champion = t.lifecycle.served_model, t.lifecycle.champion
xs = [e["features"] for e in decoded[:900]]
ctx = B.BatchContext(xs)
ctx.blocks()
ctx._plain_blocks()
raw = sp.compact(champion)
gc.freeze()


def blocks_and_clean():
    B.BatchContext(xs).cleaned(0)


def entry():
    ctx._frozen.clear()
    ctx._entry(served)


def entry_and_pass():
    ctx._frozen.clear()
    e = ctx._entry(served)
    ctx._predict_rows(served, e[1], 100, 228)


try:  # session 26
    from learners.snapshot import snapshot as freeze
except ImportError:  # an older tree: a release's served snapshot is a copy
    freeze = lambda learner: learner.copy()
kept = []


def release_snapshot_and_mirror():
    frozen = freeze(champion)
    B.BatchContext(xs)._entry(frozen)
    kept.append(frozen)
    if len(kept) > 2:  # probation keeps the replaced snapshot; the one before goes
        del kept[0]


release = published[-1]


def publish_release():
    sp.made(release.model, raw, release.model.learned_mark())
    t.publish(release)
    alog._pending.clear()


pieces = {"blocks_and_clean_900": (blocks_and_clean, 5), "mirror_entry": (entry, 200),
          "entry_and_pass_128": (entry_and_pass, 200), "compact": (lambda: sp.compact(champion), 100),
          "loads": (lambda: pickle.loads(raw), 100), "copy": (lambda: champion.copy(), 100),
          "release_snapshot_and_mirror": (release_snapshot_and_mirror, 100), "publish": (publish_release, 100)}
best = {k: 1e9 for k in pieces}
for _ in range(15):
    for k, (f, reps) in pieces.items():
        t0 = time.process_time()
        for _ in range(reps):
            f()
        best[k] = min(best[k], (time.process_time() - t0) / reps)
print(json.dumps({k: round(v * 1e6, 1) for k, v in best.items()}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lr_pieces", description=__doc__)
    parser.add_argument("trees", nargs="*", default=["."])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    trees = [str(Path(t).resolve()) for t in args.trees]
    best: dict[str, dict[str, Any]] = {t: {} for t in trees}
    for r in range(args.rounds):
        for tree in trees if r % 2 == 0 else trees[::-1]:
            cmd = [sys.executable, "-c", CHILD]
            env = {**os.environ, "PYTHONPATH": tree}
            got = json.loads(subprocess.run(cmd, cwd=tree, env=env, capture_output=True, check=True).stdout)
            load = os.getloadavg()[0]
            print(f"[pieces] round {r} {tree} (load {load:.1f}): {got}", file=sys.stderr, flush=True)
            for key, value in got.items():
                best[tree][key] = min(best[tree].get(key, value), value)
    print(json.dumps({"rounds": args.rounds, "best_us": best}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
