"""Feature -> prediction latency of two source trees' score workers, measured at the same moments:
``python -m bench.latency_ab TREE_A TREE_B [--kind K] [--rate R] [--seconds S] [--phases N]``.

On a shared machine, runs of the same code minutes apart differed by 2-5x in p99 (other engineers' tests came and
went), so alternating runs could not tell two versions apart. Here one score worker per tree (each started with
``PYTHONPATH=TREE``, each on topics of its own, the same served model) gets the same FeatureEvents at the same
moments: every event is produced to both ``features`` topics back to back (which one first alternates per event)
with the same Kafka timestamp, by one producer with driftline's settings, as ``bench.pipeline.latency_at_rate`` does.
Latency = the Prediction's Kafka timestamp minus that stamp. Both workers share the two cores with each other, the
broker, Redis and this process, so the absolute figures are higher than one worker's; the comparison is the point.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.data import (
    feature_value,
    fill_features,
    make_rows,
    pretrained,
    publish_release,
    raw_producer,
    release_record,
)
from bench.env import BenchEnv, progress
from bench.pipeline import PredictionReader
from connectors.producer import PRODUCER_DEFAULTS
from driftline.config import LearnerSpec
from driftline.settings import load_settings
from driftline.util import percentile
from schemas.codec import default_codec
from streams.processes import WorkerProcess


def _start(env: BenchEnv, tree: str, model: str, kind: str, tag: str) -> WorkerProcess:
    # Removed (None), not emptied: an empty DRIFTLINE_TOPIC_PREFIX (...) is an error since session 42.
    unset: dict[str, str | None] = {
        v: None for v in ("DRIFTLINE_TOPIC_PREFIX", "DRIFTLINE_MODEL", "DRIFTLINE_STATE_DIR")
    }
    environ = {**unset, "DRIFTLINE_CONFIG": str(env.config_file(model, kind)), "PYTHONPATH": tree}
    worker = WorkerProcess("score", environ, env.workdir / "logs" / f"{tag}.log").start()
    env.workers.append(worker)
    if not worker.wait_metrics(90):
        raise RuntimeError(f"worker of {tree} did not start:\n{worker.log_tail()}")
    return worker


def run(trees: list[str], kind: str, rate: float, seconds: float, phases: int) -> dict[str, Any]:
    env = BenchEnv(load_settings())
    codec = default_codec()
    spec = LearnerSpec(kind)
    served = pretrained(spec, make_rows(2000, seed=2, start=100_000))
    out: dict[str, Any] = {"kind": kind, "rate_eps": rate, "seconds": seconds, "trees": trees, "phases": []}
    readers: list[PredictionReader] = []
    try:
        setups = []
        for i in range(len(trees)):
            settings = env.settings(f"ab{i}", kind)
            env.ensure_topics(settings)
            publish_release(
                settings, codec, release_record(settings, served, 1, env.signing_key), raw_producer(settings)
            )
            setups.append(settings)
        # Start both workers, then warm them up on the same 5,000 pre-filled events.
        warm = make_rows(5000, seed=1)
        for i, (tree, settings) in enumerate(zip(trees, setups, strict=True)):
            readers.append(PredictionReader(settings, codec).start())
            _start(env, tree, settings.model.name, kind, f"tree{i}")
            fill_features(settings, codec, warm)
        for reader in readers:
            reader.wait_for([r[0] for r in warm], 120)
        rows = make_rows(max(100, int(rate * seconds)), seed=5)
        producer = raw_producer(setups[0], **{"linger.ms": PRODUCER_DEFAULTS["linger.ms"]})
        topics = [s.topic("features") for s in setups]
        for phase in range(phases):
            ids = [f"p{phase}-{j}" for j in range(len(rows))]
            # Encoded before the clock starts (as bench.pipeline.latency_at_rate): ts is only descriptive here.
            planned = int(time.time() * 1000)
            encoded = [
                codec.encode("FeatureEvent", feature_value((id_, x, False), planned), topic=topics[0])
                for id_, (_, x, _y) in zip(ids, rows, strict=True)
            ]
            keys = [id_.encode() for id_ in ids]
            sent: list[int] = []
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                for j, data in enumerate(encoded):
                    delay = start + j / rate - time.perf_counter()
                    if delay > 0.001:
                        time.sleep(delay)
                    now = int(time.time() * 1000)
                    order = topics if (j + phase) % 2 == 0 else topics[::-1]
                    for topic in order:
                        producer.produce(topic, data, keys[j], timestamp=now)
                    sent.append(now)
                    producer.poll(0)
                producer.flush(30)
            finally:
                gc.enable()
            result: dict[str, Any] = {}
            for tree, reader in zip(trees, readers, strict=True):
                seen = reader.wait_for(ids, 120)
                lat = [max(0.0, s.kafka_ts_ms - t) for s, t in zip(seen, sent, strict=True)]
                per_second: dict[int, list[float]] = {}
                for t, v in zip(sent, lat, strict=True):
                    per_second.setdefault((t - sent[0]) // 1000, []).append(v)
                result[tree] = {
                    "p50_ms": percentile(lat, 50, 0.0),
                    "p99_ms": percentile(lat, 99, 0.0),
                    "max_ms": max(lat),
                    "p99_by_second_ms": [
                        round(percentile(v, 99, 0.0) or 0.0) for _, v in sorted(per_second.items())
                    ],
                }
            progress(
                f"phase {phase + 1}: "
                + "; ".join(
                    f"{Path(t).name} p50 {r['p50_ms']:.0f} p99 {r['p99_ms']:.0f} ms"
                    for t, r in result.items()
                )
            )
            out["phases"].append(result)
        return out
    finally:
        for reader in readers:
            reader.stop()
        env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("trees", nargs=2)
    p.add_argument("--kind", default="logistic_regression")
    p.add_argument("--rate", type=float, default=2500.0, help="events/s to each worker")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--phases", type=int, default=4)
    args = p.parse_args(argv)
    json.dump(run(args.trees, args.kind, args.rate, args.seconds, args.phases), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
