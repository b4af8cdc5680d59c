"""Connectors against the real broker: topics, JSON in / Avro out, garbage, delivery failures."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from connectors import consumer as consumer_module
from connectors.consumer import IncompleteRead, Received, deadletter, read_to_end
from connectors.kafka_client import check_reachable, client_config
from connectors.producer import DeliveryError, EventProducer
from connectors.tail import assign_tail, read_until_end
from connectors.topics import ensure_topics
from driftline.errors import StackError
from driftline.settings import Settings
from schemas.codec import MAGIC, default_codec
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


def _one_partition(settings: Settings) -> Settings:
    return dataclasses.replace(settings, kafka=dataclasses.replace(settings.kafka, partitions=1))


def _read(settings: Settings, name: str) -> list[Received]:
    """Every record of contract topic ``name``, decoded as a stage's reader decodes it (errors kept)."""
    consumer, ends = assign_tail(settings, name, None)
    try:
        return read_until_end(consumer, default_codec(), name, ends)
    finally:
        consumer.close()


def test_ensure_topics_is_idempotent_with_contract_policies(settings: Settings) -> None:
    first = ensure_topics(settings)
    again = ensure_topics(settings)
    assert first == again
    admin = AdminClient(client_config(settings))
    meta = admin.list_topics(timeout=10)
    assert len(meta.topics[settings.topic("features")].partitions) == settings.kafka.partitions
    assert len(meta.topics[settings.topic("models")].partitions) == 1
    resources = [ConfigResource("topic", settings.topic(n)) for n in ("models", "control", "labels")]
    policies = {
        res.name: cfg["cleanup.policy"].value
        for res, fut in admin.describe_configs(resources).items()
        for cfg in [fut.result()]
    }
    assert policies == {
        settings.topic("models"): "compact",
        settings.topic("control"): "compact",
        settings.topic("labels"): "delete",
    }


def test_json_in_avro_out_through_the_broker(settings: Settings) -> None:
    src = _one_partition(settings)
    dst = dataclasses.replace(
        src, kafka=dataclasses.replace(src.kafka, topic_prefix=src.kafka.topic_prefix + "out.")
    )
    ensure_topics(src, ("features",))
    ensure_topics(dst, ("features",))
    raw = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    raw.produce(
        src.topic("features"), json.dumps({"id": "x1", "ts": 1, "features": {"a": 1.5}}).encode(), b"x1"
    )
    raw.flush(10)

    (item,) = _read(src, "features")
    assert item.ok, item.error
    assert item.value == {"id": "x1", "ts": 1, "key": None, "features": {"a": 1.5}, "model": None}

    with EventProducer(dst) as producer:
        producer.send("features", "FeatureEvent", item.value, key="x1")
    assert producer.delivered == 1

    plain = Consumer(client_config(dst, **{"group.id": f"{settings.kafka.topic_prefix}raw"}))
    plain.assign([TopicPartition(dst.topic("features"), 0, 0)])
    try:
        msg = wait_until("the record", lambda: plain.poll(0.5), 20, 0)
    finally:
        plain.close()
    assert msg.error() is None
    data = msg.value()
    assert data[:2] == MAGIC and data[2:10] == default_codec().fingerprint("FeatureEvent")
    assert default_codec().decode("FeatureEvent", data) == item.value


def test_garbage_is_yielded_as_error_and_dead_lettered(settings: Settings) -> None:
    s = _one_partition(settings)
    ensure_topics(s)
    raw = Producer({"bootstrap.servers": s.kafka.bootstrap})
    raw.produce(s.topic("labels"), b"\x00\x01not avro", b"k1")
    raw.produce(s.topic("labels"), json.dumps({"id": "e1", "ts": 2, "label": True}).encode(), b"e1")
    raw.produce(s.topic("labels"), json.dumps({"id": "e2", "ts": 3, "label": float("nan")}).encode(), b"e2")
    raw.flush(10)
    items = sorted(_read(s, "labels"), key=lambda r: r.offset)
    assert [i.ok for i in items] == [False, True, False]
    assert items[1].value == {"id": "e1", "ts": 2, "label": True}
    assert "c301" in str(items[0].error) and "label" in str(items[2].error)

    with EventProducer(s) as producer:
        for bad in (items[0], items[2]):
            producer.send("deadletter", "DeadLetter", deadletter(bad, bad.error or ""), key=bad.key)
    letters = sorted(_read(s, "deadletter"), key=lambda r: (r.value or {}).get("offset", -1))
    assert len(letters) == 2
    first = letters[0].value or {}
    assert first["source_topic"] == s.topic("labels") and first["offset"] == 0
    assert first["value"] == b"\x00\x01not avro" and first["key"] == b"k1"


def test_delivery_failure_is_raised_not_lost(settings: Settings) -> None:
    s = _one_partition(settings)
    admin = AdminClient(client_config(s))
    topic = NewTopic(s.topic("features"), 1, 1, config={"max.message.bytes": "2000"})
    admin.create_topics([topic])[s.topic("features")].result()
    ensure_topics(s, ("features",))
    producer = EventProducer(s)
    producer.send_feature("ok", {"a": 1})
    producer.flush()  # its own batch: the broker rejects whole batches
    big = {f"f{i}": os.urandom(50).hex() for i in range(100)}  # ~10 kB, incompressible
    producer.send_feature("too-big", big)
    with pytest.raises(DeliveryError, match=r"1 record\(s\) were not delivered.*(TOO_LARGE|too large)"):
        producer.close()
    assert producer.delivered == 1


