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
