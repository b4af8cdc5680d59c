"""Trouble is visible (issue 20): ``driftline status`` shows dead letters within seconds, pending and parked joins
and the age of the oldest unanswered prediction; a feature that changes type and an unseen label class are counted
warnings with a drift-style event."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.fault_helpers import running_all
from tests.pipeline_helpers import Pipeline

pytestmark = [pytest.mark.kafka]

KEY = "control-tests-signing-key-0123456789abcdef"


def test_status_shows_dead_letters_joins_and_input_warnings(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    env = {"DRIFTLINE_SIGNING_KEY": KEY}
    with running_all(Pipeline(prefix, tmp_path, redis_url, extra_env=env)) as pipeline:
        pipeline.start("all")
        rng = random.Random(1)
        with pipeline.producer() as producer:
            for i in range(100):
                x = {"a": rng.random(), "b": rng.random()}
                producer.send_feature(f"e{i}", x)
                producer.send_label(f"e{i}", int(x["a"] > 0.5))
        pipeline.wait_learned(100)

        (before,) = pipeline.cli_json("status", "--json")
        assert before["deadletters_last_hour"]["total"] == 0
        # A dead letter, a label nobody predicted (parked), predictions waiting for labels (pending).
        pipeline.send_raw("features", [b"this is not an event"], b"k")
        sent_at = time.monotonic()
        with pipeline.producer() as producer:
            producer.send_label("never-predicted", 1)
            for i in range(5):
                producer.send_feature(f"wait{i}", {"a": 0.1, "b": 0.2})

        def seen() -> dict | None:
            (status,) = pipeline.cli_json("status", "--json")
            dead = status["deadletters_last_hour"]
            return status if dead["total"] == 1 else None

        status = pipeline.wait_until("the dead letter in status", seen, timeout=30, interval=0.2)
        print(f"status showed the dead letter {time.monotonic() - sent_at:.1f} s after it was sent")
        dead = status["deadletters_last_hour"]
        ((reason, n),) = dead["by_reason"].items()
        assert (
            n == 1
            and reason.startswith("features: ")
            and dead["newest"]["source_topic"] == f"{prefix}features"
        )

        def joins() -> dict | None:
            (s,) = pipeline.cli_json("status", "--json")
            (m,) = [m for m in s["models"] if m["model"] == "default"]
            j = m["joins"]
            return j if j["parked"] == 1 and j["pending"] >= 5 else None

        j = pipeline.wait_until("pending and parked joins in status", joins, timeout=30)
        assert j["oldest_pending_age_s"] is not None and 0 <= j["oldest_pending_age_s"] < 600
        text = pipeline.cli("status").stdout
        assert "dead letters in the last hour: 1" in text
        assert "1 label(s) parked" in text and "waiting for a label" in text

        # A numeric feature turns into a string; a label class never seen: counted warnings and drift events.
        with pipeline.producer() as producer:
            producer.send_feature("odd1", {"a": "sunny", "b": 0.5})
            producer.send_label("odd1", 1)
            producer.send_feature("odd2", {"a": 0.7, "b": 0.5})
            producer.send_label("odd2", 7)
        pipeline.wait_until(
            "both input warnings counted",
            lambda: (
                pipeline.metric_sum("driftline_input_warnings_total", kind="feature_type") >= 2
                and pipeline.metric_sum("driftline_input_warnings_total", kind="new_class") == 1
            ),
            timeout=60,
        )
        events = [e for e in pipeline.values("drift") if e["detector"] == "schema"]
        signals = sorted(e["signal"] for e in events)
        # a: number -> string (odd1), then string -> number (odd2); label 7 is new.
        assert signals == ["feature_type:a", "feature_type:a", "label:new_class"], signals
        new_class = next(e for e in events if e["signal"] == "label:new_class")
        assert new_class["details"]["label"] == "7"
        pipeline.assert_alive()
