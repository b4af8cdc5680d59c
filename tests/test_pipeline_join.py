"""The label join through a real worker: labels before their predictions, and duplicate labels."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.pipeline_helpers import Pipeline, running

pytestmark = pytest.mark.kafka


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Pipeline:
    return Pipeline(prefix, tmp_path, redis_url)


def events(n: int, tag: str, seed: int = 0) -> list[tuple[str, dict[str, float], int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = {"a": rng.random(), "b": rng.random()}
        out.append((f"{tag}{i}", x, int(x["a"] > 0.5)))
    return out


def joins(pipeline: Pipeline, outcome: str) -> float:
    return pipeline.metric_sum("driftline_joins_total", outcome=outcome)


def test_labels_before_predictions_are_parked_then_joined(pipeline: Pipeline) -> None:
    batch = events(300, "early-")
    with running(pipeline):
        pipeline.start("all")
        with pipeline.producer() as producer:
            for id_, _, y in batch:
                producer.send_label(id_, y)
            for id_, _, y in batch[:10]:  # a label repeated while still parked is a duplicate too
                producer.send_label(id_, y)
        pipeline.wait_until("300 labels parked", lambda: joins(pipeline, "parked") >= 300, timeout=60)
        pipeline.wait_until("10 duplicates counted", lambda: joins(pipeline, "duplicate") >= 10, timeout=30)
        assert joins(pipeline, "parked") == 300 and joins(pipeline, "joined") == 0
        # The trainer's first status comes once it has started (on a fresh clone its start compiles the kernels,
        # seconds on a loaded machine: CI, session 19, read no status yet); then it must have learned nothing.
        pipeline.wait_until("the trainer's first status", lambda: bool(pipeline.trainer()), timeout=60)
        assert pipeline.trainer().get("n_learned") == 0

        with pipeline.producer() as producer:
            for id_, x, _ in batch:
                producer.send_feature(id_, x)
        pipeline.wait_learned(300, timeout=60)
        pipeline.wait_until("300 joins", lambda: joins(pipeline, "joined") >= 300, timeout=30)

        training = pipeline.values("training")
        assert sorted(t["id"] for t in training) == sorted(id_ for id_, _, _ in batch)
        labels = {id_: y for id_, _, y in batch}
        assert all(t["label"] == labels[t["id"]] for t in training)
        assert joins(pipeline, "joined") == 300 and joins(pipeline, "duplicate") == 10
        assert pipeline.labels_learned() == 300
        pipeline.assert_alive()


def test_duplicate_labels_are_counted_and_dropped(pipeline: Pipeline) -> None:
    first = events(200, "d-", seed=1)
    with running(pipeline):
        pipeline.start("all")
        with pipeline.producer() as producer:
            for id_, x, _ in first:
                producer.send_feature(id_, x)
        pipeline.wait_until(
            "200 predictions",
            lambda: pipeline.metric_sum("driftline_events_total", stage="score", outcome="ok") >= 200,
            timeout=60,
        )
        with pipeline.producer() as producer:
            for id_, _, y in first:
                producer.send_label(id_, y)
        pipeline.wait_learned(200, timeout=60)
        assert joins(pipeline, "duplicate") == 0

        # The same labels again (some with the other answer): counted, never learned.
        with pipeline.producer() as producer:
            for k, (id_, _, y) in enumerate(first[:40]):
                producer.send_label(id_, y if k % 2 else 1 - y)
        pipeline.wait_until("40 duplicates counted", lambda: joins(pipeline, "duplicate") >= 40, timeout=60)

        # A fresh batch after the duplicates: learned, and the total shows the duplicates were not.
        fresh = events(10, "f-", seed=2)
        with pipeline.producer() as producer:
            for id_, x, _ in fresh:
                producer.send_feature(id_, x)
            for id_, _, y in fresh:
                producer.send_label(id_, y)
        pipeline.wait_learned(210, timeout=60)
        pipeline.wait_until("210 joins", lambda: joins(pipeline, "joined") >= 210, timeout=30)
        assert joins(pipeline, "duplicate") == 40 and joins(pipeline, "joined") == 210
        assert pipeline.labels_learned() == 210
        training_ids = [t["id"] for t in pipeline.values("training")]
        assert len(training_ids) == len(set(training_ids)) == 210
        pipeline.assert_alive()
