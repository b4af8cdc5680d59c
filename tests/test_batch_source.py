"""BatchSource's group handling: the watchdog that recreates a consumer stuck out of its group, and the hold
(partitions paused until ``ready``) surviving a rebalance.

The watchdog test needs no broker (it points at a port where nothing listens); the others use the shared local
broker with this test's topic prefix and consumer groups named after it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.batch_source import PREFETCH_BATCHES, BatchSource, GroupWatchdog, prefetch_config
from connectors.localproc import free_port
from driftline.settings import Settings, load_settings
from streams.metrics import build_metrics

PARTITIONS = 4


def _poll_until(sources: list[BatchSource], done: Callable[[set[bytes]], bool], timeout: float) -> set[bytes]:
    """Poll every source (marking each batch done at once) until ``done(values read)`` or ``timeout``."""
    seen: set[bytes] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done(seen):
        for source in sources:
            raws = source.poll(100, 0.2)
            if raws:
                seen.update(r.value for r in raws)
                source.done(raws)
    return seen


def test_watchdog_recreates_a_consumer_that_never_joins_its_group(settings: Settings) -> None:
    """No broker answers: the consumer never reaches a settled group state, so after ``stuck_after_s`` of
    polling it is closed and recreated, and the restart is counted."""
    nobody = load_settings(environ={}, overrides={"kafka.bootstrap": f"127.0.0.1:{free_port()}"})
    group = f"{settings.kafka.topic_prefix}wd"
    metrics = build_metrics()
    source = BatchSource(
        nobody,
        group,
        "nowhere",
        on_restart=metrics.consumer_restarts.labels(group=group).inc,
        stuck_after_s=1.5,
    )
    try:
        _poll_until([source], lambda _: source.restarts >= 2, timeout=30)
    finally:
        source.close()
    assert source.restarts >= 2
    value = metrics.registry.get_sample_value("driftline_consumer_restarts_total", {"group": group})
    assert value == source.restarts


def _stats(state: str, join_state: str, partitions: dict[str, dict[str, dict[str, object]]]) -> str:
    topics = {t: {"partitions": parts} for t, parts in partitions.items()}
    return json.dumps({"cgrp": {"state": state, "join_state": join_state}, "topics": topics})


def test_group_watchdog_counts_unhealthy_polling_over_every_watched_topic() -> None:
    """Pure logic, from librdkafka statistics: healthy resets the count; out of the group, or unread messages in an
    actively fetched partition of any watched topic, adds the polling time until the limit; records reset it."""
    dog = GroupWatchdog(("training", "control"), stuck_after_s=10.0)
    settled_empty = _stats(
        "up", "steady", {"training": {"0": {"fetch_state": "active", "next_offset": 5, "ls_offset": 5}}}
    )
    dog.on_stats(settled_empty)
    assert dog.stuck(False, 30.0) is None and dog.stuck_s == 0.0
    # Unread in the second topic (the high watermark counts when there is no stable offset): unhealthy.
    lagging = _stats(
        "up",
        "steady",
        {
            "training": {"0": {"fetch_state": "active", "next_offset": 5, "ls_offset": 5}},
            "control": {"1": {"fetch_state": "active", "next_offset": 2, "ls_offset": -1, "hi_offset": 9}},
            "other": {"0": {"fetch_state": "active", "next_offset": 0, "ls_offset": 100}},
        },
    )
    dog.on_stats(lagging)
    assert dog.stuck(False, 6.0) is None and dog.stuck_s == 6.0
    assert dog.stuck(False, 6.0) == "group state up, join state steady, 7 unread"
    # Records arrived: the count starts over; a paused partition's backlog does not count (check_lag off: held).
    assert dog.stuck(True, 1.0) is None and dog.stuck_s == 0.0
    assert dog.stuck(False, 30.0, check_lag=False) is None
    dog.on_stats(_stats("up", "wait-join", {}))
    assert dog.stuck(False, 9.0) is None
    assert dog.stuck(False, 2.0) == "group state up, join state wait-join, 0 unread"
    dog.reset()
    assert dog.stuck(False, 9.0) is None and dog.stuck(False, 2.0) == "no statistics from librdkafka"


@pytest.fixture
def topic(settings: Settings) -> Iterator[str]:
    name = f"{settings.kafka.topic_prefix}features"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    for future in admin.create_topics([NewTopic(name, PARTITIONS, 1)], operation_timeout=30).values():
        future.result()
    yield name


def _produce(settings: Settings, topic: str, n: int) -> set[bytes]:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    values = set()
    for i in range(n):
        value = f"r{i:04d}".encode()
        producer.produce(topic, value, partition=i % PARTITIONS)
        values.add(value)
    assert producer.flush(30) == 0
    return values


@pytest.mark.kafka
def test_a_member_without_partitions_is_healthy(settings: Settings, topic: str) -> None:
    """Five members, four partitions: one owns nothing, and the watchdog must leave it alone."""
    group = f"{settings.kafka.topic_prefix}idle"
    sources = [BatchSource(settings, group, topic, stuck_after_s=6.0) for _ in range(PARTITIONS + 1)]
    try:
        _poll_until(sources, lambda _: False, timeout=20)
        assert sorted(len(s._consumer.assignment()) for s in sources) == [0, 1, 1, 1, 1]
    finally:
        for s in sources:
            s.close()
    assert [s.restarts for s in sources] == [0] * len(sources)


@pytest.mark.kafka
def test_partitions_held_then_revoked_are_resumed_when_assigned_again(settings: Settings, topic: str) -> None:
    """Held source A owns all partitions (paused); B joins, so A keeps half; ``ready`` is set; B leaves and A
    gets the other half back. librdkafka keeps the pause flag of those partitions across the rebalance: unless
    A resumes them on assignment it never reads them."""
    group = f"{settings.kafka.topic_prefix}held"
    ready = threading.Event()
    a = BatchSource(settings, group, topic, ready=ready, session_timeout_s=6, heartbeat_s=1)
    b = Consumer(
        {"bootstrap.servers": settings.kafka.bootstrap, "group.id": group, "session.timeout.ms": 6000}
    )
    try:
        _poll_until([a], lambda _: len(a._consumer.assignment()) == PARTITIONS, timeout=30)
        assert len(a._consumer.assignment()) == PARTITIONS
        b.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(a._consumer.assignment()) != PARTITIONS // 2:
            a.poll(10, 0.1)
            b.poll(0.1)
        assert len(a._consumer.assignment()) == PARTITIONS // 2
        ready.set()
        a.poll(10, 0.1)  # resumes what A owns now
        b.close()  # A gets the other half back, paused since the hold
        want = _produce(settings, topic, 200)
        got = _poll_until([a], lambda seen: seen >= want, timeout=60)
        assert got == want, f"{len(want - got)} records never read (partitions left paused)"
    finally:
        a.close()


@pytest.mark.kafka
def test_a_watchdog_restart_loses_nothing(settings: Settings, topic: str) -> None:
    """Records handled before the restart are not lost and the rest are read by the new consumer (records
    read but not yet committed may come twice, never zero times)."""
    group = f"{settings.kafka.topic_prefix}restart"
    want = _produce(settings, topic, 400)
    source = BatchSource(settings, group, topic)
    try:
        first = _poll_until([source], lambda seen: len(seen) >= 100, timeout=30)
        assert 100 <= len(first) < len(want)
        source._restart()  # what the watchdog does
        rest = _poll_until([source], lambda seen: first | seen >= want, timeout=60)
        got = first | rest
    finally:
        source.close()
    assert source.restarts == 1
    assert got == want


@pytest.mark.kafka
def test_batches_handled_but_never_committed_are_not_read_again_after_a_restart(
    settings: Settings, topic: str
) -> None:
    """The broker-kill case (chaos32 seed 11): batches handled while the group coordinator was away could not be
    committed, then the watchdog recreated the consumer. The new consumer starts after what this process handled
    (their outputs were acknowledged), not at the stale committed offset; the records after them are all read."""
    group = f"{settings.kafka.topic_prefix}uncommitted"
    want = _produce(settings, topic, 400)
    source = BatchSource(settings, group, topic)
    try:
        # Every commit of the next consumer is lost, as in the outage: auto commit off (so its close commits
        # nothing either). The test's only change to the source's behaviour.
        source._conf["enable.auto.commit"] = False
        source._restart()
        first = _poll_until([source], lambda seen: seen >= want, timeout=60)
        assert first == want
        source._conf["enable.auto.commit"] = True
        source._restart()  # what the watchdog does
        again = _poll_until([source], lambda _: False, timeout=8)
        assert again == set(), f"{len(again)} handled records read again after the restart"
        more = {f"s{i:04d}".encode() for i in range(100)}
        producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
        for i, value in enumerate(sorted(more)):
            producer.produce(topic, value, partition=i % PARTITIONS)
        assert producer.flush(30) == 0
        rest = _poll_until([source], lambda seen: seen >= more, timeout=60)
        assert rest == more
    finally:
        source.close()
    # And the position reached is committed: a new member of the group reads nothing of it again.
    late = BatchSource(settings, group, topic)
    try:
        assert _poll_until([late], lambda _: False, timeout=8) == set()
    finally:
        late.close()


def test_the_prefetch_is_bounded_to_a_few_batches() -> None:
    """librdkafka's local queue: a few batches in records (eight), with a byte bound for large records and a
    quick top-up, instead of its defaults (100,000 records or 64 MB, topped up after a second)."""
    conf = prefetch_config(500)
    assert conf["queued.min.messages"] == PREFETCH_BATCHES * 500
    assert conf["queued.max.messages.kbytes"] * 1024 >= PREFETCH_BATCHES * 500 * 1000  # 1 KB records fit
    assert conf["queued.max.messages.kbytes"] <= 8 * 1024  # a few MB, not librdkafka's 64
    assert conf["fetch.queue.backoff.ms"] <= 50
    assert prefetch_config(1)["queued.max.messages.kbytes"] == 1024  # at least one fetch response's worth
    source = BatchSource(load_settings(environ={}), "g", "features", batch=500)
    assert {k: source._conf[k] for k in conf} == conf


@pytest.mark.kafka
def test_a_batch_source_fetches_only_a_few_batches_ahead(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6,000 records of 1 KB behind a source that reads 10 at a time, slowly: librdkafka's statistics must never
    show more than the bound (80 records or 1 MB, overshot by at most one 1 MB fetch response) fetched ahead,
    and every record must still be read. With librdkafka's defaults the whole backlog was fetched at once."""
    name = f"{settings.kafka.topic_prefix}wide"
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    for future in admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=30).values():
        future.result()
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    want = set()
    for i in range(6000):
        value = f"r{i:05d}".encode().ljust(1000, b".")
        producer.produce(name, value)
        want.add(value)
    assert producer.flush(30) == 0
    queued: list[int] = []
    on_stats = GroupWatchdog.on_stats

    def record(self: GroupWatchdog, report: str) -> None:
        on_stats(self, report)
        for p in json.loads(report).get("topics", {}).get(name, {}).get("partitions", {}).values():
            queued.append(int(p.get("fetchq_cnt", 0)))

    monkeypatch.setattr(GroupWatchdog, "on_stats", record)
    source = BatchSource(settings, f"{settings.kafka.topic_prefix}wide", name, batch=10, stuck_after_s=4.0)
    got: set[bytes] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and got != want:
            raws = source.poll(10, 0.2)
            got.update(r.value for r in raws)
            source.done(raws)
            time.sleep(
                0.01
            )  # ~1,000 records/s: a backlog of seconds for the statistics (one report a second)
    finally:
        source.close()
    assert got == want
    assert len([q for q in queued if q > 0]) >= 2, queued  # the statistics saw the backlog being read
    assert max(queued) < 2500, queued
