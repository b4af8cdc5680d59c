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
    damaged: list[str] = []  # fields that are not what the trainer writes: read as their default, and named

    def number(name: str) -> int:
        try:
            return int(data.get(name) or 0)
        except ValueError:
            damaged.append(name)
            return 0

    def mapping(name: str) -> dict[str, Any]:
        value = _json_object(data.get(name, ""))
        if value is None and data.get(name, ""):
            damaged.append(name)
        return value or {}

    metrics = mapping("metrics")
    try:
        learned_total = int(metrics.get("overall.n", 0))
    except (TypeError, ValueError):
        learned_total = 0
        damaged.append("metrics")
    discarded = number("discarded")
    return {
        "settings": mapping("settings"),
        "held_examples": number("held_examples"),
        "pause_discard": data.get("pause_discard") == "1",
        "n_learned": number("n_learned"),
        # Every label learned, each once, whatever happened to the lineage since: the evaluator of what was served
        # counts every label, those `pause --discard` dropped (never learned) too.
        "labels_learned": learned_total - discarded,
        "discarded": discarded,
        "served_version": number("served_version"),
        "paused": data.get("paused") == "1",
        "updated_at": number("updated_at"),
        "metrics": metrics,
        "owner": data.get("owner", ""),
        # The newest release the trainer withheld (its artifact would be refused by the scorers' loader), or None.
        "withheld": mapping("withheld") or None,
        # Fields of the hash that were junk (a hand edit, another program on the same Redis): `status` names them.
        "damaged": sorted(set(damaged)),
    }


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
