"""``driftline doctor``'s workers check names a role that has no running worker (session 31).

With the trainer stopped (SIGSTOP, or never started) while score and join workers ran, doctor said ``ok workers``
and "nothing blocks the main job", although no model learned and every control command went unanswered
(``status`` showed the trainer group empty).
"""

from __future__ import annotations

from typing import Any

import pytest

import connectors.kafka_view
import streams.trainer_status
from connectors.kafka_view import GroupInfo
from driftline.settings import load_settings
from streams.commands.doctor import check_workers

SETTINGS = load_settings(environ={"DRIFTLINE_TOPIC_PREFIX": "doc31."})


def _with_groups(monkeypatch: pytest.MonkeyPatch, groups: dict[str, list[str]]) -> None:
    class View:
        group_errors: list[str] = []

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def group_ids(self) -> list[str]:
            return list(groups)

        def describe(self, ids: list[str], with_lag: bool = True) -> list[GroupInfo]:
            return [GroupInfo(g, "stable" if m else "empty", m) for g, m in groups.items() if g in ids]

    monkeypatch.setattr(connectors.kafka_view, "KafkaView", View)
    monkeypatch.setattr(streams.trainer_status, "trainer_status", lambda settings: None)
    monkeypatch.setattr(streams.trainer_status, "worker_configs", lambda settings, role: {})


SCORE, JOIN, TRAIN = (
    "driftline-doc31.default-score",
    "driftline-doc31.default-join",
    "driftline-doc31.trainers",
)


def test_the_group_names_are_the_workers_own() -> None:
    from streams.app import stage_group
    from streams.join import trainer_group

    assert (
        stage_group(SETTINGS, "score"),
        stage_group(SETTINGS, "join"),
        trainer_group(SETTINGS),
    ) == (SCORE, JOIN, TRAIN)


def test_every_role_running_is_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_groups(monkeypatch, {SCORE: ["a@h"], JOIN: ["a@h"], TRAIN: ["t@h"]})
    assert check_workers(SETTINGS, 1.0).status == "ok"


@pytest.mark.parametrize(
    ("groups", "missing"),
    [
        ({SCORE: ["a@h"], JOIN: ["a@h"], TRAIN: []}, "train"),
        ({SCORE: ["a@h"], JOIN: ["a@h"]}, "train"),
        ({JOIN: ["a@h"], TRAIN: ["t@h"]}, "score"),
        ({SCORE: ["a@h"], TRAIN: ["t@h"]}, "join"),
    ],
)
def test_a_role_without_a_running_worker_is_a_warning_naming_it(
    monkeypatch: pytest.MonkeyPatch, groups: dict[str, list[str]], missing: str
) -> None:
    _with_groups(monkeypatch, groups)
    check = check_workers(SETTINGS, 1.0)
    assert check.status == "warn"
    assert f"no {missing} worker" in check.detail
    assert f"--role {missing}" in check.fix
