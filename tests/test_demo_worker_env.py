"""The demo's workers get the run's settings even when the operator exported DRIFTLINE__SECTION__FIELD spellings of
them (no broker needed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driftline.settings import ENV_VARS, load_settings
from streams.demo.runner import DemoOptions, DemoRun


def test_an_exported_nested_spelling_of_a_run_setting_does_not_stop_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DRIFTLINE__STATE_DIR=... driftline demo` stopped with 'worker train did not start': the run gives its
    workers DRIFTLINE_STATE_DIR=<run dir>, and the same setting given both ways with different values is refused
    (session 34). The run's values win; the operator's other nested settings still reach the workers."""
    for var in [*ENV_VARS, "DRIFTLINE_CONFIG"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DRIFTLINE__STATE_DIR", str(tmp_path / "operators-state"))
    monkeypatch.setenv("DRIFTLINE__KAFKA__TOPIC_PREFIX", "operators.")
    monkeypatch.setenv("DRIFTLINE__model__name", "operators-model")  # nested names are case-insensitive
    monkeypatch.setenv("DRIFTLINE__model__artifact_store", str(tmp_path / "operators-artifacts"))
    monkeypatch.setenv("DRIFTLINE__MODEL__TASK", "regression")
    base = load_settings(environ={}, overrides={"state_dir": str(tmp_path / "state")})
    run = DemoRun(base, DemoOptions(events=10))

    worker = load_settings(environ={**os.environ, **run.worker_env()})  # as WorkerProcess merges them

    assert worker.state_dir == str(run.run_dir)
    assert worker.kafka.topic_prefix == run.prefix
    assert worker.model.name == base.model.name
    assert worker.model.artifact_store == str(run.run_dir / "artifacts")
    assert worker.model.task == "regression"
