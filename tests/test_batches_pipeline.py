"""The pipelined batch loop (streams/batches.py) and per-batch delivery tracking (EventProducer.tracking/wait),
against the shared local broker.

What must hold: a batch's offsets are stored only after its finish step succeeded, in order; a finish that fails
(outputs lost) redoes that batch before anything after it is acknowledged; nothing is skipped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_client import client_config
from connectors.producer import DeliveryError, EventProducer
from driftline.settings import Settings
from streams.batches import BatchLoop
from streams.finisher import PipelinedFinish
from streams.runtime import RawRecord, WorkerContext
from tests.broker_helpers import committed, fill
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


def _topic(settings: Settings, name: str, partitions: int = 1) -> str:
    full = f"{settings.kafka.topic_prefix}{name}"
    admin = AdminClient(client_config(settings))
    for future in admin.create_topics([NewTopic(full, partitions, 1)]).values():
        future.result()
    return full


def test_tracking_waits_for_one_batch_only(settings: Settings) -> None:
    topic = _topic(settings, "tracked")
    producer = EventProducer(settings)
    try:
        with producer.tracking() as first:
            for i in range(100):
                producer.produce_bytes(topic, f"a{i}".encode())
        assert first.pending == 100
        with producer.tracking() as second:
            for i in range(50):
                producer.produce_bytes(topic, f"b{i}".encode())
        producer.wait(first, 30)
        assert first.done and first.failed == 0
        producer.wait(second, 30)
        assert second.done and producer.delivered == 150
        producer.flush(10)  # tracked failures are not reported again here, and there were none
    finally:
        producer.close()


def test_tracking_reports_a_lost_batch(settings: Settings) -> None:
    # The local broker does not auto-create topics: with a 1 s message timeout the delivery fails fast.
    producer = EventProducer(settings, **{"message.timeout.ms": 1000})
    try:
        with producer.tracking() as lost:
            producer.produce_bytes(f"{settings.kafka.topic_prefix}missing", b"x")
        with pytest.raises(DeliveryError, match="not delivered"):
            producer.wait(lost, 30)
        producer.flush(5)  # the failure was reported once, by wait
    finally:
        producer.close()


def test_pipelined_loop_redoes_a_lost_batch_before_acknowledging_later_ones(settings: Settings) -> None:
    topic = _topic(settings, "in")
    fill(settings, topic, 60)
    ctx = WorkerContext(settings)
    group = f"{settings.kafka.topic_prefix}loop"
    handled: list[list[int]] = []
    finished: list[list[int]] = []
    failures = {"left": 1}

    def handle(raws: list[RawRecord]) -> Callable[[], None]:
        offsets = [r.offset for r in raws]
        handled.append(offsets)

        def finish() -> None:
            if offsets[0] >= 20 and failures["left"]:
                failures["left"] -= 1
                raise DeliveryError("1 record(s) were not delivered; first error: simulated")
            finished.append(offsets)

        return finish

    loop = BatchLoop(ctx, "score", topic, group, handle, batch=10, within=0.05)
    stopping = threading.Event()
    thread = loop.thread(stopping)
    thread.start()
    try:
        wait_until(
            "60 offsets finished", lambda: sum(len(b) for b in finished) >= 60, timeout=60, interval=0.05
        )
    finally:
        stopping.set()
        thread.join(30)
        ctx.out.close(10)

    done = sorted(o for batch in finished for o in batch)
    assert done == list(range(60)), "every offset finished exactly once"
    failed = next(b for b in handled if b[0] >= 20)
    # The failed batch was handled again (redo) right after its finish failed, before any later batch finished.
    assert handled.count(failed) == 2
    order = [b[0] for b in finished]
    assert order == sorted(order), "batches finish in offset order"
    assert committed(settings, group, topic) == 60


def test_a_finish_failing_after_its_outputs_were_acknowledged_is_retried_without_handling_the_batch_again(
    settings: Settings,
) -> None:
    """Redis refusing a scorer's join contexts fails the finish step after the batch's Predictions were
    acknowledged: only that step is retried (until Redis answers), never the batch handled and its outputs
    published again at each retry (arch41, loose end b: 3,958 duplicate Predictions of 1,000 events)."""
    topic = _topic(settings, "in")
    out_topic = _topic(settings, "out")
    fill(settings, topic, 60)
    ctx = WorkerContext(settings)
    group = f"{settings.kafka.topic_prefix}redo-finish"
    handled: list[list[int]] = []
    stored: list[list[int]] = []
    marked: list[list[int]] = []
    refusals = {"left": 3}

    def process(raws: list[RawRecord]) -> list[int]:
        offsets = [r.offset for r in raws]
        handled.append(offsets)
        for r in raws:
            ctx.out.produce_bytes(out_topic, r.value, r.key)
        return offsets

    def after(offsets: list[int]) -> list[int]:
        if offsets[0] <= 20 < offsets[-1] + 1 and refusals["left"]:
            refusals["left"] -= 1
            raise redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'")
        stored.append(offsets)
        return offsets

    def handle(raws: list[RawRecord]) -> PipelinedFinish:
        with ctx.out.tracking() as deliveries:
            result = process(raws)
        return PipelinedFinish(ctx.out, [deliveries], result, after, marked.append, _concat, size=len(raws))

    loop = BatchLoop(ctx, "score", topic, group, handle, batch=10, within=0.05)
    stopping = threading.Event()
    thread = loop.thread(stopping)
    thread.start()
    try:
        wait_until("60 offsets marked", lambda: sum(len(b) for b in marked) >= 60, timeout=60, interval=0.05)
    finally:
        stopping.set()
        thread.join(30)
        ctx.out.close(10)

    assert refusals["left"] == 0, "Redis refused the finish step three times"
    assert sorted(o for batch in handled for o in batch) == list(range(60)), (
        "each input record handled (and its output published) once, though its finish step was retried"
    )
    assert sorted(o for batch in marked for o in batch) == list(range(60)), (
        "every offset finished exactly once"
    )
    assert committed(settings, group, topic) == 60


def _concat(results: list[list[int]]) -> list[int]:
    return [x for r in results for x in r]
