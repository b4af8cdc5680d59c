"""The ``score`` stage: FeatureEvents in, Predictions out, pending join context into Redis.

Per batch: swap in a newly released model if one is waiting, decode every record (bad ones to ``deadletter``),
predict, watch each numeric feature with Page-Hinkley and queue the Predictions (:meth:`Scorer.process`). Once they
are acknowledged, store the join contexts in Redis in one round trip and join the labels that were waiting for these
predictions (:meth:`Scorer.publish_contexts`); once those TrainingExamples are acknowledged too, the input batch may
be acknowledged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from connectors.redis_store import JoinStore
from driftline.errors import SchemaError
from learners.drift import FeatureDriftMonitor
from learners.explain import explain_one
from streams.join import build_training_example, label_delay_seconds
from streams.releases import ReleaseFollower
from streams.runtime import RawRecord, WorkerContext, now_ms
from streams.teardown import reap

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """A batch scored and its Predictions queued; its join contexts are stored once those are acknowledged."""

    scored_at: int
    contexts: list[tuple[str, bytes]] = field(default_factory=list)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)


class Scorer:
    """Serves the current champion; one instance per worker process."""

    def __init__(self, ctx: WorkerContext, follower: ReleaseFollower, store: JoinStore) -> None:
        self.ctx = ctx
        self.follower = follower
        self.store = store
        self.model: Any = None
        self.version = 0
        self.features_drift = FeatureDriftMonitor(ctx.settings.drift)
        self.index = 0
        self._task = ctx.settings.model.task
        self._topic = ctx.settings.topic("features")
        self._out_topic = ctx.settings.topic("predictions")
        self._avro_out = ctx.settings.serving.output_encoding == "avro"
        self._explain = ctx.settings.model.explain
        m = ctx.metrics
        self._metrics = (  # labelled children looked up once, not per batch
            m.events.labels(stage="score", outcome="ok"),
            m.batch_size.labels(stage="score"),
            m.processing_seconds.labels(stage="score"),
        )

    def maybe_swap(self) -> bool:
        """Between batches: adopt the newest verified release, if any (atomic: one reference assignment)."""
        loaded = self.follower.take()
        if loaded is None:
            return False
        if loaded.version <= self.version:
            reap(loaded)  # not adopted: freed in pieces like a replaced model
            return False
        old, self.model, self.version = self.model, loaded.model, loaded.version
        # Dropping the old model here would free its ~500k objects in one go on the event loop (50-130 ms for a
        # 40-tree forest): the reaper takes it over and frees it in pieces in its own thread.
        reap(old)
        del old
        self.ctx.metrics.set_served_version(self.ctx.model, self.version)
        log.info("scorer now serving %s v%d", self.ctx.model, self.version)
        return True

    def predict(self, features: dict[str, Any]) -> tuple[Any, dict[str, float] | None]:
        if self.model is None:
            return None, None
        if self._task == "classification":
            pred, proba = self.model.predict_with_proba(features)
            return pred, {str(k): float(v) for k, v in proba.items()} or None
        return self.model.predict_one(features), None

    def explain(self, features: dict[str, Any], prediction: Any) -> tuple[str, dict[str, float] | None]:
        """The served model's explanation of one prediction; a failure costs the explanation, never the event."""
        try:
            return explain_one(self.model, features, prediction)
        except Exception as exc:
            log.debug("no explanation for %s v%d: %s", self.ctx.model, self.version, exc)
            return "error", None

    def process(self, raws: list[RawRecord]) -> Scored:
        """Score one batch and queue its Predictions; the join contexts wait for :meth:`publish_contexts`."""
        ctx, m = self.ctx, self.ctx.metrics
        t0 = time.perf_counter()
        self.maybe_swap()
        decoded = ctx.codec.decode_many(
            "FeatureEvent", [r.value for r in raws], topic=self._topic, allow_json=True
        )
        scored = Scored(now_ms())
        watched: list[dict[str, Any]] = []
        out_topic, avro_out, produce = self._out_topic, self._avro_out, ctx.out.produce_bytes
        explain = self._explain and self.model is not None  # off: one local test per event, nothing else
        for raw, event in zip(raws, decoded, strict=True):
            if isinstance(event, SchemaError):
                ctx.deadletter("score", raw, event)
                continue
            try:
                features = event["features"]
                pred, proba = self.predict(features)
                value = {
                    "id": event["id"],
                    "ts": event["ts"],
                    "model": ctx.model,
                    "version": self.version,
                    "prediction": pred,
                    "proba": proba,
                    "features": features,
                    "key": event.get("key"),
                    "scored_at": scored.scored_at,
                    "explanation": None,
                    "explanation_method": None,
                }
                if explain:
                    value["explanation_method"], value["explanation"] = self.explain(features, pred)
                # Validated Avro for the join context; the published copy follows serving.output_encoding.
                context = ctx.codec.encode("Prediction", value, topic="predictions", complete=True)
                produce(out_topic, context if avro_out else ctx.encode_output("predictions", value), raw.key)
            except Exception as exc:  # one bad record never stops the stream
                ctx.deadletter("score", raw, exc)
                continue
            scored.contexts.append((event["id"], context))
            scored.predictions[event["id"]] = value
            if raw.timestamp_ms:
                m.end_to_end_latency.observe(max(0.0, (scored.scored_at - raw.timestamp_ms) / 1000.0))
            watched.append(features)
        if watched:
            # One vectorised pass over the batch; stream indices are consecutive.
            for signal in self.features_drift.update_many(watched, self.index + 1):
                self._emit_drift(signal)
            self.index += len(watched)
        ok_events, batch_size, seconds = self._metrics
        ok_events.inc(len(scored.contexts))
        batch_size.observe(len(raws))
        seconds.observe(time.perf_counter() - t0)
        return scored

    def publish_contexts(self, scored: Scored) -> list[str]:
        """Once the batch's Predictions are acknowledged: store the join contexts in Redis (one round trip) and join
        the labels that were parked waiting for them; returns the ids joined here, to mark once delivered.

        Only now: a context written before its Prediction was delivered could be joined to a label and then lost
        with a crash (the batch scored again, perhaps by a newer version), giving a TrainingExample whose
        prediction nobody was ever served. A label arriving in between is parked and joined here.
        """
        if not scored.contexts:
            return []
        waiting = self.store.put_predictions(scored.contexts, scored.scored_at)
        return self._join_waiting_labels(waiting, scored.predictions)

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
                ctx.emit("training", example, ctx.model)
            except Exception as exc:
                log.warning("score: parked label for %s could not be joined: %s", id_, exc)
                ctx.metrics.joins.labels(model=ctx.model, outcome="lost").inc()
                continue
            ctx.metrics.label_delay.observe(label_delay_seconds(predictions[id_], label))
            ctx.metrics.joins.labels(model=ctx.model, outcome="joined").inc()
            joined.append(id_)
        return joined

    def _emit_drift(self, signal: Any) -> None:
        self.ctx.emit_drift(signal, self.version)
