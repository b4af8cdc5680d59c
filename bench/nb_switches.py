"""The tree's session-19 levers switched on and off in one process: ``ModelLifecycle.learn_batch`` per label with
the compiled naive Bayes (:mod:`learners.nb_kernel`) and the fused splitter update (:mod:`learners.tree_learn`) each
on or off, (session 20) with the leaves' mirrors (:class:`learners.tree_learn.LeafMirror`) on top of both, and
(session 21) with the split attempts compiled (:mod:`learners.tree_split`) on top of the mirrors, the six
combinations alternating per round on the same TrainingExamples as ``bench.trainer_split``.

``python -m bench.nb_switches [--events N] [--batch B] [--rounds R]`` prints, per combination, the best thread CPU
us per label and every round. One process, alternating: on a shared machine this tells the levers apart where
two processes' best-of-N (``bench.trainer_split``) cannot. ``off`` is this tree with both off, not the base: it
still calls the (cheap) hooks. Used for BENCHMARKS.md (session 19, helper nbsum; session 20, helper treegauss;
session 21, helper treesplit).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nb_switches", description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)

    from bench.data import make_rows, served_answers, training_value
    from driftline.settings import load_settings
    from learners import frozen_tree, nb_kernel, tree_learn
    from learners.lifecycle import Labelled
    from schemas.codec import default_codec
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    n, batch = args.events, args.batch
    s = load_settings(
        environ={},
        overrides={
            "model.learner": {"name": "hoeffding_tree", "params": {}},
            "model.signing_key": "k" * 64,
            "state_dir": tempfile.mkdtemp(prefix="nb-switches-"),
        },
    )
    rows = make_rows(n, seed=1)
    answers = served_answers(s, rows)
    codec = default_codec()
    topic = s.topic("training")
    values = codec.encode_many(
        "TrainingExample",
        [training_value(r, s.model.name, 0, a) for r, a in zip(rows, answers, strict=True)],
        topic=topic,
    )
    decoded: list[Any] = list(codec.decode_many("TrainingExample", values, topic=topic))
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
    nb_kernel.warm()
    gc.freeze()
    # (kernel, fused, the leaves' mirrors: session 20's tree_learn.LeafMirror, which needs both; the split
    # attempts compiled: session 21's learners.tree_split, which needs the mirrors' kernels)
    combos = {
        "off": (False, False, False, False),
        "kernel": (True, False, False, False),
        "fused": (False, True, False, False),
        "both": (True, True, False, False),
        "mirrors": (True, True, True, False),
        "splits": (True, True, True, True),
    }
    compiled_mirror = nb_kernel._mirror
    got: dict[str, list[float]] = {k: [] for k in combos}
    for r in range(args.rounds):
        order = list(combos) if r % 2 == 0 else list(reversed(combos))
        for name in order:
            kernel, fused, mirrors, splits = combos[name]
            nb_kernel._mirror = compiled_mirror if mirrors else None
            tree_learn.COMPILED_SPLITS = splits
            os.environ.pop("DRIFTLINE_NO_JIT", None)
            if not kernel:
                os.environ["DRIFTLINE_NO_JIT"] = "1"
            no_redis: Any = object()  # never used: learn_batch alone
            trainer = Trainer(
                WorkerContext(s, codec, producer=None, audit_deferred=True), redis_conn=no_redis
            )
            lc: Any = trainer.lifecycle
            lc.initial_release()
            frozen_tree._install_memo()
            if fused:
                tree_learn.install()
            else:
                tree_learn.uninstall()
            t0 = time.thread_time()
            for k in range(0, n, batch):
                lc.learn_batch(examples[k : k + batch])
            got[name].append((time.thread_time() - t0) / n * 1e6)
    os.environ.pop("DRIFTLINE_NO_JIT", None)
    nb_kernel._mirror = compiled_mirror
    tree_learn.COMPILED_SPLITS = True
    out = {k: {"best_us": round(min(v), 2), "rounds_us": [round(x, 1) for x in v]} for k, v in got.items()}
    print(json.dumps({"events": n, "batch": batch, "load": os.getloadavg()[0], **out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
