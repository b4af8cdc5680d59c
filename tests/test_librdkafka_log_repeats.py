"""librdkafka logs every failed connection attempt, dozens a second: ``driftline console`` with the broker down
wrote 400 identical "Connect to ... failed" lines in 20 s (outside, session 29), and a worker during a broker outage
does the same. The same line is kept once per 30 s, with how many like it were dropped. In-process."""

from __future__ import annotations

import logging

import pytest

from connectors import kafka_client
from connectors.kafka_client import LIBRDKAFKA_LOG


def test_a_repeated_librdkafka_line_is_logged_once_per_window(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(kafka_client.time, "monotonic", lambda: clock[0])
    line = "FAIL [driftline#consumer-1] [thrd:127.0.0.1:1/bootstrap]: Connect to ipv4#127.0.0.1:1 failed: refused"
    with caplog.at_level(logging.WARNING, logger=LIBRDKAFKA_LOG.name):
        for i in range(50):
            LIBRDKAFKA_LOG.error("%s (after %dms in state CONNECT)", line, i)
        LIBRDKAFKA_LOG.error("FAIL [driftline#consumer-1] another message")
        clock[0] += 31
        LIBRDKAFKA_LOG.error("%s (after 3ms in state CONNECT)", line)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert messages[0].startswith(line) and messages[1] == "FAIL [driftline#consumer-1] another message"
    assert messages[2].startswith(line) and messages[2].endswith("(49 more like it in the last 30 s)")
