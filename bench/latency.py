"""The bench's latency phase alone, with what explains its tail: ``python -m bench.latency``.

Runs what ``bench_model`` runs for latency (a release published, ``features`` pre-filled, one score worker through
them, then features at half its rate for ``--seconds``) and adds where the slow events are: latency per second of
the phase, the served version before and after (releases during the phase), the worker's mean batch and CPU, and
the events over ``--slow-ms`` grouped into bursts (when they were sent). It imports only what ``driftline bench``
itself uses, so the same file runs against another source tree (``PYTHONPATH=OTHER python bench/latency.py``):
the side-by-side runs in BENCHMARKS.md were made that way.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from bench.data import fill_features, make_rows, pretrained, publish_release, raw_producer, release_record
from bench.env import BenchEnv, progress
from bench.pipeline import PredictionReader, latency_at_rate, score_throughput
from connectors.consumer import read_to_end
from connectors.kafka_client import client_config
from driftline.config import LearnerSpec
from driftline.settings import load_settings
from driftline.util import percentile
from schemas.codec import default_codec
from streams.metrics_text import metric_value

SHORT = {"logistic_regression": "lr", "hoeffding_tree": "ht"}


def _version(worker: Any, model: str) -> int:
    return int(metric_value(worker.metrics_text(), "driftline_served_model_version", {"model": model}) or 0)


def _slow_bursts(sent: list[tuple[float, float]], slow_ms: float) -> list[dict[str, float]]:
    """Events over ``slow_ms`` (send time s, latency ms), grouped into bursts sent within 50 ms of each other."""
    bursts: list[dict[str, float]] = []
    for t, lat in sent:
        if lat < slow_ms:
            continue
        if bursts and t - bursts[-1]["last_s"] <= 0.05:
            b = bursts[-1]
            b["last_s"], b["n"], b["max_ms"] = t, b["n"] + 1, max(b["max_ms"], lat)
        else:
            bursts.append({"at_s": t, "last_s": t, "n": 1, "max_ms": lat})
    return [{k: round(v, 3) for k, v in b.items()} for b in bursts]


def _split_at_broker(settings: Any, reader: Any, sent_ms: dict[str, int]) -> dict[str, Any]:
    """With ``features`` stamped by the broker (LogAppendTime): each event's latency split into bench -> broker
    (append time minus the send time) and broker -> Prediction (the Prediction's timestamp minus append time),
    read back from the topic after the phase."""
    topic = settings.topic("features")
    ingest, down, slow = [], [], []
    for msg in read_to_end(settings, topic, f"{topic}-latency-split", timeout=30):
        key = (msg.key() or b"").decode()
        if key not in sent_ms:
            continue
        appended, sent = msg.timestamp()[1], sent_ms[key]
        predicted = reader.seen[key].kafka_ts_ms
        ingest.append(appended - sent)
        down.append(predicted - appended)
        if predicted - sent > 50:
            slow.append((appended - sent, predicted - appended))
    return {
        "ingest_p50_ms": percentile(ingest, 50, 0.0),
        "ingest_p99_ms": percentile(ingest, 99, 0.0),
        "downstream_p50_ms": percentile(down, 50, 0.0),
        "downstream_p99_ms": percentile(down, 99, 0.0),
        "slow_events": len(slow),
        # Of the events over 50 ms: how many spent most of it before the broker had appended them.
        "slow_mostly_ingest": sum(1 for a, b in slow if a > b),
    }


def run(
    kind: str, events: int, seconds: float, rate: float | None, slow_ms: float, split: bool = False
) -> dict[str, Any]:
    env = BenchEnv(load_settings())
    codec = default_codec()
    try:
        spec = LearnerSpec(kind)
        rows = make_rows(events, seed=1)
        settings = env.settings(f"score-{SHORT.get(kind, kind)}", kind)
        env.ensure_topics(settings)
        if split:
            admin = AdminClient(client_config(settings))
            entry = ConfigEntry(
                "message.timestamp.type", "LogAppendTime", incremental_operation=AlterConfigOpType.SET
            )
            resource = ConfigResource("topic", settings.topic("features"), incremental_configs=[entry])
            for future in admin.incremental_alter_configs([resource]).values():
                future.result()
        served = pretrained(spec, make_rows(2000, seed=2, start=events))
        record = release_record(settings, served, 1, env.signing_key)
        publish_release(settings, codec, record, raw_producer(settings))
        fill_features(settings, codec, rows)
        reader = PredictionReader(settings, codec).start()
        out: dict[str, Any] = {"kind": kind}
        try:
            scorer = env.start_worker("score", settings.model.name, kind)
            out.update(score_throughput(reader, rows, scorer, timeout=max(120.0, len(rows) / 500)))
            lat_rate = rate or max(10.0, out["score_eps"] / 2)
            n = max(100, int(lat_rate * seconds))
            lat_rows = [(f"l{j}", x, y) for j, (_, x, y) in enumerate((rows * (1 + n // len(rows)))[:n])]
            v0 = _version(scorer, settings.model.name)
            sent: dict[str, int] = {}
            try:
                result = latency_at_rate(settings, codec, reader, lat_rows, lat_rate, 120, scorer, sent)
            except TypeError:  # an older tree's bench: it stamps each FeatureEvent's ts with its send time
                result = latency_at_rate(settings, codec, reader, lat_rows, lat_rate, 120, scorer)
                for r in lat_rows:
                    sent[r[0]] = codec.decode("Prediction", reader.seen[r[0]].value)["ts"]
            out.update(result)
            out["releases_during_latency"] = _version(scorer, settings.model.name) - v0
            # Per second of the phase: the events' latency from their Kafka timestamps (as latency_at_rate).
            seen = [reader.seen[r[0]] for r in lat_rows]
            sent_at = [sent[r[0]] for r in lat_rows]
            per_event = [
                ((ts - sent_at[0]) / 1000, max(0.0, s.kafka_ts_ms - ts))
                for ts, s in zip(sent_at, seen, strict=True)
            ]
            by_second: dict[int, list[float]] = {}
            for t, lat in per_event:
                by_second.setdefault(int(t), []).append(lat)
            out["p99_by_second_ms"] = [
                round(percentile(v, 99, 0.0) or 0.0, 1) for _, v in sorted(by_second.items())
            ]
            out["slow_bursts"] = _slow_bursts(per_event, slow_ms)
            if split:
                out.update(_split_at_broker(settings, reader, sent))
            env.stop_worker(scorer)
        finally:
            reader.stop()
        return out
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--kinds", default="logistic_regression,hoeffding_tree")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument(
        "--rate", type=float, default=None, help="events/s (default: half the measured score rate)"
    )
    p.add_argument("--slow-ms", type=float, default=25.0)
    p.add_argument(
        "--split", action="store_true", help="features stamped by the broker: split the latency there"
    )
    args = p.parse_args(argv)
    results = []
    for kind in args.kinds.split(","):
        r = run(kind, args.events, args.seconds, args.rate, args.slow_ms, args.split)
        progress(
            f"{kind}: score {r['score_eps']:.0f}/s; latency at {r['latency_rate_eps']:.0f}/s p50 "
            f"{r['latency_p50_ms']:.0f} p99 {r['latency_p99_ms']:.0f} max {r['latency_max_ms']:.0f} ms; "
            f"releases {r['releases_during_latency']}; per second p99 {r['p99_by_second_ms']}"
        )
        results.append(r)
    json.dump(results, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
