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

from bench.data import fill_features, make_rows, pretrained, publish_release, raw_producer, release_record
from bench.env import BenchEnv, progress
from bench.pipeline import PredictionReader, latency_at_rate, score_throughput
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


def run(kind: str, events: int, seconds: float, rate: float | None, slow_ms: float) -> dict[str, Any]:
    env = BenchEnv(load_settings())
    codec = default_codec()
    try:
        spec = LearnerSpec(kind)
        rows = make_rows(events, seed=1)
        settings = env.settings(f"score-{SHORT.get(kind, kind)}", kind)
        env.ensure_topics(settings)
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
            out.update(
                latency_at_rate(settings, codec, reader, lat_rows, lat_rate, timeout=120, worker=scorer)
            )
            out["releases_during_latency"] = _version(scorer, settings.model.name) - v0
            # Per second of the phase: the events' latency from their Kafka timestamps (as latency_at_rate).
            # (The Prediction carries the FeatureEvent's ts, which the bench set to its Kafka timestamp.)
            seen = [reader.seen[r[0]] for r in lat_rows]
            sent = [codec.decode("Prediction", s.value)["ts"] for s in seen]
            per_event = [
                ((ts - sent[0]) / 1000, max(0.0, s.kafka_ts_ms - ts))
                for ts, s in zip(sent, seen, strict=True)
            ]
            by_second: dict[int, list[float]] = {}
            for t, lat in per_event:
                by_second.setdefault(int(t), []).append(lat)
            out["p99_by_second_ms"] = [round(percentile(v, 99, 0.0), 1) for _, v in sorted(by_second.items())]
            out["slow_bursts"] = _slow_bursts(per_event, slow_ms)
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
    args = p.parse_args(argv)
    results = []
    for kind in args.kinds.split(","):
        r = run(kind, args.events, args.seconds, args.rate, args.slow_ms)
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
