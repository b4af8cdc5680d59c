"""Train workers of one deployment started with different settings (helper scale39, session 39).

Each model gets the settings of the trainer that owns it: in scale39's run (docs/experiments/scale39.md) a trainer
started with ``model.task=regression`` beside a classifier made 6 of 12 models regressions, by the hash of their
names, and a failover switched the others' ``guard.alpha``; nothing said so (status, doctor and the logs were
quiet but for one line per restored model). Now every member publishes its learning settings; ``driftline status``
(text and ``--json``) names what differs between the live members, and the trainers log it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.processes import WorkerProcess
from tests.pipeline_helpers import Pipeline, running
from tests.waiting import wait_until


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Pipeline:
    return Pipeline(prefix, tmp_path, redis_url)


def _differences(pipeline: Pipeline) -> dict[str, Any]:
    status = json.loads(pipeline.cli("status", "--json").stdout)
    return dict(status.get("trainer_config_differences") or {})


@pytest.mark.kafka
def test_trainers_with_different_settings_are_named_by_status_and_in_their_logs(pipeline: Pipeline) -> None:
    with running(pipeline):
        (first,) = pipeline.start("train")
        other = WorkerProcess(
            "train",
            {**pipeline.env(), "DRIFTLINE__MODEL__TASK": "regression", "DRIFTLINE__GUARD__ALPHA": "0.01"},
            pipeline.state_dir / "logs" / "worker-train-other.log",
        )
        pipeline.workers.append(other)
        assert other.start().wait_metrics(90), pipeline.logs()
        members = {f"{w.proc.pid}" for w in (first, other) if w.proc is not None}

        differs = pipeline.wait_until(
            "status naming model.task and guard.alpha as different between the two trainers",
            lambda: (d := _differences(pipeline)) and {"model.task", "guard.alpha"} <= d.keys() and d,
            timeout=45,
        )
        assert set(differs) == {"model.task", "guard.alpha"}  # nothing else differs
        assert {m.rsplit("-", 1)[-1] for m in differs["model.task"]} == members
        assert sorted(differs["model.task"].values()) == ['"classification"', '"regression"']
        assert sorted(differs["guard.alpha"].values()) == ["0.01", "0.05"]
        text = pipeline.cli("status").stdout
        assert "these trainers run with DIFFERENT settings: " in text and "model.task" in text, text
        assert "same configuration" in text
        doctor = pipeline.cli("doctor", check=False).stdout
        assert "the trainers run with different settings (" in doctor and "model.task" in doctor, doctor
        # The trainer that started second saw its peer at once; the first sees it with its next status.
        pipeline.wait_until(
            "both trainers logging the difference",
            lambda: all("run with different settings" in w.log_tail(200) for w in (first, other)),
            timeout=30,
        )

        # A member that stops is no peer any more: the difference is gone with it.
        pipeline.workers.remove(other)
        other.stop()
        wait_until("no difference once the other trainer stopped", lambda: not _differences(pipeline), 45)


def _routing_differences(pipeline: Pipeline) -> dict[str, Any]:
    status = json.loads(pipeline.cli("status", "--json").stdout)
    return dict(status.get("scorer_routing_differences") or {})


@pytest.mark.kafka
def test_scorers_with_different_routing_are_named_by_status_and_doctor(pipeline: Pipeline) -> None:
    """scale39's routing run: a scorer with ``routing.feature=tenant`` beside one without answered a tenant's
    events with two models, by partition, and nothing said so."""
    with running(pipeline):
        pipeline.start("score")
        other = WorkerProcess(
            "score",
            {**pipeline.env(), "DRIFTLINE__ROUTING__FEATURE": "tenant"},
            pipeline.state_dir / "logs" / "worker-score-other.log",
        )
        pipeline.workers.append(other)
        assert other.start().wait_metrics(90), pipeline.logs()
        differs = pipeline.wait_until(
            "status naming routing.feature as different between the two scorers",
            lambda: _routing_differences(pipeline),
            timeout=45,
        )
        assert set(differs) == {"routing.feature"}
        assert sorted(differs["routing.feature"].values()) == ['"tenant"', "null"]
        text = pipeline.cli("status").stdout
        assert "these scorers route with DIFFERENT settings: routing.feature" in text, text
        doctor = pipeline.cli("doctor", check=False).stdout
        assert "the scorers route with different settings (routing.feature" in doctor, doctor

        pipeline.workers.remove(other)
        other.stop()
        wait_until(
            "no difference once the other scorer stopped", lambda: not _routing_differences(pipeline), 45
        )
