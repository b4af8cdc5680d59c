"""The console's overview shows the join store as ``driftline status`` reads it: a key holding junk of the wrong
type is named (``joins_damaged``) and only its own figure is unknown; the console's own read showed pending and
parked both unknown (fixes33, item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import streams.console.overview as overview_mod
from driftline.settings import load_settings
from streams.console import sources


def test_overview_shows_what_status_shows_for_a_damaged_join_key(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(environ={})
    damaged = [{"key": "driftline:x:pending", "type": "string", "expected": "zset"}]
    joins = {"pending": None, "parked": 2, "oldest_pending_age_s": None, "damaged": damaged}
    status: dict[str, Any] = {
        "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
        "workers": [],
        "models": [{"model": settings.model.name, "served_version": 1, "scorers": None, "joins": joins}],
    }
    monkeypatch.setattr(sources, "status", lambda s: status)
    monkeypatch.setattr(sources, "trainer", lambda s: None)
    overview = overview_mod.Overview(settings)
    monkeypatch.setattr(overview, "_served_by_partition", lambda: [])
    monkeypatch.setattr(overview, "_rates", lambda: {})
    out = overview._compute()
    assert (out["pending_joins"], out["parked_labels"]) == (None, 2)
    assert out["joins_damaged"] == damaged


def test_the_page_names_a_damaged_join_key() -> None:
    app = (Path(overview_mod.__file__).parent / "static" / "app.js").read_text()
    assert "joins_damaged" in app and "DAMAGED: ${bad.key} holds a ${bad.type}" in app


def test_overview_shows_the_withheld_releases_and_the_held_candidate_as_status_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `status` said "N release(s) WITHHELD by the trainer ..."; the console's overview said nothing, and its held
    # card read a `held` field the trainer's status does not have (always "none") (fixes34, item 4).
    from streams.commands.status import _withheld

    settings = load_settings(environ={})
    withheld = {
        "problem": "too_large",
        "message": "payload of 9000 bytes exceeds model.max_inline_bytes=6000",
        "served_version": 3,
        "count": 4,
        "at": 1_700_000_000_000,
    }
    live = {
        "served_version": 3,
        "n_learned": 40,
        "paused": False,
        "metrics": {"held": 1.0},
        "withheld": withheld,
    }
    status: dict[str, Any] = {
        "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
        "workers": [],
        "models": [{"model": settings.model.name, "served_version": 3, "scorers": None, "joins": {}}],
    }
    monkeypatch.setattr(sources, "status", lambda s: status)
    monkeypatch.setattr(sources, "trainer", lambda s: dict(live))
    overview = overview_mod.Overview(settings)
    monkeypatch.setattr(overview, "_served_by_partition", lambda: [])
    monkeypatch.setattr(overview, "_rates", lambda: {})
    out = overview._compute()
    said = out["withheld"]
    assert said.startswith(
        "4 release(s) WITHHELD by the trainer (too large to publish inline and no artifact"
    )
    assert said.endswith(
        "v3 stays the champion; fix: set model.artifact_store or raise model.max_inline_bytes"
    )
    assert "newest 2023-11-14 22:13:20 UTC" in said
    # The same words as the command line's, but for the time (a fixed stamp: the page redraws on change only).
    line = _withheld(withheld, 3).strip()
    assert said.split(", newest ")[0] == line.split(", newest ")[0]
    assert said.split(": ", 1)[1] == line.split(": ", 1)[1]
    assert out["held_candidate"] is True
    monkeypatch.setattr(sources, "trainer", lambda s: {**live, "withheld": None, "metrics": {}})
    out = overview._compute()
    assert out["withheld"] is None and out["held_candidate"] is False


def test_the_page_shows_the_withheld_releases_and_reads_the_held_candidate() -> None:
    app = (Path(overview_mod.__file__).parent / "static" / "app.js").read_text()
    assert 'card("withheld releases", o.withheld' in app
    assert "o.held_candidate" in app and "t.held" not in app
