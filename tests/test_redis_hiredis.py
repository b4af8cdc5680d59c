"""The ``fast`` extra's hiredis: redis-py parses replies and packs commands with it whenever it is installed, and the
score worker's join-context write per finish pass is then ~25 % cheaper in client CPU at half-rate batches
(BENCHMARKS.md, session 33). ``make setup`` and the Dockerfile install ``.[fast]``; these check that the install
gives it, and that the join store's scripts behave the same through it (a NOSCRIPT reload, a Redis error)."""

from __future__ import annotations

import os

import pytest
import redis
import redis.utils
from redis._parsers import _HiredisParser

from connectors.redis_store import JoinStore

pytestmark = pytest.mark.kafka  # needs the local stack (Redis)


def test_the_install_gives_redis_py_the_hiredis_parser(redis_url: str, prefix: str) -> None:
    assert redis.utils.HIREDIS_AVAILABLE, (
        "hiredis is not installed: run `make setup` (pip install -c constraints.txt -e '.[dev,fast]')"
    )
    store = JoinStore(redis_url, namespace=f"{prefix}join", ttl_s=60)
    try:
        store.ping()
        conn = store.client.connection_pool.get_connection()
        try:
            assert isinstance(conn._parser, _HiredisParser)
        finally:
            store.client.connection_pool.release(conn)
    finally:
        store.client.close()


def test_the_join_store_through_hiredis_reloads_flushed_scripts_and_raises_redis_errors(
    redis_url: str, prefix: str
) -> None:
    store = JoinStore(redis_url, namespace=f"{prefix}join", ttl_s=60)
    ctx = os.urandom(300)
    try:
        assert store.put_predictions([(f"e{i}", ctx) for i in range(15)], 1_000) == []
        # The next call meets NOSCRIPT and loads the script again (the flush is server-wide: every driftline client
        # calls its scripts through redis-py's Script, which reloads on NOSCRIPT the same way).
        store.client.script_flush()
        assert store.put_predictions([("e15", ctx)], 1_001) == []
        got = store.lookup_labels([("e3", b"label"), ("missing", b"label")], 1_002)
        assert [(g.id, g.status, g.context) for g in got] == [("e3", "ctx", ctx), ("missing", "parked", None)]
        key = f"{prefix}plain"
        store.client.set(key, b"x")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            store.client.hget(key, "f")
        store.client.delete(key)
    finally:
        for key in store.client.scan_iter(f"{prefix}*"):
            store.client.delete(key)
        store.client.close()
