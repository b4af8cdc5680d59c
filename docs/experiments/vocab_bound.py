"""Session 14: model memory under high-cardinality and hostile features, measured from outside.

``gen DIR N``: writes ``DIR/uuid-N.csv`` (a uuid string column, two informative numbers, a 500-value city, label
``y``) and ``DIR/names-N.jsonl`` (three informative numbers plus one feature whose *name* is new on every row).

``run FILE --learner L [--delay D]``: ``driftline replay --file FILE --label-col y --json`` in this process (the
CLI's own code path), then prints one JSON line: wall seconds, peak RSS (``ru_maxrss``, as ``/usr/bin/time -v``
reports it), the replay summary's accuracy / guard tax, the served model's release pickle size
(``safe_pickle.compact``, what a release artifact holds before zlib) and the keys the final models hold.

    PYTHONPATH=. python docs/experiments/vocab_bound.py gen /tmp/vocab 20000
    PYTHONPATH=. python docs/experiments/vocab_bound.py run /tmp/vocab/uuid-20000.csv --learner logistic_regression
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any


def gen(folder: str, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    effect = {f"c{k}": rng.gauss(0.0, 1.0) for k in range(500)}
    with (out / f"uuid-{n}.csv").open("w") as fh:
        fh.write("uuid,a,b,city,y\n")
        for _ in range(n):
            a, b, city = rng.random(), rng.gauss(0.0, 1.0), f"c{rng.randrange(500)}"
            y = int(2.0 * a - 1.0 + 0.8 * b + 0.5 * effect[city] + rng.gauss(0.0, 0.5) > 0)
            fh.write(f"u{rng.getrandbits(48):012x},{a!r},{b!r},{city},{y}\n")
    with (out / f"names-{n}.jsonl").open("w") as fh:
        for _ in range(n):
            a, b, c = rng.random(), rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0)
            y = int(2.0 * a - 1.0 + 0.8 * b - 0.6 * c + rng.gauss(0.0, 0.5) > 0)
            row = {"a": a, "b": b, "c": c, f"f{rng.getrandbits(48):012x}": rng.random(), "y": y}
            fh.write(json.dumps(row) + "\n")


def keys(learner: Any) -> dict[str, int]:
    """Weights, scaler entries and tree splitters held by ``learner`` (members of a pool summed by kind)."""
    from river import compose, multiclass

    from learners.features import FeatureScaler
    from learners.pool import Pool

    out: dict[str, int] = {}

    def add(k: str, v: int) -> None:
        out[k] = out.get(k, 0) + v

    def walk(model: Any, tag: str) -> None:
        if isinstance(model, Pool):
            for member in model.members:
                walk(member.model, f"{tag}{member.spec.name}{member.spec.params.get('degree', '')}.")
        elif isinstance(model, compose.Pipeline):
            for step in model.steps.values():
                walk(step, tag)
        elif isinstance(model, multiclass.OneVsRestClassifier):
            for clf in model.classifiers.values():
                walk(clf, tag)
        elif isinstance(model, FeatureScaler):
            add(f"{tag}scaler", len(model.means))
        elif hasattr(model, "_weights"):
            add(f"{tag}weights", len(model._weights))
        elif hasattr(model, "_root"):
            root = model._root
            leaves = (
                [] if root is None else list(root.iter_leaves()) if hasattr(root, "iter_leaves") else [root]
            )
            add(f"{tag}splitters", sum(len(getattr(leaf, "splitters", {}) or {}) for leaf in leaves))

    walk(learner.model, "")
    return out


def run(path: str, learner: str, delay: int, plain: bool) -> dict[str, Any]:
    import learners.replay as replay_module
    from learners import safe_pickle
    from streams.cli import main

    seen: dict[str, Any] = {}
    original = replay_module.replay

    def capture(rows: Any, lifecycle: Any, **kw: Any) -> Any:
        seen["lifecycle"], seen["plain"] = lifecycle, kw.get("plain")
        return original(rows, lifecycle, **kw)

    replay_module.replay = capture  # type: ignore[assignment]
    argv = [
        "replay",
        "--file",
        path,
        "--label-col",
        "y",
        "--json",
        "--learner",
        learner,
        "--delay",
        str(delay),
    ]
    if not plain:
        argv.append("--no-plain")
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    wall = time.perf_counter() - start
    summary = json.loads(buffer.getvalue().strip().splitlines()[-1])
    lifecycle = seen["lifecycle"]
    served = lifecycle.served_model
    champion = lifecycle._lineage.model
    out = {
        "file": Path(path).name,
        "learner": learner,
        "exit": code,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "accuracy": summary.get("accuracy"),
        "plain_accuracy": summary.get("plain_accuracy"),
        "guard_tax": summary.get("guard_tax"),
        "final_version": summary.get("final_version"),
        "served_release_bytes": len(safe_pickle.compact(served)),
        "champion_bytes": len(safe_pickle.compact(champion)),
        "champion_keys": keys(champion),
    }
    if seen["plain"] is not None:
        out["plain_keys"] = keys(seen["plain"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("folder")
    g.add_argument("n", type=int)
    r = sub.add_parser("run")
    r.add_argument("file")
    r.add_argument("--learner", default="auto")
    r.add_argument("--delay", type=int, default=0)
    r.add_argument("--no-plain", action="store_true")
    args = parser.parse_args()
    if args.cmd == "gen":
        gen(args.folder, args.n)
    else:
        print(json.dumps(run(args.file, args.learner, args.delay, not args.no_plain)), file=sys.stdout)


if __name__ == "__main__":
    main()
