"""Prometheus metrics for driftline workers.

Nothing is registered at import time: a worker calls :func:`build_metrics` once with its own registry (a fresh
``CollectorRegistry`` by default) and :func:`serve_metrics` to expose it over HTTP. :data:`METRIC_DOCS` is
the single source for the metric names, types, labels and help texts: the metric objects are built from it and
``docs/metrics.md`` is rendered from it (``python -m streams.metrics > docs/metrics.md``).

>>> m = build_metrics()
>>> m.events.labels(stage="score", outcome="ok").inc(3)
>>> m.registry.get_sample_value("driftline_events_total", {"stage": "score", "outcome": "ok"})
3.0
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from driftline import __version__
from driftline.errors import ConfigError

__all__ = [
    "LABEL_VALUES",
    "METRIC_DOCS",
    "MetricDoc",
    "Metrics",
    "MetricsServer",
    "build_metrics",
    "render_metrics_markdown",
    "serve_metrics",
]

log = logging.getLogger(__name__)

# Buckets: per-event work is sub-millisecond, a batch or a model swap can take seconds.
FAST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# End to end includes Kafka hops and batching timeouts: milliseconds to tens of seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Labels arrive seconds to a day after their event.
LABEL_DELAY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
BATCH_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0)

# Reasons a scorer refuses a release; ``prime_model`` creates them at zero so an alert sees the first one.
REJECT_REASONS = ("signature", "sha256", "replay", "allow_list")
# Reasons the trainer refuses a control command before validating it (streams/control.py).
CONTROL_REFUSALS = ("unsigned", "signature", "stale", "replay")
# Reasons the trainer withholds a release (learners.lifecycle.Withheld.problem): a scorer's loader would refuse it.
WITHHELD_REASONS = ("allow_list", "load")
# Reasons the trainer refuses a changelog record at restore (streams/trainers.py ``_sealed_state``).
CHANGELOG_REFUSALS = ("signature", "tombstone", "model", "allow_list", "load")


@dataclass(frozen=True)
class MetricDoc:
    """One metric family: exposed name, type, labels, help text and the ``Metrics`` attribute holding it."""

    name: str
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    attr: str
    buckets: tuple[float, ...] | None = None


METRIC_DOCS: tuple[MetricDoc, ...] = (
    MetricDoc("driftline_events_total", "counter", ("stage", "outcome"),
              "Input records handled per stage (score, join, train, control) and outcome (ok, deadletter; control also "
              "refused: a valid command the model's state does not allow); a dead-lettered record "
              "counts once here (outcome deadletter) and once in driftline_deadletters_total; a scored event counts "
              "(outcome ok) once its Prediction is acknowledged by the broker, its join context stored and the "
              "TrainingExamples of labels it joined acknowledged (once: a batch redone after a failure counts once).",
              "events"),
    MetricDoc("driftline_processing_seconds", "histogram", ("stage",),
              "Time to process one batch of records in a stage (per batch, not per event).",
              "processing_seconds", FAST_BUCKETS),
    MetricDoc("driftline_end_to_end_latency_seconds", "histogram", (),
              "Per event: wall-clock time from the event's ts to its prediction being published.",
              "end_to_end_latency", LATENCY_BUCKETS),
    MetricDoc("driftline_batch_size", "histogram", ("stage",),
              "Number of records in each batch a stage processes.", "batch_size", BATCH_BUCKETS),
    MetricDoc("driftline_served_model_version", "gauge", ("model",),
              "Model version this worker serves (scorer) or trains (trainer).", "served_model_version"),
    MetricDoc("driftline_served_model_info", "gauge", ("model", "version"),
              "Always 1 for the version being served; joins version-labelled series to the served one.",
              "served_model_info"),
    MetricDoc("driftline_model_metric", "gauge", ("model", "version", "metric"),
              "Trainer: prequential metric (accuracy, rolling_accuracy...) of the served version only; series of "
              "versions no longer served are removed.",
              "model_metric"),
    MetricDoc("driftline_n_learned", "gauge", ("model",),
              "Trainer: labelled examples learned in the current champion's lineage, each once.", "n_learned"),
    MetricDoc("driftline_vocabulary_keys", "gauge", ("model", "state"),
              "Trainer: feature keys the champion's lineage learned (state learned) and left unlearned because its "
              "vocabulary was full (state refused, counted per example: 4,096 keys for a linear model, 256 for a "
              "tree, and a cap on one-hot values per feature; a growing count means new feature names or values "
              "the model ignores).", "vocabulary_keys"),
    MetricDoc("driftline_learning_paused", "gauge", ("model",),
              "Trainer: 1 while learning is paused by a control command, else 0.", "learning_paused"),
    MetricDoc("driftline_paused_examples_total", "counter", ("model", "outcome"),
              "Labelled examples that reached the trainer while learning was paused: held (kept for resume), "
              "discarded (pause --discard), learned (held ones learned on resume).", "paused_examples"),
    MetricDoc("driftline_held_examples", "gauge", ("model",),
              "Labelled examples held by the trainer now, waiting for learning to resume.", "held_examples"),
    MetricDoc("driftline_control_refused_total", "counter", ("model", "reason"),
              "Control commands the trainer refused before applying them: unsigned, signature, stale, replay.",
              "control_refused"),
    MetricDoc("driftline_input_warnings_total", "counter", ("model", "kind"),
              "Silent input changes in labelled examples, one per change (not per example): feature_type (a "
              "feature's value type changed from the one it had), new_class (a label class the model has never "
              "seen); each also published on the drift topic.",
              "input_warnings"),
    MetricDoc("driftline_drift_alarms_total", "counter", ("model", "detector", "signal"),
              "Drift events published, per detector (adwin, page_hinkley, schema) and signal (error, loss, "
              "feature:<name>, feature_type:<name>, label:new_class).",
              "drift_alarms"),
    MetricDoc("driftline_guard_decisions_total", "counter", ("model", "outcome", "reason"),
              "Guard decisions on candidates, per outcome (promote, reject, rollback, keep) and reason.",
              "guard_decisions"),
    MetricDoc("driftline_releases_total", "counter", ("model", "reason", "stage"),
              "Releases published (stage train) or accepted and loaded (stage score), per reason.", "releases"),
    MetricDoc("driftline_releases_rejected_total", "counter", ("model", "reason"),
              "Release records refused by verification, per reason (signature, sha256, replay, allow_list, ...): "
              "by a scorer before loading, by the trainer when choosing the next version.",
              "releases_rejected"),
    MetricDoc("driftline_releases_withheld_total", "counter", ("model", "reason"),
              "Trainer: releases not published because the scorers' loader would refuse their artifact (reason "
              "allow_list: over the size or object cap or a class outside the allow-list; load: it does not "
              "unpickle) or no record can carry it (too_large: over model.max_inline_bytes with no "
              "model.artifact_store); the served model stays the champion. Counted once per check (at most one "
              "per 500 labels of the same champion).", "releases_withheld"),
    MetricDoc("driftline_changelog_rejected_total", "counter", ("reason",),
              "Trainer: changelog records refused at restore, per reason (signature: not sealed with the signing "
              "key; tombstone; model: a state sealed for another model; stale: a record older than one read before "
              "it, published again; allow_list: sealed with the key but refused by the restricted loader, a class "
              "outside the state's allow-list or over a cap; load: sealed but not unpicklable); the model's newest "
              "sealed state that loads is restored instead.", "changelog_rejected"),
    MetricDoc("driftline_last_release_timestamp_seconds", "gauge", ("model",),
              "created_at of the newest release seen, in seconds since the epoch.", "last_release_timestamp"),
    MetricDoc("driftline_model_swap_seconds", "histogram", ("model",),
              "Scorer: time to verify and unpickle a new release (off the event loop; the swap itself is one "
              "reference assignment between batches).", "model_swap_seconds", FAST_BUCKETS),
    MetricDoc("driftline_models_unloaded_total", "counter", ("model",),
              "Scorer: models unloaded to stay within serving.model_memory_mb (loaded again, verified, on their "
              "next event).", "models_unloaded"),
    MetricDoc("driftline_trainer_owned_models", "gauge", (),
              "Trainer: models this trainer owns (their training partitions are assigned to it).",
              "owned_models"),
    MetricDoc("driftline_trainer_transactions_total", "counter", ("outcome",),
              "Trainer: Kafka transactions (releases, changelog and input offsets together) by outcome: "
              "committed, aborted, fenced.", "transactions"),
    MetricDoc("driftline_pending_joins", "gauge", ("model",),
              "Predictions waiting for their label in the join store (one store per deployment, shared by "
              "every model: model is the workers' model.name).", "pending_joins"),
    MetricDoc("driftline_joins_total", "counter", ("model", "outcome"),
              "Label joins per outcome (joined, duplicate, parked, expired, orphan, lost); joined and lost name "
              "the example's model, the others the workers' model.name (a Label names no model).", "joins"),
    MetricDoc("driftline_label_delay_seconds", "histogram", (),
              "Label ts minus event ts, observed at join time.", "label_delay", LABEL_DELAY_BUCKETS),
    MetricDoc("driftline_deadletters_total", "counter", ("stage", "source_topic"),
              "Input records sent to the deadletter topic, each once, per stage and the topic they came from.",
              "deadletters"),
    MetricDoc("driftline_consumer_lag", "gauge", ("topic", "partition", "group"),
              "Messages not yet handled: between the group's committed offset (or the first offset this member has "
              "not handled, a second ahead of it) and the partition's end. Refreshed every 5 s, and at every retry "
              "of a batch that fails (a stalled partition shows its lag growing).", "consumer_lag"),
    MetricDoc("driftline_consumer_restarts_total", "counter", ("group",),
              "Consumers (score, join, train) recreated by their watchdog: no progress for 2x the session timeout.",
              "consumer_restarts"),
    MetricDoc("driftline_producer_restarts_total", "counter", (),
              "Output producers whose client was replaced: it held records with no delivery report for 30 s while "
              "a fresh client saw every partition it writes with a leader and in-sync replicas (librdkafka stuck "
              "after a broker restart); its records were sent again through a new client (the log line says how "
              "many).", "producer_restarts"),
    MetricDoc("driftline_fairness_rate", "gauge", ("model", "segment", "rate"),
              "The served model's outcome rate per segment of model.segment_feature, over its last labelled "
              "examples: positive_rate, tpr, fpr, accuracy (mae for regression), and n.", "fairness_rate"),
    MetricDoc("driftline_fairness_gap", "gauge", ("model", "gap"),
              "Max minus min of a rate across segments with enough examples (30): demographic_parity, "
              "equalized_odds, accuracy (mae for regression); absent until two segments have them.",
              "fairness_gap"),
    MetricDoc("driftline_worker_up", "gauge", ("role",),
              "1 while a worker role runs in this process, 0 once it stopped.", "worker_up"),
    MetricDoc("driftline_build_info", "gauge", ("version",),
              "Always 1; the driftline version of this process.", "build_info"),
)  # fmt: skip

# Documented label values; workers may add outcomes or reasons, the rules and dashboard use these.
LABEL_VALUES: dict[str, str] = {
    "stage": "score, join, train, control",
    "outcome (events)": "ok, deadletter, duplicate, parked, expired, orphan, skipped",
    "outcome (joins)": "joined, duplicate, parked, expired, orphan, lost",
    "outcome (guard)": "promote, reject, rollback, keep",
    "reason (releases)": "initial, incremental, challenger, manual, rollback",
    "reason (rejected)": ", ".join(REJECT_REASONS) + " (plus any other verification failure)",
    "detector": "adwin, page_hinkley (the defaults; else the configured drift.*_detector), schema",
    "signal": "error, loss, feature:<name>, feature_type:<name>, label:new_class",
    "role": "score, join, train",
    "rate": "positive_rate, tpr, fpr, accuracy, mae, n",
    "gap": "demographic_parity, equalized_odds, accuracy, mae",
}


@dataclass
class Metrics:
    """Every driftline metric object, registered on ``registry``. Build it with :func:`build_metrics`."""

    registry: CollectorRegistry
    events: Counter
    processing_seconds: Histogram
    end_to_end_latency: Histogram
    batch_size: Histogram
    served_model_version: Gauge
    served_model_info: Gauge
    model_metric: Gauge
    n_learned: Gauge
    vocabulary_keys: Gauge
    learning_paused: Gauge
    paused_examples: Counter
    held_examples: Gauge
    control_refused: Counter
    input_warnings: Counter
    drift_alarms: Counter
    guard_decisions: Counter
    releases: Counter
    releases_rejected: Counter
    releases_withheld: Counter
    changelog_rejected: Counter
    last_release_timestamp: Gauge
    model_swap_seconds: Histogram
    models_unloaded: Counter
    owned_models: Gauge
    transactions: Counter
    pending_joins: Gauge
    joins: Counter
    label_delay: Histogram
    deadletters: Counter
    consumer_lag: Gauge
    consumer_restarts: Counter
    producer_restarts: Counter
    fairness_rate: Gauge
    fairness_gap: Gauge
    worker_up: Gauge
    build_info: Gauge
    keep_versions: int = 1  # model_metric series kept per model: the served version's only
    _served: dict[str, str] = field(default_factory=dict, repr=False)
    _metric_versions: dict[str, list[tuple[str, tuple[str, ...]]]] = field(default_factory=dict, repr=False)
    _lag_series: dict[str, set[tuple[str, str]]] = field(default_factory=dict, repr=False)
    _last_release: dict[str, float] = field(default_factory=dict, repr=False)
    # Series looked up once (:meth:`child`); an entry goes with its series whenever this class removes one.
    _children: dict[tuple[str, tuple[str, ...]], Any] = field(default_factory=dict, repr=False)

    def child(self, attr: str, *values: str) -> Any:
        """``getattr(self, attr).labels(*values)``, looked up once per label set: prometheus_client's ``labels()``
        checks and converts its arguments and takes a lock on every call (~2.5 us; a trainer's status sets ~25
        series per transaction, a release two). Only for series this class removes itself (it forgets them
        here too): one removed elsewhere would leave a child that no longer reports."""
        key = (attr, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = getattr(self, attr).labels(*values)
        return found

    def _remove(self, attr: str, *values: str) -> None:
        self._children.pop((attr, values), None)
        getattr(self, attr).remove(*values)

    def prime_model(self, model: str, trainer: bool = True) -> None:
        """Create zero series for ``model``'s rare counters so an ``increase`` alert sees the first event; and, in
        a process that trains (``trainer``), its trainer gauges at 0 (a scorer's 0 would contradict the trainer's
        ``learning_paused`` 1 in any query that does not take the maximum)."""
        for reason in REJECT_REASONS:
            self.releases_rejected.labels(model=model, reason=reason)
        if trainer:
            self.learning_paused.labels(model=model).set(0)
            self.held_examples.labels(model=model).set(0)
            for reason in WITHHELD_REASONS:  # the DriftlineReleaseWithheld alert
                self.releases_withheld.labels(model=model, reason=reason)
        for outcome in ("held", "discarded", "learned"):
            self.paused_examples.labels(model=model, outcome=outcome)
        for reason in CONTROL_REFUSALS:
            self.control_refused.labels(model=model, reason=reason)
        self.joins.labels(model=model, outcome="lost")  # the DriftlineJoinsLost alert

    def forget_model(self, model: str, served: bool = True) -> None:
        """Drop the trainer gauges of a model this process no longer trains (another trainer owns it now): left
        behind, they would report the handover's values for good next to the new owner's. ``served``: also the
        served version and last release time, which a scorer in the same process sets too (False there)."""
        for gauge in ("n_learned", "learning_paused", "held_examples"):
            with contextlib.suppress(KeyError):
                self._remove(gauge, model)
        for state in ("learned", "refused"):
            with contextlib.suppress(KeyError):
                self._remove("vocabulary_keys", model, state)
        for version, names in self._metric_versions.pop(model, []):
            for name in names:
                with contextlib.suppress(KeyError):
                    self._remove("model_metric", model, version, name)
        if not served:
            return
        old = self._served.pop(model, None)
        with contextlib.suppress(KeyError):
            self.served_model_version.remove(model)
        if old is not None:
            with contextlib.suppress(KeyError):
                self.served_model_info.remove(model, old)
        if self._last_release.pop(model, None) is not None:
            with contextlib.suppress(KeyError):
                self._remove("last_release_timestamp", model)

    def prime_stage(self, stage: str, source_topics: Iterable[str] = ()) -> None:
        """Create zero series for a stage's counters (events ok/deadletter, dead letters per source topic)."""
        for outcome in ("ok", "deadletter"):
            self.events.labels(stage=stage, outcome=outcome)
        for topic in source_topics:
            self.deadletters.labels(stage=stage, source_topic=topic)

    def set_worker_up(self, role: str, up: bool = True) -> None:
        """Mark a worker role as running (1) or stopped (0) in this process."""
        self.worker_up.labels(role=role).set(1 if up else 0)

    def set_served_version(self, model: str, version: int) -> None:
        """Record the served version, moving the ``served_model_info`` marker to it (nothing to do when unchanged:
        a trainer calls this after every batch)."""
        old = self._served.get(model)
        if old == str(version):
            return
        if old is not None:
            self.served_model_info.remove(model, old)
        self._served[model] = str(version)
        self.served_model_version.labels(model=model).set(version)
        self.served_model_info.labels(model=model, version=str(version)).set(1)

    def set_model_metrics(self, model: str, version: int, values: Mapping[str, float]) -> None:
        """Set ``driftline_model_metric`` for one version; only the ``keep_versions`` versions set most recently are
        kept (not the highest numbers: after a rollback the served version is an older one, and it is the one set).

        Pruning keeps the ``version`` label's cardinality bounded over a long-running deployment.
        """
        ver = str(version)
        known = self._metric_versions.setdefault(model, [])
        child = self.child
        for name, value in values.items():
            child("model_metric", model, ver, name).set(value)
        names = tuple(values)
        if known and known[-1] == (ver, names):
            return  # the same version and names as the last call (a trainer's status after every batch)
        for i, (v, old_names) in enumerate(known):
            if v == ver:
                names = tuple(dict.fromkeys(old_names + names))
                del known[i]
                break
        known.append((ver, names))  # least recently set first
        while len(known) > self.keep_versions:
            v, old_names = known.pop(0)
            for name in old_names:
                self._remove("model_metric", model, v, name)

    def observe_release(
        self, model: str, reason: str, created_at_ms: int | None = None, stage: str = "train"
    ) -> None:
        """Count a release, published (``stage`` train) or loaded (score), and remember when the newest one was
        created (for the 'no release' alert). The stage keeps a ``--role all`` worker, which does both, from
        counting each release twice in one series."""
        self.child("releases", model, reason, stage).inc()
        ts = created_at_ms / 1000.0 if created_at_ms is not None else time.time()
        # A replayed old release (compacted topic at start-up) must not move the clock backwards. (Remembered here:
        # reading it back from the registry collects every series, which cost a fifth of a trainer's time.)
        if ts > self._last_release.get(model, float("-inf")):
            self._last_release[model] = ts
            self.child("last_release_timestamp", model).set(ts)

    def set_consumer_lag(self, group: str, lags: Mapping[tuple[str, int], int]) -> None:
        """Replace the lag series of ``group`` with ``lags`` ({(topic, partition): lag}).

        Partitions this worker no longer owns after a rebalance are removed, so they do not report stale lag.
        """
        new = {(topic, str(partition)) for topic, partition in lags}
        for topic, part in self._lag_series.get(group, set()) - new:
            self.consumer_lag.remove(topic, part, group)
        for (topic, partition), lag in lags.items():
            self.consumer_lag.labels(topic=topic, partition=str(partition), group=group).set(max(lag, 0))
        self._lag_series[group] = new


