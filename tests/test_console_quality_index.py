"""The quality page's axis is each example's index in its model's stream, where the trainer files its DriftEvents
and guard decisions: alarms and releases land at the example they were raised at, as in the demo report, however
far behind the trainer was when it wrote them (outside37: v2..v20 were all drawn at example 114 by time)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from connectors.producer import EventProducer
from connectors.topics import ensure_topics
from driftline.settings import Settings, load_settings
from streams.console.tail import TopicTail, quality_view


def _examples(n: int, model: str = "default", start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "id": str(start + i),
            "model": model,
            "label": 1,
            "prediction": 1,
            "version": 1,
            "kafka_ts": 100 * (start + i),
        }
        for i in range(n)
    ]


def test_alarms_and_releases_are_placed_at_their_index_not_at_their_time(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    training = _examples(10, start=100)  # the console kept examples 100..109 of the model's stream
    # A trainer behind the stream: it filed these about examples 103 and 105, but only after every example here
    # was written (ts 20 000, the last example's is 10 900): by time they were both drawn at the end (110).
    drift = [{"model": "default", "signal": "error", "detector": "adwin", "ts": 20_000, "index": 103}]
    decision = json.dumps({"outcome": "promote", "index": 105, "text": "better"})
    releases = [
        {
            "model": "default",
            "version": 2,
            "reason": "challenger",
            "created_at": 20_001,
            "decision": decision,
        },
        {"model": "default", "version": 1, "reason": "initial", "created_at": 10_350, "decision": ""},
    ]
    q = quality_view(settings, training, drift, releases, None, window=2, dropped=100)
    assert q["first"] == 100 and q["n"] == 10
    assert [p["i"] for p in q["series"]] == list(range(100, 110))
    assert [a["i"] for a in q["alarms"]] == [103]
    # v2 by its decision's index; v1 has no decision: by time, the first example written after it (104).
    assert [(r["version"], r["i"]) for r in q["releases"]] == [(2, 105), (1, 104)]


def test_a_repeated_id_is_not_an_example_of_its_own(tmp_path: Path) -> None:
    """The trainer skips an id it has learned (no index taken): the console counts the same way."""
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    training = _examples(3)
    training.insert(2, dict(training[1]))
    q = quality_view(settings, training, [], [], None, window=1)
    assert q["n"] == 3 and [p["i"] for p in q["series"]] == [0, 1, 2]


def _wait(tail: TopicTail, check: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
    deadline = time.monotonic() + 60
    while True:
        rows, dropped = tail.training()
        if check(rows, dropped) or time.monotonic() > deadline:
            return rows, dropped
        time.sleep(0.2)


def _send(settings: Settings, model: str, ids: range) -> None:
    with EventProducer(settings) as producer:
        for i in ids:
            example = {
                "id": f"{model}-{i}",
                "model": model,
                "key": None,
                "features": {"x": float(i)},
                "label": 1,
                "prediction": 1,
                "proba": None,
                "version": 1,
                "event_ts": i,
                "label_ts": i,
            }
            producer.send("training", "TrainingExample", example, model)
        producer.flush()


@pytest.mark.kafka
def test_the_tail_counts_per_model_the_examples_it_does_not_keep(settings: Settings) -> None:
    ensure_topics(settings, ("training", "drift", "deadletter"))
    _send(settings, "a", range(12))
    _send(settings, "b", range(3))
    tail = TopicTail(settings, keep={"training": 5}).start()
    try:
        # Every partition keeps its last 5 records; the rest are counted for their model, never kept.
        rows, dropped = _wait(tail, lambda r, d: sum(d.values()) + len(r) >= 15)
        kept_a = [r["id"] for r in rows if r["model"] == "a"]
        assert kept_a and dropped.get("a", 0) + len(kept_a) == 12
        assert kept_a == [f"a-{i}" for i in range(dropped.get("a", 0), 12)]
        assert dropped.get("b", 0) + sum(r["model"] == "b" for r in rows) == 3
        # Live: what falls off the kept records is counted too.
        _send(settings, "a", range(12, 20))
        rows, dropped = _wait(tail, lambda r, d: any(x["id"] == "a-19" for x in r))
        kept_a = [r["id"] for r in rows if r["model"] == "a"]
        assert kept_a == [f"a-{i}" for i in range(dropped["a"], 20)]
    finally:
        tail.stop()
