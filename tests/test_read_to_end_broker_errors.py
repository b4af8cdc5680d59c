"""A strict ``read_to_end`` (the trainer's audit read) turns a client error into :class:`IncompleteRead` (session 31).

Seen: the broker paused ~25 s (SIGSTOP, then SIGCONT); the trainer's transaction aborted, ``_abort`` read the audit
topic again while the broker's metadata was not back, ``get_watermark_offsets`` raised ``KafkaException
(_UNKNOWN_PARTITION)`` and the train worker exited ("the trainer stopped; the worker exits"). The trainer keeps an
:class:`IncompleteRead` and tries again at its next restore; any other exception killed it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

import connectors.consumer
from connectors.consumer import IncompleteRead, read_to_end
from driftline.settings import load_settings


class _Consumer:
    def __init__(self, failing: str) -> None:
        self.failing = failing

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self.failing == "list_topics":
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return SimpleNamespace(topics={topic: SimpleNamespace(error=None, partitions={0: None})})

    def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
        raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("failing", ["list_topics", "get_watermark_offsets"])
def test_a_strict_read_raises_incomplete_read_on_a_client_error(
    monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    monkeypatch.setattr(connectors.consumer, "Consumer", lambda conf: _Consumer(failing))
    settings = load_settings(environ={})
    with pytest.raises(IncompleteRead) as error:
        list(read_to_end(settings, "x.audit", "g", strict=True, timeout=0.1))
    assert "x.audit" in str(error.value)
