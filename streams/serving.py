"""What the scorers actually serve, as each of them reports it in Redis, and the signed releases they refused.

A release can verify (signed with the key) and still fail to load in a scorer (bytes that are no pickle, a class
outside the allow-list, a library the scorer lacks): the scorer keeps serving the version it had. The registry
alone would call the refused release current, so every view (``models list/show``, ``status``, the console) reads
this report instead of assuming that the newest verified release is the one served.

One Redis hash per model, ``<key_prefix>:<topic_prefix><model>:scorers``, one field per scorer process
(``host-pid``): JSON ``{"served": version or null, "at": ms, "refused": [{"version", "reason", "message", "at"}]}``.
Bounded: each scorer keeps its newest :data:`REFUSALS_KEPT` refusals; every write drops the fields of scorers
silent for :data:`STALE_S` (they stopped), and the whole key expires :data:`STALE_S` after the last write. Only
refusals of releases that verified are recorded: a forged record is already shown as UNVERIFIED by every view,
which verifies it itself, and a flood of them must not push a real refusal out of the report.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis

from connectors.redis_store import redis_client
from driftline.settings import Settings

__all__ = ["ServingReport", "read_serving", "refused_newer", "serving_key"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
STALE_S = 60.0
REFUSALS_KEPT = 5
MESSAGE_CHARS = 300

# Write one scorer's field, drop the fields of scorers silent for longer than the stale window, keep the key
# alive for that window. A value of another type under the key is junk (the writer owns it) and is replaced.
_WRITE = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local oldest = tonumber(ARGV[3])
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local ok, entry = pcall(cjson.decode, fields[i + 1])
  if not ok or type(entry) ~= 'table' or (tonumber(entry['at']) or 0) < oldest then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""


def serving_key(settings: Settings, model: str) -> str:
    """The Redis hash where the scorers report ``model``: what each serves and the releases it refused."""
    return f"{settings.redis.key_prefix}:{settings.kafka.topic_prefix}{model}:scorers"


def scorer_id() -> str:
    """This process as the report names it (as the trainers name themselves): ``host-pid``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ServingReport:
    """One scorer's report: :meth:`served` and :meth:`refused` only note (any thread, no I/O); :meth:`publish`,
    called from the release follower's thread (never the event loop), writes what changed, and every model again
    each :data:`HEARTBEAT_S` so the readers can tell a live scorer from one that stopped."""

    def __init__(self, settings: Settings, scorer: str | None = None) -> None:
        self.settings = settings
        self.scorer = scorer or scorer_id()
        self._served: dict[str, int] = {}
        self._refused: dict[str, list[dict[str, Any]]] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._last_beat = 0.0
        self._client: redis.Redis | None = None
        self._failing = False

    def served(self, model: str, version: int) -> None:
        with self._lock:
            self._served[model] = version
            self._dirty.add(model)

    def refused(self, model: str, version: int, reason: str, message: str) -> None:
        entry = {"version": version, "reason": reason, "message": message[:MESSAGE_CHARS], "at": _now_ms()}
        with self._lock:
            kept = [r for r in self._refused.get(model, []) if r["version"] != version]
            self._refused[model] = [*kept, entry][-REFUSALS_KEPT:]
            self._dirty.add(model)

    def publish(self, force: bool = False) -> None:
        """Write the models whose state changed (all of them once per heartbeat, or with ``force``). A Redis that
        does not answer is logged once and tried again at the next heartbeat: scoring never waits for it."""
        now = time.monotonic()
        beat = force or now - self._last_beat >= HEARTBEAT_S
        with self._lock:
            if not beat and (self._failing or not self._dirty):
                return
            names = set(self._served) | set(self._refused) if beat else set(self._dirty)
            entries = {
                name: {
                    "served": self._served.get(name),
                    "at": _now_ms(),
                    "refused": list(self._refused.get(name, [])),
                }
                for name in names
            }
            self._dirty.clear()
        if beat:
            self._last_beat = now
        try:
            client = self._client = self._client or redis_client(self.settings, 2.0)
            oldest = _now_ms() - int(STALE_S * 1000)
            for name, entry in entries.items():
                key = serving_key(self.settings, name)
                client.eval(_WRITE, 1, key, self.scorer, json.dumps(entry), oldest, int(STALE_S * 1000))
        except redis.RedisError as exc:
            with self._lock:
                self._dirty |= set(entries)
            if not self._failing:
                log.warning(
                    "cannot report what this scorer serves to Redis (%s): `driftline status` and `models` "
                    "cannot tell which version the scorers serve until it answers",
                    type(exc).__name__,
                )
            self._failing = True
            return
        if self._failing:
            log.info("reporting what this scorer serves to Redis again")
        self._failing = False

    def close(self) -> None:
        """This scorer stops serving: its fields go (else it counted as serving for another :data:`STALE_S`),
        then the client. A Redis that does not answer leaves them to expire."""
        if self._client is None:
            return
        try:
            for name in set(self._served) | set(self._refused):
                self._client.hdel(serving_key(self.settings, name), self.scorer)
        except redis.RedisError:
            pass
        self._client.close()


def read_serving(settings: Settings, model: str) -> dict[str, Any] | None:
    """What the live scorers report for ``model``, or None when Redis does not answer:

    ``scorers`` (how many reported within :data:`STALE_S`), ``versions`` (``{version: scorers serving it}``),
    ``served_version`` (the one version they all serve; when they differ the oldest, so no view calls a version
    live that some scorer does not serve; None when no scorer reported), and ``refused``: one entry per refused
    version and reason, ``{version, reason, scorers, message, at}`` (newest version first).
    """
    try:
        client = redis_client(settings, 3)
        raw = client.hgetall(serving_key(settings, model))
    except redis.ResponseError:  # not a hash: junk under the key, as if nothing were reported
        raw = {}
    except redis.RedisError:
        return None
    oldest = _now_ms() - int(STALE_S * 1000)
    versions: dict[int, int] = {}
    refused: dict[tuple[int, str], dict[str, Any]] = {}
    scorers = 0
    for value in raw.values():
        try:
            entry = json.loads(value)
            if int(entry.get("at", 0)) < oldest:
                continue
            served = entry.get("served")
            served = None if served is None else int(served)
            refusals = [
                (int(r["version"]), str(r["reason"]), str(r.get("message", "")), int(r.get("at", 0)))
                for r in entry.get("refused") or []
            ]
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            # A field no scorer wrote (junk in Redis, {"served": "x"}, an "at" of Infinity): skipped, never raised.
            continue
        scorers += 1
        if served is not None:
            versions[served] = versions.get(served, 0) + 1
        for version, reason, message, at in refusals:
            row = refused.setdefault(
                (version, reason),
                {"version": version, "reason": reason, "scorers": 0, "message": message, "at": at},
            )
            row["scorers"] += 1
            if at >= row["at"]:
                row.update(message=message, at=at)
    return {
        "scorers": scorers,
        "versions": {str(v): n for v, n in sorted(versions.items())},
        "served_version": min(versions) if versions else None,
        "refused": sorted(refused.values(), key=lambda r: (-r["version"], r["reason"])),
    }


def refused_newer(serving: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The refusals that matter now: of versions newer than the one the scorers serve (every refusal when none
    is served). A refusal of an older version is history (the scorers moved past it)."""
    if not serving:
        return []
    served = serving.get("served_version")
    return [r for r in serving["refused"] if served is None or r["version"] > served]


def _now_ms() -> int:
    return int(time.time() * 1000)
