"""``run_bench(settings, options)``: the whole benchmark, model by model, and the table it prints.

For each model (a scaled logistic regression and a Hoeffding tree), on the same events:
score worker throughput, latency at half that rate, release-to-scorers with two scorers, the hand-written
confluent-kafka loop, the bare River loop and the train worker's learning throughput. Then the event-loop stall
during a large model's hot swap and, if asked, the long soak. Headline keys are the logistic regression's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from bench.baselines import batch_predict_loop, naive_loop, river_loop
from bench.data import (
    fill_features,
    fill_labels,
    fill_training,
    make_rows,
    pretrained,
    publish_release,
    raw_producer,
    release_record,
)
from bench.env import BenchEnv, machine_info, progress
from bench.explain_cost import explain_cost
from bench.learning import learning_cost
from bench.pipeline import (
    PredictionReader,
    latency_at_rate,
    learn_throughput,
    release_to_scorers,
    score_throughput,
    wait_served,
)
from bench.soak import soak
from bench.stall import swap_stall
from bench.trainers import trainer_scaling
from connectors.kafka_client import client_config
from connectors.stack import ensure_stack
from connectors.warmup import WarmupReport
from driftline.config import LearnerSpec
from driftline.settings import Settings
from schemas.codec import default_codec

MODELS = {"logistic_regression": "lr", "hoeffding_tree": "ht"}
HEADLINE = "logistic_regression"


@dataclass(frozen=True)
class Options:
    """How big a run is. ``quick`` keeps the whole run to a few minutes."""

    events: int = 50_000
    # Events of the score phase (pre-filled; ``None``: three times ``events``). It sets the latency phase's rate,
    # so it must last long enough to be a rate: 20,000 events took 0.7-1.7 s and one quiet second read 29,196/s,
    # twice what the worker then kept up with (BENCHMARKS.md, session 33). Everything else uses ``events``.
    score_events: int | None = None
    latency_seconds: float = 15.0
    releases: int = 20
    stall: bool = True
    stall_events: int = 4_000
    stall_trees: int = 40
    soak: int = 0
    soak_model: str = "logistic_regression"
    trainer_models: int = 50  # learning scale-out over this many models (0: skip)
    trainer_labels: int = 20_000
    keep: bool = False
    learning_events: int = 20_000  # examples per in-memory learning loop (bench/learning.py)
    learning_rounds: int = 3
    models: tuple[str, ...] = tuple(MODELS)

    @classmethod
    def quick(cls, **changes: Any) -> Options:
        base = {
            "events": 20_000,
            "latency_seconds": 8.0,
            "releases": 8,
            "stall_events": 2_000,
            "stall_trees": 20,
            "trainer_labels": 10_000,
        }
        learning = {"learning_events": 10_000, "learning_rounds": 2}  # bench/learning.py
        return cls(**{**base, **learning, **changes})


def _create_topic(settings: Settings, name: str) -> None:
    admin = AdminClient(client_config(settings))
    for future in admin.create_topics([NewTopic(name, settings.kafka.partitions, 1)]).values():
        future.result()
    time.sleep(0.5)  # leaders elected


def _range(out: dict[str, Any]) -> str:
    if out.get("score_window_eps_median") is None:
        return "(too short for one)"
    return (
        f"median {out['score_window_eps_median']:.0f}/s, {out['score_window_eps_min']:.0f}-"
        f"{out['score_window_eps_max']:.0f} over {len(out['score_window_eps'])}"
    )


def bench_model(env: BenchEnv, kind: str, opts: Options) -> dict[str, Any]:
    """Every per-model figure for ``kind`` (a learner kind of ``learners.specs``)."""
    codec = default_codec()
    short = MODELS.get(kind, kind)
    spec = LearnerSpec(kind)
    # The score phase's rows begin with ``rows`` (the same seed gives the same rows, longer): the labels, the
    # hand-written loop and the latency phase use the first ``events`` of them.
    score_rows = make_rows(max(opts.events, opts.score_events or 3 * opts.events), seed=1)
    rows = score_rows[: opts.events]
    train_rows = make_rows(2000, seed=2, start=len(score_rows))
    settings = env.settings(f"score-{short}", kind)
    env.ensure_topics(settings)
    served = pretrained(spec, train_rows)
    publish_release(
        settings, codec, release_record(settings, served, 1, env.signing_key), raw_producer(settings)
    )
    progress(f"{kind}: pre-filling {len(score_rows)} features")
    fill_features(settings, codec, score_rows)
    out: dict[str, Any] = {"events": len(rows)}
    naive_topic = f"{env.prefix}naive-{short}.predictions"
    _create_topic(settings, naive_topic)
    # Untimed: the hand-written loop once over the same events before anything is timed. Why: a broker started
    # seconds before (``ensure_stack`` on a stopped stack, a user's first run) serves its first phases slowly while
    # its JVM warms, and the score phase comes first: one such run read scoring at 0.49x the hand-written loop, timed
    # a few minutes later on the warm broker; the same code on the same stack a minute after read 1.63x
    # (BENCHMARKS.md, the final tree of session 17). Each phase now runs on a warm broker.
    progress(f"{kind}: warming the broker with the hand-written loop over the {len(rows)} events (untimed)")
    naive_loop(settings, codec, served, len(rows), naive_topic)
    reader = PredictionReader(settings, codec).start()
    try:
        progress(f"{kind}: one score worker through {len(score_rows)} events")
        scorer = env.start_worker("score", settings.model.name, kind)
        out.update(score_throughput(reader, score_rows, scorer, timeout=max(120.0, len(score_rows) / 500)))
        progress(
            f"{kind}: score {out['score_eps']:.0f} events/s over {out['score_span_s']:.1f} s; "
            f"{out['score_window_s']:g} s windows {_range(out)}"
        )

        # Half the maximum rate (issue 16): the median of the score phase's windows, not one moment of it.
        rate = max(10.0, out["score_rate_eps"] / 2)
        n_lat = max(100, int(rate * opts.latency_seconds))
        # One id per event sent: the rows repeat when the phase outlasts them, and a repeated id would match an
        # event's send time with the other copy's prediction (the reader keeps one Prediction per id).
        lat_rows = [(f"l{j}", x, y) for j, (_, x, y) in enumerate((rows * (1 + n_lat // len(rows)))[:n_lat])]
        progress(f"{kind}: latency at {rate:.0f} events/s for {n_lat} events")
        out.update(latency_at_rate(settings, codec, reader, lat_rows, rate, timeout=120, worker=scorer))
        progress(
            f"{kind}: latency p50 {out['latency_p50_ms']:.1f} ms, p99 {out['latency_p99_ms']:.1f} ms; per second "
            f"p99 {out['latency_p99_by_second_ms']}; out/in {out['latency_out_vs_in'] or 0:.3f}"
            + (" (the worker fell behind)" if out["latency_fell_behind"] else "")
        )

        second = env.start_worker("score", settings.model.name, kind, tag="b")
        wait_served([scorer, second], settings.model.name, 1, 60)
        out.update(
            release_to_scorers(settings, codec, [scorer, second], served, env.signing_key, 2, opts.releases)
        )
        env.stop_worker(second)
        env.stop_worker(scorer)
    finally:
        reader.stop()

    # Labels in to learned: the scored events' labels through a join worker (pending contexts in Redis) and a
    # train worker. The trainer starts a lineage of its own, so the examples' answers (from the bench's served
    # model) are not its versions' and it predicts every one itself.
    progress(f"{kind}: {len(rows)} labels for the scored events; one join and one train worker")
    fill_labels(settings, codec, rows)
    joiner = env.start_worker("join", settings.model.name, kind)
    trainer = env.start_worker("train", settings.model.name, kind)
    joined = learn_throughput(settings, len(rows), trainer, timeout=max(300.0, len(rows) / 100))
    out["labels_learn_eps"] = joined["learn_eps"]
    env.stop_worker(trainer)
    env.stop_worker(joiner)
    progress(f"{kind}: labels to learned {out['labels_learn_eps']:.0f}/s")

    progress(f"{kind}: hand-written confluent-kafka loop over the same {len(rows)} events")
    out.update(naive_loop(settings, codec, served, len(rows), naive_topic))
    progress(f"{kind}: bare River loop")
    out.update(river_loop(spec, train_rows, rows))
    out.update(batch_predict_loop(spec, train_rows, rows))
    out.update(explain_cost(spec, train_rows, rows[:5000]))  # what model.explain would add per event
    progress(f"{kind}: lifecycle learn_one / learn_batch vs bare River learn_one, in memory")
    out.update(learning_cost(spec, rows[: opts.learning_events], rounds=opts.learning_rounds))
    progress(
        f"{kind}: lifecycle per example {out['lifecycle_one_vs_river_learn']:.2f}x, per batch "
        f"{out['lifecycle_batch_vs_river_learn']:.2f}x bare River learn_one"
    )

    learn_settings = env.settings(f"learn-{short}", kind)
    progress(f"{kind}: pre-filling {len(rows)} training examples with the served answers; one train worker")
    env.ensure_topics(learn_settings)  # the broker does not auto-create topics (the local stack turns it off)
    fill_training(learn_settings, codec, rows)
    trainer = env.start_worker("train", learn_settings.model.name, kind)
    out.update(learn_throughput(learn_settings, len(rows), trainer, timeout=max(300.0, len(rows) / 100)))
    env.stop_worker(trainer)
    out["score_vs_naive"] = out["score_eps"] / out["naive_loop_eps"]
    # The second target (0.3x): the whole score worker against bare River predict_one, same run.
    out["score_vs_river_predict"] = out["score_eps"] / out["river_predict_eps"]
    # The same ratio from CPU time per event: what it would be on an otherwise idle machine with a core each.
    out["score_vs_naive_cpu"] = out["naive_cpu_us"] / out["score_cpu_us"] if out["score_cpu_us"] else None
    out["learn_vs_river_learn"] = out["learn_eps"] / out["river_learn_eps"]
    out["learn_vs_river_prequential"] = out["learn_eps"] / out["river_prequential_eps"]
    progress(
        f"{kind}: naive {out['naive_loop_eps']:.0f}/s, river predict {out['river_predict_eps']:.0f}/s, "
        f"learn {out['learn_eps']:.0f}/s vs river learn {out['river_learn_eps']:.0f}/s"
    )
    return out


HEADLINE_KEYS = (
    "score_eps",
    "naive_loop_eps",
    "river_predict_eps",
    "learn_eps",
    "river_learn_eps",
    "latency_p50_ms",
    "latency_p99_ms",
    "release_to_scorers_p99_ms",
    "score_vs_naive",
    "learn_vs_river_learn",
    "river_prequential_eps",
    "learn_vs_river_prequential",
    "batch_predict_eps",
    "score_vs_river_predict",
    "lifecycle_one_vs_river_learn",
    "lifecycle_batch_vs_river_learn",
)
#: Per-model figures also reported at the top level as ``<short>_<key>`` (``lr_``, ``ht_``): the issue's learning
#: and latency targets are per model (LR and the Hoeffding tree).
PER_MODEL_KEYS = (
    "learn_vs_river_learn",
    "lifecycle_one_vs_river_learn",
    "lifecycle_batch_vs_river_learn",
    "latency_p99_ms",
    "latency_rate_eps",
    "latency_p99_s_median_ms",
    "latency_p99_s_max_ms",
    "latency_fell_behind",
    "score_rate_eps",
    "score_window_spread",
)


def run_bench(base: Settings, opts: Options) -> dict[str, Any]:
    """Run the benchmark against the local stack (started if needed) and return one result object."""
    started = time.time()
    warmed: dict[str, Any] = {}

    def on_warm(report: WarmupReport) -> None:
        warmed.update(seconds=round(report.seconds, 1), records=report.produced, stopped=report.stopped)
        progress(f"warmed the broker it started for {report.seconds:.0f} s, untimed (connectors.warmup)")

    # A broker started here is warmed as `driftline stack up --warm` warms it; the result says so.
    ensure_stack(base, warm=True, on_warm=on_warm)
    env = BenchEnv(base, keep=opts.keep)
    progress(f"topic prefix {env.prefix!r}, work dir {env.workdir}")
    result: dict[str, Any] = {"machine": machine_info(), "models": {}, "broker_warmup": warmed or None}
    try:
        for kind in opts.models:
            result["models"][kind] = bench_model(env, kind, opts)
        if opts.stall:
            rows = make_rows(opts.stall_events, seed=3)
            result["swap"] = swap_stall(env, default_codec(), rows, n_models=opts.stall_trees)
            progress(
                f"stall: {result['swap']['swap_model_bytes'] / 1e6:.1f} MB model, max loop lag "
                f"{result['swap']['swap_max_loop_lag_ms']:.1f} ms"
            )
        if opts.soak:
            result["soak"] = soak(env, default_codec(), opts.soak, opts.soak_model)
        if opts.trainer_models:
            result["learn_scaling"] = trainer_scaling(env, opts.trainer_labels, opts.trainer_models)
    finally:
        env.close()
    head = result["models"].get(HEADLINE) or next(iter(result["models"].values()))
    for key in HEADLINE_KEYS:
        result[key] = head[key]
    for kind, figures in result["models"].items():
        for key in PER_MODEL_KEYS:
            if key in figures:
                result[f"{MODELS.get(kind, kind)}_{key}"] = figures[key]
    result["headline_model"] = HEADLINE if HEADLINE in result["models"] else next(iter(result["models"]))
    result["options"] = {
        k: getattr(opts, k)
        for k in ("events", "score_events", "latency_seconds", "releases", "soak", "soak_model")
    }
    result["elapsed_s"] = time.time() - started
    return result


def render(result: dict[str, Any]) -> str:
    """A plain-text table of the per-model figures, the ratios and the machine."""
    rows = [
        ("score worker (events/s)", "score_eps", "{:,.0f}"),
        ("hand-written loop (events/s)", "naive_loop_eps", "{:,.0f}"),
        ("  ratio score/naive", "score_vs_naive", "{:.2f}x"),
        ("  score phase (events)", "score_events", "{:,.0f}"),
        ("  its windows' median (events/s)", "score_window_eps_median", "{:,.0f}"),
        ("  windows' min (events/s)", "score_window_eps_min", "{:,.0f}"),
        ("  windows' max (events/s)", "score_window_eps_max", "{:,.0f}"),
        ("  spread (max-min)/median", "score_window_spread", "{:.2f}"),
        ("score worker CPU (us/event)", "score_cpu_us", "{:.0f}"),
        ("hand-written loop CPU (us/event)", "naive_cpu_us", "{:.0f}"),
        ("  ratio by CPU time", "score_vs_naive_cpu", "{:.2f}x"),
        ("bare River predict_one (/s)", "river_predict_eps", "{:,.0f}"),
        ("  ratio score/river_predict", "score_vs_river_predict", "{:.2f}x"),
        ("scorer batch predict (/s)", "batch_predict_eps", "{:,.0f}"),
        ("model.explain: explain (us/event)", "explain_us", "{:.1f}"),
        ("  vs predict_with_proba (us/event)", "predict_us", "{:.1f}"),
        ("train worker (examples/s)", "learn_eps", "{:,.0f}"),
        ("bare River learn_one (/s)", "river_learn_eps", "{:,.0f}"),
        ("  ratio learn/river_learn", "learn_vs_river_learn", "{:.2f}x"),
        ("bare River predict+learn (/s)", "river_prequential_eps", "{:,.0f}"),
        ("  ratio learn/river_prequential", "learn_vs_river_prequential", "{:.2f}x"),
        ("train worker CPU (us/example)", "learn_cpu_us", "{:.0f}"),
        ("  other processes meanwhile (cores)", "learn_other_cores", "{:.2f}"),
        ("lifecycle learn_one (/s, CPU)", "lifecycle_learn_one_eps", "{:,.0f}"),
        ("lifecycle learn_batch (/s, CPU)", "lifecycle_learn_batch_eps", "{:,.0f}"),
        ("bare River learn_one (/s, CPU)", "lifecycle_river_learn_eps", "{:,.0f}"),
        ("  ratio learn_one/river_learn", "lifecycle_one_vs_river_learn", "{:.2f}x"),
        ("  ratio learn_batch/river_learn", "lifecycle_batch_vs_river_learn", "{:.2f}x"),
        ("labels -> join -> train (examples/s)", "labels_learn_eps", "{:,.0f}"),
        ("latency rate (events/s)", "latency_rate_eps", "{:,.0f}"),
        ("  events in the phase", "latency_n", "{:,.0f}"),
        ("  predictions out / events in", "latency_out_vs_in", "{:.3f}"),
        ("  worker fell behind", "latency_fell_behind", "{}"),
        ("  worker CPU (us/event)", "latency_cpu_us", "{:.0f}"),
        ("  mean batch", "latency_mean_batch", "{:.1f}"),
        ("latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
        ("latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
        ("  per-second p99s' median (ms)", "latency_p99_s_median_ms", "{:.1f}"),
        ("  per-second p99s' max (ms)", "latency_p99_s_max_ms", "{:.1f}"),
        ("visible latency p99 (ms)", "visible_latency_p99_ms", "{:.1f}"),
        ("release to 2 scorers p50 (ms)", "release_to_scorers_p50_ms", "{:.0f}"),
        ("release to 2 scorers p99 (ms)", "release_to_scorers_p99_ms", "{:.0f}"),
    ]
    models = list(result["models"])
    lines = [f"{'':32}" + "".join(f"{m:>22}" for m in models)]
    for label, key, fmt in rows:
        cells = [result["models"][m].get(key) for m in models]
        lines.append(f"{label:32}" + "".join(f"{fmt.format(c) if c is not None else '-':>22}" for c in cells))
    if "swap" in result:
        s = result["swap"]
        lines.append(
            f"hot swap of a {s['swap_model_bytes'] / 1e6:.1f} MB release ({s['swap_model_pickle_bytes'] / 1e6:.1f} MB "
            f"pickled) ARF: loaded in {s['swap_load_ms']:.0f} ms, "
            f"max event-loop lag {s['swap_max_loop_lag_ms']:.1f} ms (idle baseline {s['baseline_max_loop_lag_ms']:.1f})"
        )
        if "replace_max_loop_lag_ms" in s:
            lines.append(
                f"replacing it with another release: loaded in {s['replace_load_ms']:.0f} ms, max event-loop lag "
                f"{s['replace_max_loop_lag_ms']:.1f} ms (the old model freed in the background in "
                f"{s['replace_teardown_ms']:.0f} ms)"
            )
    if "soak" in result:
        s = result["soak"]
        lines.append(
            f"soak ({s.get('soak_model', 'logistic_regression')}) {s['soak_events']:,} events in "
            f"{s['soak_seconds']:.0f} s: worker RSS "
            f"{s['soak_rss_start_mb']:.0f} -> {s['soak_rss_end_mb']:.0f} MB "
            f"(second-half peak minus first-half peak {s['soak_rss_growth_mb']:+.1f} MB)"
        )
    if "learn_scaling" in result:
        s = result["learn_scaling"]
        lines.append(
            f"learning over {s['learn_scaling_models']} models (LR): 1 trainer {s['learn_1_trainers_lps']:,.0f} "
            f"labels/s, 2 trainers {s['learn_2_trainers_lps']:,.0f} labels/s ({s['learn_2_vs_1_trainers']:.2f}x); "
            f"CPU {s['learn_1_trainers_cpu_us']:.0f} / {s['learn_2_trainers_cpu_us']:.0f} us per label"
        )
    m = result["machine"]
    lines.append(
        f"machine: {m['nproc']} CPUs, {m['cpu_model']}, {m['ram_gb']} GB RAM; Python {m['python']}, "
        f"River {m['river']}, faust-streaming {m['faust_streaming']}, librdkafka {m['librdkafka']}"
    )
    return "\n".join(lines)
