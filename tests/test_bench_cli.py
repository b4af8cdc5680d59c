"""``driftline bench``: a tiny run through the real broker reports every contract key, each figure being what it
says (the ratios are the quotients of the figures they name, the run did the work it was asked); the table; helpers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from bench.suite import HEADLINE_KEYS, Options, render
from driftline.util import percentile
from streams.metrics_text import metric_value
from tests.pipeline_helpers import KAFKA_BOOTSTRAP

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
def test_tiny_bench_reports_every_key_and_each_is_what_it_says(redis_url: str) -> None:
    env = {**os.environ, "DRIFTLINE_REDIS_URL": redis_url, "DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP}
    cmd = [sys.executable, "-m", "streams.cli", "bench", "--quick", "--json", "--events", "2000"]
    cmd += ["--releases", "2", "--latency-seconds", "1", "--models", "logistic_regression", "--no-stall"]
    cmd += ["--soak", "3000", "--soak-model", "hoeffding_tree"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)  # stdout holds exactly one JSON object; progress went to stderr
    model = result["models"]["logistic_regression"]
    # The run did what it was asked: 2000 events scored and learned, latency events at half the score rate.
    assert result["options"] == {
        "events": 2000,
        "score_events": None,
        "latency_seconds": 1.0,
        "releases": 2,
        "soak": 3000,
        "soak_model": "hoeffding_tree",
    }
    # The soak served the model it was asked for, through every event, sampling a real process's RSS.
    assert result["soak"]["soak_events"] == 3000 and result["soak"]["soak_model"] == "hoeffding_tree"
    assert result["soak"]["soak_rss_start_mb"] > 0 and result["soak"]["soak_samples"][-1][0] >= 3000
    assert (
        model["events"] == 2000 and model["null_predictions"] == 0
    )  # the pre-trained release served them all
    assert model["n_learned"] >= 2000
    # The score phase ran three times the events (the default), and the latency phase at half its rate: the
    # median of its half-second windows when it held three, else its rate first to last.
    assert model["score_events"] == 6000
    assert math.isclose(model["score_eps"], (6000 - 1) / model["score_span_s"])
    windows = model["score_window_eps"]
    assert len(windows) == int(model["score_span_s"] / 0.5 + 1e-9)
    if len(windows) >= 3:
        assert model["score_rate_eps"] == model["score_window_eps_median"]
        assert min(windows) == model["score_window_eps_min"] <= model["score_rate_eps"] <= max(windows)
    else:
        assert model["score_rate_eps"] == model["score_eps"]
    assert model["latency_n"] == max(100, int(max(10.0, model["score_rate_eps"] / 2) * 1.0))
    assert model["latency_rate_eps"] == max(10.0, model["score_rate_eps"] / 2)
    # The latency phase's p99 beside what judges it: its per-second p99s and whether the worker kept up.
    assert model["latency_p99_s_max_ms"] == max(model["latency_p99_by_second_ms"])
    assert model["latency_p99_s_max_ms"] <= model["latency_max_ms"]
    assert isinstance(model["latency_fell_behind"], bool) and 0 < model["latency_out_vs_in"] <= 1
    assert result["lr_latency_fell_behind"] == model["latency_fell_behind"]
    # Each figure is the quotient it names, and the headline keys are the headline model's.
    for ratio, num, den in (
        ("score_vs_naive", "score_eps", "naive_loop_eps"),
        ("score_vs_river_predict", "score_eps", "river_predict_eps"),
        ("learn_vs_river_learn", "learn_eps", "river_learn_eps"),
    ):
        assert math.isclose(model[ratio], model[num] / model[den]), ratio
    for key in CONTRACT_KEYS:
        assert result[key] == model[key], key
        # Latencies come from Kafka's millisecond timestamps: on an idle machine a p50 of 0 ms is a real reading.
        assert result[key] >= 0 if key.startswith("latency_") else result[key] > 0, f"{key} = {result[key]!r}"
    assert model["latency_p50_ms"] <= model["latency_p99_ms"] <= model["latency_max_ms"]
    assert model["release_to_scorers_p50_ms"] <= model["release_to_scorers_p99_ms"]
    assert result["machine"]["nproc"] == os.cpu_count()
    assert result["broker_warmup"] is None  # the test stack was up already: only a broker it starts is warmed
    assert "[bench" in proc.stderr


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0.5) == 1.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None and percentile([], 50, 0.0) == 0.0


def test_metric_value_matches_name_and_labels() -> None:
    text = "\n".join(
        [
            "# HELP driftline_served_model_version Model version",
            'driftline_served_model_version{model="a"} 3.0',
            'driftline_served_model_version{model="b"} 5.0',
            'driftline_served_model_version_other{model="b"} 9.0',
            'driftline_batch_size_count{stage="score",topic="x"} 2.0',
            'driftline_batch_size_count{stage="score",topic="y"} 3.0',
            'driftline_batch_size_count{stage="join",topic="x"} 7.0',
        ]
    )
    assert metric_value(text, "driftline_served_model_version", {"model": "b"}) == 5.0
    assert (
        metric_value(text, "driftline_batch_size_count", {"stage": "score"}) == 5.0
    )  # every matching series
    assert metric_value(text, "driftline_served_model_version", {"model": "c"}) is None
    assert metric_value(text, "driftline_missing") is None


def test_quick_options_are_smaller() -> None:
    quick, full = Options.quick(), Options()
    assert quick.events < full.events and quick.releases <= full.releases
    assert Options.quick(events=5).events == 5


def test_render_puts_each_figure_in_its_model_column_formatted() -> None:
    lr = {key: 1.0 for key in HEADLINE_KEYS}
    lr.update(score_eps=1234.4, score_vs_naive=0.75, latency_p99_ms=3.04, score_cpu_us=41.6)
    ht = {key: 2.0 for key in HEADLINE_KEYS}
    ht.update(score_eps=5678.0, score_vs_naive=1.5, latency_p99_ms=12.0)  # no score_cpu_us: shown as "-"
    machine = {"nproc": 2, "cpu_model": "cpu", "ram_gb": 1.0, "python": "3.11", "river": "0.26"}
    machine.update(faust_streaming="0.11", librdkafka="2.4")
    table = render({"models": {"logistic_regression": lr, "hoeffding_tree": ht}, "machine": machine})
    lines = table.splitlines()
    assert lines[0].split() == ["logistic_regression", "hoeffding_tree"]
    rows = {line[:32].strip(): line[32:].split() for line in lines[1:] if not line.startswith("machine:")}
    assert rows["score worker (events/s)"] == ["1,234", "5,678"]
    assert rows["ratio score/naive"] == ["0.75x", "1.50x"]
    assert rows["latency p99 (ms)"] == ["3.0", "12.0"]
    assert rows["score worker CPU (us/event)"] == ["42", "-"]
    assert rows["visible latency p99 (ms)"] == ["-", "-"]  # in neither model
    assert rows["worker fell behind"] == ["-", "-"]


def test_render_shows_the_score_windows_and_what_judges_the_p99() -> None:
    lr = {key: 1.0 for key in HEADLINE_KEYS}
    lr.update(score_events=60_000, score_window_eps_median=14_321.0, score_window_spread=0.234)
    lr.update(
        latency_n=57_284, latency_p99_s_median_ms=14.0, latency_fell_behind=True, latency_out_vs_in=0.81
    )
    machine = {"nproc": 2, "cpu_model": "cpu", "ram_gb": 1.0, "python": "3.11", "river": "0.26"}
    machine.update(faust_streaming="0.11", librdkafka="2.4")
    lines = render({"models": {"logistic_regression": lr}, "machine": machine}).splitlines()
    rows = {line[:32].strip(): line[32:].split() for line in lines[1:] if not line.startswith("machine:")}
    assert rows["score phase (events)"] == ["60,000"]
    assert rows["its windows' median (events/s)"] == ["14,321"]
    assert rows["spread (max-min)/median"] == ["0.23"]
    assert rows["events in the phase"] == ["57,284"]
    assert rows["per-second p99s' median (ms)"] == ["14.0"]
    assert rows["worker fell behind"] == ["True"] and rows["predictions out / events in"] == ["0.810"]
    assert lines[-1].startswith("machine: 2 CPUs, cpu, 1.0 GB RAM; Python 3.11, River 0.26")
