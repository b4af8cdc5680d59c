"""Event-loop stalls while a large model is hot-swapped in.

The score worker's :class:`~streams.releases.ReleaseFollower` verifies and unpickles releases in its own thread;
the event loop only takes the loaded model. Python threads share one interpreter lock, though, so a long C call in
the loading thread (unpickling, hashing) can still hold the loop up. This runs the same follower next to an
asyncio loop in this process, publishes a multi-MB release (an adaptive random forest) and records the largest
lateness of a 5 ms timer before, during and after the load.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from typing import Any

from prometheus_client import CollectorRegistry

from bench.data import Row, pretrained, publish_release, raw_producer, release_record
from bench.env import BenchEnv, progress
from learners.config import LearnerSpec
from schemas.codec import Codec
from streams.metrics import build_metrics
from streams.releases import ReleaseFollower

TICK_S = 0.005


async def _probe(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    """Sleep ``TICK_S`` again and again, recording (when, how late) each wake-up was."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK_S)
        lags.append((time.perf_counter(), max(0.0, loop.time() - before - TICK_S)))


async def _measure(env: BenchEnv, codec: Codec, record: dict[str, Any], settings: Any) -> dict[str, float]:
    follower = ReleaseFollower(settings, build_metrics(CollectorRegistry()), codec=codec)
    follower.start()
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(lags, stop))
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(1.0)  # the follower has found the (empty) topic; baseline lags
        producer = raw_producer(settings, **{"linger.ms": 0})
        t0 = time.perf_counter()
        await loop.run_in_executor(None, publish_release, settings, codec, record, producer)
        loaded = None
        while loaded is None and time.perf_counter() - t0 < 120:
            loaded = follower.take()  # what the scorer does between batches
            await asyncio.sleep(TICK_S)
        t_loaded = time.perf_counter()
        if loaded is None:
            raise RuntimeError("the large release was not loaded within 120 s")
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await probe
        follower.stop()
    baseline = [lag for when, lag in lags if when < t0]
    during = [lag for when, lag in lags if t0 <= when <= t_loaded + TICK_S * 4]
    return {
        "swap_load_ms": (t_loaded - t0) * 1000,
        "swap_max_loop_lag_ms": max(during, default=0.0) * 1000,
        "baseline_max_loop_lag_ms": max(baseline, default=0.0) * 1000,
    }


def swap_stall(env: BenchEnv, codec: Codec, rows: list[Row], n_models: int = 10) -> dict[str, Any]:
    """Largest event-loop lag while a multi-MB ARF release is verified, loaded and taken."""
    # A small grace period grows the trees fast, so a few thousand events give a model of megabytes unpickled.
    params = {"n_models": n_models, "grace_period": 10}
    settings = env.settings("stall-arf", "adaptive_random_forest", params)
    env.ensure_topics(settings)
    progress(f"stall: training an ARF ({n_models} trees) on {len(rows)} events")
    model = pretrained(LearnerSpec("adaptive_random_forest", params), rows)
    record = release_record(settings, model, 1, env.signing_key)
    size = len(record["artifact"] or b"") or _stored_size(settings, record)
    unpickled = len(pickle.dumps(model, protocol=5))
    progress(
        f"stall: release of {size / 1e6:.1f} MB ({unpickled / 1e6:.1f} MB pickled); loop lag during its swap"
    )
    result = asyncio.run(_measure(env, codec, record, settings))
    result["swap_model_bytes"] = size
    result["swap_model_pickle_bytes"] = unpickled
    return result


def _stored_size(settings: Any, record: dict[str, Any]) -> int:
    from learners.artifacts import ArtifactStore

    ref = record.get("artifact_ref")
    return len(ArtifactStore(settings.model.artifact_store).get(ref, record["sha256"])) if ref else 0
