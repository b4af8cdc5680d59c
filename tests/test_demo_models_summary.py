"""`driftline demo --models N` lists each model's version, n_learned and recent accuracy. Its n_learned was the
figure in the model's newest release, which lags the trainer's count once the guard stops promoting (a drifted
model): a 900-event run over 3 models printed 279, 295 and 151 while each had learned its 300 labels (outside12).
In process: the releases and the trainers' reports are given."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.settings import load_settings
from streams.releases import CheckedReleases
from streams.reporting import demo as report


def _release(model: str, version: int, n_learned: int) -> dict[str, Any]:
    return {
        "model": model,
        "version": version,
        "metrics": {"n_learned": float(n_learned), "rolling_accuracy": 0.5},
    }


def test_each_models_n_learned_is_the_trainers_count_not_its_last_releases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    releases = [_release("t0", 1, 0), _release("t0", 9, 151), _release("t1", 4, 295), _release("t2", 2, 7)]
    checked = CheckedReleases(verified=releases, unchecked=[], rejected=[], checked=True)
    monkeypatch.setattr(report, "read_checked_releases", lambda settings: checked)
    live = {"t0": {"n_learned": 300, "version": 9}, "t1": {"n_learned": 300, "version": 4}}
    monkeypatch.setattr(report, "model_owners", lambda settings: live)
    rows = report.newest_per_model(load_settings(environ={}))
    assert [(r["model"], r["version"], r["n_learned"]) for r in rows] == [
        ("t0", 9, 300),
        ("t1", 4, 300),
        ("t2", 2, 7),  # no trainer report (Redis lost it): the release's figure
    ]
