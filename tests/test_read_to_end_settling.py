""":func:`connectors.consumer.read_to_end` on a topic created a moment ago: its offset lookups are answered "not
leader for partition" until the partitions' leaders are elected. The join's rebuild (``since_ms``) raised that as a
KafkaException in about one run in five of ``tests/test_join_repark_ttl.py`` (a broker test of its own, creating
topics and reading them at once, did not reproduce it in 30 runs, so the retry is tested here on its own)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

from connectors.consumer import _settling


def _failing(codes: list[int], answer: str = "ok"):  # type: ignore[no-untyped-def]
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= len(codes):
            raise KafkaException(KafkaError(codes[len(calls) - 1]))
        return answer

    return call, calls


def test_a_lookup_is_asked_again_while_the_partition_has_no_leader() -> None:
    call, calls = _failing([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    assert _settling(call, time.monotonic() + 10) == "ok"
    assert len(calls) == 3


def test_other_errors_and_a_passed_deadline_are_raised() -> None:
    call, calls = _failing([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaException):
        _settling(call, time.monotonic() + 10)
    assert len(calls) == 1
    call, calls = _failing([KafkaError.NOT_LEADER_FOR_PARTITION] * 1000)
    with pytest.raises(KafkaException):
        _settling(call, time.monotonic() + 1.0)
    assert 1 < len(calls) < 1000
