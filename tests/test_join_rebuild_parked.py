"""Labels that arrive after Redis lost its data and before the joiner noticed (it checks every 5 s) are parked: no
context is there yet. The rebuild from ``predictions`` restores their contexts; it must also join those parked
labels, or they wait for their TTL and are counted as orphans, never learned (found by flushing Redis and
sending labels right after: every one of them was lost).

Deterministic: the join state is deleted except the joiner's ``alive`` marker (so no rebuild starts), the labels
are sent and parked, and only then is the marker deleted too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streams.join import join_namespace
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import Pipeline, distinct_ids

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with running_all(Pipeline(prefix, tmp_path, redis_url)) as p:
        yield p


def test_labels_parked_before_the_rebuild_are_joined_by_it(pipeline: Pipeline, redis_url: str) -> None:
    pipeline.start("all")
    events = make_events(200, tag="rb")
    publish(pipeline, events, labels=False)
    pipeline.wait_until(
        "every event predicted", lambda: len(pipeline.values("predictions")) >= len(events), 60
    )
    ns = join_namespace(pipeline.settings())
    client = redis.Redis.from_url(redis_url)
    try:
        pipeline.wait_until(f"the joiner's {ns}:alive key", lambda: client.exists(f"{ns}:alive"), 30)
        # Redis lost this pipeline's join state (all but the marker the joiner checks).
        lost = [k for k in client.scan_iter(match=f"{ns}:*", count=1000) if not k.endswith(b":alive")]
        assert lost and client.delete(*lost) == len(lost)
        with pipeline.producer() as producer:
            for e in events:
                producer.send_label(e.id, e.label)
        ids = [e.id for e in events]
        pipeline.wait_until("the labels parked", lambda: None not in client.zmscore(f"{ns}:parked", ids), 60)
        client.delete(f"{ns}:alive")  # the joiner notices the loss now, and rebuilds
        pipeline.wait_learned(len(events), timeout=90)
        assert client.zcard(f"{ns}:parked") == 0
    finally:
        client.close()
    assert distinct_ids(pipeline.values("training")) == {e.id for e in events}
    assert pipeline.labels_learned() == len(events)
    assert not pipeline.values("deadletter")


def test_the_rebuild_restores_only_predictions_still_waiting_for_their_label(
    pipeline: Pipeline, redis_url: str
) -> None:
    """Found from outside: Redis lost its data after 15,000 labels had been joined; the rebuild restored every
    prediction of the last hour as pending (the 'joined' markers were lost too), so `status` showed 14,979
    predictions waiting for a label and an hour later the sweep would count each as expired (label never came).
    Ids already on ``training`` were joined: their contexts are not pending."""
    pipeline.start("all")
    answered = make_events(200, tag="done")
    publish(pipeline, answered)
    pipeline.wait_learned(len(answered), timeout=90)
    waiting = make_events(50, tag="wait")
    publish(pipeline, waiting, labels=False)
    total = len(answered) + len(waiting)
    pipeline.wait_until("every event predicted", lambda: len(pipeline.values("predictions")) >= total, 60)
    ns = join_namespace(pipeline.settings())
    client = redis.Redis.from_url(redis_url)
    try:
        pipeline.wait_until("the waiting contexts stored", lambda: client.zcard(f"{ns}:pending") == 50, 30)
        lost = list(client.scan_iter(match=f"{ns}:*", count=1000))
        assert lost and client.delete(*lost) == len(lost)  # Redis lost this pipeline's join state
        pipeline.wait_until("the rebuild", lambda: client.exists(f"{ns}:alive"), 60)
        pending = {m.decode() for m in client.zrange(f"{ns}:pending", 0, -1)}
        assert pending == {e.id for e in waiting}
        with pipeline.producer() as producer:
            for e in waiting:
                producer.send_label(e.id, e.label)
        pipeline.wait_learned(total, timeout=90)
    finally:
        client.close()
    assert pipeline.labels_learned() == total
    assert not pipeline.values("deadletter")


def test_labels_parked_before_redis_lost_its_data_are_parked_again_by_the_rebuild(
    pipeline: Pipeline, redis_url: str
) -> None:
    """Found from outside: labels that came before their events were parked in Redis; Redis lost its data; the
    rebuild restored predictions only, so those labels were gone and their events, when they came, waited out the
    TTL as 'expired' (nothing in the log said labels were lost). The rebuild reads ``labels`` within the TTL too:
    a label whose event was scored since is joined, the others are parked again for their events."""
    pipeline.start("all")
    events = make_events(100, tag="early")
    with pipeline.producer() as producer:
        for e in events:
            producer.send_label(e.id, e.label)
    ns = join_namespace(pipeline.settings())
    client = redis.Redis.from_url(redis_url)
    ids = [e.id for e in events]
    try:
        pipeline.wait_until(f"the joiner's {ns}:alive key", lambda: client.exists(f"{ns}:alive"), 30)
        pipeline.wait_until("the labels parked", lambda: None not in client.zmscore(f"{ns}:parked", ids), 60)
        # Redis lost this pipeline's join state (all but the marker the joiner checks, so no rebuild yet) ...
        lost = [k for k in client.scan_iter(match=f"{ns}:*", count=1000) if not k.endswith(b":alive")]
        assert lost and client.delete(*lost) == len(lost)
        # ... half the events are scored before the joiner notices (their labels are gone from Redis) ...
        publish(pipeline, events[:50], labels=False)
        pipeline.wait_until(
            "the first half's contexts stored",
            lambda: None not in client.zmscore(f"{ns}:pending", ids[:50]),
            60,
        )
        client.delete(f"{ns}:alive")  # ... the joiner notices the loss now, and rebuilds
        pipeline.wait_until("the rebuild", lambda: client.exists(f"{ns}:alive"), 60)
        publish(pipeline, events[50:], labels=False)  # ... and the other half comes after it
        pipeline.wait_learned(len(events), timeout=90)
        assert client.zcard(f"{ns}:parked") == 0 and client.zcard(f"{ns}:pending") == 0
    finally:
        client.close()
    assert distinct_ids(pipeline.values("training")) == set(ids)
    assert pipeline.labels_learned() == len(events)
    assert not pipeline.values("deadletter")


def test_a_parked_label_that_cannot_be_joined_is_dead_lettered_not_only_counted(
    pipeline: Pipeline, redis_url: str
) -> None:
    """Found from outside (session 31): a parked label whose bytes could not be made into a TrainingExample when
    its prediction came (here: Redis holds junk for it) was logged and counted as ``lost``, and gone; "bad input
    loses nothing" says it goes to ``deadletter`` with the reason."""
    pipeline.start("all")
    events = make_events(40, tag="junk")
    with pipeline.producer() as producer:
        for e in events:
            producer.send_label(e.id, e.label)
    ns = join_namespace(pipeline.settings())
    client = redis.Redis.from_url(redis_url)
    ids = [e.id for e in events]
    try:
        pipeline.wait_until("the labels parked", lambda: None not in client.zmscore(f"{ns}:parked", ids), 60)
        assert client.set(f"{ns}:lbl:{ids[0]}", b"\x00not a label", xx=True, keepttl=True)
        publish(pipeline, events, labels=False)
        pipeline.wait_learned(len(events) - 1, timeout=90)
        pipeline.wait_until("the dead letter", lambda: pipeline.values("deadletter"), 30)
    finally:
        client.close()
    (letter,) = pipeline.values("deadletter")
    assert letter["key"] == ids[0].encode() and letter["value"] == b"\x00not a label"
    assert letter["error"].startswith("parked label:") and letter["source_topic"].endswith("labels")
    assert distinct_ids(pipeline.values("training")) == set(ids[1:])
