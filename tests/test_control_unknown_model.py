"""A control command for a model nobody knows, from outside (a real train worker, the CLI, its metrics).

An operator's ``--model`` typo is a well-formed, signed command: it is answered (the CLI exits 1 naming the model
and the models there are) and counted in ``driftline_events_total{stage="control",outcome="refused"}``, not
dead-lettered. Until session 37 it was dead-lettered too, and so fired ``DriftlineDeadLetters`` for a typo. A forged
command for such a model is still refused and dead-lettered (tests/test_trainer_group.py sends one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline_helpers import Pipeline

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(prefix, tmp_path, redis_url)
    try:
        p.start("train")
        yield p
    finally:
        p.stop()


def test_a_model_typo_is_answered_and_counted_not_dead_lettered(pipeline: Pipeline) -> None:
    # The trainer publishes the default model's v1 at start: a model with a release to name.
    pipeline.wait_until("v1 of default", lambda: pipeline.trainer().get("served_version"))
    typo = pipeline.cli("--model", "defualt", "models", "pause", check=False)
    assert typo.returncode == 1, typo.stdout + typo.stderr
    assert "pause_learning REFUSED: model 'defualt' is unknown here" in typo.stderr, typo.stderr
    assert "check --model" in typo.stderr and "models with a release: default" in typo.stderr, typo.stderr
    refused = pipeline.metric_sum("driftline_events_total", stage="control", outcome="refused")
    assert refused == 1, pipeline.logs()
    assert pipeline.metric_sum("driftline_deadletters_total") == 0, pipeline.logs()
    assert pipeline.read("deadletter") == []
    # The real model still answers.
    assert pipeline.cli("models", "pause").returncode == 0
    assert pipeline.trainer()["paused"] is True
