"""The trainer's live status as the other processes read it: a Redis hash the trainer rewrites after every batch
(``<join namespace>:trainer``; written by ``streams.train.Trainer.publish_status``).

One reader for every view of it: ``driftline models show``/``status``/``doctor``, the console and the benchmarks.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from connectors.redis_store import redis_client
from driftline.settings import Settings, to_dict
from driftline.util import now_ms
from streams.join import join_namespace

__all__ = [
    "config_differences",
    "differences_text",
    "learning_config",
    "publish_worker_config",
    "routing_config",
    "trainer_configs_key",
    "trainer_status",
    "trainer_status_key",
    "worker_configs",
    "worker_configs_key",
]

# What a train process applies to the models it owns. Members of one trainer group that differ here give each
# model the settings of whichever member owns it: a new model gets the owner's task and learners, a restored one
# the owner's guard and drift settings (those not set live), so a failover or a rebalance changes them. Each
# member publishes these (``trainer_configs_key``); ``driftline status`` and the trainers' logs name a difference.
LEARNING_SETTINGS = (
    "model.task",
    "model.learner",
    "model.challenger",
    "model.release_every",
    "model.segment_feature",
    "model.reference_file",
    "guard",
    "drift",
)
# A member's configuration not refreshed for this long is not compared (a trainer killed without stopping leaves
# its entry behind; a running one rewrites it with its status, every few seconds).
CONFIG_STALE_S = 60.0
# How a difference is said, and what to do about it.
CONFIG_DIFFERS_FIX = (
    "each model gets the settings of the trainer that owns it, and a rebalance moves models between them: start "
    "every train worker of a deployment with the same configuration"
)
ROUTING_DIFFERS_FIX = (
    "an event is answered by the model its scorer's routing names, so one stream is split by partition: start "
    "every score worker of a deployment with the same routing settings"
)


def trainer_status_key(settings: Settings) -> str:
    """The Redis key of the trainer's status hash."""
    return f"{join_namespace(settings)}:trainer"


def worker_configs_key(settings: Settings, role: str) -> str:
    """Redis hash of one role's workers (``trainer``, ``scorer``): member (host-pid) -> JSON ``{"config": {...},
    "updated_at": ms}``, what each applies (:func:`learning_config`, :func:`routing_config`)."""
    return f"{settings.redis.key_prefix}:{settings.kafka.topic_prefix}:{role}-configs"


def trainer_configs_key(settings: Settings) -> str:
    return worker_configs_key(settings, "trainer")


def _flat(settings: Settings, paths: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in paths:
        section, _, name = path.partition(".")
        value = to_dict(getattr(getattr(settings, section), name) if name else getattr(settings, section))
        items = {path: value} if name else {f"{section}.{k}": v for k, v in value.items()}
        out.update({k: json.dumps(v, sort_keys=True, default=str) for k, v in items.items()})
    return out


def learning_config(settings: Settings) -> dict[str, str]:
    """The settings of :data:`LEARNING_SETTINGS` as ``{"guard.alpha": "0.05", ...}`` (values as JSON text)."""
    return _flat(settings, LEARNING_SETTINGS)


def routing_config(settings: Settings) -> dict[str, str]:
    """What decides which model answers an event (``routing.*``): scorers that differ here answer one stream with
    different models, by partition (scale39: a tenant's events split between ``default`` and the tenant's model)."""
    return _flat(settings, ("routing",))


def publish_worker_config(
    client: redis.Redis, settings: Settings, role: str, member: str, config: dict[str, str]
) -> None:
    client.hset(
        worker_configs_key(settings, role), member, json.dumps({"config": config, "updated_at": now_ms()})
    )


def worker_configs(
    settings: Settings, role: str, client: redis.Redis | None = None
) -> dict[str, dict[str, str]]:
    """member -> configuration of every ``role`` worker that published one in the last ``CONFIG_STALE_S``."""
    try:
        raw = (client or redis_client(settings, 3)).hgetall(worker_configs_key(settings, role))
    except redis.RedisError:
        return {}
    fresh = now_ms() - CONFIG_STALE_S * 1000
    out: dict[str, dict[str, str]] = {}
    for member, text in raw.items():
        entry = _json_object(_text(text)) or {}
        stamp = entry.get("updated_at")
        # Anything else under the key (a hand edit, junk) is skipped, never a traceback in `status`.
        if isinstance(entry.get("config"), dict) and isinstance(stamp, int | float) and stamp >= fresh:
            out[_text(member)] = {str(k): str(v) for k, v in entry["config"].items()}
    return out


def config_differences(configs: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """setting -> {member: value} for every setting the members' configurations do not agree on."""
    names = sorted({k for config in configs.values() for k in config})
    out: dict[str, dict[str, str]] = {}
    for name in names:
        values = {member: config.get(name, "(not set)") for member, config in sorted(configs.items())}
        if len(set(values.values())) > 1:
            out[name] = values
    return out


def differences_text(differences: dict[str, dict[str, str]]) -> str:
    """``model.task: vm-1 "classification", vm-2 "regression"; guard.alpha: ...``"""
    return "; ".join(
        f"{name}: " + ", ".join(f"{member} {value}" for member, value in values.items())
        for name, values in differences.items()
    )


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
    unlearned = number("unlearned")
    return {
        "settings": mapping("settings"),
        "held_examples": number("held_examples"),
        "pause_discard": data.get("pause_discard") == "1",
        "n_learned": number("n_learned"),
        # Every label learned, each once, whatever happened to the lineage since: the evaluator of what was served
        # counts every label, those `pause --discard` dropped (never learned) and those whose learning raised
        # (dead-lettered) too.
        "labels_learned": learned_total - discarded - unlearned,
        "discarded": discarded,
        "unlearned": unlearned,
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
