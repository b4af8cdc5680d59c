"""The guard's latency check for a Hoeffding tree, timed at every judgement (before session 34) or reused per shape
(``learners.guard._tree_shape``), side by side in one process: ``ModelLifecycle.learn_batch`` over the
TrainingExamples of ``bench.trainer_split``, the two alternating per round, with ``ModelLifecycle._judge`` wrapped
in ``time.thread_time()``.

``python -m bench.tree_judge [--events N] [--batch B] [--rounds R]`` prints one line per round and a JSON record:
per setting the thread CPU us per label of the whole ``learn_batch`` and of the judgements alone (every round),
and whether both settings produced the same events (types, versions, label indexes). ``off`` makes
``latency_shape`` answer None for a tree (every judgement timed, as before); ``on`` is this tree. Used for
BENCHMARKS.md (session 34, helper tree34).
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from typing import Any, cast


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tree_judge", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=900)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)

    import learners.guard as guard
    import learners.lifecycle as lifecycle
    from bench.data import make_rows, served_answers, training_value
    from driftline.settings import load_settings
    from learners.lifecycle import Labelled
    from schemas.codec import default_codec
    from streams import audit as audit_mod
    from streams.runtime import WorkerContext
    from streams.train import Trainer

    class Drop:
        def produce_bytes(self, topic: str, value: bytes, key: bytes | None = None) -> None:
            pass

    n, batch = args.events, args.batch
    s = load_settings(
        environ={},
        overrides={
            "model.learner": {"name": "hoeffding_tree", "params": {}},
            "model.signing_key": "k" * 64,
            "state_dir": tempfile.mkdtemp(prefix="tree-judge-"),
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
    try:
        from learners.kernels import warm_for

        warm_for(s.model.learner, s.model.challenger)
    except ImportError:
        pass

    def trainer() -> Any:
        ctx = WorkerContext(s, codec, producer=cast(Any, Drop()), audit_deferred=True)
        ctx._audit_logs[ctx.model] = audit_mod.AuditLog(
            s, ctx.model, lambda d, m: None, topic_entries=lambda: [], deferred=True
        )
        t = Trainer(ctx, redis_conn=cast(Any, object()))
        t.lifecycle.initial_release()
        return t

    shape = guard.latency_shape

    def untimed_tree(model: Any, xs: Any) -> Any:
        if type(getattr(model, "model", None)) in guard._tree_types():
            return None
        return shape(model, xs)

    original = lifecycle.ModelLifecycle._judge
    spent = [0.0]

    def timed_judge(self: Any, *a: Any, **k: Any) -> Any:
        t0 = time.thread_time()
        try:
            return original(self, *a, **k)
        finally:
            spent[0] += time.thread_time() - t0

    lifecycle.ModelLifecycle._judge = timed_judge  # type: ignore[method-assign]
    gc.freeze()
    result: dict[str, dict[str, list[float]]] = {
        "off": {"learn_batch_us": [], "judge_us": []},
        "on": {"learn_batch_us": [], "judge_us": []},
    }
    events: dict[str, Any] = {}
    try:
        for r in range(args.rounds):
            for name in ("off", "on") if r % 2 == 0 else ("on", "off"):
                guard.latency_shape = untimed_tree if name == "off" else shape
                t = trainer()
                seen: list[Any] = []
                spent[0] = 0.0
                t0 = time.thread_time()
                for k in range(0, n, batch):
                    for got in t.lifecycle.learn_batch(examples[k : k + batch]):
                        if not isinstance(got, Exception):
                            seen.extend(
                                (type(e).__name__, getattr(e, "version", None), getattr(e, "index", None))
                                for e in got
                            )
                took = time.thread_time() - t0
                result[name]["learn_batch_us"].append(round(took / n * 1e6, 2))
                result[name]["judge_us"].append(round(spent[0] / n * 1e6, 2))
                events[name] = (seen, t.lifecycle.served_version)
                print(
                    f"round {r} {name}: learn_batch {took / n * 1e6:.2f} us/label, judge {spent[0] / n * 1e6:.2f}",
                    flush=True,
                )
    finally:
        guard.latency_shape = shape
        lifecycle.ModelLifecycle._judge = original  # type: ignore[method-assign]
    out = {
        "events": n,
        "batch": batch,
        "rounds": result,
        "best": {k: {p: min(v) for p, v in parts.items()} for k, parts in result.items()},
        "same_events": events.get("on") == events.get("off"),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
