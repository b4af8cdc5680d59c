"""Schema evolution against a running worker (the reader with the current schemas).

- JSON written by a newer producer (an extra field) is read: the field is ignored, the event scored, the label
  joined.
- Avro written by another implementation (fastavro) with a schema snapshot from ``schemas/history/`` is read.
- Avro written with a *newer* schema the worker has never seen (an added optional field) cannot be resolved
  without the writer schema (single-object encoding carries only its fingerprint): it is dead-lettered with a
  reason naming the fingerprint, never misread, and the worker goes on. A newer schema reaches readers by
  adding it to ``schemas/history/`` before producers use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.codec import schema_fingerprint
from tests.fault_helpers import SCHEMAS, avro_with, running_all
from tests.pipeline_helpers import Pipeline, distinct_ids

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running_all(Pipeline(prefix, tmp_path, redis_url)) as p:
        yield p


def newer_feature_schema(tmp_path: Path) -> Path:
    """FeatureEvent plus an optional ``source`` field with a default: a backward-compatible change."""
    schema = json.loads((SCHEMAS / "FeatureEvent.avsc").read_text())
    schema["fields"].append({"name": "source", "type": ["null", "string"], "default": None})
    path = tmp_path / "FeatureEvent-newer.avsc"
    path.write_text(json.dumps(schema))
    return path


def test_newer_and_older_writers(pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.start("score", "join", "train")
    newer = newer_feature_schema(tmp_path)
    history = SCHEMAS / "history" / "FeatureEvent.avsc"
    pipeline.send_raw(
        "features",
        [
            json.dumps({"id": "json-new", "ts": 1, "features": {"x1": 0.3}, "source": "web"}).encode(),
            avro_with(history, {"id": "avro-history", "ts": 1, "key": None, "features": {"x1": 0.4}}),
            avro_with(
                newer, {"id": "avro-new", "ts": 1, "key": None, "features": {"x1": 0.5}, "source": "web"}
            ),
        ],
    )
    pipeline.send_raw(
        "labels", [json.dumps({"id": "json-new", "ts": 2, "label": True, "confidence": 0.9}).encode()]
    )
    readable = {"json-new", "avro-history"}
    pipeline.wait_until(
        "readable records scored", lambda: readable <= distinct_ids(pipeline.values("predictions"))
    )
    pipeline.wait_learned(1)
    dead = pipeline.wait_until("the unreadable record dead-lettered", lambda: pipeline.values("deadletter"))
    pipeline.assert_alive()

    assert "avro-new" not in distinct_ids(pipeline.values("predictions"))
    (letter,) = dead
    fingerprint = schema_fingerprint(json.loads(newer.read_text())).hex()
    assert f"unknown writer schema fingerprint 0x{fingerprint}" in letter["error"]
    assert letter["source_topic"] == pipeline.settings().topic("features")
    (example,) = pipeline.values("training")
    assert (example["id"], example["label"], example["features"]) == ("json-new", True, {"x1": 0.3})
