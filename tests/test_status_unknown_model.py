"""``driftline --model M status`` for a model nothing was ever seen for exits 1 naming the models there are, as
``models list --model M`` and ``audit show --model M`` do (session 35: it listed "nosuch serving nothing released"
and exited 0). Against the real broker and Redis, with a fresh topic prefix; the command runs in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.producer import EventProducer
from connectors.topics import ensure_topics
from driftline.config import LearnerSpec
from driftline.settings import Settings
from learners.artifacts import build_release
from learners.specs import build_learner
from streams.audit import audit_paths
from streams.cli import main


def _argv(settings: Settings, model: str, *rest: str) -> list[str]:
    return [
        "--bootstrap",
        settings.kafka.bootstrap,
        "--redis-url",
        settings.redis.url.get(),
        "--topic-prefix",
        settings.kafka.topic_prefix,
        "--model",
        model,
        "status",
        *rest,
    ]


@pytest.fixture
def _env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DRIFTLINE_CONFIG", "DRIFTLINE_MODEL", "DRIFTLINE__MODEL__NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", settings.model.signing_key.get())
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", settings.state_dir)
    monkeypatch.setenv("DRIFTLINE__REDIS__KEY_PREFIX", settings.redis.key_prefix)


def _release(settings: Settings, name: str) -> None:
    model = build_learner(LearnerSpec("logistic_regression"), "classification", 0)
    model.learn_one({"a": 1.0}, True)
    record = build_release(
        model,
        name=name,
        version=1,
        parent=None,
        reason="initial",
        metrics={},
        key=settings.model.signing_key.get().encode(),
        n_learned=1,
    )
    with EventProducer(settings) as producer:
        producer.send("models", None, record, key=name)
        producer.flush()


@pytest.mark.kafka
@pytest.mark.usefixtures("_env")
@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_status_of_a_model_never_seen_exits_1_naming_the_models_there_are(
    settings: Settings, json_flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_topics(settings)
    assert main(_argv(settings, "nosuch", *json_flag)) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "driftline status: model 'nosuch' was never seen" in err and "(models: none; check --model)" in err
    _release(settings, "churn")
    assert main(_argv(settings, "nosuch", *json_flag)) == 1
    assert "(models: churn; check --model)" in capsys.readouterr().err
    # a model with a release is shown as before
    assert main(_argv(settings, "churn", *json_flag)) == 0
    out = capsys.readouterr().out
    assert "churn" in out
    if json_flag:
        assert "churn" in [m["model"] for m in json.loads(out)["models"]]


@pytest.mark.kafka
@pytest.mark.usefixtures("_env")
def test_status_of_a_model_with_only_an_audit_chain_is_shown(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model whose releases are gone but whose audit chain is in the state dir was seen: no error."""
    ensure_topics(settings)
    chain = audit_paths(settings, "old")[0]
    Path(chain).parent.mkdir(parents=True, exist_ok=True)
    chain.write_text(json.dumps({"seq": 0, "model": "old", "kind": "release"}) + "\n", encoding="utf-8")
    assert main(_argv(settings, "old")) == 0
    assert "old" in capsys.readouterr().out
