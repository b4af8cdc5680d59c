"""The ``score`` stage: FeatureEvents in, Predictions out, pending join context into Redis.

Per batch: swap in newly released models if any are waiting, decode every record (bad ones to ``deadletter``),
route each event to its model (``Scorer.route``), predict each model's events as one batch, watch each numeric
feature with Page-Hinkley (per model) and queue the Predictions (:meth:`Scorer.process`). Once they are
acknowledged, store the join contexts in Redis in one round trip and join the labels that were waiting for these
predictions (:meth:`Scorer.publish_contexts`); once those TrainingExamples are acknowledged too, the input batch may
be acknowledged.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from connectors.redis_store import JoinStore
from driftline.errors import ConfigError, SchemaError
from driftline.settings import check_model_name
from driftline.util import now_ms
from learners.batch import BatchPredictor, batch_predictor
from learners.drift import FeatureDriftMonitor
from learners.explain import explain_one
from streams.join import build_training_example, empty_id, label_delay_seconds, parked_label
from streams.releases import LoadedModel, ReleaseFollower
from streams.runtime import RawRecord, WorkerContext
from streams.teardown import reap

#: The feature-drift monitors run on a model's events once this many are buffered (or ``WATCH_WITHIN_S`` after the
#: first, or when the worker idles or adopts a release): one vectorised pass over a block instead of the per-event
#: path each small batch takes (33 us per event at batches of 2, ~6 at 256, 20 features). The alarms are the same
#: ones at the same event indices (``FeatureDriftMonitor.update_many`` equals per-event updates), a little later.
WATCH_EVERY = 256
WATCH_WITHIN_S = 0.5

log = logging.getLogger(__name__)

# A routing feature's boolean, in any case, names the model of JSON's spelling (Scorer.route).
_BOOL_WORDS = frozenset(("true", "false"))


def observe_many(histogram: Any, values: list[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``: for a prometheus_client Histogram, its per-bucket counters
    and sum updated once per batch (``observe`` per event was a few percent of the scorer's CPU); anything else
    observes one by one."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if not values:
        return
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for v in values:
            histogram.observe(v)
        return
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect_left(bounds, v)] += 1  # the first bucket whose bound is >= v, as observe() picks it
    total.inc(sum(values))
    for i, n in enumerate(counts):
        if n:
            buckets[i].inc(n)


@dataclass
class Scored:
    """A batch scored and its Predictions queued; its join contexts are stored once those are acknowledged."""

    scored_at: int
    contexts: list[tuple[str, bytes]] = field(default_factory=list)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each context's input record as ``topic:partition:offset`` (JoinStore.put_predictions: a parked label is
    # handed back again only to the record that claimed it, scored again after a crash; not to a duplicate event).
    tokens: list[str] = field(default_factory=list)

    @staticmethod
    def merged(batches: list[Scored]) -> Scored:
        """Consecutive batches as one, in order, for one Redis round trip (``streams.finisher``); the newest
        batch's time stamps the contexts' expiry."""
        if len(batches) == 1:
            return batches[0]
        out = Scored(max(b.scored_at for b in batches))
        for b in batches:
            out.contexts.extend(b.contexts)
            out.predictions.update(b.predictions)
            out.tokens.extend(b.tokens)
        return out


@dataclass
class Served:
    """One model as this scorer serves it: the model, its version, its batch path and its artifact size."""

    model: Any
    version: int
    batch: BatchPredictor
    size: int


class Scorer:
    """Serves every model of the deployment (routed per event); one instance per worker process.

    Each model swaps on its own (atomically, between batches). Loaded models are kept within
    ``serving.model_memory_mb`` by artifact size: past it the least recently used one is unloaded, and loaded
    again (verified) from its newest release when its next event comes.
    """

    def __init__(self, ctx: WorkerContext, follower: ReleaseFollower, store: JoinStore) -> None:
        self.ctx = ctx
        self.follower = follower
        self.store = store
        self.served: OrderedDict[str, Served] = OrderedDict()  # least recently used first
        self.versions: dict[str, int] = {}  # newest version adopted per model (kept when unloaded)
        self.features_drift: dict[str, FeatureDriftMonitor] = {}
        self.indices: dict[str, int] = {}
        self._watching: dict[
            str, tuple[float, list[dict[str, Any]]]
        ] = {}  # model -> (first buffered, features)
        s = ctx.settings
        self.default = s.default_model
        self.routing = s.routing
        # Where a routed name came from, for a refusal (built once: route() runs per record).
        self._feature_where = f"feature {s.routing.feature!r} (routing.feature)"
        # The models this scorer answers (routing.max_models bounds how many; the configured ones always count).
        self._known: dict[str, None] = dict.fromkeys([self.default, *s.routing.models])
        self.budget = s.serving.model_memory_mb * 1024 * 1024
        self._task = s.model.task
        self._topic = s.topic("features")
        self._out_topic = s.topic("predictions")
        self._avro_out = s.serving.output_encoding == "avro"
        self._explain = s.model.explain
        # A FeatureEvent's features, as written (Avro, current schema), are copied into its Prediction rather than
        # encoded again (a sixth of a batch's scoring): only while both records give the field the same type.
        codec = ctx.codec
        self._keep_features = codec.field_type("FeatureEvent", "features") == codec.field_type(
            "Prediction", "features"
        )
        m = ctx.metrics
        self._metrics = (  # labelled children looked up once, not per batch
            m.events.labels(stage="score", outcome="ok"),
            m.batch_size.labels(stage="score"),
            m.processing_seconds.labels(stage="score"),
        )

    # The default model, for callers (and tests) of a single-model deployment.
    @property
    def model(self) -> Any:
        served = self.served.get(self.default)
        return None if served is None else served.model

    @property
    def version(self) -> int:
        return self.versions.get(self.default, 0)

    @property
    def batch(self) -> BatchPredictor | None:
        served = self.served.get(self.default)
        return None if served is None else served.batch

    def idle(self) -> bool:
        """Nothing to score: run the feature monitors on what they hold, then adopt new releases."""
        for name in list(self._watching):
            self._flush_watch(name)
        return self.maybe_swap()

    def maybe_swap(self) -> bool:
        """Between batches: adopt the newest verified release of each model, if any (atomic per model)."""
        swapped = False
        while (loaded := self.follower.take()) is not None:
            swapped = self._adopt(loaded.name or self.default, loaded) or swapped
        return swapped

    def _adopt(self, name: str, loaded: LoadedModel) -> bool:
        if loaded.version <= self.versions.get(name, 0) and name in self.served:
            reap(loaded)  # not adopted: freed in pieces like a replaced model
            return False
        batch = batch_predictor(loaded.model)  # before the swap: a failure here leaves the old model serving
        self._flush_watch(name)  # drift events name the version that scored their events
        artifact = loaded.release.get("artifact")
        size = len(artifact) if isinstance(artifact, bytes | bytearray) else 1 << 20
        old = self.served.pop(name, None)
        self.served[name] = Served(loaded.model, loaded.version, batch, size)
        self.versions[name] = loaded.version
        # Dropping the old model here would free its ~500k objects in one go on the event loop (50-130 ms for a
        # 40-tree forest): the reaper takes it over and frees it in pieces in its own thread.
        if old is not None:
            reap(old.model)
        del old
        self.ctx.metrics.set_served_version(name, loaded.version)
        self.follower.served(name, loaded.version)
        log.info("scorer now serving %s v%d", name, loaded.version)
        self._within_budget(keep=name)
        return True

    def _within_budget(self, keep: str) -> None:
        total = sum(s.size for s in self.served.values())
        while total > self.budget and len(self.served) > 1:
            name = next(n for n in self.served if n != keep)
            evicted = self.served.pop(name)
            total -= evicted.size
            reap(evicted.model)
            self.ctx.metrics.models_unloaded.labels(model=name).inc()
            log.info("scorer unloaded %s v%d (serving.model_memory_mb)", name, evicted.version)

    def _serving(self, name: str) -> Served | None:
        served = self.served.get(name)
        if served is not None:
            self.served.move_to_end(name)
            return served
        if name not in self.versions:
            return None  # no release of this model yet: predictions are null until its trainer publishes one
        loaded = self.follower.reload(name)  # unloaded for memory: load its newest release again
        if loaded is None:
            return None
        self._adopt(name, loaded)
        return self.served.get(name)

    def route(self, event: dict[str, Any], key: bytes | None) -> str:
        """The model answering ``event``: its ``model`` field, else the routing feature, else the record key
        (``routing.by_key``), else the default model. A routing feature's value names one model however it was
        sent: 7, 7.0 and "7" route to "7"; true (JSON or Avro boolean), "true" and "True" to "true".
        Raises SchemaError for a name no model can have."""
        name, where = event.get("model"), "FeatureEvent.model"
        if name is None and self.routing.feature is not None:
            value = event["features"].get(self.routing.feature)
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # 7.0 (a JSON producer's 7 through Avro's double) routes with 7
            elif isinstance(value, bool):
                value = "true" if value else "false"  # JSON true / Avro boolean: "true", not "True"
            elif type(value) is str and len(value) <= 5 and value.lower() in _BOOL_WORDS:
                value = value.lower()  # "True" (Python's str(True)) and "TRUE" route with "true"
            name = None if value is None else str(value)
            where = self._feature_where
        if name is None and self.routing.by_key and key:
            name, where = key.decode("utf-8", "replace"), "record key (routing.by_key)"
        if name is None:
            return self.default
        try:
            name = check_model_name(name, where)
        except ConfigError as exc:
            raise SchemaError(str(exc)) from None
        known = self._known
        if name not in known:
            if len(known) >= self.routing.max_models and name not in self.versions:
                raise SchemaError(
                    f"{where} {name!r} would be model number {len(known) + 1} of this scorer, past "
                    f"routing.max_models ({self.routing.max_models}); raise it if that many models are meant, "
                    "else check what sets the event's model (an id there makes one model per event)"
                )
            known[name] = None
        return name

    def predict(
        self, features: dict[str, Any], name: str | None = None
    ) -> tuple[Any, dict[str, float] | None]:
        served = self._serving(name or self.default)
        if served is None:
            return None, None
        if self._task == "classification":
            pred, proba = served.model.predict_with_proba(features)
            return pred, {str(k): float(v) for k, v in proba.items()} or None
        return served.model.predict_one(features), None

    def predict_many(self, xs: list[dict[str, Any]], name: str | None = None) -> list[Any]:
        """``predict`` for a batch, in order; an event the model raises on gets its exception (dead-lettered alone)."""
        served = self._serving(name or self.default)
        if served is None:
            return [(None, None)] * len(xs)
        if self._task != "classification":
            return [self._predict_or_error(x, served) for x in xs]
        return [
            a if isinstance(a, Exception) else (a[0], {str(k): float(v) for k, v in a[1].items()} or None)
            for a in served.batch.predict_many(xs)
        ]

    @staticmethod
    def _predict_or_error(x: dict[str, Any], served: Served) -> Any:
        try:
            return served.model.predict_one(x), None
        except Exception as exc:
            return exc

    def explain(
        self, name: str, features: dict[str, Any], prediction: Any
    ) -> tuple[str, dict[str, float] | None]:
        """The served model's explanation of one prediction; a failure costs the explanation, never the event."""
        served = self.served.get(name)
        if served is None:
            return "none", None
        try:
            return explain_one(served.model, features, prediction)
        except Exception as exc:
            log.debug("no explanation for %s v%d: %s", name, served.version, exc)
            return "error", None

    def process(self, raws: list[RawRecord]) -> Scored:
        """Score one batch and queue its Predictions; the join contexts wait for :meth:`publish_contexts`."""
        ctx, m = self.ctx, self.ctx.metrics
        t0 = time.perf_counter()
        self.maybe_swap()
        datas = [r.value for r in raws]

        def stamps(i: int) -> int:  # a JSON event's ts when it has none: its Kafka timestamp
            return raws[i].timestamp_ms

        kept: list[bytes | None] | None = None
        if self._keep_features:
            decoded, kept = ctx.codec.decode_many_keeping(
                "FeatureEvent", datas, "features", topic=self._topic, allow_json=True, timestamps=stamps
            )
        else:
            decoded = ctx.codec.decode_many(
                "FeatureEvent", datas, topic=self._topic, allow_json=True, timestamps=stamps
            )
        scored = Scored(now_ms())
        # Route, then score each model's events as one batch.
        groups: dict[str, list[int]] = {}
        for i, (raw, event) in enumerate(zip(raws, decoded, strict=True)):
            if isinstance(event, SchemaError):
                ctx.deadletter("score", raw, event)
                continue
            if not event["id"]:
                ctx.deadletter("score", raw, empty_id("FeatureEvent", self._topic))
                continue
            try:
                name = self.route(event, raw.key)
            except SchemaError as exc:
                ctx.deadletter("score", raw, exc)
                continue
            groups.setdefault(name, []).append(i)
        ready: dict[int, tuple[dict[str, Any], bytes | SchemaError]] = {}
        for name, indices in groups.items():
            ready.update(self._score_group(name, indices, raws, decoded, scored, kept))
        avro_out = self._avro_out
        records: list[tuple[bytes, bytes | None]] = []
        outputs: list[tuple[int, dict[str, Any], bytes]] = []
        for i in sorted(ready):
            raw, (value, context) = raws[i], ready[i]
            try:
                if isinstance(context, SchemaError):
                    raise context
                # Keyed by the event id, as the contract's topic table says (not by the input record's key, which
                # is the entity key when the producer set one).
                records.append(
                    (context if avro_out else ctx.encode_output("predictions", value), value["id"])
                )
            except Exception as exc:
                ctx.deadletter("score", raw, exc)
                continue
            outputs.append((i, value, context))
        # The batch's Predictions in one call to the client (in order; one refused, say too large, is dead-lettered
        # alone, as before).
        refused = ctx.out.produce_many(self._out_topic, records) if records else []
        watched: dict[str, list[dict[str, Any]]] = {}
        latencies: list[float] = []
        for (i, value, context), error in zip(outputs, refused, strict=True):
            raw = raws[i]
            if error is not None:
                ctx.deadletter("score", raw, error)
                continue
            scored.contexts.append((value["id"], context))
            scored.tokens.append(f"{raw.topic}:{raw.partition}:{raw.offset}")
            scored.predictions[value["id"]] = value
            if raw.timestamp_ms:
                latencies.append(max(0.0, (scored.scored_at - raw.timestamp_ms) / 1000.0))
            watched.setdefault(value["model"], []).append(value["features"])
        observe_many(m.end_to_end_latency, latencies)
        for name, features in watched.items():
            self._watch(name, features)
        # events_total{outcome="ok"} is counted by finish, once the batch's finish pass succeeded.
        _, batch_size, seconds = self._metrics
        batch_size.observe(len(raws))
        seconds.observe(time.perf_counter() - t0)
        return scored

    def _score_group(
        self,
        name: str,
        indices: list[int],
        raws: list[RawRecord],
        decoded: list[Any],
        scored: Scored,
        kept: list[bytes | None] | None = None,
    ) -> dict[int, tuple[dict[str, Any], bytes | SchemaError]]:
        """Predict ``name``'s events of the batch in one pass and encode their Predictions (shared fields once;
        ``kept``: the events' ``features`` bytes as written, by batch index, copied where not None)."""
        ctx = self.ctx
        answers = self.predict_many([decoded[i]["features"] for i in indices], name)
        served = self.served.get(name)
        explain = self._explain and served is not None  # off: one local test per event, nothing else
        shared: dict[str, Any] = {
            "model": name,
            "version": served.version if served is not None else 0,
            "scored_at": scored.scored_at,
        }
        if not explain:
            shared["explanation"] = shared["explanation_method"] = None
        values: list[tuple[int, dict[str, Any]]] = []
        for i, answer in zip(indices, answers, strict=True):
            event = decoded[i]
            try:
                if isinstance(answer, Exception):
                    raise answer
                pred, proba = answer
                features = event["features"]
                value = {
                    "id": event["id"],
                    "ts": event["ts"],
                    "prediction": pred,
                    "proba": proba,
                    "features": features,
                    "key": event.get("key"),
                    **shared,
                }
                if explain:
                    value["explanation_method"], value["explanation"] = self.explain(name, features, pred)
            except Exception as exc:  # one bad record never stops the stream
                ctx.deadletter("score", raws[i], exc)
                continue
            values.append((i, value))
        # Validated Avro for the join contexts; the published copy follows serving.output_encoding.
        column = None if kept is None else ("features", [kept[i] for i, _ in values])
        contexts = ctx.codec.encode_batch(
            "Prediction", [v for _, v in values], shared, topic="predictions", kept=column
        )
        return {i: (value, context) for (i, value), context in zip(values, contexts, strict=True)}

    def _watch(self, name: str, features: list[dict[str, Any]]) -> None:
        """Buffer ``name``'s events for its feature monitors; run them once a block is due (``WATCH_EVERY``)."""
        now = time.monotonic()
        since, buffered = self._watching.setdefault(name, (now, []))
        buffered += features
        if len(buffered) >= WATCH_EVERY or now - since >= WATCH_WITHIN_S:
            self._flush_watch(name)

    def _flush_watch(self, name: str) -> None:
        """Page-Hinkley on each numeric feature of ``name``'s buffered events: one vectorised pass."""
        features = self._watching.pop(name, (0.0, []))[1]
        if not features:
            return
        monitor = self.features_drift.get(name)
        if monitor is None:
            monitor = self.features_drift[name] = FeatureDriftMonitor(self.ctx.settings.drift)
        start = self.indices.get(name, 0)
        for signal in monitor.update_many(features, start + 1):
            self.ctx.emit_drift(signal, self.versions.get(name, 0), model=name)
        self.indices[name] = start + len(features)

    def publish_contexts(self, scored: Scored) -> list[str]:
        """Once the batch's Predictions are acknowledged: store the join contexts in Redis (one round trip) and join
        the labels that were parked waiting for them; returns the ids joined here, to mark once delivered.

        Only now: a context written before its Prediction was delivered could be joined to a label and then lost
        with a crash (the batch scored again, perhaps by a newer version), giving a TrainingExample whose
        prediction nobody was ever served. A label arriving in between is parked and joined here.

        The events are counted handled by :meth:`finish`, the finish pass's last step.
        """
        if not scored.contexts:
            return []
        waiting = self.store.put_predictions(scored.contexts, scored.scored_at, scored.tokens)
        return self._join_waiting_labels(waiting, scored.predictions)

    def after_delivery(self, scored: Scored) -> tuple[list[str], int]:
        """The finish pass's step once the Predictions are acknowledged (:meth:`publish_contexts`): the ids joined
        and how many events the pass handled, for :meth:`finish`."""
        return self.publish_contexts(scored), len(scored.contexts)

    def finish(self, joined: tuple[list[str], int]) -> None:
        """The finish pass's last step, once the TrainingExamples of the labels joined are acknowledged: drop
        their contexts (``mark_joined``), then count the events handled
        (``driftline_events_total{stage="score", outcome="ok"}``). Only now: a pass that fails anywhere (the
        Predictions or TrainingExamples not acknowledged, Redis refusing the contexts or ``mark_joined``) has its
        batch scored again, and its events were counted twice (once when queued until fixes33, then once when
        their contexts were stored)."""
        ids, handled = joined
        self.store.mark_joined(ids)
        self._metrics[0].inc(handled)

    def _join_waiting_labels(
        self, waiting: list[tuple[str, bytes]], predictions: dict[str, dict[str, Any]]
    ) -> list[str]:
        """Join the labels that were parked waiting for these predictions (``put_predictions`` returned them)."""
        ctx = self.ctx
        joined = []
        for id_, label_bytes in waiting:
            try:
                label = ctx.codec.decode("Label", label_bytes)
                example = build_training_example(predictions[id_], label)
                ctx.emit("training", example, example["model"])  # keyed by model: one partition per model
            except Exception as exc:  # dead-lettered with its bytes: counted, never silently gone
                ctx.deadletter("score", parked_label(ctx.settings, id_, label_bytes), f"parked label: {exc}")
                ctx.metrics.joins.labels(model=predictions[id_]["model"], outcome="lost").inc()
                continue
            ctx.metrics.label_delay.observe(label_delay_seconds(predictions[id_], label))
            ctx.metrics.joins.labels(model=example["model"], outcome="joined").inc()
            joined.append(id_)
        return joined
