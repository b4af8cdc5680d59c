"""The ``score`` stage: FeatureEvents in, Predictions out, pending join context into Redis.

Per batch (Faust ``take_events``): swap in a newly released model if one is waiting, decode every record (bad ones
to ``deadletter``), predict, watch each numeric feature with Page-Hinkley, queue the Predictions, store the join
contexts in Redis in one round trip, join labels that were waiting for these predictions, then wait for every output
to be acknowledged before Faust may acknowledge the inputs.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from connectors.redis_store import JoinStore
from driftline.errors import SchemaError
from learners.drift import FeatureDriftMonitor
from streams.join import build_training_example, label_delay_seconds
from streams.releases import ReleaseFollower
from streams.runtime import RawRecord, WorkerContext, now_ms
from streams.teardown import reap

log = logging.getLogger(__name__)

OVERLAP_MIN = (
    32  # contexts per batch from which the Redis call runs in a thread, overlapping the drift monitors
)


class _Done:
    """An already-finished call with the ``result()`` of a future."""

    def __init__(self, value: list[tuple[str, bytes]]) -> None:
        self._value = value

    def result(self) -> list[tuple[str, bytes]]:
        return self._value


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
        # The batch's Redis round trip runs here while this thread updates the feature-drift monitors: the two
        # are independent, and the Redis call spends its time waiting on the socket (GIL released).
        self._redis = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-redis")
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

    def process(self, raws: list[RawRecord]) -> list[str]:
        """Score one batch; returns ids joined here (labels that arrived first), to mark once delivered."""
        ctx, m = self.ctx, self.ctx.metrics
        t0 = time.perf_counter()
        self.maybe_swap()
        decoded = ctx.codec.decode_many(
            "FeatureEvent", [r.value for r in raws], topic=self._topic, allow_json=True
        )
        contexts: list[tuple[str, bytes]] = []
        predictions: dict[str, dict[str, Any]] = {}
        watched: list[tuple[dict[str, Any], int]] = []
        scored_at = now_ms()
        ok = 0
        out_topic, avro_out, produce = self._out_topic, self._avro_out, ctx.out.produce_bytes
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
                    "scored_at": scored_at,
                }
                # Validated Avro for the join context; the published copy follows serving.output_encoding.
                context = ctx.codec.encode("Prediction", value, topic="predictions", complete=True)
                produce(out_topic, context if avro_out else ctx.encode_output("predictions", value), raw.key)
            except Exception as exc:  # one bad record never stops the stream
                ctx.deadletter("score", raw, exc)
                continue
            contexts.append((event["id"], context))
            predictions[event["id"]] = value
            ok += 1
            if raw.timestamp_ms:
                m.end_to_end_latency.observe(max(0.0, (scored_at - raw.timestamp_ms) / 1000.0))
            self.index += 1
            watched.append((features, self.index))
        waiting: Future[list[tuple[str, bytes]]] | _Done
        if len(contexts) >= OVERLAP_MIN:
            waiting = self._redis.submit(self.store.put_predictions, contexts, scored_at)
        else:  # a small batch: handing the call to a thread costs more than the overlap saves
            waiting = _Done(self.store.put_predictions(contexts, scored_at))
        # Indices are consecutive (self.index counts the watched events): one vectorised pass over the batch.
        if watched:
            for signal in self.features_drift.update_many([f for f, _ in watched], watched[0][1]):
                self._emit_drift(signal)
        joined = self._join_waiting_labels(waiting.result(), predictions)
        ok_events, batch_size, seconds = self._metrics
        ok_events.inc(ok)
        batch_size.observe(len(raws))
        seconds.observe(time.perf_counter() - t0)
        return joined

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
