"""What the scorers actually serve, as each of them reports it in Redis, and the signed releases they refused.

A release can verify (signed with the key) and still fail to load in a scorer (bytes that are no pickle, a class
outside the allow-list, a library the scorer lacks): the scorer keeps serving the version it had. The registry
alone would call the refused release current, so every view (``models list/show``, ``status``, the console) reads
this report instead of assuming that the newest verified release is the one served.

One Redis hash per model, ``<key_prefix>:<topic_prefix><model>:scorers``, one field per scorer process
(``host-pid``): JSON ``{"at": ms, "served": version or null, "refused": [{"version", "reason", "message", "at"}]}``.
Bounded: each scorer keeps its newest :data:`REFUSALS_KEPT` refusals; every write drops the fields of scorers
silent for :data:`STALE_S` (they stopped), and the whole key expires :data:`STALE_S` after the last write; the
readers stop counting a scorer as serving once its report is :data:`OVERDUE_S` old (three heartbeats). A field's
``at`` and every staleness cut are by the Redis server's clock (``TIME``), never a host's: scorers on hosts whose
clocks differ by more than the window deleted each other's reports. Each scorer writes from a thread of its own
(:meth:`ServingReport.start`): the release follower never waits on Redis. Only
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
from streams.trainer_status import publish_worker_config, routing_config, worker_configs_key

__all__ = ["ServingReport", "read_serving", "refused_newer", "serving_key"]

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
# A scorer whose report is this late (three missed heartbeats) has stopped, most likely killed (SIGKILL, a lost
# host: a scorer that stops cleanly removes its fields): listed as overdue, no longer counted as serving.
OVERDUE_S = 3 * HEARTBEAT_S
STALE_S = 60.0  # its field is dropped then (by the next write) and the whole key expires when nobody writes
REFUSALS_KEPT = 5
MESSAGE_CHARS = 300
CLOSE_WAIT_S = 5.0  # how long close() waits for the report's thread (its last write, its fields removed)

# Write one scorer's field stamped with the server's time (ARGV[2]: the entry's JSON without "at"), drop the fields
# of scorers silent for longer than the stale window (ARGV[3] ms, by the same clock), keep the key alive for that
# window. A value of another type under the key is junk (the writer owns it) and is replaced.
_WRITE = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then redis.call('DEL', KEYS[1]) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local body = string.sub(ARGV[2], 2)
if body ~= '}' then body = ', ' .. body end
redis.call('HSET', KEYS[1], ARGV[1], '{"at": ' .. string.format('%.0f', now) .. body)
local oldest = now - tonumber(ARGV[3])
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local ok, entry = pcall(cjson.decode, fields[i + 1])
  if not ok or type(entry) ~= 'table' or (tonumber(entry['at']) or 0) < oldest then
    redis.call('HDEL', KEYS[1], fields[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def serving_key(settings: Settings, model: str) -> str:
    """The Redis hash where the scorers report ``model``: what each serves and the releases it refused."""
    return f"{settings.redis.key_prefix}:{settings.kafka.topic_prefix}{model}:scorers"


def scorer_id() -> str:
    """This process as the report names it (as the trainers name themselves): ``host-pid``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ServingReport:
    """One scorer's report: :meth:`served` and :meth:`refused` only note (any thread, no I/O); :meth:`publish`
    writes what changed, and every model again each :data:`HEARTBEAT_S` so the readers can tell a live scorer from
    one that stopped. After :meth:`start` it runs in a thread of its own, woken by :meth:`notify` (what the release
    follower calls): a Redis that does not answer (up to its 2 s timeout per call) delays the report, never the
    follower's next release."""

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
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write from a thread of this report's own from now on (:meth:`notify` wakes it; it beats by itself)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="serving-report", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """Something may have changed: the report's thread writes it (no I/O here). Without :meth:`start`, the
        caller writes it itself (:meth:`publish`)."""
        if self._thread is None:
            self.publish()
        else:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(HEARTBEAT_S)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.publish()
            except Exception:  # never let the report's thread die: the next beat tries again
                log.exception("serving report failed")
        # Here, after this thread's last write returned: removed by :meth:`close` while a write was still on its
        # way (a Redis slower than CLOSE_WAIT_S), the field came back and counted as serving for STALE_S.
        self._withdraw()

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
                name: {"served": self._served.get(name), "refused": list(self._refused.get(name, []))}
                for name in names
            }
            self._dirty.clear()
        if beat:
            self._last_beat = now
        try:
            client = self._client = self._client or redis_client(self.settings, 2.0)
            for name, entry in entries.items():
                key = serving_key(self.settings, name)
                client.eval(_WRITE, 1, key, self.scorer, json.dumps(entry), int(STALE_S * 1000))
            if beat:  # the routing this scorer applies, beside its peers' (`driftline status` compares them)
                publish_worker_config(
                    client, self.settings, "scorer", self.scorer, routing_config(self.settings)
                )
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
        then the client. A Redis that does not answer leaves them to expire. With :meth:`start`, the report's
        thread removes them once its last write returned (waited for up to :data:`CLOSE_WAIT_S`)."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            self._withdraw()
        elif self._thread is not threading.current_thread():
            self._thread.join(timeout=CLOSE_WAIT_S)

    def _withdraw(self) -> None:
        if self._client is None:
            return
        with self._lock:
            names = set(self._served) | set(self._refused)
        try:
            for name in names:
                self._client.hdel(serving_key(self.settings, name), self.scorer)
            self._client.hdel(worker_configs_key(self.settings, "scorer"), self.scorer)
        except redis.RedisError:
            pass
        self._client.close()


# One client per Redis URL for the readers: status, models and the console (which polls) read every model, and a
# client per model per call opened a connection each time.
_READERS: dict[str, redis.Redis] = {}
_READERS_LOCK = threading.Lock()


def _reader(settings: Settings) -> redis.Redis:
    url = settings.redis.url.get()
    with _READERS_LOCK:
        client = _READERS.get(url)
        if client is None:
            client = _READERS[url] = redis_client(settings, 3)
        return client


def read_serving(settings: Settings, model: str) -> dict[str, Any] | None:
    """What the live scorers report for ``model``, or None when Redis does not answer:

    ``scorers`` (how many reported within :data:`OVERDUE_S`: the live ones), ``versions`` (``{version: live
    scorers serving it}``), ``served_version`` (the one version they all serve; when they differ the oldest, so no
    view calls a version live that some scorer does not serve; None when no live scorer reported), and
    ``refused``: one entry per refused version and reason from the live scorers, ``{version, reason, scorers,
    message, at}`` (newest version first); ``by_scorer``: ``{scorer (host-pid): {"served": version or None,
    "age_s": seconds since its last report, "overdue": bool}}``. A scorer killed without stopping is counted for
    up to :data:`OVERDUE_S`, then listed ``"overdue": true`` (counted nowhere else) until :data:`STALE_S`;
    ``overdue`` counts those. Until session 37 it was counted as serving for the whole :data:`STALE_S`.
    """
    try:
        client = _reader(settings)
        try:
            raw = client.hgetall(serving_key(settings, model))
        except redis.ResponseError:  # not a hash: junk under the key, as if nothing were reported
            raw = {}
        seconds, micros = client.time()  # the clock the scorers' "at" is stamped with: the server's
    except redis.RedisError:
        return None
    now = int(seconds) * 1000 + int(micros) // 1000
    oldest = now - int(STALE_S * 1000)
    live_since = now - int(OVERDUE_S * 1000)
    versions: dict[int, int] = {}
    refused: dict[tuple[int, str], dict[str, Any]] = {}
    by_scorer: dict[str, dict[str, Any]] = {}
    scorers = overdue = 0
    for name, value in raw.items():
        try:
            entry = json.loads(value)
            at = int(entry.get("at", 0))
            if at < oldest:
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
        scorer = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        late = at < live_since
        by_scorer[scorer] = {"served": served, "age_s": round(max(0, now - at) / 1000, 1), "overdue": late}
        if late:  # stopped without withdrawing its report: what it served answers nothing now
            overdue += 1
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
        "overdue": overdue,
        "versions": {str(v): n for v, n in sorted(versions.items())},
        "served_version": min(versions) if versions else None,
        "refused": sorted(refused.values(), key=lambda r: (-r["version"], r["reason"])),
        "by_scorer": dict(sorted(by_scorer.items())),
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
