"""Which refusals of an authentic control command are dead letters (session 34): a command the contract does not
know is bad input (dead-lettered); one the model's state does not allow (a LearnerError/ConfigError from applying
it: nothing held, no parent, an unknown version) is an operator's ordinary refusal (answered, audited, counted as
events_total{stage=control,outcome=refused}, not dead-lettered: it fired DriftlineDeadLetters on a typo); any other
failure to apply it (an artifact that will not load, a read that failed) is dead-lettered so it stays visible
(review34b). In-process: TrainerControl.command over stand-ins for the worker's context; no broker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from driftline.errors import ArtifactError, LearnerError
from driftline.settings import load_settings
from streams.control import new_command
from streams.runtime import RawRecord
from streams.train_control import TrainerControl

KEY = "test-key-0123456789abcdef0123456789abcdef"


class _Control(TrainerControl):
    def __init__(self, failure: Exception | None) -> None:
        self.settings = load_settings(environ={}, overrides={"model.signing_key": KEY})
        self.ctx = mock.MagicMock(settings=self.settings, model="default")
        self.lifecycle = SimpleNamespace(  # type: ignore[assignment]
            served_version=3, guard=self.settings.guard, drift=self.settings.drift, paused=False
        )
        self.control_seen, self.replies, self.failure = set(), [], failure
        self._redis = mock.MagicMock(**{"get.return_value": None})  # no command answered `unknown` before

    def apply(self, command: str, args: dict[str, str], cmd: dict[str, Any] | None = None) -> str:
        if self.failure is not None:
            raise self.failure
        return "applied"


def _run(control: _Control, command: str, args: dict[str, str]) -> dict[str, Any]:
    cmd = new_command(control.settings, command, args)
    control.command(RawRecord("driftline.control", 0, 7, b"default", b"{}", 0), cmd)
    (reply,) = control.replies
    return reply


@pytest.mark.parametrize(
    "failure", [LearnerError("promote: no 'held' candidate"), LearnerError("rollback: no parent")]
)
def test_a_command_the_state_does_not_allow_is_counted_not_dead_lettered(failure: Exception) -> None:
    control = _Control(failure)
    reply = _run(control, "promote", {"candidate": "held"})
    assert (reply["outcome"], reply["reason"]) == ("refused", "state") and str(failure) in reply["message"]
    control.ctx.deadletter.assert_not_called()
    control.ctx.metrics.events.labels.assert_called_with(stage="control", outcome="refused")


@pytest.mark.parametrize("failure", [ArtifactError("artifact digest mismatch"), RuntimeError("boom")])
def test_a_failure_to_apply_is_dead_lettered(failure: Exception) -> None:
    control = _Control(failure)
    reply = _run(control, "rollback", {})
    assert (reply["outcome"], reply["reason"]) == ("refused", "error")
    control.ctx.deadletter.assert_called_once()
    assert str(failure) in control.ctx.deadletter.call_args.args[2]


def test_an_unknown_command_is_dead_lettered_and_an_applied_one_counted() -> None:
    control = _Control(None)
    reply = _run(control, "explode", {})
    assert (reply["outcome"], reply["reason"]) == ("refused", "invalid")
    control.ctx.deadletter.assert_called_once()
    control = _Control(None)
    assert _run(control, "pause_learning", {})["outcome"] == "ok"
    control.ctx.metrics.events.labels.assert_called_with(stage="control", outcome="ok")
