"""Server faults: the broker stopped and restarted, the broker paused (SIGSTOP) for 30 s, Redis restarted,
flushed and out of memory, and a stage whose batch takes longer than ``max.poll.interval.ms``.

They run against a private stack on free ports started by this module (never the shared one on 9092/6379 that
other tests use), with a fresh topic prefix per test. The oracle is the one of :mod:`tests.fault_helpers`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault_helpers import (
    Outcome,
    PrivateStack,
    Publisher,
    check_run,
    make_events,
    running_all,
    wait_complete,
)
from tests.pipeline_helpers import Pipeline

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

N = 1000
RATE = 300.0
ENV = {"DRIFTLINE__MODEL__RELEASE_EVERY": "300"}


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    stack = PrivateStack.create(tmp_path_factory.mktemp("private-stack"))
    try:
        stack.up()
        yield stack
    finally:
        from connectors.stack import stack_down

        stack_down(stack.cfg, grace_s=20)


@pytest.fixture
def pipeline(private: PrivateStack, tmp_path: Path) -> Iterator[Pipeline]:
    private.up()  # a test that failed half-way may have left a server down
    prefix = f"f-{secrets.token_hex(4)}."
    with running_all(private.pipeline(prefix, tmp_path, **ENV)) as p:
        yield p


def _ids(events: list) -> set[str]:
    return {e.id for e in events}


def _retries(pipeline: Pipeline) -> float:
    return pipeline.metric_sum("driftline_events_total", outcome="retry")


@contextlib.contextmanager
def _fault_after_a_third(pipeline: Pipeline, timeout: float = 180) -> Iterator[list[Outcome]]:
    """Run every stage and stream N events at RATE; the block (the fault) runs once a third are sent. Then every
    event must come through and the run pass the oracle (tests.fault_helpers.check_run); the run's
    :class:`Outcome` is appended to the list yielded, for a test's own checks after the block."""
    pipeline.start("score", "join", "train")
    events = make_events(N)
    publisher = Publisher(pipeline, events, rate=RATE)
    publisher.start()
    publisher.wait_sent(N // 3)
    outcome: list[Outcome] = []
    yield outcome
    publisher.finish()
    out = wait_complete(pipeline, events, _ids(events), timeout=timeout)
    check_run(pipeline, out, events, _ids(events))
    outcome.append(out)


def test_broker_stopped_and_restarted(private: PrivateStack, pipeline: Pipeline) -> None:
    with _fault_after_a_third(pipeline):
        private.stop_kafka()
        time.sleep(3)
        private.up()
    pipeline.assert_alive()


def test_broker_paused_30s(private: PrivateStack, pipeline: Pipeline) -> None:
    """The broker frozen (SIGSTOP) for 30 s, longer than every session timeout: each group expires, its members
    rejoin after SIGCONT. The pause often lands while the scorer still holds its partitions paused for the first
    model; a partition revoked then keeps librdkafka's pause flag when it comes back (a scorer that scored
    nothing, until BatchSource resumed partitions on every assignment)."""
    with _fault_after_a_third(pipeline):
        pid = private.pause_kafka()
        try:
            time.sleep(30)
        finally:
            private.resume(pid)
    pipeline.assert_alive()


def test_redis_restarted(private: PrivateStack, pipeline: Pipeline) -> None:
    with _fault_after_a_third(pipeline):
        private.stop_redis()
        time.sleep(2)
        private.up()
    assert _retries(pipeline) > 0, "no stage noticed Redis was down"


def test_redis_flushed_join_state_rebuilt(private: PrivateStack, pipeline: Pipeline) -> None:
    """All join state lost: the joiner rebuilds it from ``predictions``; labels for events predicted before the
    flush still join (with the right prediction), and labels joined before it and sent again are not learned
    twice."""
    pipeline.start("score", "join", "train")
    events = make_events(N)
    before, after = events[: N // 2], events[N // 2 :]
    publisher = Publisher(pipeline, events, rate=4000.0, labels=False)
    publisher.start()
    publisher.finish()
    _send_labels(pipeline, before)
    pipeline.wait_learned(len(before))
    settings = pipeline.settings()
    alive = f"{settings.redis.key_prefix}:{settings.kafka.topic_prefix}{settings.model.name}:alive"
    client = private.redis()
    try:
        pipeline.wait_until(f"the joiner's {alive} key", lambda: client.exists(alive), timeout=30)
        client.flushall()
        pipeline.wait_until("join state rebuilt", lambda: client.exists(alive), timeout=60)
    finally:
        client.close()
    _send_labels(pipeline, after + before[:100])  # 100 labels joined before the flush come again
    out = wait_complete(pipeline, events, _ids(events), timeout=120)
    check_run(pipeline, out, events, _ids(events))
    duplicates = pipeline.metric_sum("driftline_events_total", stage="train", outcome="duplicate")
    joined_twice = len(out.training) - len({t["id"] for t in out.training})
    assert duplicates == joined_twice, f"trainer dropped {duplicates} duplicates, {joined_twice} joined twice"


def _send_labels(pipeline: Pipeline, events: list) -> None:
    with pipeline.producer() as producer:
        for e in events:
            producer.send_label(e.id, e.label)


def test_redis_refusing_writes_does_not_publish_predictions_again(
    private: PrivateStack, pipeline: Pipeline
) -> None:
    """Redis refuses writes for a few seconds: the scorer's finish step (the join contexts) fails after the batch's
    Predictions were acknowledged, and only that step is retried. It used to redo the whole batch at every retry,
    scoring it and publishing its Predictions again each time (arch41: 3,958 duplicates of 1,000 events over a
    ~40 s outage). Every event still has its Prediction and every label is joined and learned exactly once.

    Also the out-of-memory case (maxmemory reached, noeviction: stages retry their batch, nothing is skipped), which
    test_redis_out_of_memory ran alone with the same fault held 3 s: its checks (the oracle, every worker alive) are
    all here (merged by tspeed43)."""
    with _fault_after_a_third(pipeline) as outcome:
        client = private.redis()
        try:
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", "1")
            try:
                pipeline.wait_until("a batch refused by Redis", lambda: _retries(pipeline) > 0, timeout=30)
                time.sleep(5)
            finally:
                client.config_set("maxmemory", "0")
        finally:
            client.close()
    assert _retries(pipeline) > 0, "no stage retried while Redis refused writes"
    out = outcome[0]
    published = Counter(p["id"] for p in out.predictions)
    assert out.duplicate_predictions <= N // 100, (
        f"{out.duplicate_predictions} duplicate Predictions of {N} events (most for one event: "
        f"{max(published.values())}): a retry of the finish step published its batch again"
    )
    assert len(out.training) == N, f"{len(out.training)} TrainingExamples for {N} labelled events"
    pipeline.assert_alive()


def test_batch_slower_than_max_poll_interval(private: PrivateStack, pipeline: Pipeline) -> None:
    """Redis stalls every write for 20 s (CLIENT PAUSE), so the batch in hand takes longer than
    ``max.poll.interval.ms`` (8 s here) while the consumers' heartbeats go on: the group revokes the partitions,
    the stage finishes its batch, rejoins and redoes what was not committed. Nothing lost, nothing learned
    twice."""
    pipeline.extra_env.update({"BROKER_MAX_POLL_INTERVAL": "8"})
    with _fault_after_a_third(pipeline, timeout=60):
        client = private.redis()
        try:
            client.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
            time.sleep(20)
        finally:
            client.execute_command("CLIENT", "UNPAUSE")
            client.close()
    pipeline.assert_alive()


@pytest.mark.parametrize("fault", ["refusing", "stopped"])
def test_a_batch_retried_longer_than_max_poll_interval(
    private: PrivateStack, pipeline: Pipeline, fault: str
) -> None:
    """A batch whose Redis step fails again and again for 30 s, four times ``max.poll.interval.ms`` (8 s here):
    Redis refusing writes (out of memory: an error at once, retried with back-off) or frozen (SIGSTOP: each call
    hangs until the client's socket timeout). The batch thread retries without polling, so the consumer leaves its
    group mid-retry; once Redis is back the batch goes through, the consumer rejoins and starts after the batches
    it handled. Nothing lost, nothing learned twice (session 41, helper arch41)."""
    pipeline.extra_env.update({"BROKER_MAX_POLL_INTERVAL": "8"})
    with _fault_after_a_third(pipeline, timeout=120):
        client = private.redis()
        try:
            if fault == "refusing":
                client.config_set("maxmemory-policy", "noeviction")
                client.config_set("maxmemory", "1")
                try:
                    pipeline.wait_until(
                        "a batch refused by Redis", lambda: _retries(pipeline) > 0, timeout=30
                    )
                    time.sleep(30)
                finally:
                    client.config_set("maxmemory", "0")
            else:
                pid = private.redis_pid()
                os.kill(pid, signal.SIGSTOP)
                try:
                    time.sleep(30)
                finally:
                    private.resume(pid)
        finally:
            client.close()
    assert _retries(pipeline) > 0, "no stage retried while Redis failed"
    pipeline.assert_alive()
