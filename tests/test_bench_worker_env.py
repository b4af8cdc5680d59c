"""`driftline bench` starts its workers with the run's own settings, whatever the operator's environment holds
(session 34: with DRIFTLINE_SIGNING_KEY_FILE exported, as README's Docker section says to, every bench worker
verified with the operator's key and refused the run's releases: "score-lr v1 not served by every scorer").
In-process: the worker's environment is captured, no process is started, no broker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import bench.env
from bench.env import BenchEnv
from driftline.settings import load_settings
from streams.processes import WorkerProcess


class _Captured:
    envs: list[dict[str, str]] = []

    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self.envs.append(env)

    def start(self) -> _Captured:
        return self

    def wait_metrics(self, timeout: float) -> bool:
        return True


@pytest.mark.parametrize("var", ["DRIFTLINE_SIGNING_KEY_FILE", "DRIFTLINE_PREVIOUS_SIGNING_KEY_FILE"])
def test_an_exported_key_file_does_not_reach_the_runs_workers(
    var: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    operators = "o" * 64
    (tmp_path / "key").write_text(operators)
    for name in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(var, str(tmp_path / "key"))
    monkeypatch.setattr(bench.env, "WorkerProcess", _Captured)
    run = BenchEnv(load_settings(environ={}), workdir=tmp_path / "work")
    (tmp_path / "work").mkdir()
    run.start_worker("score", "score-lr", "logistic_regression")
    worker_env: dict[str, Any] = {**os.environ, **_Captured.envs[-1]}  # as WorkerProcess merges them
    model = load_settings(environ=worker_env).model
    assert model.signing_key.get() == run.signing_key
    assert operators not in (model.signing_key.get(), model.previous_signing_key.get())


def test_a_nested_setting_in_the_operators_environment_does_not_reach_the_runs_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DRIFTLINE__SECTION__FIELD overrides the run's config file in the worker (a DRIFTLINE__MODEL__LEARNER would
    change what is measured; audit34): the bench removes every nested variable from its workers' environment."""
    for name in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTLINE__MODEL__LEARNER", "hoeffding_tree")
    monkeypatch.setenv("DRIFTLINE__KAFKA__TOPIC_PREFIX", "operators.")
    monkeypatch.setenv("DRIFTLINE_NO_JIT", "1")  # not a setting: left as the operator set it
    monkeypatch.setattr(bench.env, "WorkerProcess", _Captured)
    run = BenchEnv(load_settings(environ={}), workdir=tmp_path / "work")
    (tmp_path / "work").mkdir()
    run.start_worker("score", "score-lr", "logistic_regression")
    child = WorkerProcess("score", _Captured.envs[-1], tmp_path / "log").child_env()  # as the worker gets it
    assert not [v for v in child if v.startswith("DRIFTLINE__")] and child["DRIFTLINE_NO_JIT"] == "1"
    settings = load_settings(environ=child)
    assert settings.model.learner.name == "logistic_regression"
    assert settings.kafka.topic_prefix == f"{run.prefix}score-lr."


def test_the_trainer_cost_worker_gets_the_same_environment_as_the_bench_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench.trainer_cost built its worker's environment from its own list, which missed the key files and the
    nested settings the bench's workers drop (session 34): its worker signed with an exported key file's key."""
    import bench.trainer_cost as trainer_cost

    operators = "o" * 64
    (tmp_path / "key").write_text(operators)
    for name in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("DRIFTLINE__MODEL__LEARNER__NAME", "logistic_regression")
    captured: list[dict[str, Any]] = []

    class Stop(Exception):
        pass

    def tree_worker(role: str, env: dict[str, Any], log: Path, **_k: object) -> None:
        captured.append(env)
        raise Stop

    monkeypatch.setattr(trainer_cost, "TreeWorker", tree_worker)
    monkeypatch.setattr(trainer_cost, "raw_producer", lambda _s: None)
    monkeypatch.setattr(trainer_cost, "produce_all", lambda *_a: None)
    monkeypatch.setattr(BenchEnv, "ensure_topics", lambda _self, _s: None)
    run = BenchEnv(load_settings(environ={}), workdir=tmp_path / "work")
    (tmp_path / "work").mkdir()
    with pytest.raises(Stop):
        trainer_cost.measure(run, ".", "hoeffding_tree", "tree", [], None)
    child = WorkerProcess("train", captured[-1], tmp_path / "log").child_env()  # as the worker gets it
    settings = load_settings(environ=child)
    assert settings.model.signing_key.get() == run.signing_key
    assert settings.model.learner.name == "hoeffding_tree"


def test_the_runs_workers_reach_a_secured_cluster_configured_by_nested_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the nested variables removed from the workers' environment (session 34), a cluster reached through
    DRIFTLINE__KAFKA__SECURITY_PROTOCOL, __SASL_MECHANISM, __SASL_USERNAME and __SASL_PASSWORD was reached by the
    bench itself and not by its workers (PLAINTEXT): the run's config file carries how to connect."""
    for name in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(name)
    nested = {
        "DRIFTLINE__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "DRIFTLINE__KAFKA__SASL_MECHANISM": "SCRAM-SHA-256",
        "DRIFTLINE__KAFKA__SASL_USERNAME": "bench-user",
        "DRIFTLINE__KAFKA__SASL_PASSWORD": "bench-password",
    }
    for var, value in nested.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(bench.env, "WorkerProcess", _Captured)
    base = load_settings()  # from the operator's environment, as `bench` loads it
    run = BenchEnv(base, workdir=tmp_path / "work")
    (tmp_path / "work").mkdir()
    run.start_worker("score", "score-lr", "logistic_regression")
    child = WorkerProcess("score", _Captured.envs[-1], tmp_path / "log").child_env()  # as the worker gets it
    kafka = load_settings(environ=child).kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")
    assert (kafka.sasl_username, kafka.sasl_password.get()) == ("bench-user", "bench-password")
