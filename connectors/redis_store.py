"""Pending join state in Redis: prediction contexts waiting for labels, and labels waiting for predictions.

Every key carries a TTL, so the state is bounded by the TTL whatever happens. Two sorted sets index the live keys
by expiry time; a periodic :meth:`JoinStore.sweep` counts what expired (predictions whose label never came, labels
whose prediction never came) so nothing disappears silently.

Keys (``p`` = ``<key_prefix>:<topic_prefix><model>``):
``p:ctx:<id>`` prediction context, ``p:lbl:<id>`` parked label, ``p:claim:<id>`` who is joining it now,
``p:done:<id>`` joined marker (duplicate detection),
``p:pending`` and ``p:parked`` sorted sets of ids scored by expiry (ms), ``p:ttl_ms`` the TTL the scorers store
contexts for (what ``status`` takes from an expiry to tell a prediction's age, whatever its own settings say).

Each batch is one round trip: a Lua script loops over the ids server-side, so a batch of 500 predictions costs one
call, not 500.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from driftline.errors import StackError
from driftline.settings import Settings

# The store owns its two indexes: a value of another type there (someone's SET, a stray script) is junk, replaced
# before each script uses them, else every batch failed with WRONGTYPE and the scorer dead-lettered every event
# (session 31, docs/experiments/fuzz31_redis.py). The ids it indexed expire by their own keys' TTL, uncounted, as
# when Redis loses its data. Two TYPE calls per script call (per batch), not per id. A per-id key of the wrong type
# is read as absent and deleted (``get_string``: a failed GET costs nothing more), so junk under one id fails
# neither that event's prediction nor its label; junk of the right type (a string that is not a record) reaches
# the stage, which dead-letters it with the reason.
_INDEXES = """
for _, index in ipairs({':pending', ':parked'}) do
  local t = redis.call('TYPE', KEYS[1] .. index)['ok']
  if t ~= 'zset' and t ~= 'none' then redis.call('DEL', KEYS[1] .. index) end
end
local function get_string(k)
  local v = redis.pcall('GET', k)
  if type(v) == 'table' and v['err'] then
    redis.call('DEL', k)
    return false
  end
  return v
end
"""

# For each id: already joined -> skip; else store, and hand back a parked label (the caller joins now; the label
# stays until mark_joined, so a crash before that replays the join instead of losing it). A parked label is
# claimed by the first prediction that takes it, named by its token (the features record's topic, partition and
# offset): until mark_joined it is handed back again only for that same record, scored again after a crash; a
# duplicate event (another record with the same id, in this call or a later one, before the first is marked
# joined) gets nothing, else the label was joined to both and `training` carried two examples of one label
# (session 33, docs/experiments/contract33.py and fixes33b). Without a token (''), a label is handed back once.
_PUT_PREDICTIONS = (
    _INDEXES
    + """
local p = KEYS[1]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local out = {}
redis.call('SET', p .. ':ttl_ms', ttl, 'PX', ttl)
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local token = ARGV[i + 2]
  if redis.call('EXISTS', p .. ':done:' .. id) == 0 then
    local lbl = get_string(p .. ':lbl:' .. id)
    if lbl then
      local claim = get_string(p .. ':claim:' .. id)
      if not claim or (token ~= '' and claim == token) then
        table.insert(out, id)
        table.insert(out, lbl)
        redis.call('SET', p .. ':claim:' .. id, token ~= '' and token or 'scorer', 'PX', ttl)
      end
    end
    redis.call('SET', p .. ':ctx:' .. id, ARGV[i + 1], 'PX', ttl)
    redis.call('ZADD', p .. ':pending', now + ttl, id)
  end
end
return out
"""
)

# For each label: joined before -> 'dup'; context present -> 'ctx' + context (kept until mark_joined, so a crash
# between publish and mark replays the join rather than losing it), unless another label already claimed that
# context and is not yet marked joined (a duplicate label arriving in between: 'dup'; the same label record read
# again after a crash carries the same claim token and joins again); label already parked -> 'dup'; else park it,
# for the label's own TTL (the store's; less for a label parked again by the rebuild: it keeps its first deadline).
# A claim always lasts the store's TTL: it must hold until mark_joined, however little of its TTL the label has left.
_TAKE_FOR_LABELS = (
    _INDEXES
    + """
