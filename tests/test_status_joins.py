"""``driftline status`` shows the join store where it is: one store per deployment, named by ``model.name`` and
shared by every model (a Label names no model), not one per model (an outside check of issue 4: a second model's
entry showed 0 pending from a Redis namespace no worker writes, while the default model's showed every model's)."""

from __future__ import annotations

from typing import Any

import pytest

import streams.model_registry
import streams.releases
import streams.serving
import streams.status as status_mod
import streams.trainer_status
from driftline.settings import Settings, load_settings
from streams.commands.status import render
from streams.join import join_namespace
from streams.releases import CheckedReleases


def _release(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "version": 1,
        "reason": "initial",
        "created_at": 1,
        "metrics": {},
        "decision": None,
    }


def test_status_reads_the_deployments_join_store_once(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(environ={"DRIFTLINE_MODEL": "main"})
    checked = CheckedReleases([_release("main"), _release("other")], [], [], True)
    monkeypatch.setattr(streams.releases, "read_checked_releases", lambda *a, **k: checked)
    monkeypatch.setattr(streams.trainer_status, "trainer_status", lambda *a, **k: None)
    monkeypatch.setattr(streams.model_registry, "trainer_assignment", lambda *a, **k: None)  # no broker here
    monkeypatch.setattr(streams.serving, "read_serving", lambda *a, **k: None)  # no Redis here
    asked: list[str] = []

    def joins(s: Any) -> dict[str, Any]:
        asked.append(join_namespace(s))
        return {"pending": 3, "parked": 1, "oldest_pending_age_s": 5.0}

    monkeypatch.setattr(status_mod, "_joins", joins)
    models = {m["model"]: m for m in status_mod._models(settings)}
    assert asked == [join_namespace(settings)]  # the store the workers write, nothing else
    assert models["main"]["joins"]["pending"] == 3
    assert models["other"]["joins"] is None


def test_status_text_says_the_joins_are_every_models() -> None:
    settings = load_settings(environ={"DRIFTLINE_MODEL": "main"})
    joins = {"pending": 3, "parked": 1, "oldest_pending_age_s": None}
    model: dict[str, Any] = {
        "model": "main",
        "served_version": 1,
        "releases": 1,
        "latest_release": None,
        "trainer": None,
    }
    status = {
        "topic_prefix": settings.kafka.topic_prefix,
        "default_model": "elsewhere",  # routing.default: the store is still shown, under model.name
        "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
        "workers": [],
        "models": [{**model, "joins": joins}],
        "drift_last_hour": {"total": 0, "by_signal": {}},
    }
    text = render(status)
    assert "joins (every model): 3 prediction(s) waiting for a label" in text


@pytest.mark.kafka  # needs the local stack (Redis)
@pytest.mark.parametrize("junk_key", ["pending", "ttl_ms"])
def test_status_shows_the_joins_it_can_read_and_names_a_damaged_key(
    settings: Settings, junk_key: str
) -> None:
    """Junk of the wrong type under ``<ns>:ttl_ms`` or ``<ns>:pending`` (WRONGTYPE) dropped the whole joins
    section until the next scorer batch replaced the key; now the rest is shown and the key is named."""
    import time

    import redis

    ns = join_namespace(settings)
    client = redis.Redis.from_url(settings.redis.url.get())
    try:
        now = int(time.time() * 1000)
        client.zadd(f"{ns}:parked", {"l1": now + 60_000, "l2": now + 60_000})
        if junk_key == "pending":
            client.set(f"{ns}:pending", b"junk")
        else:
            client.zadd(f"{ns}:pending", {"e1": now + 1_000})  # expires in 1 s
            client.hset(f"{ns}:ttl_ms", "junk", "1")
        joins = status_mod._joins(settings)
        assert joins is not None, "the section was dropped"
        assert joins["parked"] == 2
        assert [d["key"] for d in joins["damaged"]] == [f"{ns}:{junk_key}"]
        if junk_key == "pending":
            assert joins["pending"] is None and joins["damaged"][0]["type"] == "string"
        else:
            # The age is told with this command's TTL, as when the key is missing.
            assert joins["pending"] == 1 and joins["oldest_pending_age_s"] is not None
            assert joins["damaged"][0]["type"] == "hash"
        model = {"model": "m", "served_version": 1, "releases": 1, "latest_release": None, "trainer": None}
        text = render(
            {
                "topic_prefix": settings.kafka.topic_prefix,
                "default_model": "m",
                "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
                "workers": [],
                "models": [{**model, "joins": joins}],
                "drift_last_hour": {"total": 0, "by_signal": {}},
            }
        )
        assert "2 label(s) parked" in text and f"join store key {ns}:{junk_key} is DAMAGED" in text
    finally:
        for key in client.scan_iter(match=f"{ns}:*"):
            client.delete(key)
        client.close()
