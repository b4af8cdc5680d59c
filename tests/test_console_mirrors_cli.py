"""The console's ``/api/models`` and ``/api/models/current`` are the objects ``driftline models list --model M
--json`` and ``driftline models show --json`` print for the same state (no broker: the reads are replaced).

They were not: the console's list gave the champion the count in its last release (the command line the trainer's
live count, with owner, partition and lag), and its show had no ``labels_learned``."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace
from typing import Any

import pytest

import streams.serving
from driftline.settings import Settings, load_settings
from streams import model_registry
from streams.commands import models
from streams.console import sources

ROWS = [
    {"model": "default", "version": 7, "current": True, "n_learned": 975, "verified": True},
    {"model": "default", "version": 6, "current": False, "n_learned": 950, "verified": True},
]
LIVE = {
    "owner": "w1",
    "partition": 1,
    "version": 7,
    "n_learned": 1000,
    "labels_learned": 1200,
    "updated_at": 5,
}


SERVING = {
    "scorers": 2,
    "versions": {"2": 2},
    "served_version": 2,
    "refused": [{"version": 3, "reason": "load", "scorers": 2, "message": "not a pickle", "at": 7}],
}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    s = load_settings(environ={})
    for module in (model_registry, models):
        monkeypatch.setattr(module, "model_owners", lambda settings: {"default": dict(LIVE)})
        monkeypatch.setattr(module, "trainer_lags", lambda settings: {1: 3})
        monkeypatch.setattr(module, "release_list", lambda releases: [dict(r) for r in ROWS])
        monkeypatch.setattr(module, "describe", lambda releases, version: dict(ROWS[0]))
    monkeypatch.setattr(models, "_settings", lambda args: s)
    monkeypatch.setattr(models, "check_reachable", lambda settings: None)
    monkeypatch.setattr(
        models, "read_checked_releases", lambda *a, **k: SimpleNamespace(verified=[], unchecked=[])
    )
    monkeypatch.setattr(models, "read_registry", lambda *a: None)
    monkeypatch.setattr(models, "trainer_status", lambda settings: dict(LIVE))
    monkeypatch.setattr(sources, "trainer", lambda settings: dict(LIVE))
    # What the scorers report (Redis, streams.serving): read here, not from whatever Redis the machine runs.
    monkeypatch.setattr(models, "read_serving", lambda settings, model: dict(SERVING))
    monkeypatch.setattr(streams.serving, "read_serving", lambda settings, model: dict(SERVING))
    return s


def _printed(capsys: pytest.CaptureFixture[str]) -> list[Any]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _as_served(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))  # what the API sends


def test_api_models_is_models_list_json(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert models._list(argparse.Namespace(json=True, model="default")) == 0
    cli = _printed(capsys)
    api = _as_served(sources.models_list(settings, None))  # type: ignore[arg-type]
    assert api == cli
    current = api[0]
    assert (current["n_learned"], current["n_learned_in_release"], current["labels_learned"]) == (
        1000,
        975,
        1200,
    )
    assert (current["owner"], current["partition"], current["lag"]) == ("w1", 1, 3)


def test_api_models_current_is_models_show_json(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert models._show(argparse.Namespace(json=True, version=None)) == 0
    (cli,) = _printed(capsys)
    api = _as_served(sources.models_show(settings, None))  # type: ignore[arg-type]
    assert api == cli
    assert (api["n_learned"], api["labels_learned"]) == (1000, 1200)
