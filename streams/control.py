"""Authenticated control commands and the trainer's answers: shared by ``driftline models`` and the trainer.

A ControlCommand is signed with the operator key (``model.operator_key``, or the signing key when that is empty):
HMAC-SHA256 over its canonical JSON (model, command, args, ts, id, key_id). The trainer refuses a command that is
unsigned, signed with another key, older (or further in the future) than ``model.control_max_age_s``, or whose id
it has already seen (a replay). ``control`` is compacted by model key, so only the latest command per model stays
on the topic for good: a trainer starting without a checkpoint reads it again, and the age check is what keeps a
week-old ``pause`` from being applied again; the seen ids (kept in the checkpoint) stop a fresh copy of a recent one.

The trainer answers every command it reads under its id in Redis (``<namespace>:control:<id>``, kept a day; a
refusal ten minutes), next to the live state it already publishes there; ``driftline models ...`` waits for that
answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import redis

from connectors.redis_store import redis_client
from driftline.errors import ConfigError
from driftline.settings import Settings
from streams.join import join_namespace

REPLY_TTL_S = 86400
# A refusal's answer is read by the sender that waits for it (`driftline models` waits seconds; the audit chain keeps
# the refusal for good). Kept briefly: anyone who can write `control` can make the trainer refuse at its rate, and
# a day of those answers would be Redis memory the writer chooses.
REFUSAL_TTL_S = 600


def operator_key(settings: Settings) -> bytes:
    """The key control commands are signed with: ``model.operator_key``, else ``model.signing_key``."""
    return (settings.model.operator_key.get() or settings.model.signing_key.get()).encode()


def key_id(key: bytes) -> str:
    """A public name for a key (who signed a command): never the key itself."""
    return "k-" + hashlib.sha256(b"driftline-operator-key:" + key).hexdigest()[:12]


def _canonical(record: Mapping[str, Any]) -> bytes:
    fields = {
        "model": record.get("model"),
        "command": record.get("command"),
        "args": dict(record.get("args") or {}),
        "ts": record.get("ts"),
        "id": record.get("id"),
        "key_id": record.get("key_id"),
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_command(settings: Settings, command: str, args: Mapping[str, str]) -> dict[str, Any]:
    """A signed ControlCommand for the configured model (raises :class:`ConfigError` without a key)."""
    key = operator_key(settings)
    if not key:
        raise ConfigError(
            "model.operator_key: no key to sign control commands with; set DRIFTLINE_OPERATOR_KEY "
            "(or DRIFTLINE_SIGNING_KEY) to the key the trainer uses"
        )
    record: dict[str, Any] = {
        "model": settings.model.name,
        "command": command,
        "args": dict(args),
        "ts": int(time.time() * 1000),
        "id": uuid.uuid4().hex,
        "key_id": key_id(key),
    }
    record["signature"] = hmac.new(key, _canonical(record), hashlib.sha256).hexdigest()
    return record


def refusal(
    record: Mapping[str, Any], keys: list[bytes], seen: Any, now_ms: int, max_age_s: float
) -> tuple[str, str] | None:
    """Why a ControlCommand must be refused (``(reason, message)``), or ``None`` if it is authentic and fresh.

    ``seen`` supports ``in`` over command ids already applied. Reasons: unsigned, signature, stale, replay.
    """
    signature = str(record.get("signature") or "")
    if not signature:
        return "unsigned", "unsigned (send it with `driftline models ...`, which signs it)"
    payload = _canonical(record)
    good = [k for k in keys if k and key_id(k) == record.get("key_id")]
    # Compared as bytes: hmac.compare_digest raises TypeError on a str with non-ASCII characters.
    given = signature.lower().encode("utf-8", "replace")
    if not any(
        hmac.compare_digest(hmac.new(k, payload, hashlib.sha256).hexdigest().encode(), given) for k in good
    ):
        if not good:
            return (
                "signature",
                f"bad signature (key id {record.get('key_id')!r} is not a key this trainer holds)",
            )
        # The key is right, the signed bytes are not (session 41: a client that signed an extra field, or left
        # `args` out, was told its key was wrong and went to check the key).
        return "signature", (
            f"bad signature: key id {record.get('key_id')!r} is this trainer's key, but the signature does not match "
            "the command's fields; sign the UTF-8 JSON of exactly {model, command, args, ts, id, key_id} (args an "
            "object of strings, {} when none) with sorted keys, no spaces, non-ASCII unescaped (README, Control)"
        )
    age_s = (now_ms - int(record.get("ts") or 0)) / 1000
    if abs(age_s) > max_age_s:
        return "stale", f"issued {age_s:.0f} s ago, outside model.control_max_age_s={max_age_s:g}"
    if not record.get("id") or record.get("id") in seen:
        return "replay", f"command id {record.get('id')!r} already seen (a replayed command)"
    return None


def _client(settings: Settings) -> redis.Redis:
    return redis_client(settings)


def reply_key(settings: Settings, command_id: str) -> str:
    return f"{join_namespace(settings)}:control:{command_id}"


def write_reply(client: redis.Redis, settings: Settings, command_id: str, reply: Mapping[str, Any]) -> None:
    """File the trainer's answer to a command under its id. The first answer stands: a replayed or forged copy
    carrying the same id is refused, and its refusal must not overwrite what the genuine command's sender reads.
    A refusal is kept :data:`REFUSAL_TTL_S`, an applied command's answer :data:`REPLY_TTL_S`; an ``unknown`` answer
    (an authentic command for a model nobody knew) at least ``model.control_max_age_s``: it is what refuses the same
    command sent again once its model exists (``TrainerControl._answered_unknown``)."""
    ttl = REPLY_TTL_S if reply.get("outcome") == "ok" else REFUSAL_TTL_S
    if reply.get("reason") == "unknown":
        ttl = max(ttl, int(settings.model.control_max_age_s))
    client.set(reply_key(settings, command_id), json.dumps(reply, default=str), ex=ttl, nx=True)


def wait_reply(settings: Settings, command_id: str, timeout: float) -> dict[str, Any] | None:
    """The trainer's answer to ``command_id``, waiting up to ``timeout`` seconds; ``None`` on timeout."""
    client = _client(settings)
    deadline = time.monotonic() + timeout
    while True:
        try:
            raw = client.get(reply_key(settings, command_id))
        except redis.RedisError:
            raw = None
        if raw:
            answer: dict[str, Any] = json.loads(raw)
            return answer
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