def test_context_manager_raises_on_lost_delivery(settings: Settings) -> None:
    s = _one_partition(settings)
    admin = AdminClient(client_config(s))
    admin.create_topics([NewTopic(s.topic("labels"), 1, 1, config={"max.message.bytes": "500"})])[
        s.topic("labels")
    ].result()
    with pytest.raises(DeliveryError), EventProducer(s) as producer:
        producer.send_label("x" * 20, os.urandom(600).hex())  # the label alone is over the topic's 500 bytes


def test_check_reachable_names_the_address() -> None:
    from driftline.settings import load_settings

    dead = load_settings(environ={}, overrides={"kafka.bootstrap": "127.0.0.1:1"})
    with pytest.raises(StackError, match=r"cannot reach Kafka at 127\.0\.0\.1:1 \(tried for 1 s\).*stack up"):
        check_reachable(dead, timeout=1)


def test_produce_many_keeps_partitions_order_and_refusals_per_record(settings: Settings) -> None:
    """``produce_many`` (one ``produce_batch`` call) puts each key on the partition ``produce_bytes`` puts it on,
    keeps the order within a partition, reports a record the client refuses (too large) in that record's slot
    only, and waits out a full local queue instead of losing the records that did not fit."""
    s = settings
    ensure_topics(s, ("predictions",))
    topic = s.topic("predictions")
    keys = [f"id-{i}".encode() for i in range(120)]
    # A local queue of 40 records: the 120 do not fit in one call, so the full queue is waited out.
    producer = EventProducer(s, **{"queue.buffering.max.messages": 40, "message.max.bytes": 4000})
    with producer.tracking() as one_by_one:
        for k in keys:
            producer.produce_bytes(topic, b"a" + k, k)
    producer.wait(one_by_one)
    records: list[tuple[bytes, str | bytes | None]] = [(b"b" + k, k) for k in keys]
    records[7] = (b"b" + os.urandom(6000), keys[7])  # over message.max.bytes: refused by the client at once
    with producer.tracking() as batched:
        refused = producer.produce_many(topic, records)
    producer.wait(batched)
    producer.close()
    assert [i for i, e in enumerate(refused) if e is not None] == [7]
    assert isinstance(refused[7], DeliveryError) and "too large" in str(refused[7]).lower()

    consumer = Consumer(client_config(s, **{"group.id": f"{topic}-check", "enable.auto.commit": False}))
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    seen: dict[tuple[bytes, bytes], int] = {}  # (which call, key) -> partition
    order: dict[int, list[bytes]] = {}  # partition -> values in offset order

    def read() -> bool:
        for m in consumer.consume(500, 0.5):
            if not m.error():
                value = m.value() or b""
                seen[(value[:1], m.key() or b"")] = m.partition()
                order.setdefault(m.partition(), []).append(value)
        return len(seen) >= 2 * len(keys) - 1

    try:
        wait_until("every delivered record read back", read, timeout=30, interval=0)
    finally:
        consumer.close()
    assert len(seen) == 2 * len(keys) - 1  # every record delivered once, but the refused one
    assert all(seen[(b"b", k)] == seen[(b"a", k)] for i, k in enumerate(keys) if i != 7)
    for values in order.values():  # within a partition, the batched records in the order given
        batched_ids = [v[1:] for v in values if v[:1] == b"b"]
        assert batched_ids == sorted(batched_ids, key=keys.index)


def test_read_to_end_says_when_it_could_not_read_a_topic_to_its_end(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A strict read (the audit chain's) raises when it gives up before the end instead of returning a part as if
    # it were the whole topic. A transaction left open is not that: a read_committed reader's end is its first
    # record, and what comes before is whole.
    s = _one_partition(settings)
    ensure_topics(s, ("audit",))
    topic = s.topic("audit")
    committed = EventProducer(s, default_codec())
    committed.produce_bytes(topic, b'{"seq": 0}', key=b"default")
    committed.flush()
    stuck = Producer(client_config(s, **{"transactional.id": f"{s.kafka.topic_prefix}stuck"}))
    stuck.init_transactions(30)
    stuck.begin_transaction()
    stuck.produce(topic, b'{"seq": 1}', b"default")
    assert stuck.flush(30) == 0
    committed.produce_bytes(topic, b'{"seq": 2}', key=b"default")
    committed.flush()
    group = f"{s.kafka.topic_prefix}reader"
    assert [m.value() for m in read_to_end(s, topic, group, strict=True)] == [b'{"seq": 0}']
    stuck.commit_transaction(30)
    whole = [m.value() for m in read_to_end(s, topic, group, strict=True)]
    assert whole == [b'{"seq": 0}', b'{"seq": 1}', b'{"seq": 2}']
    # A topic that does not exist is read completely: it is empty.
    assert list(read_to_end(s, s.topic("nothing-here"), group, strict=True)) == []

    class Stalled(consumer_module.Consumer):  # the broker answers metadata but delivers nothing in time
        def consume(self, *args: object, **kwargs: object) -> list[object]:
            return []

    monkeypatch.setattr(consumer_module, "Consumer", Stalled)
    assert list(read_to_end(s, topic, group, timeout=1)) == []  # silently short: what loose callers accept
    with pytest.raises(IncompleteRead, match=r"to its end within 1 s \(partitions \[0\] unfinished: a slow"):
        list(read_to_end(s, topic, group, timeout=1, strict=True))
