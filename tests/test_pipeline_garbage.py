"""Garbage on every input topic goes to ``deadletter`` (reason, source topic/partition/offset, original bytes)
while the worker keeps running and keeps processing the valid records that follow."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connectors.topics import partition_for
from schemas.codec import default_codec
from tests.pipeline_helpers import Pipeline, running

pytestmark = pytest.mark.kafka

KEY = b"garbage-key"
NAN_EVENT = {"id": "nan-avro", "ts": 1, "key": None}


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Pipeline:
    return Pipeline(prefix, tmp_path, redis_url)


def avro_unchecked(record: str, value: dict) -> bytes:
    """Single-object Avro written without driftline's validation (so it can carry a NaN)."""
    codec = default_codec()
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(codec.schema(record)), value)
    return b"\xc3\x01" + codec.fingerprint(record) + body.getvalue()


def random_bytes(seed: int) -> bytes:
    data = random.Random(seed).randbytes(48)
    return b"\x00" + data  # neither the Avro marker (C3 01) nor a JSON object


def garbage() -> dict[str, list[tuple[bytes, str]]]:
    """Per input topic: ``(payload, word the dead-letter reason must contain)``."""
    codec = default_codec()
    feature = codec.encode("FeatureEvent", {"id": "g", "ts": 1, "key": None, "features": {"a": 1.0}})
    label = codec.encode("Label", {"id": "g", "ts": 1, "label": 1})
    command = codec.encode(
        "ControlCommand", {"model": "default", "command": "pause_learning", "args": {}, "ts": 1}
    )
    return {
        "features": [
            (random_bytes(1), "not avro"),
            (feature[: len(feature) // 2], "truncated"),
            (json.dumps({"id": 5, "ts": "yesterday", "features": [1, 2]}).encode(), "expected string"),
            (b'{"id": "nan-json", "ts": 1, "features": {"a": NaN}}', "nan"),
            (avro_unchecked("FeatureEvent", {**NAN_EVENT, "features": {"a": float("nan")}}), "nan"),
            (b"", "empty"),
        ],
        "labels": [
            (random_bytes(2), "not avro"),
            (label[:-1], "truncated"),
            (json.dumps({"id": "w", "ts": 1, "label": {"a": 1}}).encode(), "expected"),
            (b'{"id": "nan-json", "ts": 1, "label": NaN}', "nan"),
            (avro_unchecked("Label", {"id": "nan-avro", "ts": 1, "label": float("nan")}), "nan"),
        ],
        "control": [
            (random_bytes(3), "not avro"),
            (command[:-3], "truncated"),
            (json.dumps({"model": "default", "command": 7, "args": "x", "ts": 1}).encode(), "expected string"),
            (b'{"model": "default", "command": "pause_learning", "args": {}, "ts": NaN}', "nan"),
            # A well-formed record the trainer must refuse (test_pipeline_control covers bad parameters).
            (json.dumps({"model": "default", "command": "explode", "args": {}, "ts": 1}).encode(), "explode"),
        ],
    }  # fmt: skip


def test_garbage_on_every_input_topic_is_dead_lettered_and_the_stream_goes_on(pipeline: Pipeline) -> None:
    cases = garbage()
    with running(pipeline):
        pipeline.start("all")
        prefix = pipeline.prefix
        sent: dict[tuple[str, int, int], tuple[bytes, str]] = {}
        for topic, items in cases.items():
            # A control record the trainer is to refuse for what it says must come on its model's partition: on
            # another, it is refused for that before it is read (a trainer handles only its own models' records).
            home = partition_for("default", pipeline.settings().kafka.training_partitions)
            on = home if topic == "control" else None
            where = pipeline.send_raw_at(topic, [payload for payload, _ in items], KEY, partition=on)
            for (partition, offset), item in zip(where, items, strict=True):
                sent[(f"{prefix}{topic}", partition, offset)] = item

        # Valid records after the garbage are still processed, by every stage.
        rng = random.Random(4)
        with pipeline.producer() as producer:
            for i in range(100):
                producer.send_feature(f"ok-{i}", {"a": rng.random(), "b": rng.random()})
            for i in range(100):
                producer.send_label(f"ok-{i}", i % 2)
        pipeline.cli("models", "set", "guard.alpha=0.01")
        pipeline.wait_learned(100, timeout=60)
        audit = pipeline.state_dir / "audit" / f"{prefix}default.jsonl"
        pipeline.wait_until("the valid set command audited", lambda: "0.01" in audit.read_text(), timeout=30)

        def lettered() -> dict[tuple[str, int, int], dict[str, Any]]:
            return {
                (d["source_topic"], d["partition"], d["offset"]): d for d in pipeline.values("deadletter")
            }

        # The topic the checks read, not the counter: the trainer counts a dead letter when it writes it, inside a
        # transaction that read_committed readers see only once it commits.
        pipeline.settle(lambda: set(sent) <= set(lettered()), timeout=60)
        letters = lettered()
        missing = sorted(set(sent) - set(letters))
        assert not missing, f"not dead-lettered: {[(w, sent[w][0][:60], sent[w][1]) for w in missing]}"
        assert set(letters) == set(sent), (
            f"valid records were dead-lettered: {sorted(set(letters) - set(sent))}"
        )
        for coords, (payload, reason) in sent.items():
            letter = letters[coords]
            assert letter["value"] == payload and letter["key"] == KEY, coords
            assert reason in letter["error"].lower(), (
                f"{coords}: reason {letter['error']!r} does not say {reason!r}"
            )

        assert pipeline.metric_sum("driftline_deadletters_total") == len(sent)
        by_topic = {
            t: pipeline.metric_sum("driftline_deadletters_total", source_topic=f"{prefix}{t}") for t in cases
        }
        assert by_topic == {t: float(len(items)) for t, items in cases.items()}
        assert pipeline.labels_learned() == 100
        controls = [json.loads(line) for line in audit.read_text().splitlines() if '"control"' in line]
        outcome = {(c["command"], json.dumps(c["args"], sort_keys=True)): c["outcome"] for c in controls}
        assert outcome[("set", '{"guard.alpha": "0.01"}')] == "ok"
        assert outcome[("explode", "{}")].startswith("refused")
        pipeline.assert_alive()
