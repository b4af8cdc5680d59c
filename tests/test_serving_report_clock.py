"""The scorers' serving report (``streams.serving``) against the real Redis: fields are stamped and dropped by the
Redis server's clock, not the writing host's (scorers on hosts whose clocks differed by more than 60 s deleted each
other's reports); the release follower never waits on Redis (the report writes from its own thread); and the
readers reuse one client (fixes33, item 2)."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

import streams.serving as serving

pytestmark = pytest.mark.kafka  # the real local Redis of the stack

MODEL = "m"


def _skewed(monkeypatch: pytest.MonkeyPatch, offset_s: float) -> None:
    """This process's clock as if the host's were ``offset_s`` off (the only clock a host has)."""
    real = time.time
    monkeypatch.setattr(serving.time, "time", lambda: real() + offset_s)


def test_scorers_whose_clocks_differ_by_minutes_keep_each_others_reports(settings, monkeypatch) -> None:
    client = redis.Redis.from_url(settings.redis.url.get())
    key = serving.serving_key(settings, MODEL)
    behind = serving.ServingReport(settings, scorer="behind")
    behind.served(MODEL, 3)
    _skewed(monkeypatch, -300)  # a host five minutes behind
    behind.publish(force=True)
    ahead = serving.ServingReport(settings, scorer="ahead")
    ahead.served(MODEL, 3)
    _skewed(monkeypatch, +300)  # another five minutes ahead: its write must not drop the other's field
    ahead.publish(force=True)
    assert set(client.hkeys(key)) == {b"behind", b"ahead"}
    stamps = [json.loads(v)["at"] for v in client.hvals(key)]
    seconds, _ = client.time()
    assert all(abs(at - seconds * 1000) < 30_000 for at in stamps)  # the server's clock, not the hosts'
    # A reader on a third skewed host sees both scorers too.
    _skewed(monkeypatch, -300)
    got = serving.read_serving(settings, MODEL)
    assert got is not None and (got["scorers"], got["versions"]) == (2, {"3": 2})
    behind.close()
    ahead.close()
    assert client.exists(key) == 0


def test_a_field_silent_for_the_stale_window_by_the_servers_clock_is_dropped(settings) -> None:
    client = redis.Redis.from_url(settings.redis.url.get())
    key = serving.serving_key(settings, MODEL)
    seconds, _ = client.time()
    old = seconds * 1000 - int(serving.STALE_S * 1000) - 5_000
    client.hset(key, "stopped", json.dumps({"at": old, "served": 1, "refused": []}))
    report = serving.ServingReport(settings, scorer="live")
    report.served(MODEL, 2)
    report.publish(force=True)
    assert set(client.hkeys(key)) == {b"live"}
    report.close()


def test_the_follower_never_waits_on_a_redis_that_does_not_answer(settings, monkeypatch) -> None:
    entered, release = threading.Event(), threading.Event()

    class Hanging:
        def eval(self, *args: object) -> None:
            entered.set()
            release.wait(30)  # a Redis that accepted the connection and never answers
            raise redis.TimeoutError("timed out")

        def hdel(self, *args: object) -> None:
            raise redis.TimeoutError("timed out")

        def close(self) -> None:
            pass

    monkeypatch.setattr(serving, "redis_client", lambda *a, **k: Hanging())
    report = serving.ServingReport(settings, scorer="s")
    report.start()
    report.served(MODEL, 1)
    report.notify()  # what the follower calls each poll
    assert entered.wait(10)  # the report's own thread is inside the hanging call...
    caller = threading.current_thread()
    report.served(MODEL, 2)
    report.notify()  # ...and the follower's next notify returns (it would block here if it wrote itself)
    assert report._thread is not None and report._thread is not caller and report._thread.is_alive()
    release.set()
    report.close()


def test_readers_reuse_one_client(settings, monkeypatch) -> None:
    made: list[object] = []
    real = serving.redis_client

    def counting(*args: object, **kwargs: object) -> redis.Redis:
        client = real(*args, **kwargs)  # type: ignore[arg-type]
        made.append(client)
        return client

    monkeypatch.setattr(serving, "_READERS", {})
    monkeypatch.setattr(serving, "redis_client", counting)
    for model in ("a", "b", "c", "a"):
        assert serving.read_serving(settings, model) is not None
    assert len(made) == 1


def test_a_write_still_on_its_way_at_close_does_not_bring_the_field_back(settings, monkeypatch) -> None:
    # close() waits CLOSE_WAIT_S for the report's thread; a Redis slower than that answered the thread's write after
    # close had removed the field, and the stopped scorer counted as serving for another STALE_S.
    real = serving.redis_client(settings, 2.0)
    key = serving.serving_key(settings, MODEL)
    entered, answer = threading.Event(), threading.Event()

    class Slow:
        def eval(self, *args: object) -> object:
            entered.set()
            answer.wait(30)  # the write reaches Redis only after close() stopped waiting
            return real.eval(*args)  # type: ignore[arg-type]

        def hdel(self, *args: object) -> object:
            return real.hdel(*args)  # type: ignore[arg-type]

        def close(self) -> None:
            pass

    monkeypatch.setattr(serving, "redis_client", lambda *a, **k: Slow())
    monkeypatch.setattr(serving, "CLOSE_WAIT_S", 0.2, raising=False)
    report = serving.ServingReport(settings, scorer="slow")
    report.start()
    report.served(MODEL, 1)
    report.notify()
    assert entered.wait(10)
    report.close()  # returns after CLOSE_WAIT_S, the write still on its way
    answer.set()
    assert report._thread is not None
    report._thread.join(10)
    assert not report._thread.is_alive()
    assert real.hexists(key, "slow") == 0  # removed after the late write, not before it
    real.close()
