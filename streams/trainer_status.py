"""The trainer's live status as the other processes read it: a Redis hash the trainer rewrites after every batch
(``<join namespace>:trainer``; written by ``streams.train.Trainer.publish_status``).

One reader for every view of it: ``driftline models show``/``status``/``doctor``, the console and the benchmarks.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from connectors.redis_store import redis_client
from driftline.settings import Settings
from streams.join import join_namespace

__all__ = ["trainer_status", "trainer_status_key"]


def trainer_status_key(settings: Settings) -> str:
    """The Redis key of the trainer's status hash."""
    return f"{join_namespace(settings)}:trainer"


def trainer_status(settings: Settings) -> dict[str, Any] | None:
    """The trainer's live state (published to Redis after every batch), or None if unavailable."""
    try:
        client = redis_client(settings, 3)
        raw = client.hgetall(trainer_status_key(settings))
    except redis.RedisError:
        return None
    if not raw:
        return None
    data = {_text(k): _text(v) for k, v in raw.items()}
    metrics = json.loads(data.get("metrics", "{}"))
    return {
        "settings": json.loads(data.get("settings", "{}")),
        "held_examples": int(data.get("held_examples", 0)),
        "pause_discard": data.get("pause_discard") == "1",
        "n_learned": int(data.get("n_learned", 0)),
        # Every label learned, each once, whatever happened to the lineage since: the evaluator of what was served
        # counts every label, those `pause --discard` dropped (never learned) too.
        "labels_learned": int(metrics.get("overall.n", 0)) - int(data.get("discarded", 0)),
        "discarded": int(data.get("discarded", 0)),
        "served_version": int(data.get("served_version", 0)),
        "paused": data.get("paused") == "1",
        "updated_at": int(data.get("updated_at", 0)),
        "metrics": metrics,
        "owner": data.get("owner", ""),
        # The newest release the trainer withheld (its artifact would be refused by the scorers' loader), or None.
        "withheld": _json_object(data.get("withheld", "")),
    }


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
