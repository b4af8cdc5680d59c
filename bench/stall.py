"""Event-loop stalls while a large model is hot-swapped in.

The score worker's :class:`~streams.releases.ReleaseFollower` verifies and unpickles releases in its own thread;
the event loop only takes the loaded model. Python threads share one interpreter lock, though, so a long C call in
the loading thread (unpickling, a full garbage collection, hashing) can still hold the loop up. This runs the same
follower next to an asyncio loop in this process, publishes a multi-MB release (an adaptive random forest) and
records the largest lateness of a 5 ms timer before and during the load (``swap_*``). Then it publishes the same
model as v2 and the loop replaces the served v1 with it, as a scorer does (``replace_*``): the old model goes to
the same reaper ``Scorer.maybe_swap`` uses (streams/teardown.py), and the window lasts until the reaper has freed
it, so its deallocation counts (``replace_teardown_ms``: from the swap until the old model is freed).

Run alone: ``.venv/bin/python -m bench.stall [--events 4000] [--trees 40] [--json]`` (needs the local stack).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import time
from typing import Any

from prometheus_client import CollectorRegistry

from bench.data import Row, make_rows, pretrained, publish_release, raw_producer, release_record
from bench.env import BenchEnv, progress
from driftline.config import LearnerSpec
from schemas.codec import Codec, default_codec
from streams.metrics import build_metrics
from streams.releases import ReleaseFollower
from streams.teardown import default_reaper, reap

TICK_S = 0.005


async def _probe(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """Sleep ``TICK_S`` again and again, recording (when, how late) each wake-up was."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK_S)
        lags.append((time.perf_counter(), max(0.0, loop.time() - before - TICK_S)))


async def _swap(
    follower: ReleaseFollower, settings: Any, codec: Codec, record: dict[str, Any], served: list[Any]
) -> tuple[float, float, float]:
    """Publish ``record``, wait until the follower has loaded it and replace ``served[0]`` with it, as the
    scorer does between batches. Returns (published, replaced, old model freed) times."""
    loop = asyncio.get_running_loop()
    producer = raw_producer(settings, **{"linger.ms": 0})
    t0 = time.perf_counter()
    await loop.run_in_executor(None, publish_release, settings, codec, record, producer)
    while time.perf_counter() - t0 < 120:
        loaded = follower.take()
        if loaded is not None:
            old, served[0] = served[0], loaded.model
            reap(old)  # as Scorer.maybe_swap: the reaper frees the previous model in pieces
            del old, loaded
            t1 = time.perf_counter()
            while default_reaper().pending():
                await asyncio.sleep(TICK_S)
            return t0, t1, time.perf_counter()
        await asyncio.sleep(TICK_S)
    raise RuntimeError(f"release v{record['version']} was not loaded within 120 s")


async def _measure(codec: Codec, records: list[dict[str, Any]], settings: Any) -> dict[str, float]:
    follower = ReleaseFollower(settings, build_metrics(CollectorRegistry()), codec=codec)
    follower.start()
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(lags, stop))
    served: list[Any] = [None]
    windows: list[tuple[float, float, float]] = []
    try:
        await asyncio.sleep(1.0)  # the follower has found the (empty) topic; baseline lags
        for record in records:
            windows.append(await _swap(follower, settings, codec, record, served))
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await probe
        follower.stop()
    out = {"baseline_max_loop_lag_ms": max((lag for w, lag in lags if w < windows[0][0]), default=0.0) * 1000}
    for name, (t0, t1, t2) in zip(("swap", "replace"), windows, strict=False):
        during = [lag for w, lag in lags if t0 <= w <= t2 + TICK_S * 4]
        out[f"{name}_load_ms"] = (t1 - t0) * 1000
        out[f"{name}_teardown_ms"] = (t2 - t1) * 1000
        out[f"{name}_max_loop_lag_ms"] = max(during, default=0.0) * 1000
    return out


def swap_stall(env: BenchEnv, codec: Codec, rows: list[Row], n_models: int = 10) -> dict[str, Any]:
    """Largest event-loop lag while a multi-MB ARF release is verified, loaded and taken (then replaced)."""
    # A small grace period grows the trees fast, so a few thousand events give a model of megabytes unpickled.
    params = {"n_models": n_models, "grace_period": 10}
    settings = env.settings("stall-arf", "adaptive_random_forest", params)
    env.ensure_topics(settings)
    progress(f"stall: training an ARF ({n_models} trees) on {len(rows)} events")
    model = pretrained(LearnerSpec("adaptive_random_forest", params), rows)
    t0 = time.perf_counter()
    records = [release_record(settings, model, 1, env.signing_key)]
    build_ms = (time.perf_counter() - t0) * 1000
    records.append(release_record(settings, model, 2, env.signing_key))
    size = len(records[0]["artifact"] or b"") or _stored_size(settings, records[0])
    unpickled = len(pickle.dumps(model, protocol=5))
    encoded = codec.encode("ModelRelease", records[0], topic=settings.topic("models"))
    t0 = time.perf_counter()
    codec.decode("ModelRelease", encoded, topic=settings.topic("models"))
    decode_ms = (time.perf_counter() - t0) * 1000
    del model  # a scorer does not hold the trainer's copy
    progress(
        f"stall: release of {size / 1e6:.1f} MB ({unpickled / 1e6:.1f} MB pickled); loop lag during its swap"
    )
    result: dict[str, Any] = asyncio.run(_measure(codec, records, settings))
    result["swap_model_bytes"] = size
    result["swap_model_pickle_bytes"] = unpickled
    result["swap_build_release_ms"] = build_ms
    result["swap_record_decode_ms"] = decode_ms
    return result


def _stored_size(settings: Any, record: dict[str, Any]) -> int:
    from learners.artifacts import ArtifactStore

    ref = record.get("artifact_ref")
    return len(ArtifactStore(settings.model.artifact_store).get(ref, record["sha256"])) if ref else 0


def main(argv: list[str] | None = None) -> int:
    """Run only the stall measurement against the local stack and print its figures."""
    from connectors.stack import ensure_stack
    from driftline.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4_000)
    parser.add_argument("--trees", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    base = load_settings()
    ensure_stack(base)
    env = BenchEnv(base)
    try:
        result = swap_stall(env, default_codec(), make_rows(args.events, seed=3), n_models=args.trees)
    finally:
        env.close()
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v:,.1f}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
