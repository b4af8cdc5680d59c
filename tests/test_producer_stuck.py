"""EventProducer replaces a client that holds records without delivering them while the cluster could take them
(librdkafka stuck after a broker restart, ~1 restart in 17 on the fault suites' publisher, session 38).

The stuck state itself cannot be provoked on demand, so the "no progress" condition is forced: the producer's
first client is a real librdkafka client bootstrapped to a port where nothing listens (it queues and never
delivers), while the settings, which the fresh probe client and the replacement use, name the real broker."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer

from connectors.producer import DeliveryError, EventProducer
from connectors.producer_recovery import Purged
from connectors.tail import assign_tail, read_until_end
from connectors.topics import ensure_topics
from driftline.settings import Settings, load_settings
from schemas.codec import default_codec


class FirstClientStuck(EventProducer):
    """The first client never reaches a broker; every later one is the real thing."""

    made = 0

    def _new_client(self) -> Producer:
        self.made += 1
        if self.made == 1:
            return Producer({**self._conf, "bootstrap.servers": "127.0.0.1:1", "log_level": 0})
        return super()._new_client()


@pytest.mark.kafka
def test_a_stuck_client_is_replaced_and_its_records_sent_again_once_in_order(settings: Settings) -> None:
    s = dataclasses.replace(settings, kafka=dataclasses.replace(settings.kafka, partitions=3))
    ensure_topics(s, ("features", "labels"))
    counted: list[int] = []
    producer = FirstClientStuck(s, stuck_after_s=1.0, on_replaced=counted.append)
    # Three ways in: send (no tracking), tracked sends, and produce_many (the scorer's path).
    for i in range(60):
        producer.send_feature(f"a-{i:03d}", {"seq": i}, key=f"k{i % 4}")
    with producer.tracking() as deliveries:
        for i in range(60):
            producer.send_label(f"a-{i:03d}", i % 2 == 0)
    encoded = [
        (producer.encode("features", None, {"id": f"b-{i:03d}", "ts": i, "key": None, "model": None,
                                             "features": {"seq": i}}), f"k{i % 4}")
        for i in range(60)
    ]  # fmt: skip
    assert producer.produce_many(s.topic("features"), encoded) == [None] * 60
    producer.wait(deliveries, timeout=30)  # the tracked labels: delivered through the new client
    producer.close(timeout=30)  # without the replacement: DeliveryError, 180 record(s) not acknowledged

    assert producer.replaced == 1 and producer.resent == 180 and counted == [180]
    features = read_records(s, "features")
    labels = read_records(s, "labels")
    ids = [r.value["id"] for r in features if r.value]
    assert sorted(ids) == sorted([f"a-{i:03d}" for i in range(60)] + [f"b-{i:03d}" for i in range(60)])
    assert sorted(r.value["id"] for r in labels if r.value) == [f"a-{i:03d}" for i in range(60)]
    # Order per key (each key on one partition): the order they were handed to the producer.
    for key in ("k0", "k1", "k2", "k3"):
        got = [r.value["id"] for r in sorted(features, key=lambda r: r.offset) if r.key == key.encode()]
        want = [f"a-{i:03d}" for i in range(60) if f"k{i % 4}" == key] + [
            f"b-{i:03d}" for i in range(60) if f"k{i % 4}" == key
        ]
        assert got == want


def test_no_replacement_while_the_cluster_cannot_take_the_records() -> None:
    """A broker still away is librdkafka's own retries' business: nothing is purged, the flush reports it."""
    dead = load_settings(environ={}, overrides={"kafka.bootstrap": "127.0.0.1:1"})
    producer = EventProducer(dead, stuck_after_s=0.2)
    producer.send_label("x", True)
    with pytest.raises(DeliveryError, match=r"1 record\(s\) still not acknowledged"):
        producer.flush(timeout=5)
    assert producer.replaced == 0 and producer.resent == 0


def test_a_transactional_producer_is_never_replaced() -> None:
    dead = load_settings(environ={}, overrides={"kafka.bootstrap": "127.0.0.1:1"})
    assert EventProducer(dead, **{"transactional.id": "t-1"})._stuck_after is None


class _Msg:
    def __init__(self, topic: str, partition: int, value: bytes, ts: int = 1234) -> None:
        self._t, self._p, self._v, self._ts = topic, partition, value, ts

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return self._v

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)


class _Client:
    def __init__(self) -> None:
        self.got: list[tuple[str, bytes, dict[str, Any]]] = []

    def produce(self, topic: str, value: bytes, key: bytes, **kwargs: Any) -> None:
        self.got.append((topic, value, kwargs))


def test_purged_records_go_out_again_in_flight_first_each_group_in_report_order() -> None:
    purged = Purged()
    queue, flight = KafkaError(KafkaError._PURGE_QUEUE), KafkaError(KafkaError._PURGE_INFLIGHT)
    assert not purged.take(queue, _Msg("t", 0, b"x"), print)  # not active: not ours (somebody else purged)
    purged.active = True
    assert not purged.take(KafkaError(KafkaError._MSG_TIMED_OUT), _Msg("t", 0, b"x"), print)
    # The queued reports may be served before the in-flight ones (other librdkafka threads).
    for err, value in ((queue, b"3"), (queue, b"4"), (flight, b"1"), (flight, b"2")):
        assert purged.take(err, _Msg("t", 2, value), print)
    client = _Client()
    assert purged.resend(client) == 4  # type: ignore[arg-type]
    assert [v for _, v, _ in client.got] == [b"1", b"2", b"3", b"4"]
    assert client.got[0][2] == {"on_delivery": print, "partition": 2, "timestamp": 1234}
    assert purged.in_flight == 2 and len(purged) == 0


def test_purged_records_go_out_again_in_the_order_they_were_produced() -> None:
    """A record purged in the queue (a batch put back for a retry) can have been produced before one purged in
    flight: the timestamps, not the purge's report order, give the order (CI, session 39: a key's 244 re-sent after
    its 256 after a leader's kill -9)."""
    purged = Purged()
    purged.active = True
    queue, flight = KafkaError(KafkaError._PURGE_QUEUE), KafkaError(KafkaError._PURGE_INFLIGHT)
    for err, value, ts in (
        (flight, b"256", 2000),
        (flight, b"257", 2010),
        (queue, b"244", 1880),
        (queue, b"258", 2020),
    ):
        assert purged.take(err, _Msg("t", 0, value, ts), print)
    client = _Client()
    assert purged.resend(client) == 4  # type: ignore[arg-type]
    assert [v for _, v, _ in client.got] == [b"244", b"256", b"257", b"258"]


def read_records(settings: Settings, name: str) -> list[Any]:
    """Every record of contract topic ``name``, decoded."""
    consumer, ends = assign_tail(settings, name, None)
    try:
        return read_until_end(consumer, default_codec(), name, ends)
    finally:
        consumer.close()


def test_a_workers_producer_counts_its_replacements_in_the_metric() -> None:
    from streams.runtime import WorkerContext

    ctx = WorkerContext(load_settings(environ={}, overrides={"kafka.bootstrap": "127.0.0.1:1"}))
    ctx.out._on_replaced(12)  # type: ignore[misc]  # what _replace calls with the records it sent again
    assert ctx.metrics.registry.get_sample_value("driftline_producer_restarts_total") == 1.0
