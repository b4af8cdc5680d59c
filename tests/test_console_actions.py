"""A console action becomes the ControlCommand ``driftline models`` would send: its arguments mean what they say
(no broker: the send is captured after the shared validation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftline.config import DriftConfig, GuardConfig
from driftline.errors import ConfigError
from driftline.settings import load_settings
from learners.lifecycle_control import validate_control
from streams.console import sources
from streams.console.server import Console

TRUE = ("1", "true", "yes", "on")


def _console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Console, list[tuple[str, dict[str, str]]]]:
    sent: list[tuple[str, dict[str, str]]] = []

    def send(settings: Any, command: str, args: dict[str, str]) -> dict[str, Any]:
        validate_control(command, args, GuardConfig(), DriftConfig())  # what send_command checks first
        sent.append((command, args))
        return {"command": command, "args": args, "id": f"c{len(sent)}", "signature": "x"}

    monkeypatch.setattr(sources, "send_control", send)
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    return Console(settings, None), sent  # type: ignore[arg-type]


@pytest.mark.parametrize("discard", ["no", "false", "0", "off", False, None, 0])
def test_pause_with_discard_false_in_any_spelling_keeps_the_labels(
    discard: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # {"discard": "no"} was truthy, so the console sent pause --discard and the trainer dropped every label.
    console, sent = _console(tmp_path, monkeypatch)
    console.act({"action": "pause", "discard": discard}, "127.0.0.1")
    ((command, args),) = sent
    assert command == "pause_learning"
    assert args.get("discard", "false").lower() not in TRUE, args


@pytest.mark.parametrize("discard", ["yes", "true", "1", True, 1])
def test_pause_with_discard_true_discards(
    discard: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console, sent = _console(tmp_path, monkeypatch)
    console.act({"action": "pause", "discard": discard}, "127.0.0.1")
    ((_, args),) = sent
    assert args["discard"].lower() in TRUE, args


@pytest.mark.parametrize("discard", ["maybe", "", [1], {"a": 1}, 2])
def test_a_discard_that_is_not_a_yes_or_no_is_refused_before_sending(
    discard: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    console, sent = _console(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="discard"):
        console.act({"action": "pause", "discard": discard}, "127.0.0.1")
    assert sent == []


def test_a_refused_command_is_answered_but_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /api/actions/ID said "applied": true for a refusal (it meant "answered"): a script checking it took a
    # refused promote for a done one.
    console, _ = _console(tmp_path, monkeypatch)
    replies = {
        "r": {"outcome": "refused", "message": "LearnerError: no 'held' candidate"},
        "k": {"outcome": "ok", "message": "promoted"},
    }
    monkeypatch.setattr(sources, "answer", lambda settings, command_id: replies.get(command_id))
    refused, ok, waiting = console.outcome("r"), console.outcome("k"), console.outcome("w")
    assert (refused["answered"], refused["applied"]) == (True, False)
    assert refused["outcome"] == "refused: LearnerError: no 'held' candidate"
    assert (ok["answered"], ok["applied"], ok["outcome"]) == (True, True, "ok")
    assert (waiting["answered"], waiting["applied"]) == (False, False)


@pytest.mark.parametrize("action", [["pause"], {"pause": 1}, 3, None, "Pause"])
def test_an_action_that_is_not_one_of_the_names_is_refused_before_sending(
    action: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # {"action": ["pause"]} (a list, not hashable) raised TypeError in the lookup: a 500 and a traceback in the
    # console's log instead of the 400 naming the actions (seen from outside, docs/experiments/gov40.md).
    console, sent = _console(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="action must be one of"):
        console.act({"action": action}, "127.0.0.1")
    assert sent == []


@pytest.mark.parametrize(
    "body",
    [
        {"action": "rollback", "model": "m2"},
        {"action": "promote", "version": 5},
        {"action": "promote", "target": "5", "model": "m2"},
        {"action": "pause", "discrad": True},
        {"action": "set", "guard.alpha": "0.01"},
        {"action": "resume", "target": "held"},
        {"action": "promote", "target": True},
        {"action": "promote", "target": [5]},
        {"action": "promote", "target": 5.5},
    ],
)
def test_a_field_the_action_does_not_take_is_refused_before_sending(
    body: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found from outside (session 46, adv46): unknown fields were ignored, so ``{"action": "rollback", "model":
    "m2"}`` rolled back the console's own model and ``{"action": "promote", "version": 5}`` promoted the held
    candidate, both answered 200."""
    console, sent = _console(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match=r"unknown field|target must be"):
        console.act(body, "127.0.0.1")
    assert sent == []


def test_the_fields_the_page_sends_are_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    console, sent = _console(tmp_path, monkeypatch)
    for body in (
        {"action": "promote", "target": "challenger"},
        {"action": "promote", "target": 5},
        {"action": "set", "key": "guard.alpha", "value": "0.01"},
        {"action": "pause", "discard": "no"},
        {"action": "rollback"},
    ):
        console.act(body, "127.0.0.1")
    assert [args for _, args in sent] == [
        {"candidate": "challenger"},
        {"version": "5"},
        {"guard.alpha": "0.01"},
        {"discard": "no"},
        {},
    ]
