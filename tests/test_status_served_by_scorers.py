"""``status`` says what the scorers serve, as they report it, not what the trainer released (no broker, no Redis:
the readers are replaced). A signed release the scorers refused is named with its reason; when they serve nothing
(every release refused) status says so instead of naming the newest release."""

from __future__ import annotations

from typing import Any

import pytest

import streams.model_registry
import streams.releases
import streams.serving
import streams.status as status_mod
import streams.trainer_status
from driftline.settings import load_settings
from streams.commands.status import render
from streams.releases import CheckedReleases


def _release(version: int) -> dict[str, Any]:
    return {"model": "default", "version": version, "reason": "manual", "created_at": 1, "metrics": {}}


def _status(monkeypatch: pytest.MonkeyPatch, serving: dict[str, Any] | None) -> dict[str, Any]:
    checked = CheckedReleases([_release(1), _release(2)], [], [], True)
    live = {"served_version": 2, "n_learned": 10, "paused": False, "updated_at": 1, "owner": "t"}
    monkeypatch.setattr(streams.releases, "read_checked_releases", lambda *a, **k: checked)
    monkeypatch.setattr(streams.trainer_status, "trainer_status", lambda *a, **k: dict(live))
    monkeypatch.setattr(streams.model_registry, "trainer_assignment", lambda *a, **k: None)
    monkeypatch.setattr(streams.serving, "read_serving", lambda *a, **k: serving)
    monkeypatch.setattr(status_mod, "_joins", lambda s: None)
    (model,) = status_mod._models(load_settings(environ={}))
    return {
        "topic_prefix": "driftline.",
        "default_model": "default",
        "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
        "workers": [],
        "models": [model],
        "drift_last_hour": {"total": 0, "by_signal": {}},
    }


REFUSED = {
    "version": 2,
    "reason": "load",
    "scorers": 2,
    "message": "release default v2 could not be loaded",
    "at": 1,
}


def test_status_names_the_version_the_scorers_serve_and_the_release_they_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving = {"scorers": 2, "versions": {"1": 2}, "served_version": 1, "refused": [REFUSED]}
    status = _status(monkeypatch, serving)
    model = status["models"][0]
    assert (model["served_version"], model["served_version_from"], model["released_version"]) == (
        1,
        "scorers",
        2,
    )
    text = render(status)
    assert "serving v1 (2 scorers)" in text and "serving v2" not in text, text
    assert "v2 was REFUSED by 2 scorer(s) (load): release default v2 could not be loaded" in text
    assert "driftline models promote 1 --model default" in text


def test_status_says_the_scorers_serve_nothing_when_they_refused_every_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serving = {"scorers": 1, "versions": {}, "served_version": None, "refused": [REFUSED]}
    status = _status(monkeypatch, serving)
    model = status["models"][0]
    assert (model["served_version"], model["served_version_from"]) == (None, "scorers")
    text = render(status)
    assert "serving NO version (1 scorer(s) reported, none serves one)" in text, text
    assert "v2 was REFUSED by 2 scorer(s) (load)" in text


def test_without_a_scorer_report_status_shows_the_release_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for serving, why in (
        ({"scorers": 0, "versions": {}, "served_version": None, "refused": []}, "no scorer has reported"),
        (None, "Redis did not say what the scorers serve"),
    ):
        status = _status(monkeypatch, serving)
        assert status["models"][0]["served_version_from"] == "trainer"
        assert f"serving v2 (released; {why})" in render(status)
