"""A label parked because it came before its prediction keeps its first deadline when the rebuild (after Redis lost
its data) parks it again: it got a fresh ``redis.pending_ttl_s`` at each loss, so it could outlive the TTL (found
from outside: a label parked, Redis flushed 30 s later, and its deadline moved 30 s on). And ``status`` ages the
oldest pending prediction by the TTL the scorers use, not its own."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Producer

from connectors.redis_store import JoinStore
from connectors.topics import ensure_topics
from driftline.settings import Settings
from schemas.codec import default_codec
from streams.join import build_join_store, join_namespace, rebuild_join_state

pytestmark = pytest.mark.kafka  # needs the local stack (Kafka and Redis)


@pytest.fixture
def store(settings: Settings) -> Iterator[JoinStore]:
    js = build_join_store(settings)
    yield js
    for key in js.client.scan_iter(match=f"{js.namespace}:*"):
        js.client.delete(key)
    js.client.close()


def test_lookup_parks_each_label_for_its_own_ttl_within_the_stores(store: JoinStore) -> None:
    now, ttl = 1_000_000, store.ttl_ms
    found = store.lookup_labels(
        [("a", b"l"), ("b", b"l"), ("c", b"l"), ("d", b"l")], now, ["t:0:1", "t:0:2", "t:0:3", "t:0:4"],
        [5_000, -7, ttl * 2, ttl],
    )  # fmt: skip
    assert [f.status for f in found] == ["parked"] * 4
    scores = store.client.zmscore(f"{store.namespace}:parked", ["a", "b", "c", "d"])
    # Past its deadline already: parked for 1 ms (the sweep counts it as an orphan); never past the store's TTL.
    assert scores == [now + 5_000, now + 1, now + ttl, now + ttl]
    assert 0 < store.client.pttl(f"{store.namespace}:lbl:a") <= 5_000
    # Without TTLs: the store's, as before.
    store.lookup_labels([("e", b"l")], now, ["t:0:5"])
    assert store.client.zscore(f"{store.namespace}:parked", "e") == now + ttl


def test_a_label_parked_again_by_the_rebuild_keeps_its_first_deadline(
    settings: Settings, store: JoinStore
) -> None:
    ensure_topics(settings, ("labels", "predictions", "training"))
    codec = default_codec()
    sent_ms = int(time.time() * 1000) - 600_000  # a label that came 10 minutes ago, its prediction never did
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    label = codec.encode("Label", {"id": "early", "ts": sent_ms, "label": True})
    producer.produce(settings.topic("labels"), label, b"early", timestamp=sent_ms)
    assert producer.flush(30) == 0
    # Redis lost its data (nothing of this namespace is there): the rebuild parks the label again.
    rebuild_join_state(settings, store, codec, timeout=30)
    deadline = store.client.zscore(f"{store.namespace}:parked", "early")
    ttl_ms = settings.redis.pending_ttl_s * 1000
    assert deadline == sent_ms + ttl_ms, (deadline, sent_ms + ttl_ms)  # not the rebuild's time + the TTL
    left = store.client.pttl(f"{store.namespace}:lbl:early")
    assert 0 < left <= sent_ms + ttl_ms - int(time.time() * 1000) + 1_000


def test_status_ages_the_oldest_prediction_by_the_scorers_ttl_not_its_own(settings: Settings) -> None:
    """`status` told a pending prediction's age from its expiry minus the CLI's ``redis.pending_ttl_s``: run with
    another TTL than the workers' (their environment), it showed 0 s or 23 h for a prediction 8 s old."""
    from streams.status import _joins

    scorer = JoinStore(settings.redis.url.get(), namespace=join_namespace(settings), ttl_s=60)
    try:
        stored_ms = int(time.time() * 1000) - 30_000  # stored 30 s ago by a scorer whose TTL is 60 s
        scorer.put_predictions([("e1", b"ctx")], stored_ms)
        cli = dataclasses.replace(settings, redis=dataclasses.replace(settings.redis, pending_ttl_s=3600))
        joins = _joins(cli)
        assert joins is not None and joins["pending"] == 1
        assert 30 <= joins["oldest_pending_age_s"] < 90, joins  # not 3,570 s (the CLI's TTL)
    finally:
        for key in scorer.client.scan_iter(match=f"{scorer.namespace}:*"):
            scorer.client.delete(key)
        scorer.close()


class _NoTimestamp:
    """A consumed record without a Kafka timestamp, as confluent-kafka gives it: ``timestamp()`` is (type, -1)."""

    def __init__(self, topic: str, offset: int, value: bytes) -> None:
        self._topic, self._offset, self._value = topic, offset, value

    def timestamp(self) -> tuple[int, int]:
        return (TIMESTAMP_NOT_AVAILABLE, -1)

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_the_rebuild_ages_records_without_a_timestamp_from_when_it_reads_them(
    settings: Settings, store: JoinStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A label record with ts -1 was aged from 1970: parked again for 1 ms and counted an orphan at the next sweep;
    a prediction with ts -1 was not restored at all. Both now get the TTL from the time the rebuild reads them.
    (A broker of this stack stamps every record, so the records read are given here as the consumer returns them.)"""
    codec = default_codec()
    label = codec.encode("Label", {"id": "untimed-label", "ts": 1, "label": True})
    pred = codec.encode(
        "Prediction",
        {"id": "untimed-pred", "ts": 1, "model": "default", "version": 1, "prediction": True, "proba": None},
    )
    topics = {settings.topic("labels"): [label], settings.topic("predictions"): [pred]}

    def read_to_end(_settings: Settings, topic: str, *_: object, **__: object) -> Iterator[_NoTimestamp]:
        for offset, value in enumerate(topics.get(topic, [])):
            yield _NoTimestamp(topic, offset, value)

    monkeypatch.setattr("streams.join.read_to_end", read_to_end)
    before = int(time.time() * 1000)
    assert rebuild_join_state(settings, store, codec, timeout=5) == 1  # the prediction restored
    ttl_ms = settings.redis.pending_ttl_s * 1000
    for key, id_ in (("parked", "untimed-label"), ("pending", "untimed-pred")):
        deadline = store.client.zscore(f"{store.namespace}:{key}", id_)
        assert deadline is not None and before + ttl_ms <= deadline <= int(time.time() * 1000) + ttl_ms, key
    assert store.sweep(int(time.time() * 1000) + 1_000).orphans == 0
