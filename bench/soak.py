"""Long run: a score worker through N events (a million by default) while its RSS is sampled.

The worker starts first and events are produced while it runs, in chunks, so the run is a steady stream rather
than one backlog; RSS comes from ``/proc/<pid>/status`` (the worker is our own child process).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from bench.data import fill_features, make_rows, pretrained, publish_release, raw_producer, release_record
from bench.env import BenchEnv, progress
from connectors.kafka_client import client_config
from driftline.config import LearnerSpec
from driftline.settings import Settings
from schemas.codec import Codec

CHUNK = 50_000


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def predictions_out(settings: Settings, consumer: Consumer) -> int:
    topic = settings.topic("predictions")
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    return sum(
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions
    )


def soak(env: BenchEnv, codec: Codec, n: int, kind: str = "logistic_regression") -> dict[str, Any]:
    """Score ``n`` events through one worker; RSS samples ``(events_out, rss_mb)`` about once a second."""
    settings = env.settings("soak", kind)
    env.ensure_topics(settings)
    model = pretrained(LearnerSpec(kind), make_rows(2000, seed=11))
    publish_release(
        settings, codec, release_record(settings, model, 1, env.signing_key), raw_producer(settings)
    )
    worker = env.start_worker("score", "soak", kind)
    probe = Consumer(client_config(settings, **{"group.id": f"{settings.topic('soak-probe')}"}))
    samples: list[tuple[int, float]] = []
    done = threading.Event()

    def fill() -> None:
        try:
            for start in range(0, n, CHUNK):
                fill_features(settings, codec, make_rows(min(CHUNK, n - start), seed=start + 1, start=start))
        finally:
            done.set()

    filler = threading.Thread(target=fill, name="soak-fill", daemon=True)
    filler.start()
    t0 = time.monotonic()
    last_report = t0
    try:
        while True:
            out = predictions_out(settings, probe)
            samples.append((out, rss_mb(worker.pid)))
            if out >= n:
                break
            if not worker.alive():
                raise RuntimeError(f"soak worker exited:\n{worker.log_tail()}")
            if time.monotonic() - last_report > 30:
                progress(f"soak: {out}/{n} events, worker RSS {samples[-1][1]:.0f} MB")
                last_report = time.monotonic()
            time.sleep(1.0)
    finally:
        probe.close()
        filler.join(600)
        env.stop_worker(worker)
    elapsed = time.monotonic() - t0
    rss = [r for _, r in samples]
    # Flat means: the second half of the run does not grow beyond the first half's peak by more than noise.
    half = len(rss) // 2
    first_peak, second_peak = max(rss[: max(1, half)]), max(rss[half:])
    return {
        "soak_events": n,
        "soak_model": kind,
        "soak_seconds": elapsed,
        "soak_rss_start_mb": rss[0],
        "soak_rss_first_half_max_mb": first_peak,
        "soak_rss_second_half_max_mb": second_peak,
        "soak_rss_end_mb": rss[-1],
        "soak_rss_growth_mb": second_peak - first_peak,
        "soak_samples": [(o, round(r, 1)) for o, r in samples[:: max(1, len(samples) // 40)]],
    }
