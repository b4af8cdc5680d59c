"""The ``join`` stage: Labels in, TrainingExamples out.

A label takes the pending prediction context from Redis (one scripted round trip per batch). A label that arrives
before its prediction is parked and joined by the scorer when the prediction comes; a duplicate label is counted and
dropped. Contexts stay in Redis until the TrainingExamples are acknowledged by Kafka, so a crash in between replays
the join (the trainer drops the duplicate by id) instead of losing it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from connectors.consumer import read_to_end
from connectors.redis_store import JoinStore
from driftline.errors import SchemaError
from driftline.settings import Settings
from driftline.util import now_ms
from streams.runtime import RawRecord, WorkerContext

log = logging.getLogger(__name__)


def build_training_example(prediction: dict[str, Any], label: dict[str, Any]) -> dict[str, Any]:
    """A TrainingExample from the Prediction as served and the Label that answers it."""
    return {
        "id": prediction["id"],
        "model": prediction["model"],
        "key": prediction.get("key"),
        "features": prediction.get("features") or {},
        "label": label["label"],
        "prediction": prediction.get("prediction"),
        "proba": prediction.get("proba"),
        "version": int(prediction.get("version") or 0),
        "event_ts": int(prediction["ts"]),
        "label_ts": int(label["ts"]),
    }


def label_delay_seconds(prediction: dict[str, Any], label: dict[str, Any]) -> float:
    return max(0.0, (int(label["ts"]) - int(prediction["ts"])) / 1000.0)


def join_namespace(settings: Settings) -> str:
    return f"{settings.redis.key_prefix}:{settings.kafka.topic_prefix}{settings.model.name}"


def trainer_group(settings: Settings) -> str:
    """The consumer group every train process of the deployment joins (streams/trainers.py)."""
    return f"driftline-{settings.kafka.topic_prefix}trainers"


def owners_key(settings: Settings) -> str:
    """Redis hash: model -> JSON of its owner (trainer, partition), version, n_learned and update time."""
    return f"{settings.redis.key_prefix}:{settings.kafka.topic_prefix}:models"


def build_join_store(settings: Settings) -> JoinStore:
    return JoinStore(
        settings.redis.url.get(), namespace=join_namespace(settings), ttl_s=settings.redis.pending_ttl_s
    )


def empty_id(record: str, topic: str) -> SchemaError:
    """The error of a FeatureEvent or Label whose ``id`` is empty: the id is what a label joins on, and every
    empty-id event would share one join context (a label joined with another event's prediction)."""
    return SchemaError(f"topic {topic}: {record}.id: empty: an event id is what a label joins on")


def parked_label(settings: Settings, id_: str, label_bytes: bytes) -> RawRecord:
    """A parked label as a record to dead-letter when it cannot be joined (its bytes as Redis held them; the
    offset it came at is not kept with it: partition and offset -1)."""
    return RawRecord(settings.topic("labels"), -1, -1, id_.encode("utf-8"), label_bytes)


class Joiner:
    def __init__(self, ctx: WorkerContext, store: JoinStore) -> None:
        self.ctx = ctx
        self.store = store
        self._topic = ctx.settings.topic("labels")

    def process(self, raws: list[RawRecord]) -> list[str]:
        """Join one batch of labels; returns the joined ids (mark them once the outputs are delivered)."""
        ctx, m = self.ctx, self.ctx.metrics
        t0 = time.perf_counter()
        decoded = ctx.codec.decode_many(
            "Label",
            [r.value for r in raws],
            topic=self._topic,
            allow_json=True,
            timestamps=lambda i: raws[i].timestamp_ms,  # a JSON label's ts when it has none
        )
        labels: list[tuple[RawRecord, dict[str, Any]]] = []
        for raw, label in zip(raws, decoded, strict=True):
            if isinstance(label, SchemaError):
                ctx.deadletter("join", raw, label)
            elif not label["id"]:
                ctx.deadletter("join", raw, empty_id("Label", self._topic))
            else:
                labels.append((raw, label))
        items = [(label["id"], ctx.codec.encode("Label", label)) for _, label in labels]
        tokens = [f"{raw.topic}:{raw.partition}:{raw.offset}" for raw, _ in labels]
        lookups = self.store.lookup_labels(items, now_ms(), tokens)
        joined: list[str] = []
        seen: set[str] = set()
        for (raw, label), found in zip(labels, lookups, strict=True):
            if found.status != "ctx" or label["id"] in seen:
                outcome = "parked" if found.status == "parked" else "duplicate"
                m.joins.labels(model=ctx.model, outcome=outcome).inc()  # which model is not known here
                m.events.labels(stage="join", outcome=outcome).inc()
                continue
            try:
                assert found.context is not None
                prediction = ctx.codec.decode("Prediction", found.context)
                example = build_training_example(prediction, label)
                ctx.emit("training", example, example["model"])  # keyed by model: one partition per model
            except Exception as exc:
                ctx.deadletter("join", raw, exc)
                continue
            seen.add(label["id"])
            joined.append(label["id"])
            m.label_delay.observe(label_delay_seconds(prediction, label))
            m.joins.labels(model=example["model"], outcome="joined").inc()
        m.events.labels(stage="join", outcome="ok").inc(len(joined))
        m.batch_size.labels(stage="join").observe(len(raws))
        m.processing_seconds.labels(stage="join").observe(time.perf_counter() - t0)
        return joined

    def sweep(self) -> None:
        """Count predictions whose label never came and labels whose prediction never came (TTL passed)."""
        m, model = self.ctx.metrics, self.ctx.model
        result = self.store.sweep(now_ms())
        if result.expired:
            m.joins.labels(model=model, outcome="expired").inc(result.expired)
            m.events.labels(stage="join", outcome="expired").inc(result.expired)
        if result.orphans:
            m.joins.labels(model=model, outcome="orphan").inc(result.orphans)
            m.events.labels(stage="join", outcome="orphan").inc(result.orphans)
        m.pending_joins.labels(model=model).set(result.pending)


def rebuild_join_state(
    settings: Settings,
    store: JoinStore,
    codec: Any,
    timeout: float = 30.0,
    ctx: WorkerContext | None = None,
) -> int:
    """Restore pending contexts from the ``predictions`` topic after Redis lost its data.

    First the 'joined' markers lost with the data are written again from the TrainingExamples on ``training``
    within the TTL (:meth:`JoinStore.mark_joined`), so predictions already answered are not restored as pending:
    they would show as waiting for a label and be counted as expired (label never came) when their TTL ran out.
    Next the labels published within the TTL are looked up again (:meth:`JoinStore.lookup_labels`): a label
    parked before the loss (it came before its event) is parked again, and with ``ctx`` one whose event was
    scored since is joined now; without this they were lost, and their events counted as expired.
    Then the predictions published within the TTL are read; a context is restored unless that id is known to
    Redis as joined. An id joined but not yet on ``training`` when it is read may be joined a second time: the
    trainer drops those by id, so nothing is learned twice and no label is answered with a wrong prediction.
    Labels that arrived between the loss and this rebuild were parked (no context then): with ``ctx`` they are
    joined here (:func:`join_parked`), else they would wait out their TTL and never be learned.
    """
    topic = settings.topic("predictions")
    ttl_ms = settings.redis.pending_ttl_s * 1000
    answered = _mark_answered(settings, store, codec, now_ms() - ttl_ms, timeout)
    reparked, joined = _relook_labels(settings, store, codec, now_ms() - ttl_ms, timeout, ctx)
    restored = 0
    batch: list[tuple[str, bytes, int]] = []

    def flush() -> None:
        nonlocal restored, joined, batch
        count, waiting = store.restore(batch, now_ms())
        restored += count
        if waiting and ctx is not None:
            contexts = {id_: context for id_, context, _ in batch}
            joined += join_parked(ctx, store, [(contexts[id_], label) for id_, label in waiting])
        batch = []

    messages = read_to_end(
        settings, topic, "driftline-join-rebuild", since_ms=now_ms() - ttl_ms, timeout=timeout
    )
    for msg in messages:
        try:
            pred = codec.decode("Prediction", msg.value() or b"", topic=topic, allow_json=True)
        except SchemaError:
            continue
        now = now_ms()
        batch.append((pred["id"], codec.encode("Prediction", pred), record_ms(msg, now) + ttl_ms - now))
        if len(batch) >= 1000:
            flush()
    flush()
    log.warning(
        "join state rebuilt from %s: %d pending prediction(s) restored, %d label(s) parked again, %d parked "
        "label(s) joined (%d already joined, from %s)",
        topic,
        restored,
        reparked,
        joined,
        answered,
        settings.topic("training"),
    )
    return restored


def record_ms(msg: Any, read_ms: int) -> int:
    """A record's Kafka timestamp, or ``read_ms`` (when it is read) for a record without one (-1: written by a
    client that set none, or in an old message format). Aged from -1, such a record was 56 years past its TTL:
    a label re-parked by the rebuild for 1 ms and counted an orphan, a prediction not restored at all."""
    ts = msg.timestamp()[1]
    return ts if ts > 0 else read_ms


def _relook_labels(
    settings: Settings, store: JoinStore, codec: Any, since_ms: int, timeout: float, ctx: WorkerContext | None
) -> tuple[int, int]:
    """Look up the labels published since ``since_ms`` again, as the joiner does: not yet joined and without a
    context, a label is parked again, until its first deadline (its record's time plus the TTL, as a restored
    prediction; a fresh TTL at each loss let it outlive ``redis.pending_ttl_s``); with a context (its event
    scored since the loss) and ``ctx``, it is joined. Returns (parked again, joined)."""
    topic = settings.topic("labels")
    ttl_ms = settings.redis.pending_ttl_s * 1000
    reparked, joined = 0, 0
    batch: list[tuple[str, bytes, str, int]] = []

    def flush() -> None:
        nonlocal reparked, joined, batch
        now = now_ms()
        found = store.lookup_labels(
            [(i, v) for i, v, _, _ in batch],
            now,
            [t for _, _, t, _ in batch],
            [ts + ttl_ms - now for _, _, _, ts in batch],
        )
        reparked += sum(1 for f in found if f.status == "parked")
        ready = [(f.context, v) for f, (_, v, _, _) in zip(found, batch, strict=True) if f.status == "ctx"]
        if ready and ctx is not None:
            joined += join_parked(ctx, store, [(c, v) for c, v in ready if c is not None])
        batch = []

    for msg in read_to_end(settings, topic, "driftline-join-rebuild", since_ms=since_ms, timeout=timeout):
        try:
            label = codec.decode(
                "Label", msg.value() or b"", topic=topic, allow_json=True, timestamp=msg.timestamp()[1]
            )
        except SchemaError:
            continue
        token = f"{msg.topic()}:{msg.partition()}:{msg.offset()}"
        batch.append((label["id"], codec.encode("Label", label), token, record_ms(msg, now_ms())))
        if len(batch) >= 500:
            flush()
    if batch:
        flush()
    return reparked, joined


def _mark_answered(settings: Settings, store: JoinStore, codec: Any, since_ms: int, timeout: float) -> int:
    """Mark joined the ids of the TrainingExamples published since ``since_ms``; returns how many."""
    topic = settings.topic("training")
    ids: list[str] = []
    count = 0
    for msg in read_to_end(settings, topic, "driftline-join-rebuild", since_ms=since_ms, timeout=timeout):
        try:
            ids.append(codec.decode("TrainingExample", msg.value() or b"", topic=topic)["id"])
        except SchemaError:
            continue
        if len(ids) >= 1000:
            store.mark_joined(ids)
            count, ids = count + len(ids), []
    store.mark_joined(ids)
    return count + len(ids)


def join_parked(ctx: WorkerContext, store: JoinStore, waiting: list[tuple[bytes, bytes]]) -> int:
    """Join ``(prediction context, label)`` pairs whose label was parked before the context came back (the
    rebuild): publish their TrainingExamples, wait for them to be acknowledged, then mark them joined (a crash in
    between leaves the label parked and claimed, as when the scorer joins a parked label). Returns how many."""
    ids: list[str] = []
    out = ctx.out
    with out.tracking() as deliveries:
        for context, label_bytes in waiting:
            prediction = ctx.codec.decode("Prediction", context)
            try:
                label = ctx.codec.decode("Label", label_bytes)
                example = build_training_example(prediction, label)
                ctx.emit("training", example, example["model"])  # keyed by model: one partition per model
            except Exception as exc:  # dead-lettered with its bytes: counted, never silently gone
                raw = parked_label(ctx.settings, prediction["id"], label_bytes)
                ctx.deadletter("join", raw, f"parked label: {exc}")
                ctx.metrics.joins.labels(model=prediction["model"], outcome="lost").inc()
                continue
            ctx.metrics.label_delay.observe(label_delay_seconds(prediction, label))
            ctx.metrics.joins.labels(model=example["model"], outcome="joined").inc()
            ids.append(prediction["id"])
    out.wait(deliveries)
    store.mark_joined(ids)
    return len(ids)
