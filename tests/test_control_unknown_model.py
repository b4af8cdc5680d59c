"""A control command for a model nobody knows, from outside (a real train worker, the CLI, its metrics).

An operator's ``--model`` typo is a well-formed, signed command: it is answered (the CLI exits 1 naming the model
and the models there are) and counted in ``driftline_events_total{stage="control",outcome="refused"}``, not
dead-lettered. Until session 37 it was dead-lettered too, and so fired ``DriftlineDeadLetters`` for a typo. A forged
command for such a model is still refused and dead-lettered (tests/test_trainer_group.py sends one).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.control import new_command, wait_reply
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


def test_a_forged_command_for_an_unknown_model_is_a_security_refusal(pipeline: Pipeline) -> None:
    """A command without the operator key is refused, counted in ``driftline_control_refused_total`` (the
    DriftlineControlRefused alert) and logged as SECURITY whatever model it names (review37: for a model nobody
    knows it was only dead-lettered, so someone without the key writing ``control`` with made-up model names
    raised no security alert). Its ``model`` label is ``_unverified``, as for a forged release: the name is the
    forger's choice, and each one kept a Prometheus series for good."""
    pipeline.wait_until("v1 of default", lambda: pipeline.trainer().get("served_version"))
    s = pipeline.settings()
    forged = dict(new_command(s.for_model("nobody"), "pause_learning", {}), signature="00" * 32)
    unsigned = {
        k: v for k, v in new_command(s.for_model("nobody2"), "pause_learning", {}).items() if k != "signature"
    }
    with pipeline.producer() as producer:
        producer.send("control", "ControlCommand", forged, "nobody")
        producer.send("control", "ControlCommand", unsigned, "nobody2")
    for name, command, reason in (("nobody", forged, "signature"), ("nobody2", unsigned, "unsigned")):
        answer = wait_reply(s.for_model(name), command["id"], 60)
        assert answer is not None and answer["reason"] == reason, answer
    for reason in ("signature", "unsigned"):
        refused = pipeline.metric_sum("driftline_control_refused_total", model="_unverified", reason=reason)
        assert refused == 1, pipeline.logs()
    text = "\n".join(w.metrics_text() for w in pipeline.workers)
    assert 'model="nobody' not in text, "a forger's model name became a metric label"
    logs = pipeline.logs(200)
    assert "SECURITY: control command 'pause_learning' for model 'nobody' refused: bad signature" in logs, (
        logs
    )
    assert "SECURITY: control command 'pause_learning' for model 'nobody2' refused: unsigned" in logs, logs
    # Still dead-lettered (bad input), and never counted as an operator's ordinary refusal.
    assert pipeline.metric_sum("driftline_deadletters_total") == 2, pipeline.logs()
    assert pipeline.metric_sum("driftline_events_total", stage="control", outcome="refused") == 0


def test_a_command_answered_unknown_is_not_applied_when_sent_again_once_its_model_exists(
    pipeline: Pipeline,
) -> None:
    """Its operator was told the command was refused (``unknown``): the same signed record sent again after the
    model came to exist, within ``model.control_max_age_s``, is a replay and refused as one (review37: it was
    applied, pausing a model its operator believed untouched)."""
    from streams.trainer_status import trainer_status

    pipeline.wait_until("v1 of default", lambda: pipeline.trainer().get("served_version"))
    s = pipeline.settings()
    ghost = s.for_model("ghost")
    command = new_command(ghost, "pause_learning", {})
    with pipeline.producer() as producer:
        producer.send("control", "ControlCommand", command, "ghost")
    first = wait_reply(ghost, command["id"], 60)
    assert first is not None and first["reason"] == "unknown", first
    now = int(time.time() * 1000)
    with pipeline.producer() as producer:
        for i in range(5):
            example = {"id": f"g{i}", "features": {"x": float(i)}, "label": i % 2, "prediction": None}
            example.update(version=0, event_ts=now, label_ts=now, model="ghost")
            producer.send("training", "TrainingExample", example, "ghost")
    status = pipeline.wait_until("ghost's trainer", lambda: trainer_status(ghost))
    assert status["paused"] is False
    before = pipeline.metric_sum("driftline_control_refused_total", model="ghost", reason="replay")
    with pipeline.producer() as producer:
        producer.send("control", "ControlCommand", command, "ghost")  # the same record, byte for byte
    pipeline.wait_until(
        "the replay refused",
        lambda: (
            pipeline.metric_sum("driftline_control_refused_total", model="ghost", reason="replay") > before
        ),
    )
    assert trainer_status(ghost)["paused"] is False, pipeline.logs()
    assert "was answered 'unknown' when first sent" in pipeline.logs(200)
