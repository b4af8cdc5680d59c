"""What driftline is compared with, on the same events: the bare River loop and a hand-written Kafka loop.

- :func:`river_loop`: ``predict_one`` and ``learn_one`` on the raw River estimator, in memory, no Kafka at all:
  the ceiling for one core.
- :func:`batch_predict_loop`: the scorer's batch path (``learners.batch``) on the driftline learner, in memory, in
  batches of 500 (the worker's batch size): what prediction costs the scorer per event now.
- :func:`naive_loop`: the loop a user would write instead of driftline: a confluent-kafka consumer reading the
  same ``features`` topic, decoding each record, predicting with the same model, encoding a Prediction, producing
  it, and storing the offset only after the record was handled (at-least-once), one message at a time.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaError

from bench.data import Row, raw_producer
from connectors.kafka_client import client_config
from driftline.config import LearnerSpec
from driftline.settings import Settings
from learners.batch import batch_predictor
from learners.specs import build_learner
from schemas.codec import Codec


def river_loop(spec: LearnerSpec, train: list[Row], rows: list[Row]) -> dict[str, float]:
    """Events per second of bare River ``predict_one`` (model trained on ``train``), ``learn_one``, and
    ``predict_proba_one`` followed by ``learn_one`` (prequential).

    The learning loops run on a fresh estimator over ``rows``, as the trainer learns them.
    """
    model = build_learner(spec).model  # the raw River estimator/pipeline, no driftline wrapper
    for _, x, y in train:
        model.learn_one(x, y)
    t0 = time.perf_counter()
    for _, x, _ in rows:
        model.predict_one(x)
    predict_s = time.perf_counter() - t0

    fresh = build_learner(spec).model
    t0 = time.perf_counter()
    for _, x, y in rows:
        fresh.learn_one(x, y)
    learn_s = time.perf_counter() - t0

    # Test-then-train, as river.evaluate.progressive_val_score does: the least a learner that reports how it is
    # doing must do per label (the trainer predicts with the champion too, and more: BENCHMARKS.md).
    fresh = build_learner(spec).model
    t0 = time.perf_counter()
    for _, x, y in rows:
        fresh.predict_proba_one(x)
        fresh.learn_one(x, y)
    prequential_s = time.perf_counter() - t0
    n = len(rows)
    return {
        "river_predict_eps": n / predict_s,
        "river_learn_eps": n / learn_s,
        "river_prequential_eps": n / prequential_s,
    }


def batch_predict_loop(
    spec: LearnerSpec, train: list[Row], rows: list[Row], size: int = 500
) -> dict[str, Any]:
    """Events per second of ``BatchPredictor.predict_many`` (the score stage's prediction) over ``rows`` in batches
    of ``size``, on the driftline learner trained on ``train``; ``batch_predict_batched`` says whether the numpy
    mirror served it (else it is ``predict_with_proba`` per event)."""
    model = build_learner(spec)
    for _, x, y in train:
        model.learn_one(x, y)
    predictor = batch_predictor(model)
    xs = [x for _, x, _ in rows]
    t0 = time.perf_counter()
    for i in range(0, len(xs), size):
        predictor.predict_many(xs[i : i + size])
    elapsed = time.perf_counter() - t0
    return {
        "batch_predict_eps": len(xs) / elapsed if elapsed > 0 else 0.0,
        "batch_predict_batched": predictor.batched,
    }


def naive_loop(
    settings: Settings, codec: Codec, model: Any, n: int, out_topic: str, timeout: float = 300.0
) -> dict[str, float]:
    """Events per second (and CPU microseconds per event, this process's threads) of a per-message
    consume-decode-predict-encode-produce loop over ``n`` events.

    Timed from the first message consumed to the last output acknowledged by the broker. ``model`` is the same
    served learner the score worker uses, so the prediction work is identical.
    """
    topic = settings.topic("features")
    consumer = Consumer(
        client_config(
            settings,
            **{
                "group.id": f"{settings.kafka.topic_prefix}naive-{time.time_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
            },
        )
    )
    # The same delivery guarantees as the pipeline's producer (acks=all, idempotent), with a short linger.
    producer = raw_producer(settings, acks="all", **{"enable.idempotence": True})
    consumer.subscribe([topic])
    done = 0
    t_first, cpu_first = None, 0.0
    deadline = time.monotonic() + timeout
    try:
        while done < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"naive loop: {err}")
            if t_first is None:
                t_first, cpu_first = time.perf_counter(), time.process_time()
            event = codec.decode("FeatureEvent", msg.value() or b"", topic=topic, allow_json=True)
            pred, proba = model.predict_with_proba(event["features"])
            value = {
                "id": event["id"],
                "ts": event["ts"],
                "model": settings.model.name,
                "version": 1,
                "prediction": pred,
                "proba": {str(k): float(v) for k, v in proba.items()} or None,
                "features": event["features"],
                "key": event.get("key"),
                "scored_at": int(time.time() * 1000),
            }
            while True:
                try:
                    producer.produce(out_topic, codec.encode("Prediction", value, topic=out_topic), msg.key())
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            consumer.store_offsets(msg)
            done += 1
        producer.flush(60)
        elapsed = time.perf_counter() - (t_first or time.perf_counter())
        cpu = time.process_time() - cpu_first
    finally:
        consumer.close()
    if done < n:
        raise RuntimeError(f"naive loop: only {done} of {n} events arrived within {timeout:g} s")
    return {"naive_loop_eps": n / elapsed if elapsed > 0 else 0.0, "naive_cpu_us": cpu / n * 1e6}
