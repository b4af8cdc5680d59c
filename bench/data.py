"""The benchmark's events: one deterministic stream used by every measurement of a run.

Rows carry 20 double features (the size the issue's per-record costs were measured on) and a boolean label from
a noisy linear rule, so a logistic regression and a Hoeffding tree both have something real to learn.
Topics are pre-filled with already-encoded bytes through a plain confluent-kafka producer, so filling a topic
never limits what is measured.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import Producer

from connectors.kafka_client import client_config
from driftline.config import LearnerSpec
from driftline.settings import Settings
from learners.artifacts import build_release
from learners.specs import Learner, build_learner
from schemas.codec import Codec

N_FEATURES = 20
Row = tuple[str, dict[str, float], bool]


def make_rows(n: int, seed: int = 7, start: int = 0) -> list[Row]:
    """``n`` rows ``(id, features, label)``; the same seed gives the same rows."""
    rng = random.Random(seed)
    weights = [rng.uniform(-1, 1) for _ in range(N_FEATURES)]
    rows = []
    for i in range(start, start + n):
        x = {f"f{j:02d}": rng.gauss(0.0, 1.0) for j in range(N_FEATURES)}
        score = sum(w * v for w, v in zip(weights, x.values(), strict=True)) + rng.gauss(0.0, 0.3)
        rows.append((f"e{i}", x, score > 0))
    return rows


def pretrained(spec: LearnerSpec, rows: Iterable[Row]) -> Learner:
    """A learner trained on ``rows`` (the model being served, so predictions are real work)."""
    learner = build_learner(spec)
    for _, x, y in rows:
        learner.learn_one(x, y)
    return learner


def feature_value(row: Row, ts: int) -> dict[str, Any]:
    return {"id": row[0], "ts": ts, "key": None, "features": row[1]}


def training_value(
    row: Row, model: str, ts: int, answer: tuple[Any, dict[str, float] | None, int] = (None, None, 1)
) -> dict[str, Any]:
    """A TrainingExample for ``row``; ``answer`` is what the scorer said: (prediction, proba, version)."""
    prediction, proba, version = answer
    return {
        "id": row[0],
        "model": model,
        "key": None,
        "features": row[1],
        "label": row[2],
        "prediction": prediction,
        "proba": proba,
        "version": version,
        "event_ts": ts,
        "label_ts": ts,
    }


LABEL_DELAY = 100  # events between a prediction and its label in the simulated answers


def served_answers(settings: Settings, rows: list[Row]) -> list[tuple[Any, dict[str, float] | None, int]]:
    """What the scorers would have answered for each row, as the join puts it in the TrainingExample.

    The trainer's own lifecycle (same settings, same seed: the same releases at the same points) replays the rows
    with labels ``LABEL_DELAY`` events late; each row gets the served version's prediction and probabilities at
    the time it was scored. Near a release some answers come from the version before, as in production.
    """
    from learners.replay import replay
    from streams.train import new_lifecycle

    answers: list[tuple[Any, dict[str, float] | None, int]] = []
    replay(
        ((r[0], 0, r[1], r[2]) for r in rows),
        new_lifecycle(settings),
        delay=LABEL_DELAY,
        on_prediction=lambda p: answers.append((p["prediction"], p["proba"], p["version"])),
    )
    return answers


def raw_producer(settings: Settings, **extra: Any) -> Producer:
    """A plain producer for filling topics fast (the pipeline's own producer settings are not under test). It
    partitions keys as driftline's producers do (murmur2): a trainer refuses a record off its model's partition."""
    conf = {
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "acks": 1,
        "partitioner": "murmur2_random",
    }
    conf.update(extra)
    return Producer(client_config(settings, **conf))


def produce_all(producer: Producer, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Queue every ``(key, value)`` and wait for all acknowledgements; raises if any delivery failed."""
    failures: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    n = 0
    for key, value in items:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    if failures:
        raise RuntimeError(f"{len(failures)} bench records to {topic} were not delivered: {failures[0]}")
    return n


def fill_features(settings: Settings, codec: Codec, rows: list[Row]) -> int:
    """Pre-fill ``features`` with one Avro FeatureEvent per row (keyed by id)."""
    topic = settings.topic("features")
    now = int(time.time() * 1000)
    values = codec.encode_many("FeatureEvent", [feature_value(r, now) for r in rows], topic=topic)
    return produce_all(
        raw_producer(settings), topic, ((r[0].encode(), v) for r, v in zip(rows, values, strict=True))
    )


def fill_labels(settings: Settings, codec: Codec, rows: list[Row]) -> int:
    """Publish one Label per row (keyed by id, as ``driftline produce labels`` does)."""
    topic = settings.topic("labels")
    now = int(time.time() * 1000)
    values = codec.encode_many("Label", [{"id": r[0], "ts": now, "label": r[2]} for r in rows], topic=topic)
    return produce_all(
        raw_producer(settings), topic, ((r[0].encode(), v) for r, v in zip(rows, values, strict=True))
    )


def answered_examples(settings: Settings, codec: Codec, rows: list[Row], ts: int = 0) -> list[bytes]:
    """One encoded TrainingExample per row for ``settings.model.name``, each carrying the served model's answer
    as the join would (:func:`served_answers`), with ``ts`` as its event and label time."""
    answers = served_answers(settings, rows)
    return codec.encode_many(
        "TrainingExample",
        [training_value(r, settings.model.name, ts, a) for r, a in zip(rows, answers, strict=True)],
        topic=settings.topic("training"),
    )


def fill_training(settings: Settings, codec: Codec, rows: list[Row], *, answered: bool = True) -> int:
    """Pre-fill ``training`` with one TrainingExample per row for ``settings.model.name``.

    ``answered``: each example carries the served model's answer as the join would (see :func:`served_answers`);
    without it every example has no prediction, so the trainer predicts each one again itself.
    """
    topic = settings.topic("training")
    now = int(time.time() * 1000)
    model = settings.model.name
    if answered:
        values = answered_examples(settings, codec, rows, now)
    else:
        values = codec.encode_many(
            "TrainingExample", [training_value(r, model, now) for r in rows], topic=topic
        )
    key = model.encode()
    return produce_all(raw_producer(settings), topic, ((key, v) for v in values))


def release_record(settings: Settings, model: Any, version: int, key: str) -> dict[str, Any]:
    """A signed ModelRelease of ``model`` as ``settings.model.name`` v``version`` (reason ``manual``)."""
    from learners.artifacts import ArtifactStore

    return build_release(
        model,
        name=settings.model.name,
        version=version,
        parent=version - 1 if version > 1 else None,
        reason="manual" if version > 1 else "initial",
        metrics={},
        key=key.encode(),
        n_learned=0,
        max_inline_bytes=settings.model.max_inline_bytes,
        store=ArtifactStore(settings.model.artifact_store),
    )


def publish_release(settings: Settings, codec: Codec, record: dict[str, Any], producer: Producer) -> None:
    """Publish an already-built release on ``models`` and wait for the broker's acknowledgement."""
    topic = settings.topic("models")
    data = codec.encode("ModelRelease", record, topic=topic)
    produce_all(producer, topic, [(settings.model.name.encode(), data)])


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