local p = KEYS[1]
local now = tonumber(ARGV[1])
local claim_ttl = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 4 do
  local id = ARGV[i]
  local token = ARGV[i + 2]
  local ttl = tonumber(ARGV[i + 3])
  if redis.call('EXISTS', p .. ':done:' .. id) == 1 then
    table.insert(out, 'dup')
    table.insert(out, '')
  else
    local ctx = get_string(p .. ':ctx:' .. id)
    local claim = ctx and get_string(p .. ':claim:' .. id)
    if ctx and claim and claim ~= token then
      table.insert(out, 'dup')
      table.insert(out, '')
    elseif ctx then
      redis.call('SET', p .. ':claim:' .. id, token, 'PX', claim_ttl)
      table.insert(out, 'ctx')
      table.insert(out, ctx)
    elseif (get_string(p .. ':lbl:' .. id) or true)
        and redis.call('SET', p .. ':lbl:' .. id, ARGV[i + 1], 'PX', ttl, 'NX') then
      redis.call('ZADD', p .. ':parked', now + ttl, id)
      table.insert(out, 'parked')
      table.insert(out, '')
    else
      table.insert(out, 'dup')
      table.insert(out, '')
    end
  end
end
return out
"""
)

_MARK_JOINED = (
    _INDEXES
    + """
local p = KEYS[1]
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
  local id = ARGV[i]
  redis.call('SET', p .. ':done:' .. id, '1', 'PX', ttl)
  redis.call('DEL', p .. ':ctx:' .. id, p .. ':lbl:' .. id, p .. ':claim:' .. id)
  redis.call('ZREM', p .. ':pending', id)
  redis.call('ZREM', p .. ':parked', id)
end
return #ARGV - 1
"""
)

_SWEEP = (
    _INDEXES
    + """
local p = KEYS[1]
local now = tonumber(ARGV[1])
local expired = redis.call('ZREMRANGEBYSCORE', p .. ':pending', '-inf', now)
local orphans = redis.call('ZREMRANGEBYSCORE', p .. ':parked', '-inf', now)
return {expired, orphans, redis.call('ZCARD', p .. ':pending'), redis.call('ZCARD', p .. ':parked')}
"""
)

# Rebuild after Redis lost its data: restore a context unless the id is known (joined or present). A label parked
# for a restored context (it came after the loss, before the rebuild) is claimed and handed back, as by
# _PUT_PREDICTIONS: the caller joins it and marks it joined once the TrainingExample is delivered.
_RESTORE = (
    _INDEXES
    + """
local p = KEYS[1]
local now = tonumber(ARGV[1])
local n = 0
local out = {}
for i = 2, #ARGV, 3 do
  local id = ARGV[i]
  local ttl = tonumber(ARGV[i + 2])
  if ttl > 0 and redis.call('EXISTS', p .. ':done:' .. id) == 0 then
    if redis.call('SET', p .. ':ctx:' .. id, ARGV[i + 1], 'PX', ttl, 'NX') then
      redis.call('ZADD', p .. ':pending', now + ttl, id)
      n = n + 1
      local lbl = get_string(p .. ':lbl:' .. id)
      if lbl then
        table.insert(out, id)
        table.insert(out, lbl)
        redis.call('SET', p .. ':claim:' .. id, 'rebuild', 'PX', ttl)
      end
    end
  end
end
return {n, out}
"""
)


@dataclass(frozen=True)
class LabelLookup:
    """Result of looking up one label: ``status`` is ``ctx`` (joinable now), ``parked`` or ``dup``."""

    id: str
    status: str
    context: bytes | None


@dataclass(frozen=True)
class SweepResult:
    expired: int  # predictions whose label never came within the TTL
    orphans: int  # labels whose prediction never came within the TTL
    pending: int
    parked: int


# Status hashes written only over an older state: a process frozen past its session (its work moved to another)
# must not overwrite, when it wakes, what the new owner wrote. ``commits`` orders them (higher is newer). The
# writer owns the key: a value of another type there is junk (someone's SET or a stray script) and is replaced,
# else every write would fail with WRONGTYPE until the key was deleted by hand (session 31, fuzz31_redis.py).
_REPLACE_NON_HASH = """
local t = redis.call('TYPE', KEYS[1])['ok']
if t ~= 'hash' and t ~= 'none' then redis.call('DEL', KEYS[1]) end
"""
_HSET_IF_NEWER = (
    _REPLACE_NON_HASH
    + """
