"""Pause without loss survives a restart: labels held while paused are in the trainer's checkpoint, and a trainer
restarted while paused learns them, in order, after ``resume`` (n_learned proves it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault_helpers import make_events, publish, retire, running_all
from tests.pipeline_helpers import Pipeline, labels_learned

pytestmark = [pytest.mark.kafka]

KEY = "control-tests-signing-key-0123456789abcdef"


def held(pipeline: Pipeline) -> float:
    return pipeline.metric_sum("driftline_paused_examples_total", outcome="held")


def test_labels_held_during_a_pause_survive_a_trainer_restart(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    pipeline = Pipeline(prefix, tmp_path, redis_url, extra_env={"DRIFTLINE_SIGNING_KEY": KEY})
    with running_all(pipeline):
        (first,) = pipeline.start("all")
        publish(pipeline, make_events(100, seed=3, tag="a"), label_lag=0)
        pipeline.wait_learned(100)
        pipeline.cli("models", "pause")
        publish(pipeline, make_events(150, seed=4, tag="b"), label_lag=0)
        pipeline.wait_until("150 labels held", lambda: held(pipeline) == 150, timeout=60)
        assert retire(pipeline, first) == 0

        pipeline.start("all")
        pipeline.wait_until(
            "the gauge shows the held labels",
            lambda: pipeline.metric_sum("driftline_held_examples", model="default") == 150,
            timeout=30,
        )
        live = pipeline.trainer()
        assert live["paused"] and live["held_examples"] == 150 and labels_learned(live) == 100, live
        answer = pipeline.cli("models", "resume").stdout
        assert "learned 150 label(s) held during the pause" in answer, answer
        # Learned by the restarted worker (its counter starts at 0). Not the status's n_learned: a probation
        # rollback during these labels would take the lineage back to the previous version's count.
        assert pipeline.metric_sum("driftline_events_total", stage="train", outcome="ok") == 150
        assert pipeline.metric_sum("driftline_held_examples", model="default") == 0
        pipeline.assert_alive()
