"""`driftline models ...` with no answer says the command may still be applied (helper chaos32, seed 4: a trainer
whose commit hung for 40 s on a broker fault applied a `set` 4 s after the CLI gave up, while the CLI only asked
whether a trainer was running; sending a rollback again would go two versions back)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from driftline.settings import load_settings
from streams.commands import models as models_cmd


def test_no_answer_says_the_command_may_still_be_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        models_cmd,
        "redis_client",
        lambda settings, timeout_s: SimpleNamespace(ping=lambda: True, close=lambda: None),
    )
    hint = models_cmd._no_answer_hint(load_settings(None, overrides={"model.control_max_age_s": 120}))
    assert "still applies it" in hint and "120 s" in hint
    assert "driftline audit show --kind control" in hint and "before sending it again" in hint


@pytest.mark.kafka
def test_a_prefix_with_no_control_topic_is_refused_before_sending(
    prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped `--topic-prefix` created `<typo>control` on the cluster and waited 30 s for an answer no trainer
    could give (audit34): now exit 2 naming the topic and the cluster, and nothing is created."""
    from connectors.kafka_client import check_reachable
    from streams.cli import main
    from tests.conftest import KAFKA_BOOTSTRAP

    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", KAFKA_BOOTSTRAP)
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", "test-key-0123456789abcdef0123456789abcdef")
    assert main(["--topic-prefix", prefix, "models", "pause", "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert f"no topic '{prefix}control' on {KAFKA_BOOTSTRAP}" in err and "--topic-prefix" in err
    settings = load_settings(environ={}, overrides={"kafka.bootstrap": KAFKA_BOOTSTRAP})
    assert f"{prefix}control" not in check_reachable(settings)