local cur = tonumber(redis.call('HGET', KEYS[1], 'commits') or '-1') or -1
if cur > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""
)
_HSET_FIELDS_IF_NEWER = (
    _REPLACE_NON_HASH
    + """
local written = 0
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local keep = false
  if cur then
    local ok, entry = pcall(cjson.decode, cur)
    if ok and type(entry) == 'table' and (tonumber(entry['commits']) or -1) > tonumber(ARGV[i + 2]) then
      keep = true
    end
  end
  if not keep then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    written = written + 1
  end
end
return written
"""
)


def hset_if_newer(client: redis.Redis, key: str, mapping: dict[str, Any]) -> bool:
    """``HSET key mapping`` unless the hash already holds a higher ``commits`` than ``mapping["commits"]``;
    True if written."""
    args: list[Any] = [int(mapping["commits"])]
    for field, value in mapping.items():
        args += [field, value]
    return bool(client.eval(_HSET_IF_NEWER, 1, key, *args))


def hset_fields_if_newer(client: redis.Redis, key: str, entries: dict[str, tuple[str, int]]) -> int:
    """For each ``field: (json_text, commits)``: ``HSET key field json_text`` unless the field's current JSON has a
    higher ``commits``; returns how many were written."""
    args: list[Any] = []
    for field, (text, commits) in entries.items():
        args += [field, text, int(commits)]
    return int(client.eval(_HSET_FIELDS_IF_NEWER, 1, key, *args)) if args else 0


def redis_client(settings: Settings, timeout_s: float = 5.0) -> redis.Redis:
    """The one way every module opens the configured Redis (the URL is a secret): with timeouts, so a Redis that is
    down fails the call within ``timeout_s`` instead of hanging it."""
    return redis.Redis.from_url(
        settings.redis.url.get(), socket_timeout=timeout_s, socket_connect_timeout=min(timeout_s, 5.0)
    )


def redis_address(settings: Settings) -> str:
    """``host:port/db`` of the configured Redis URL, without its password: what error messages name."""
    from urllib.parse import urlsplit

    url = urlsplit(settings.redis.url.get())
    return f"{url.hostname or '127.0.0.1'}:{url.port or 6379}{url.path or ''}"


