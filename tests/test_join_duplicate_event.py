"""A label parked for an event id is joined once when the id is scored in two passes (a producer's duplicate event
in a later batch, before the first join is marked): the scorer hands ``put_predictions`` each prediction's input
record, and only the record that claimed the label gets it again (its replay after a crash). Against the real
Redis, with the scorer's own code (fixes33b, item 2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.batch_source import RawRecord
from connectors.redis_store import JoinStore
from driftline.settings import load_settings
from streams.metrics import build_metrics
from streams.runtime import WorkerContext
from streams.score import Scorer
from tests.test_fuzz_stages import FakeProducer
from tests.test_score_models import CODEC, Follower, _event

pytestmark = pytest.mark.kafka  # needs the local stack (Redis)


@pytest.fixture
def store(prefix: str, redis_url: str) -> Iterator[JoinStore]:
    js = JoinStore(redis_url, namespace=f"{prefix.rstrip('.')}:dup", ttl_s=60)
    yield js
    for key in js.client.scan_iter(match=f"{js.namespace}:*"):
        js.client.delete(key)
    js.client.close()


def _label(id_: str) -> bytes:
    return CODEC.encode("Label", {"id": id_, "ts": 5, "label": True})


def test_a_duplicate_event_in_the_next_batch_does_not_join_the_parked_label_twice(store: JoinStore) -> None:
    settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "m."})
    follower = Follower()
    follower.release("default", 1)
    producer = FakeProducer()
    ctx = WorkerContext(settings, CODEC, build_metrics(), producer)  # type: ignore[arg-type]
    scorer = Scorer(ctx, follower, store=store)  # type: ignore[arg-type]
    assert [f.status for f in store.lookup_labels([("e1", _label("e1"))], 1_000, ["m.labels:0:0"])] == [
        "parked"
    ]

    def training() -> list[bytes]:
        return [value for topic, value, _ in producer.sent if topic == "m.training"]

    first = scorer.process([_event(1, {"x": 1.0})])  # features offset 1
    assert scorer.publish_contexts(first) == ["e1"] and len(training()) == 1
    # The same event id again (offset 2, the producer sent it twice), scored before the first join is marked:
    duplicate = RawRecord("m.features", 0, 2, None, _event(1, {"x": 1.0}).value)
    assert scorer.publish_contexts(scorer.process([duplicate])) == []
    assert len(training()) == 1, "one label joined into two TrainingExamples"
    # The first record scored again (the scorer crashed before marking it): joined again, not lost.
    assert scorer.publish_contexts(scorer.process([_event(1, {"x": 1.0})])) == ["e1"]
    store.mark_joined(["e1"])
    assert scorer.publish_contexts(scorer.process([_event(1, {"x": 1.0})])) == []
