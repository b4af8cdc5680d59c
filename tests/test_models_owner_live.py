"""``driftline models list/show`` name each model's owner from what trainers last reported in Redis; an owner that is
no longer a member of the trainer group is marked gone (an outside check of issue 4: after the trainer was killed
and replaced, or with no trainer running at all, `models list` still named the dead process as every model's owner,
with nothing to tell it from a live one)."""

from __future__ import annotations

from typing import Any

from driftline.settings import load_settings
from streams.commands.models import _print_models
from streams.model_registry import mark_live_owners, ownership


def _owners() -> dict[str, dict[str, Any]]:
    return {
        "a": {"owner": "host-1", "partition": 1, "n_learned": 5},
        "b": {"owner": "host-2", "partition": 2, "n_learned": 7},
    }


def test_an_owner_outside_the_trainer_group_is_marked_gone() -> None:
    settings = load_settings(environ={})
    owners = mark_live_owners(_owners(), {"host-1"})
    assert ownership(settings, "a", owners, {})["owner_live"] is True
    assert ownership(settings, "b", owners, {})["owner_live"] is False
    assert ownership(settings, "c", owners, {})["owner_live"] is None  # nobody reported it


def test_unknown_membership_marks_nothing() -> None:
    settings = load_settings(environ={})
    owners = mark_live_owners(_owners(), None)  # Kafka could not tell
    assert ownership(settings, "b", owners, {})["owner_live"] is None


def test_models_list_text_says_which_owner_is_gone(capsys: Any) -> None:
    settings = load_settings(environ={})
    owners = mark_live_owners(_owners(), {"host-1"})
    rows = []
    for name in ("a", "b"):
        row = {"model": name, "version": 3, "n_learned": 1, "metrics": {}, "current": True, "verified": True}
        row.update(ownership(settings, name, owners, {}))
        rows.append(row)
    _print_models(rows)
    out = capsys.readouterr().out.splitlines()
    line_a = next(line for line in out if line.startswith("a "))
    line_b = next(line for line in out if line.startswith("b "))
    assert "host-1" in line_a and "gone" not in line_a
    assert "host-2 (gone)" in line_b


def test_status_marks_a_trainer_that_left_the_group(monkeypatch: Any) -> None:
    import streams.model_registry
    import streams.releases
    import streams.status as status_mod
    import streams.trainer_status
    from streams.commands.status import render
    from streams.releases import CheckedReleases

    settings = load_settings(environ={})
    release = {"model": "default", "version": 1, "reason": "initial", "created_at": 1, "metrics": {}}
    checked = CheckedReleases([release], [], [], True)
    live = {"n_learned": 3, "served_version": 1, "paused": False, "updated_at": 1, "owner": "host-9"}
    monkeypatch.setattr(streams.releases, "read_checked_releases", lambda *a, **k: checked)
    monkeypatch.setattr(streams.trainer_status, "trainer_status", lambda *a, **k: dict(live))
    monkeypatch.setattr(streams.model_registry, "trainer_members", lambda *a, **k: {"host-1"})
    monkeypatch.setattr(status_mod, "_joins", lambda *a, **k: None)
    (model,) = status_mod._models(settings)
    assert model["trainer"]["owner_live"] is False
    status = {
        "topic_prefix": settings.kafka.topic_prefix,
        "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
        "workers": [],
        "models": [model],
        "drift_last_hour": {"total": 0, "by_signal": {}},
    }
    assert "trained by host-9 (gone)" in render(status)