def check_redis_reachable(settings: Settings, timeout_s: float = 5.0) -> None:
    """Raise :class:`StackError` naming the address (never the password) unless Redis answers PING: the one-line
    failure commands give, as :func:`connectors.kafka_client.check_reachable` does for the broker."""
    client = redis_client(settings, timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise StackError(
            f"cannot reach Redis at {redis_address(settings)} ({type(exc).__name__}: {exc}): is the stack up? "
            "run `driftline stack up`, or fix redis.url / DRIFTLINE_REDIS_URL"
        ) from None
    finally:
        client.close()


class JoinStore:
    """Redis-backed pending join state for one model."""

    def __init__(self, url: str, *, namespace: str, ttl_s: int, client: redis.Redis | None = None) -> None:
        self.namespace = namespace
        self.ttl_ms = int(ttl_s * 1000)
        self._url_for_errors = _redact_url(url)
        self._redis = client or redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._put = self._redis.register_script(_PUT_PREDICTIONS)
        self._take = self._redis.register_script(_TAKE_FOR_LABELS)
        self._mark = self._redis.register_script(_MARK_JOINED)
        self._sweep = self._redis.register_script(_SWEEP)
        self._restore = self._redis.register_script(_RESTORE)

    @property
    def client(self) -> redis.Redis:
        return self._redis

    def _call(self, script: Any, args: list[Any]) -> Any:
        try:
            return script(keys=[self.namespace], args=args)
        except redis.ConnectionError as exc:
            raise StackError(f"cannot reach Redis at {self._url_for_errors}: {exc}") from exc

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.ConnectionError as exc:
            raise StackError(
                f"cannot reach Redis at {self._url_for_errors}: {exc}; is the stack up? run `driftline stack up`"
            ) from exc

    def put_predictions(
        self, items: Sequence[tuple[str, bytes]], now_ms: int, tokens: Sequence[str] | None = None
    ) -> list[tuple[str, bytes]]:
        """Store prediction contexts; returns ``(id, label_bytes)`` for labels that were parked waiting for them.

        ``tokens`` name each prediction's input record (the features record's topic, partition and offset): a
        parked label is claimed by the first that takes it until :meth:`mark_joined`, so a duplicate event in
        between gets nothing, while the same record scored again after a crash (same token) gets the label again.
        Without tokens a parked label is handed back once.
        """
        if not items:
            return []
        args: list[Any] = [now_ms, self.ttl_ms]
        for (id_, ctx), token in zip(items, tokens or [""] * len(items), strict=True):
            args += [id_, ctx, token]
        flat = self._call(self._put, args)
        return [(_s(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]

    def lookup_labels(
        self,
        items: Sequence[tuple[str, bytes]],
        now_ms: int,
        tokens: Sequence[str] | None = None,
        ttls_ms: Sequence[int] | None = None,
    ) -> list[LabelLookup]:
        """For each ``(id, label_bytes)``: the context to join with, or park the label, or flag a duplicate.

        ``tokens`` name each label record (its topic, partition and offset): a context is claimed by the first
        label that takes it until :meth:`mark_joined`, so a duplicate label in between is a duplicate, while the
        same record read again after a crash (same token) joins again. ``ttls_ms``: how long each label may stay
        parked, at least 1 ms and at most the store's TTL (its default): a label parked again after Redis lost
        its data keeps what is left of its first TTL rather than a fresh one.
        """
        if not items:
            return []
        ttl = self.ttl_ms
        args: list[Any] = [now_ms, ttl]
        if ttls_ms is None:
            for (id_, lbl), token in zip(items, tokens or [""] * len(items), strict=True):
                args += [id_, lbl, token, ttl]
        else:
            for (id_, lbl), token, left in zip(items, tokens or [""] * len(items), ttls_ms, strict=True):
                args += [id_, lbl, token, min(max(int(left), 1), ttl)]
        flat = self._call(self._take, args)
        out = []
        for (id_, _), i in zip(items, range(0, len(flat), 2), strict=True):
            status = _s(flat[i])
            out.append(LabelLookup(id_, status, bytes(flat[i + 1]) if status == "ctx" else None))
        return out

    def mark_joined(self, ids: Sequence[str]) -> None:
        """After the TrainingExamples are delivered: remember the ids as joined and drop their contexts."""
        if ids:
            self._call(self._mark, [self.ttl_ms, *ids])

    def sweep(self, now_ms: int) -> SweepResult:
        expired, orphans, pending, parked = self._call(self._sweep, [now_ms])
        return SweepResult(int(expired), int(orphans), int(pending), int(parked))

    def restore(
        self, items: Sequence[tuple[str, bytes, int]], now_ms: int
    ) -> tuple[int, list[tuple[str, bytes]]]:
        """Restore ``(id, context, remaining_ttl_ms)`` contexts lost with Redis' data; returns how many, and
        ``(id, label_bytes)`` for labels parked waiting for a restored context (join them, then
        :meth:`mark_joined`)."""
        n, waiting = 0, []
        for start in range(0, len(items), 500):
            args: list[Any] = [now_ms]
            for id_, ctx, ttl in items[start : start + 500]:
                args += [id_, ctx, ttl]
            count, flat = self._call(self._restore, args)
            n += int(count)
            waiting += [(_s(flat[i]), bytes(flat[i + 1])) for i in range(0, len(flat), 2)]
        return n, waiting

    def counts(self) -> tuple[int, int]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(f"{self.namespace}:pending")
        pipe.zcard(f"{self.namespace}:parked")
        pending, parked = pipe.execute()
        return int(pending), int(parked)

    def close(self) -> None:
        self._redis.close()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redact_url(url: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host``: never print a password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0] if ":" in cred else ""
    return f"{scheme}://{user}:***@{host}"
