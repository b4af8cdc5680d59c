"""`models show`'s live count line: the release's figure, and the labels learned in all when a rollback made the
lineage's count differ from them (no broker needed)."""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace
from typing import Any

from driftline.settings import load_settings
from streams.commands.models import _live_counts


def test_no_live_status_adds_nothing() -> None:
    assert _live_counts({"n_learned": 40}) == ""


def test_the_release_figure_is_shown_next_to_the_live_one() -> None:
    info = {"n_learned": 400, "n_learned_in_release": 350, "labels_learned": 400}
    assert _live_counts(info) == "  (live; 350 at release)"


def test_labels_learned_in_all_are_shown_when_a_rollback_made_them_differ() -> None:
    info = {"n_learned": 300, "n_learned_in_release": 155, "labels_learned": 400}
    text = _live_counts(info)
    assert "155 at release" in text and "400 labels learned in all" in text and "rollback" in text


def test_models_list_json_gives_each_current_model_the_live_count_models_show_gives(
    monkeypatch: Any, capsys: Any
) -> None:
    """`models list --json` and `models show --json` describe the same champion with the same ``n_learned``: the
    trainer's live count (the release's figure as ``n_learned_in_release``), not the count at its last release."""
    from streams.commands import models

    rows = {
        "a": [{"model": "a", "version": 7, "current": True, "n_learned": 975, "verified": True}],
        "b": [{"model": "b", "version": 2, "current": True, "n_learned": 25, "verified": True}],
    }
    live = {"a": {"owner": "w1", "partition": 1, "version": 7, "n_learned": 1000, "labels_learned": 1000}}
    monkeypatch.setattr(models, "_settings", lambda args: load_settings(environ={}))
    monkeypatch.setattr(models, "check_reachable", lambda settings: None)
    monkeypatch.setattr(
        models, "read_checked_releases", lambda *a, **k: SimpleNamespace(verified=[], unchecked=[])
    )
    monkeypatch.setattr(models, "model_owners", lambda settings: {"a": live["a"], "b": {}})
    monkeypatch.setattr(models, "trainer_lags", lambda settings: {})
    monkeypatch.setattr(models, "read_registry", lambda settings, checked: settings.model.name)
    monkeypatch.setattr(models, "release_list", lambda name: [dict(r) for r in rows[name]])
    assert models._list(argparse.Namespace(json=True, model=None)) == 0
    out = {r["model"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    a = out["a"]
    assert (a["n_learned"], a["n_learned_in_release"], a["labels_learned"]) == (1000, 975, 1000)
    assert (
        out["b"]["n_learned"] == 25 and "n_learned_in_release" not in out["b"]
    )  # no live status: as released


def test_the_owner_is_looked_up_by_the_topics_partition_count_not_this_processes_setting() -> None:
    """`models list` run with another `kafka.training_partitions` than the topic was created with (no config
    file at hand, say) must still name the trainer of the model's real partition: the trainers go by the topic."""
    from connectors.topics import partition_for
    from streams.model_registry import current_owner

    settings = load_settings(environ={}, overrides={"kafka.training_partitions": 3})
    current: dict[int, str | None] = {p: f"w{p}" for p in range(6)}
    name = next(n for n in (f"m{i}" for i in range(100)) if partition_for(n, 6) != partition_for(n, 3))
    assert current_owner(settings, current, name) == f"w{partition_for(name, 6)}"
    assert current_owner(settings, {**current, partition_for(name, 6): None}, name) is None


def test_an_unreported_models_partition_and_lag_go_by_the_topics_partition_count() -> None:
    """The same for the partition and lag `models list` shows of a model no trainer has reported (its owner is
    then unknown): they were computed from this process's `kafka.training_partitions`, not the topic's."""
    from connectors.topics import partition_for
    from streams.model_registry import ownership

    settings = load_settings(environ={}, overrides={"kafka.training_partitions": 3})
    lags = {p: 100 + p for p in range(6)}  # trainer_lags: every partition of the topic
    name = next(n for n in (f"m{i}" for i in range(100)) if partition_for(n, 6) != partition_for(n, 3))
    row = ownership(settings, name, {}, lags)
    assert (row["owner"], row["partition"], row["lag"]) == (
        None,
        partition_for(name, 6),
        100 + partition_for(name, 6),
    )
    assert ownership(settings, name, {}, {})["partition"] == partition_for(name, 3)  # Kafka away: the setting


def test_models_settings_columns_fit_their_longest_value(monkeypatch: Any, capsys: Any) -> None:
    """`models settings` printed values in a fixed 12 columns: 6.907755278982137 pushed its source out of line
    (audit34). Every source now starts in the same column."""
    from streams.commands import models

    rows = {
        "drift.sentinel_threshold": {"value": 6.907755278982137, "source": "default"},
        "release_every": {"value": 25, "source": "yaml"},
        "guard.max_disagreement": {"value": 0.3, "source": "default"},
    }
    monkeypatch.setattr(models, "_settings", lambda args: load_settings(environ={}))
    monkeypatch.setattr(models, "trainer_status", lambda settings: {"settings": rows, "updated_at": 0})
    assert models._live_settings(argparse.Namespace(json=False)) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 3 and len({line.rindex(" ") for line in lines}) == 1  # each source one word here
