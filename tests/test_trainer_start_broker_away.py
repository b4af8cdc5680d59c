"""A trainer that starts while the broker does not answer waits for it (a fake consumer stands in for the broker).

Found by the fault suite on a loaded machine (session 37, ``test_broker_paused_30s``): the broker was paused while a
slow trainer was still starting, its first look at the topics' metadata raised, and the trainer stopped, its worker
with it (exit 3). A wrong topic layout still stops it, with what to do.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from driftline.errors import ConfigError
from driftline.settings import load_settings
from streams.trainers import TrainerGroup


class AwayThenBack:
    """``list_topics``: a transport failure ``away`` times, then every topic with ``partitions`` partitions."""

    def __init__(self, away: int, partitions: dict[str, int]) -> None:
        self.away, self.partitions, self.calls = away, partitions, 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.calls += 1
        if self.away:
            self.away -= 1
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
        meta = SimpleNamespace(partitions=dict.fromkeys(range(self.partitions[topic])), error=None)
        return SimpleNamespace(topics={topic: meta})


def _group(consumer: AwayThenBack) -> TrainerGroup:
    group = TrainerGroup.__new__(TrainerGroup)  # no broker: only what the topic check reads
    group.settings = load_settings(environ={})
    group.consumer = consumer  # type: ignore[assignment]
    group.member = "test-1"
    return group


def _topics(n: int, changelog: int | None = None) -> dict[str, int]:
    s = load_settings(environ={})
    return {s.topic("training"): n, s.topic("control"): n, s.topic("changelog"): changelog or n}


def test_the_first_topic_check_waits_for_a_broker_that_does_not_answer() -> None:
    consumer = AwayThenBack(away=2, partitions=_topics(4))
    group = _group(consumer)
    with pytest.raises(KafkaException):  # what stopped the trainer: the check itself does not wait
        group.check_topics()
    group._first_check_topics(_NoWait())
    assert group.partitions == 4
    assert consumer.calls == 2 + 3  # the first failure above, one more, then the three topics


def test_a_wrong_layout_still_stops_the_trainer() -> None:
    group = _group(AwayThenBack(away=1, partitions=_topics(4, changelog=2)))
    with pytest.raises(ConfigError, match="must exist with the same partition count"):
        group._first_check_topics(_NoWait())


def test_a_trainer_stopping_while_it_waits_stops() -> None:
    stopping = _NoWait()
    stopping.set()
    with pytest.raises(KafkaException):
        _group(AwayThenBack(away=5, partitions=_topics(4)))._first_check_topics(stopping)


class _NoWait(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        return self.is_set()


def test_a_consumer_whose_restore_keeps_failing_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a broker restart the trainer's client could not read metadata for minutes while the broker answered
    everyone else (fault suite, session 38): its restore failed every 11 s and nothing was learned. Once restores
    have failed for the watchdog's bound on one consumer, that consumer is closed and a new one made."""
    import streams.trainers as trainers
    from connectors.batch_source import GroupWatchdog

    closed: list[Any] = []
    monkeypatch.setattr(trainers, "close_in_background", lambda consumer, topic: closed.append(consumer))
    clock = [1000.0]
    monkeypatch.setattr(trainers.time, "monotonic", lambda: clock[0])
    restarts: list[str] = []
    group = _group(AwayThenBack(away=100, partitions=_topics(4)))
    group.topics = (group.settings.topic("training"),)  # type: ignore[assignment]
    group.group = "g"
    group.watchdog = GroupWatchdog(group.topics, 20.0)
    group.metrics = SimpleNamespace(  # type: ignore[assignment]
        consumer_restarts=SimpleNamespace(
            labels=lambda group: SimpleNamespace(inc=lambda: restarts.append(group))
        ),
        owned_models=SimpleNamespace(set=lambda n: None),
    )
    group.trainers, group.states, group._dropped, group.owned = {}, {}, set(), {0, 1}
    group._restore_failing_since, group._restore_needed = None, True
    stuck_client = group.consumer

    assert not group._restore_stuck(stuck_client)  # type: ignore[arg-type]
    clock[0] += 19.0
    assert not group._restore_stuck(stuck_client), "replaced before the watchdog's bound"  # type: ignore[arg-type]
    clock[0] += 2.0
    assert group._restore_stuck(stuck_client)  # type: ignore[arg-type]
    assert closed == [stuck_client] and restarts == ["g"]
    assert group.consumer is None and group.owned == set() and not group._restore_needed
    clock[0] += 5.0  # a new consumer starts its own count
    assert not group._restore_stuck(object())  # type: ignore[arg-type]
