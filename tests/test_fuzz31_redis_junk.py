"""Trainer status keys in Redis overwritten with the wrong type (session 31's outside fuzz, docs/experiments/
fuzz31_redis.py): before, the trainer's every status write failed with WRONGTYPE (logged every 5 s, forever) and
``status`` / ``models show`` lost the trainer's live state until someone deleted the key by hand. The trainer owns
these keys: a value of another type is junk and is replaced."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from connectors.redis_store import JoinStore, SweepResult, hset_fields_if_newer, hset_if_newer

pytestmark = pytest.mark.kafka  # needs the local stack (Redis)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.mark.parametrize("junk", ["list", "string", "set", "zset"])
def test_status_hash_written_over_a_key_of_the_wrong_type(
    client: redis.Redis, prefix: str, junk: str
) -> None:
    key = f"{prefix}trainer"
    {
        "list": lambda: client.rpush(key, "junk"),
        "string": lambda: client.set(key, b"\xff" * 1024),
        "set": lambda: client.sadd(key, "junk"),
        "zset": lambda: client.zadd(key, {"junk": 1.0}),
    }[junk]()
    try:
        assert hset_if_newer(client, key, {"commits": 3, "n_learned": 7})
        assert client.type(key) == b"hash"
        assert client.hgetall(key) == {b"commits": b"3", b"n_learned": b"7"}
        # still ordered by commits once it is a hash again: an older state does not overwrite it
        assert not hset_if_newer(client, key, {"commits": 2, "n_learned": 1})
        assert client.hget(key, "n_learned") == b"7"
    finally:
        client.delete(key)


@pytest.mark.parametrize("junk", ["list", "string"])
def test_owner_fields_written_over_a_key_of_the_wrong_type(
    client: redis.Redis, prefix: str, junk: str
) -> None:
    key = f"{prefix}models"
    if junk == "list":
        client.rpush(key, "junk")
    else:
        client.set(key, "junk")
    try:
        entry = json.dumps({"owner": "t1", "commits": 4})
        assert hset_fields_if_newer(client, key, {"default": (entry, 4)}) == 1
        assert client.type(key) == b"hash"
        assert json.loads(client.hget(key, "default") or b"{}")["owner"] == "t1"
    finally:
        client.delete(key)


# -- the join store's indexes -----------------------------------------------------------------------------------
# Before: ``p:pending`` (a sorted set) overwritten with a string made every scorer batch fail with WRONGTYPE, and
# the scorer dead-lettered every good FeatureEvent from then on ("score failed on this record"), while the join's
# sweep failed every 5 s: the whole stream lost to one junk key. The store owns its indexes: junk is replaced (the
# ids it indexed expire by their keys' TTL uncounted, as when Redis loses its data).


@pytest.fixture
def store(prefix: str, redis_url: str) -> Iterator[JoinStore]:
    js = JoinStore(redis_url, namespace=f"{prefix.rstrip('.')}:js", ttl_s=60)
    yield js
    for key in js.client.scan_iter(match=f"{js.namespace}:*"):
        js.client.delete(key)
    js.client.close()


def _junk(client: redis.Redis, key: str, kind: str) -> None:
    client.delete(key)
    if kind == "string":
        client.set(key, "junk")
    elif kind == "list":
        client.rpush(key, "junk")
    else:
        client.hset(key, "junk", "1")


@pytest.mark.parametrize("kind", ["string", "list", "hash"])
def test_join_store_replaces_junk_indexes(store: JoinStore, kind: str) -> None:
    for index in ("pending", "parked"):
        _junk(store.client, f"{store.namespace}:{index}", kind)
    assert store.put_predictions([("e1", b"ctx-1")], 1_000) == []
    assert [f.status for f in store.lookup_labels([("e2", b"label")], 1_000, ["labels:0:1"])] == ["parked"]
    assert store.counts() == (1, 1)
    for index in ("pending", "parked"):
        _junk(store.client, f"{store.namespace}:{index}", kind)
    found = store.lookup_labels([("e1", b"label")], 1_000, ["labels:0:2"])
    assert (found[0].status, found[0].context) == ("ctx", b"ctx-1")
    for index in ("pending", "parked"):
        _junk(store.client, f"{store.namespace}:{index}", kind)
    store.mark_joined(["e1"])
    for index in ("pending", "parked"):
        _junk(store.client, f"{store.namespace}:{index}", kind)
    assert store.sweep(1_000) == SweepResult(0, 0, 0, 0)
    for index in ("pending", "parked"):
        _junk(store.client, f"{store.namespace}:{index}", kind)
    n, waiting = store.restore([("e3", b"ctx-3", 10_000)], 1_000)
    assert n == 1 and waiting == []
    assert store.counts() == (1, 0)


# Before: a per-id key of the wrong type (``p:lbl:<id>`` a hash) made the scorer dead-letter that good event
# ("score failed on this record: WRONGTYPE"), and ``p:ctx:<id>``/``p:claim:<id>`` made the join dead-letter the
# label. Junk of the wrong type is now taken for absent and replaced; junk of the right type (a string that is not a
# record) still reaches the stage, which dead-letters it with the reason.


@pytest.mark.parametrize("kind", ["list", "hash"])
def test_a_junk_parked_label_does_not_fail_the_prediction(store: JoinStore, kind: str) -> None:
    _junk(store.client, f"{store.namespace}:lbl:e1", kind)
    assert store.put_predictions([("e1", b"ctx-1"), ("e2", b"ctx-2")], 1_000) == []
    found = store.lookup_labels([("e1", b"label")], 1_000, ["labels:0:1"])
    assert (found[0].status, found[0].context) == ("ctx", b"ctx-1")


@pytest.mark.parametrize("kind", ["list", "hash"])
def test_a_junk_context_or_claim_does_not_fail_the_label(store: JoinStore, kind: str) -> None:
    _junk(store.client, f"{store.namespace}:ctx:e1", kind)
    assert [f.status for f in store.lookup_labels([("e1", b"label")], 1_000, ["labels:0:1"])] == ["parked"]
    assert store.put_predictions([("e1", b"ctx-1")], 1_000) == [("e1", b"label")]  # joined when it comes
    store.put_predictions([("e3", b"ctx-3")], 1_000)
    _junk(store.client, f"{store.namespace}:claim:e3", kind)
    found = store.lookup_labels([("e3", b"label")], 1_000, ["labels:0:2"])
    assert (found[0].status, found[0].context) == ("ctx", b"ctx-3")


def test_restore_over_a_junk_parked_label(store: JoinStore) -> None:
    _junk(store.client, f"{store.namespace}:lbl:e4", "hash")
    assert store.restore([("e4", b"ctx-4", 10_000)], 1_000) == (1, [])
