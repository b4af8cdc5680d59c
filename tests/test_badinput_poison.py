"""Poison records on every input topic, on the real local stack: each is dead-lettered (``features``, ``labels``,
``training``, ``control``), counted as a rejected release (``models``) or skipped (``audit``), while every valid
event around it is scored, joined and learned, new releases are still adopted, and every worker stays up.

Both runtimes: one ``--role all`` worker (Faust agents for every stage) and separate score / join / train workers
(the batch loop; ``control`` is a Faust agent in the train worker). The payloads come from tests/corpus: JSON nested
100,000 deep and 50,000 objects deep inside ``features`` (a RecursionError before issue 12), duplicate keys, huge
length prefixes, wrong fingerprints, invalid UTF-8, NaN, and a record over 1 MB.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from connectors.kafka_client import client_config
from tests.corpus import for_record
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import Pipeline, distinct_ids
from tests.test_badinput_records import send_raw_big

pytestmark = [pytest.mark.kafka]

POISON = {
    "features": [
        "deep_array", "deep_object", "nested_features", "duplicate_keys", "plain_text", "invalid_utf8",
        "huge_length_prefix", "wrong_fingerprint", "json_nan", "over_1mb",
    ],
    "labels": ["deep_array", "deep_object", "duplicate_keys", "invalid_utf8_start", "huge_length_prefix"],
    "training": ["deep_array", "huge_length_prefix", "endless_varint", "wrong_fingerprint", "random_binary"],
    "control": ["deep_array", "deep_object", "duplicate_keys", "plain_text", "negative_length"],
    "models": ["deep_array", "huge_length_prefix", "endless_varint", "wrong_fingerprint", "random_binary"],
}  # fmt: skip
RECORD = {"features": "FeatureEvent", "labels": "Label", "training": "TrainingExample",
          "control": "ControlCommand", "models": "ModelRelease"}  # fmt: skip


def poison(topic: str) -> list[bytes]:
    corpus = for_record(RECORD[topic])
    return [corpus[name] for name in POISON[topic]]


@pytest.fixture
def pipeline(prefix: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    env = {"DRIFTLINE__MODEL__RELEASE_EVERY": "100"}
    with running_all(Pipeline(prefix, tmp_path, redis_url, extra_env=env)) as p:
        yield p


@pytest.mark.parametrize("roles", [("all",), ("score", "join", "train")], ids=["agents", "batches"])
def test_poison_on_every_input_topic_is_isolated(pipeline: Pipeline, roles: tuple[str, ...]) -> None:
    pipeline.start(*roles)
    # audit, read by each trainer process once, at its first append (to level its chain with the topic): before
    # session 29 a record nested too deep for json.loads failed every transaction that appended to the chain, and
    # the trainer dead-lettered the good TrainingExamples it redid one by one.
    pipeline.send_raw("audit", [for_record("Label")["deep_array"], b"\xff\xfe"], key=b"default")
    settings = pipeline.settings()
    events = make_events(300)
    # models first: the releases published while learning below come after the poison in the follower's log.
    pipeline.send_raw("models", poison("models"), key=b"default")
    publish(pipeline, events[:150])
    send_raw_big(pipeline, "features", poison("features"))
    for topic in ("labels", "training", "control"):
        pipeline.send_raw(topic, poison(topic), key=b"poison")
    publish(pipeline, events[150:])
    ids = {e.id for e in events}

    pipeline.wait_until(
        "every valid event predicted", lambda: ids <= distinct_ids(pipeline.values("predictions"))
    )
    pipeline.wait_learned(len(events))
    expected = {settings.topic(t): len(POISON[t]) for t in ("features", "labels", "training", "control")}

    def dead_by_topic() -> dict[str, int]:
        counts: dict[str, int] = {}
        for d in pipeline.values("deadletter"):
            counts[d["source_topic"]] = counts.get(d["source_topic"], 0) + 1
        return counts

    pipeline.wait_until("every poison record dead-lettered", lambda: dead_by_topic() == expected, 90)
    for d in pipeline.values("deadletter"):
        assert d["error"] and d["offset"] >= 0, d
    reasons = " | ".join(d["error"] for d in pipeline.values("deadletter"))
    assert "nested deeper than 32 levels" in reasons and "duplicate key" in reasons

    # models: every poison counted as a rejected release, and the follower went on to adopt the newest release.
    rejected = pipeline.metric_sum("driftline_releases_rejected_total", reason="decode")
    assert rejected >= len(POISON["models"]), f"releases_rejected_total{{reason=decode}} = {rejected}"

    def releases() -> list[
        int
    ]:  # the decodable records of ``models`` (the poison is still there, undecodable)
        return sorted(int(r.value["version"]) for r in pipeline.read("models") if r.ok and r.value)

    versions = pipeline.wait_until(
        "releases published after the poison", lambda: len(releases()) >= 2 and releases()
    )
    newest = versions[-1]
    pipeline.wait_until(
        f"scorer serving v{newest}",
        lambda: pipeline.metric_sum("driftline_served_model_version") >= newest,
        60,
    )

    predictions = pipeline.values("predictions")
    assert distinct_ids(predictions) == ids  # nothing bad reached the outputs, nothing good was lost
    assert pipeline.labels_learned() == len(events)
    pipeline.assert_alive()
    assert pipeline.metric_sum("driftline_events_total", outcome="retry") == 0, "a poison batch was retried"


def test_poison_with_a_key_too_large_to_dead_letter_whole_is_cut_not_retried(pipeline: Pipeline) -> None:
    """A dead letter carries the key twice (its ``key`` field and the Kafka key): junk with a 600 KB key fits one
    Kafka message as it came but not as a dead letter. The broker refused the dead letter at delivery, and the batch
    was retried every 10 s for good: the partition stalled while the lag gauge read 0 (session 40, hostile40)."""
    pipeline.start("all")
    events = make_events(100)
    publish(pipeline, events[:50])
    key = os.urandom(600_000)  # random: compression does not shrink it
    for topic in ("features", "labels", "training", "control"):
        pipeline.send_raw(topic, [b"\x00junk"], key=key)
    publish(pipeline, events[50:])
    ids = {e.id for e in events}
    pipeline.wait_until(
        "every valid event predicted", lambda: ids <= distinct_ids(pipeline.values("predictions"))
    )
    pipeline.wait_learned(len(events))
    settings = pipeline.settings()
    topics = {settings.topic(t) for t in ("features", "labels", "training", "control")}
    # Each topic's junk, not any four dead letters: the stages dead-letter theirs independently (four from two
    # topics would miss the others).
    dead = pipeline.wait_until(
        "the junk of every topic dead-lettered",
        lambda: (d := pipeline.values("deadletter")) and {x["source_topic"] for x in d} == topics and d,
        60,
    )
    assert {d["source_topic"] for d in dead} == topics
    for d in dead:
        assert d["key"] == key[:65536] and d["value"] == b"\x00junk", d["error"]
        assert "key of 600000 bytes and value of 5 bytes each cut to 64 KiB" in d["error"], d["error"]
    pipeline.assert_alive()
    assert pipeline.metric_sum("driftline_events_total", outcome="retry") == 0, "a dead letter was retried"


def test_a_dead_letter_topic_taking_smaller_records_gets_dead_letters_cut_to_fit(pipeline: Pipeline) -> None:
    """An operator's ``deadletter`` topic with a ``max.message.bytes`` below 1 MB refused a dead letter of a large
    poison record at delivery, and the batch was retried every 10 s for good (hostile40, finding 6): the dead letter
    is cut to what the topic takes, and says so."""
    # The workers create the topics; the dead-letter topic's limit is read at the first dead letter.
    pipeline.start("all")
    settings = pipeline.settings()
    admin = AdminClient(client_config(settings))
    resource = ConfigResource(
        ResourceType.TOPIC,
        settings.topic("deadletter"),
        incremental_configs=[
            ConfigEntry("max.message.bytes", "50000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    events = make_events(60)
    publish(pipeline, events[:30])
    junk = b"\x00" + os.urandom(300_000)  # random: compression does not shrink it
    pipeline.send_raw("features", [junk], key=b"k" * 20_000)
    publish(pipeline, events[30:])
    ids = {e.id for e in events}
    pipeline.wait_until(
        "every valid event predicted", lambda: ids <= distinct_ids(pipeline.values("predictions")), 90
    )
    (dead,) = pipeline.wait_until("the junk dead-lettered", lambda: pipeline.values("deadletter"), 60)
    assert dead["source_topic"] == settings.topic("features"), dead["error"]
    assert junk.startswith(dead["value"]) and 0 < len(dead["value"]) < 16_000, len(dead["value"])
    assert dead["key"] == b"k" * len(dead["key"]), len(dead["key"])
    assert "value of 300001 bytes each cut to" in dead["error"], dead["error"]
    assert "whose max.message.bytes is 50000" in dead["error"], dead["error"]
    pipeline.assert_alive()
    assert pipeline.metric_sum("driftline_events_total", outcome="retry") == 0, "a dead letter was retried"
