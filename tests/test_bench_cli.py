"""``driftline bench``: a tiny run through the real broker gives every contract key (throughputs positive); helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.env import metric_value
from bench.pipeline import percentile
from bench.suite import HEADLINE_KEYS, Options, render

CONTRACT_KEYS = (
    "score_eps",
    "naive_loop_eps",
    "river_predict_eps",
    "learn_eps",
    "river_learn_eps",
    "latency_p50_ms",
    "latency_p99_ms",
    "release_to_scorers_p99_ms",
)


@pytest.mark.kafka
def test_tiny_bench_reports_every_key_positive(redis_url: str) -> None:
    env = {**os.environ, "DRIFTLINE_REDIS_URL": redis_url, "DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:9092"}
    cmd = [sys.executable, "-m", "streams.cli", "bench", "--quick", "--json", "--events", "2000"]
    cmd += ["--releases", "2", "--latency-seconds", "1", "--models", "logistic_regression", "--no-stall"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)  # stdout holds exactly one JSON object; progress went to stderr
    for key in CONTRACT_KEYS:
        # Latencies come from Kafka's millisecond timestamps: on an idle machine a p50 of 0 ms is a real reading.
        if key.startswith("latency_"):
            assert result[key] >= 0, f"{key} = {result[key]!r}"
        else:
            assert result[key] > 0, f"{key} = {result[key]!r}"
    assert result["latency_p99_ms"] >= result["latency_p50_ms"]
    model = result["models"]["logistic_regression"]
    assert model["null_predictions"] == 0  # the pre-trained release was served from the first event
    assert model["n_learned"] >= 2000
    assert result["machine"]["nproc"] >= 1
    assert "[bench" in proc.stderr


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_metric_value_matches_name_and_labels() -> None:
    text = "\n".join(
        [
            "# HELP driftline_served_model_version Model version",
            'driftline_served_model_version{model="a"} 3.0',
            'driftline_served_model_version{model="b"} 5.0',
            'driftline_served_model_version_other{model="b"} 9.0',
        ]
    )
    assert metric_value(text, "driftline_served_model_version", {"model": "b"}) == 5.0
    assert metric_value(text, "driftline_served_model_version", {"model": "c"}) is None
    assert metric_value(text, "driftline_missing") is None


def test_quick_options_are_smaller_and_render_shows_ratios() -> None:
    quick, full = Options.quick(), Options()
    assert quick.events < full.events and quick.releases <= full.releases
    per_model = {key: 1.0 for key in HEADLINE_KEYS}
    per_model.update(score_vs_naive=0.75, latency_rate_eps=10.0, visible_latency_p99_ms=3.0)
    result = {
        "models": {"logistic_regression": per_model},
        "machine": {
            "nproc": 2,
            "cpu_model": "cpu",
            "ram_gb": 1.0,
            "python": "3.11",
            "river": "0",
            "faust_streaming": "0",
            "librdkafka": "0",
        },
    }
    table = render(result)
    assert "ratio score/naive" in table and "0.75x" in table
    assert "2 CPUs" in table
