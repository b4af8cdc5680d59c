"""Labels that do not fit: for unknown ids, duplicated, before their predictions, and predictions whose labels never
come. Each is counted under its own outcome, the join state stays bounded (everything pending expires after
``redis.pending_ttl_s``), and every joinable label is learned exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streams.join import join_namespace
from tests.fault_helpers import Outcome, check_joins, make_events, publish, running_all, training_in_order
from tests.pipeline_helpers import Pipeline, distinct_ids

pytestmark = [pytest.mark.kafka]

TTL_S = 6


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    env = {"DRIFTLINE__REDIS__PENDING_TTL_S": str(TTL_S)}
    with running_all(Pipeline(prefix, tmp_path, redis_url, extra_env=env)) as p:
        yield p


def _joins(pipeline: Pipeline, outcome: str) -> float:
    return pipeline.metric_sum("driftline_joins_total", outcome=outcome)


def test_label_edge_cases_are_counted_and_state_stays_bounded(pipeline: Pipeline, redis_url: str) -> None:
    pipeline.start("score", "join", "train")
    events = make_events(600)
    plain, early, unlabelled = events[:400], events[400:500], events[500:]
    duplicated = plain[:50]
    unknown = [f"nobody-{i}" for i in range(40)]

    publish(pipeline, plain, label_lag=0)
    with pipeline.producer() as producer:
        for e in duplicated:  # the same label again, while its first copy is joined or still pending
            producer.send_label(e.id, e.label)
        for id_ in unknown:  # labels for events that never existed
            producer.send_label(id_, True)
        for e in early:  # labels first...
            producer.send_label(e.id, e.label)
    time.sleep(1.0)
    publish(pipeline, early, labels=False)  # ...their events a moment later
    publish(pipeline, unlabelled, labels=False)  # events whose labels never come

    joinable = {e.id for e in plain + early}
    pipeline.wait_learned(len(joinable))
    # After the TTL and a sweep, what never joined is counted, and nothing of it is left in Redis.
    pipeline.wait_until("orphans counted", lambda: _joins(pipeline, "orphan") >= len(unknown), TTL_S + 30)
    pipeline.wait_until(
        "expiries counted", lambda: _joins(pipeline, "expired") >= len(unlabelled), TTL_S + 30
    )
    time.sleep(6)  # one more sweep: a late double count would show
    pipeline.assert_alive()

    assert _joins(pipeline, "joined") == len(joinable)
    assert _joins(pipeline, "duplicate") == len(duplicated)
    assert _joins(pipeline, "orphan") == len(unknown)
    assert _joins(pipeline, "expired") == len(unlabelled)
    assert _joins(pipeline, "parked") >= len(unknown), "labels without a prediction were not parked"
    assert pipeline.metric_sum("driftline_pending_joins") == 0

    settings = pipeline.settings()
    client = redis.Redis.from_url(redis_url)
    try:
        ns = join_namespace(settings)
        left = [k.decode() for k in client.scan_iter(match=f"{ns}:*", count=1000)]
        waiting = [k for k in left if k.startswith((f"{ns}:ctx:", f"{ns}:lbl:"))]
        assert not waiting, f"{len(waiting)} pending join key(s) outlived the TTL, e.g. {waiting[:3]}"
        assert client.zcard(f"{ns}:pending") == 0 and client.zcard(f"{ns}:parked") == 0
    finally:
        client.close()

    predictions = pipeline.values("predictions")
    training = training_in_order(pipeline)
    assert distinct_ids(predictions) == {e.id for e in events}
    assert distinct_ids(training) == joinable, (
        "a label that could join was lost, or one that could not joined"
    )
    assert len(training) == len(joinable), "a duplicate label produced a second training example"
    assert pipeline.trainer()["n_learned"] == len(joinable)
    assert not pipeline.values("deadletter")
    check_joins(Outcome(predictions, training, [], []), events)