def build_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create every metric of :data:`METRIC_DOCS` on ``registry`` (a fresh ``CollectorRegistry`` if None).

    Calling it twice with two registries is fine; twice on one registry raises ``ValueError`` (duplicate).
    """
    reg = registry if registry is not None else CollectorRegistry(auto_describe=True)
    objects: dict[str, Any] = {}
    for doc in METRIC_DOCS:
        if doc.kind == "counter":
            objects[doc.attr] = Counter(doc.name, doc.help, doc.labels, registry=reg)
        elif doc.kind == "gauge":
            objects[doc.attr] = Gauge(doc.name, doc.help, doc.labels, registry=reg)
        else:
            buckets = doc.buckets or Histogram.DEFAULT_BUCKETS
            objects[doc.attr] = Histogram(doc.name, doc.help, doc.labels, registry=reg, buckets=buckets)
    metrics = Metrics(registry=reg, **objects)
    metrics.build_info.labels(version=__version__).set(1)
    return metrics


@dataclass
class MetricsServer:
    """A running metrics HTTP server; ``port`` is the real port (useful when asked for port 0)."""

    server: WSGIServer
    thread: Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """The scrape URL (``http://host:port/metrics``)."""
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(metrics: Metrics, host: str = "127.0.0.1", port: int = 9108) -> MetricsServer:
    """Serve ``metrics.registry`` over HTTP on ``host:port`` in a daemon thread (port 0 picks a free port).

    prometheus_client would add a ``<name>_created`` gauge (the series' creation time) to every counter and
    histogram: undocumented ``driftline_*`` families that double the series count and that no dashboard or alert
    reads (Prometheus's own counter-reset handling does not need them). Turned off for the process here, where
    a worker starts serving, rather than at import.
    """
    disable_created_metrics()
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise ConfigError(
            f"metrics.port: cannot listen on {host}:{port} ({exc}); is another worker using it?"
        ) from exc
    real_port = int(server.server_port)
    log.info("serving metrics on http://%s:%d/metrics", host, real_port)
    return MetricsServer(server=server, thread=thread, host=host, port=real_port)


def render_metrics_markdown() -> str:
    """Render ``docs/metrics.md`` from :data:`METRIC_DOCS` and :data:`LABEL_VALUES`."""
    lines = [
        "# Metrics",
        "",
        "<!-- Generated by `python -m streams.metrics > docs/metrics.md`; edit METRIC_DOCS instead. -->",
        "",
        "Every worker serves Prometheus metrics at `http://<metrics.host>:<metrics.port>/metrics`",
        "(`DRIFTLINE_METRICS_PORT`, default 9108). Counters end in `_total`, durations are `_seconds`",
        "histograms. Alert rules: `deploy/prometheus/rules/driftline.yml`; dashboard:",
        "`deploy/grafana/dashboards/driftline.json`.",
        "",
        "| name | type | labels | help |",
        "|---|---|---|---|",
    ]
    for doc in METRIC_DOCS:
        labels = ", ".join(f"`{label}`" for label in doc.labels) or "-"
        lines.append(f"| `{doc.name}` | {doc.kind} | {labels} | {_escape(doc.help)} |")
    lines += ["", "## Label values", "", "| label | values |", "|---|---|"]
    lines += [f"| {label} | {_escape(values)} |" for label, values in LABEL_VALUES.items()]
    lines += [
        "",
        "## Notes",
        "",
        "- Histogram buckets: processing and model swap 0.1 ms to 10 s; end-to-end latency 1 ms to 60 s;",
        "  label delay 1 s to 1 day; batch size 1 to 5000.",
        "- `driftline_model_metric` keeps series for the served version only (older versions' series are",
        "  removed), so the `version` label stays bounded. Scorers and trainers both export",
        "  `driftline_served_model_info`, so collapse it to one series per (model, version) before the join.",
        "  Join it to the served version with",
        "  `driftline_model_metric * on (model, version) group_left "
        "max by (model, version) (driftline_served_model_info)`.",
        "- Rare counters (rejected releases, dead letters, deadletter outcomes, lost joins) are created at zero when a",
        "  worker starts, so `increase()` in an alert sees their first increment.",
        "- A trainer that loses a model to another (a rebalance) removes that model's gauges (served version,",
        "  `driftline_model_metric`, n_learned, last release time...); its counters stay, as counters do.",
        "",
    ]
    return "\n".join(lines)


def _escape(text: str) -> str:
    # Markdown renderers would read ``<name>`` as an HTML tag and drop it.
    return text.replace("<", "&lt;").replace(">", "&gt;")


if __name__ == "__main__":
    print(render_metrics_markdown(), end="")
