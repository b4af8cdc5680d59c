"""Model artifact sizes and speeds: plain pickle versus driftline's compact pickle, zlib versus lzma.

Run: ``.venv/bin/python bench/bench_artifacts.py [--n 10000 50000] [--json]``. Prints a Markdown table
(one row per model and stream length) and, with ``--json``, one JSON object per row.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import pickle
import random
import time
import zlib
from collections.abc import Callable
from typing import Any

from river import forest, linear_model, naive_bayes, preprocessing, tree
from river.datasets import synth

from learners import safe_pickle
from learners.artifacts import build_release, load_release

KEY = b"bench-key"

MODELS: dict[str, Callable[[], Any]] = {
    "LR pipeline": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
    "GaussianNB": naive_bayes.GaussianNB,
    "HoeffdingTree": tree.HoeffdingTreeClassifier,
    "HoeffdingAdaptiveTree": lambda: tree.HoeffdingAdaptiveTreeClassifier(seed=1),
    "ARF(10)": lambda: forest.ARFClassifier(n_models=10, seed=1),
}


def _ms(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 1), out


def _count_rngs(model: Any) -> int:
    seen: set[int] = set()

    class Counter(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is random.Random:
                seen.add(id(obj))
            return NotImplemented

    Counter(io.BytesIO(), protocol=5).dump(model)
    return len(seen)


def measure(name: str, n: int) -> dict[str, Any]:
    model = MODELS[name]()
    for x, y in synth.Agrawal(seed=42).take(n):
        model.learn_one(x, y)
    plain = pickle.dumps(model, protocol=5)
    buf = io.BytesIO()
    safe_pickle.CompactPickler(buf).dump(model)
    compact = buf.getvalue()
    row: dict[str, Any] = {"model": name, "n": n, "random_objects": _count_rngs(model)}
    row["plain_pickle_bytes"] = len(plain)
    row["plain_pickle_zlib6_bytes"] = len(zlib.compress(plain, 6))
    row["compact_pickle_bytes"] = len(compact)
    for label, comp, decomp in (
        ("zlib6", lambda d: zlib.compress(d, 6), zlib.decompress),
        ("zlib9", lambda d: zlib.compress(d, 9), zlib.decompress),
        ("lzma6", lambda d: lzma.compress(d, preset=6), lzma.decompress),
    ):
        row[f"compress_{label}_ms"], packed = _ms(lambda c=comp: c(compact))  # type: ignore[misc]
        row[f"{label}_bytes"] = len(packed)
        row[f"decompress_{label}_ms"], _ = _ms(lambda d=decomp, p=packed: d(p))  # type: ignore[misc]
    row["plain_dumps_ms"], _ = _ms(lambda: pickle.dumps(model, protocol=5))
    row["plain_loads_ms"], _ = _ms(lambda: pickle.loads(plain))
    row["build_release_ms"], release = _ms(
        lambda: build_release(
            model, name="bench", version=2, parent=1, reason="incremental", metrics={}, key=KEY, n_learned=n
        )
    )
    row["load_release_ms"], _ = _ms(lambda: load_release(release, key=KEY, current_version=1))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [measure(name, n) for n in args.n for name in MODELS]
    print(
        "| model | n | Random objs | plain pickle | plain+zlib | compact pickle | compact+zlib6 "
        "| +zlib9 | +lzma | zlib6 c/d ms | lzma c/d ms | build_release ms | load_release ms "
        "| plain loads ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['n']} | {r['random_objects']} | {r['plain_pickle_bytes']:,} "
            f"| {r['plain_pickle_zlib6_bytes']:,} | {r['compact_pickle_bytes']:,} | {r['zlib6_bytes']:,} "
            f"| {r['zlib9_bytes']:,} | {r['lzma6_bytes']:,} "
            f"| {r['compress_zlib6_ms']}/{r['decompress_zlib6_ms']} "
            f"| {r['compress_lzma6_ms']}/{r['decompress_lzma6_ms']} "
            f"| {r['build_release_ms']} | {r['load_release_ms']} | {r['plain_loads_ms']} |"
        )
    if args.json:
        for r in rows:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
