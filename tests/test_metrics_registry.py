"""build_metrics and the Metrics helpers, on private registries (no globals)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftline import __version__
from streams.metrics import METRIC_DOCS, Metrics, build_metrics


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_build_twice_uses_separate_registries() -> None:
    a = build_metrics()
    b = build_metrics()
    a.events.labels(stage="score", outcome="ok").inc(2)
    assert value(a, "driftline_events_total", stage="score", outcome="ok") == 2
    assert value(b, "driftline_events_total", stage="score", outcome="ok") is None


def test_given_registry_is_used_and_duplicate_registration_is_refused() -> None:
    reg = CollectorRegistry()
    m = build_metrics(reg)
    assert m.registry is reg
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        build_metrics(reg)


def test_every_documented_family_is_registered() -> None:
    m = build_metrics()
    for doc in METRIC_DOCS:
        metric = getattr(m, doc.attr)
        assert metric._type == doc.kind, doc.name
        assert tuple(metric._labelnames) == doc.labels, doc.name
    assert value(m, "driftline_build_info", version=__version__) == 1


def test_naming_conventions() -> None:
    names = [doc.name for doc in METRIC_DOCS]
    assert len(names) == len(set(names))
    for doc in METRIC_DOCS:
        assert doc.name.startswith("driftline_"), doc.name
        assert doc.name.endswith("_total") == (doc.kind == "counter"), doc.name
        if doc.name.endswith("_seconds"):
            assert doc.kind in ("histogram", "gauge"), doc.name
        assert doc.help.strip() and "\n" not in doc.help, doc.name


def test_histogram_buckets_cover_sub_millisecond_to_seconds() -> None:
    m = build_metrics()
    m.processing_seconds.labels(stage="score").observe(0.0003)
    m.processing_seconds.labels(stage="score").observe(3.0)
    below_1ms = value(m, "driftline_processing_seconds_bucket", stage="score", le="0.001")
    below_5s = value(m, "driftline_processing_seconds_bucket", stage="score", le="5.0")
    assert below_1ms == 1
    assert below_5s == 2
    m.label_delay.observe(2 * 3600)
    assert value(m, "driftline_label_delay_seconds_bucket", le="3600.0") == 0
    assert value(m, "driftline_label_delay_seconds_bucket", le="7200.0") == 1


def test_served_version_moves_the_info_marker() -> None:
    m = build_metrics()
    m.set_served_version("m", 1)
    m.set_served_version("m", 2)
    assert value(m, "driftline_served_model_version", model="m") == 2
    assert value(m, "driftline_served_model_info", model="m", version="2") == 1
    assert value(m, "driftline_served_model_info", model="m", version="1") is None


def test_model_metrics_keep_only_recent_versions() -> None:
    m = build_metrics()
    m.keep_versions = 2
    for version in (1, 2, 3):
        m.set_model_metrics("m", version, {"accuracy": 0.5 + version / 10, "rolling_accuracy": 0.6})
    m.set_model_metrics("other", 1, {"accuracy": 0.9})
    assert value(m, "driftline_model_metric", model="m", version="1", metric="accuracy") is None
    assert value(m, "driftline_model_metric", model="m", version="3", metric="accuracy") == pytest.approx(0.8)
    assert value(m, "driftline_model_metric", model="m", version="2", metric="rolling_accuracy") == 0.6
    assert value(m, "driftline_model_metric", model="other", version="1", metric="accuracy") == 0.9
    # Updating a kept version does not evict anything.
    m.set_model_metrics("m", 3, {"accuracy": 0.1})
    assert value(m, "driftline_model_metric", model="m", version="2", metric="accuracy") == pytest.approx(0.7)


def test_release_timestamp_never_moves_backwards() -> None:
    m = build_metrics()
    m.observe_release("m", "incremental", created_at_ms=2_000_000)
    m.observe_release("m", "initial", created_at_ms=1_000_000)
    assert value(m, "driftline_last_release_timestamp_seconds", model="m") == 2000
    assert value(m, "driftline_releases_total", model="m", reason="incremental", stage="train") == 1
    assert value(m, "driftline_releases_total", model="m", reason="initial", stage="train") == 1


def test_consumer_lag_drops_partitions_no_longer_owned() -> None:
    m = build_metrics()
    m.set_consumer_lag("g", {("t", 0): 5, ("t", 1): 7})
    m.set_consumer_lag("g", {("t", 1): 3})
    m.set_consumer_lag("h", {("t", 0): -4})
    assert value(m, "driftline_consumer_lag", topic="t", partition="0", group="g") is None
    assert value(m, "driftline_consumer_lag", topic="t", partition="1", group="g") == 3
    assert value(m, "driftline_consumer_lag", topic="t", partition="0", group="h") == 0


def test_priming_creates_zero_series_for_rare_counters() -> None:
    m = build_metrics()
    m.prime_model("m")
    m.prime_stage("score", ["driftline.features"])
    m.set_worker_up("score")
    assert value(m, "driftline_releases_rejected_total", model="m", reason="signature") == 0
    assert value(m, "driftline_learning_paused", model="m") == 0
    # DriftlineJoinsLost is an increase() alert: a series born at 1 would hide the first lost joins.
    assert value(m, "driftline_joins_total", model="m", outcome="lost") == 0
    assert value(m, "driftline_deadletters_total", stage="score", source_topic="driftline.features") == 0
    assert value(m, "driftline_events_total", stage="score", outcome="deadletter") == 0
    assert value(m, "driftline_worker_up", role="score") == 1
    m.set_worker_up("score", up=False)
    assert value(m, "driftline_worker_up", role="score") == 0


def _samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in m.registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_cached_series_report_what_labels_would_and_go_when_removed() -> None:
    """Metrics.child (a series looked up once): the same exposition as labels() on every call, through version
    changes, a model forgotten and trained again, and series of one name under two models."""
    cached, plain = build_metrics(), build_metrics()
    steps = [
        ("a", 3, {"accuracy": 0.5, "n": 10.0}),
        ("a", 3, {"accuracy": 0.6, "n": 20.0}),
        ("b", 1, {"accuracy": 0.1}),
        ("a", 4, {"accuracy": 0.7, "log_loss": 0.3}),
        ("a", 4, {"accuracy": 0.8, "log_loss": 0.2}),
        ("a", 3, {"accuracy": 0.9}),  # a rollback: an older version served again
    ]
    for i, (model, version, values) in enumerate(steps):
        cached.set_model_metrics(model, version, values)
        cached.child("n_learned", model).set(i)
        cached.child("vocabulary_keys", model, "learned").set(2 * i)
        cached.observe_release(model, "incremental", 1000 * i)
        plain.set_model_metrics(model, version, values)
        plain.n_learned.labels(model=model).set(i)
        plain.vocabulary_keys.labels(model=model, state="learned").set(2 * i)
        plain.observe_release(model, "incremental", 1000 * i)
        if i == 3:
            for m in (cached, plain):
                m.forget_model("a")  # another trainer owns it now; it comes back at the next step
        assert _samples(cached) == _samples(plain), i
    assert cached.registry.get_sample_value("driftline_n_learned", {"model": "a"}) == 5
    assert (
        cached.registry.get_sample_value("driftline_vocabulary_keys", {"model": "a", "state": "learned"})
        == 10
    )


def test_model_metrics_follow_a_rollback_to_an_older_version() -> None:
    """The served version after a rollback is an older number: its series stay and the newer one goes."""
    m = build_metrics()  # keep_versions 1: the served version's only
    m.set_model_metrics("m", 10, {"accuracy": 0.9})
    m.set_model_metrics("m", 5, {"accuracy": 0.8})
    m.set_model_metrics("m", 5, {"accuracy": 0.7})
    assert value(m, "driftline_model_metric", model="m", version="5", metric="accuracy") == pytest.approx(0.7)
    assert value(m, "driftline_model_metric", model="m", version="10", metric="accuracy") is None


def test_the_http_exposition_holds_only_documented_families() -> None:
    """Found from outside (session 28): /metrics also served a ``driftline_*_created`` gauge per counter and
    histogram (prometheus_client's creation timestamps), families docs/metrics.md does not list."""
    import re
    import urllib.request

    from streams.metrics import METRIC_DOCS, serve_metrics

    m = build_metrics()
    m.prime_model("m")
    m.prime_stage("score", ["driftline.features"])
    m.events.labels(stage="score", outcome="ok").inc()
    server = serve_metrics(m, port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        server.close()
    exposed = dict(re.findall(r"^# TYPE (driftline_\w+) (\w+)$", text, re.M))
    documented = {d.name: d.kind for d in METRIC_DOCS}
    assert exposed and exposed == {k: v for k, v in documented.items() if k in exposed}
    assert "_created" not in text
    assert 'driftline_events_total{outcome="ok",stage="score"} 1.0' in text


def test_a_worker_primes_every_configured_model(tmp_path: Path) -> None:
    """Only the default model's rare counters were created at zero: a first rejected release (or lost join) of a
    model listed in routing.models was invisible to the increase() alerts."""
    from driftline.settings import load_settings
    from streams.app import build_app

    overrides = {
        "state_dir": str(tmp_path),
        "model.signing_key": "k" * 32,
        "kafka.bootstrap": "127.0.0.1:1",
        "routing.models": ["tenant-a", "tenant-b"],
    }
    worker = build_app(load_settings(environ={}, overrides=overrides), ("score",))
    try:
        m = worker.ctx.metrics
        for model in ("default", "tenant-a", "tenant-b"):
            assert value(m, "driftline_releases_rejected_total", model=model, reason="signature") == 0, model
            assert value(m, "driftline_joins_total", model=model, outcome="lost") == 0, model
    finally:
        worker.close()


def _model_gauges(m: Metrics, model: str) -> set[str]:
    """Names of the gauge series ``m`` exports for ``model`` (counters and histograms stay with their process)."""
    kinds = {f.name: f.type for f in m.registry.collect()}
    return {
        name for (name, labels), _ in _samples(m).items()
        if ("model", model) in labels and kinds.get(name) == "gauge"
    }  # fmt: skip


def test_a_trainer_that_lost_a_model_exports_none_of_its_gauges() -> None:
    """After a rebalance the old owner of a model must stop exporting its gauges: a served version, model metrics
    or last release time left behind are stale for good (DriftlineServedAccuracyLow joins model_metric with
    served_model_info across instances, so a bad accuracy at the handover kept firing after the new owner
    recovered). A process that also scores keeps the served version and release time: its scorer owns them."""
    m = build_metrics()
    for model in ("a", "b"):
        m.set_served_version(model, 3)
        m.set_model_metrics(model, 3, {"rolling_accuracy": 0.4})
        m.observe_release(model, "incremental", 1_000)
        m.child("n_learned", model).set(10)
    m.forget_model("a")
    assert _model_gauges(m, "a") == set()
    assert {"driftline_served_model_version", "driftline_model_metric"} <= _model_gauges(m, "b")
    # Owned again later (another rebalance): every series comes back, an older release time included.
    m.set_served_version("a", 3)
    m.set_model_metrics("a", 3, {"rolling_accuracy": 0.9})
    m.observe_release("a", "incremental", 500)
    assert value(m, "driftline_served_model_info", model="a", version="3") == 1
    assert value(m, "driftline_model_metric", model="a", version="3", metric="rolling_accuracy") == 0.9
    assert value(m, "driftline_last_release_timestamp_seconds", model="a") == 0.5
    m.forget_model("b", served=False)  # a process that also scores (role all)
    assert _model_gauges(m, "b") == {
        "driftline_served_model_version",
        "driftline_served_model_info",
        "driftline_last_release_timestamp_seconds",
    }


def test_a_process_without_a_trainer_exports_no_trainer_gauges() -> None:
    # Session 31: every score and join worker exported driftline_learning_paused{model} 0 and held_examples 0
    # while the trainer had paused learning and held labels (1 and 100 on its own endpoint): a scrape of a scorer
    # said the opposite of the truth.
    m = build_metrics()
    m.prime_model("m", trainer=False)
    assert value(m, "driftline_learning_paused", model="m") is None
    assert value(m, "driftline_held_examples", model="m") is None
    assert value(m, "driftline_joins_total", model="m", outcome="lost") == 0  # the rest is primed as before
    # DriftlineReleaseWithheld is an increase() alert on a trainer's counter: primed where a trainer runs only.
    assert value(m, "driftline_releases_withheld_total", model="m", reason="allow_list") is None
    m.prime_model("m", trainer=True)
    assert value(m, "driftline_learning_paused", model="m") == 0
    assert value(m, "driftline_releases_withheld_total", model="m", reason="allow_list") == 0
    assert value(m, "driftline_releases_withheld_total", model="m", reason="load") == 0
