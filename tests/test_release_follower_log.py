"""The release follower's consumer logs through driftline's rate-limited librdkafka logger (helper chaos32: with the
broker down, each score worker's follower wrote every refused connection to stderr itself, ~20 lines a second,
1,100 lines per scorer in one run, where the README promises one line per 30 s with a count)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException

from connectors.localproc import free_port
from driftline.settings import load_settings
from streams.releases import _consumer


def test_follower_consumer_does_not_write_librdkafka_lines_to_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(None, overrides={"kafka.bootstrap": f"127.0.0.1:{free_port()}"})
    consumer = _consumer(settings, "driftline-follower-test")
    try:
        with pytest.raises(KafkaException):  # nothing answers
            consumer.list_topics(timeout=2)
        consumer.poll(0.5)  # serves the log callback
    finally:
        consumer.close()
    err = capfd.readouterr().err
    raw = [line for line in err.splitlines() if line.startswith("%")]
    assert not raw, raw[:3]
