"""``driftline status`` rendered for one model with its sources stubbed: the tests of what status says (withheld
releases, a damaged trainer status) build the same world, here once."""

from __future__ import annotations

from typing import Any

import pytest


def render_status(
    monkeypatch: pytest.MonkeyPatch, *, served: int, live: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """``(the model's entry of status --json, the text status prints)`` for the default model whose newest
    verified release is ``served`` (incremental). ``live``: the trainer's status as
    :func:`streams.trainer_status.trainer_status` returns it; None: it is read as usual (the caller stubs Redis).
    No trainer assignment, no scorer report, no join store."""
    import streams.model_registry
    import streams.releases
    import streams.serving
    import streams.status as status_mod
    import streams.trainer_status
    from driftline.settings import load_settings
    from streams.commands.status import render
    from streams.releases import CheckedReleases

    release = {"model": "default", "version": served, "reason": "incremental", "created_at": 1, "metrics": {}}
    checked = CheckedReleases([release], [], [], True)
    monkeypatch.setattr(streams.releases, "read_checked_releases", lambda *a, **k: checked)
    if live is not None:
        monkeypatch.setattr(streams.trainer_status, "trainer_status", lambda *a, **k: dict(live))
    monkeypatch.setattr(streams.model_registry, "trainer_assignment", lambda *a, **k: None)
    monkeypatch.setattr(streams.serving, "read_serving", lambda *a, **k: None)
    monkeypatch.setattr(status_mod, "_joins", lambda s: None)
    (model,) = status_mod._models(load_settings(environ={}))
    text = render(
        {
            "topic_prefix": "driftline.",
            "default_model": "default",
            "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
            "workers": [],
            "models": [model],
            "drift_last_hour": {"total": 0, "by_signal": {}},
        }
    )
    return model, text
