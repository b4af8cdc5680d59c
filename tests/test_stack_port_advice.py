"""A port of the local stack taken by something else: the error says what to do for every command that starts the
stack, not only ``stack up``. Session 41 (first41, D3): `driftline demo` with its broker's port held by a process
that was not Kafka said "choose another with --kafka-port", a flag the demo does not have."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from connectors.localproc import free_port
from connectors.stack import StackConfig, _redis_up
from connectors.stack_kafka import kafka_needs_start
from driftline.errors import StackError


def _config(tmp_path: Path, kafka_port: int, redis_port: int) -> StackConfig:
    return StackConfig(
        state_dir=tmp_path / "stack",
        kafka_port=kafka_port,
        controller_port=free_port(),
        redis_port=redis_port,
        cache_dir=tmp_path / "cache",
    )


@pytest.mark.parametrize("listening", [True, False], ids=["a-silent-server", "bound-only"])
def test_a_taken_port_names_the_flag_and_the_variable(tmp_path: Path, listening: bool) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        if listening:
            held.listen(1)  # accepts connections and answers nothing: neither Kafka nor Redis
        port = held.getsockname()[1]
        with pytest.raises(StackError) as kafka:
            kafka_needs_start(_config(tmp_path, port, free_port()))
        assert "--kafka-port" in str(kafka.value) and "DRIFTLINE_KAFKA_BOOTSTRAP" in str(kafka.value)
        with pytest.raises(StackError) as redis:
            _redis_up(_config(tmp_path, free_port(), port), 5.0)
        assert "--redis-port" in str(redis.value) and "DRIFTLINE_REDIS_URL" in str(redis.value)
