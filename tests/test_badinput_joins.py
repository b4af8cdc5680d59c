"""Labels that do not fit: for unknown ids, duplicated, before their predictions, and predictions whose labels never
come. Each is counted under its own outcome, the join state stays bounded (everything pending expires after
``redis.pending_ttl_s``), and every joinable label is learned exactly once.
"""

from __future__ import annotations

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

    ns = join_namespace(pipeline.settings())
    client = redis.Redis.from_url(redis_url)

    def parked(ids: list[str]) -> bool:
        """Every one of ``ids`` has a label parked in Redis, waiting for its prediction."""
        labels = [f"{ns}:lbl:{i}" for i in ids]
        return None not in client.zmscore(f"{ns}:parked", ids) and client.exists(*labels) == len(ids)

    publish(pipeline, plain, label_lag=0)
    with pipeline.producer() as producer:
        for e in duplicated:  # the same label again, while its first copy is joined or still pending
            producer.send_label(e.id, e.label)
        for id_ in unknown:  # labels for events that never existed
            producer.send_label(id_, True)
        for e in early:  # labels first...
            producer.send_label(e.id, e.label)
    # ...and their events only once the joiner has parked every one of those labels (no sleep deciding the order).
    pipeline.wait_until("the early labels parked", lambda: parked([e.id for e in early]), 60)
    publish(pipeline, early, labels=False)
    publish(pipeline, unlabelled, labels=False)  # events whose labels never come

    joinable = {e.id for e in plain + early}
    pipeline.wait_learned(len(joinable))
    # The early labels were joined by the scorer from the parked side: none of them is parked any more.
    assert client.zmscore(f"{ns}:parked", [e.id for e in early]) == [None] * len(early)
    # After the TTL and a sweep, what never joined is counted, and nothing of it is left in Redis.
    pipeline.wait_until("orphans counted", lambda: _joins(pipeline, "orphan") >= len(unknown), TTL_S + 30)
    pipeline.wait_until(
        "expiries counted", lambda: _joins(pipeline, "expired") >= len(unlabelled), TTL_S + 30
    )
    # One more label without an event, after the counts: once it is counted as an orphan, the sweeper has run
    # again, so a late double count of the others would show in the totals below.
    with pipeline.producer() as producer:
        producer.send_label("nobody-sentinel", True)
    pipeline.wait_until(
        "the sentinel counted", lambda: _joins(pipeline, "orphan") >= len(unknown) + 1, TTL_S + 30
    )
    pipeline.assert_alive()

    assert _joins(pipeline, "joined") == len(joinable)
    assert _joins(pipeline, "duplicate") == len(duplicated)
    assert _joins(pipeline, "orphan") == len(unknown) + 1
    assert _joins(pipeline, "expired") == len(unlabelled)
    # Every unknown and every early label was parked (plain labels racing their prediction may be parked too).
    assert _joins(pipeline, "parked") >= len(unknown) + len(early) + 1
    assert pipeline.metric_sum("driftline_pending_joins") == 0

    try:
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
    assert pipeline.labels_learned() == len(joinable)
    assert not pipeline.values("deadletter")
    check_joins(Outcome(predictions, training, [], []), events)
