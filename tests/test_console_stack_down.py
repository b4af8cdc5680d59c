"""A console whose Kafka and Redis do not answer says so on every page of ``/api/``, naming the address and what to
do, as the command line does (``driftline models list``: "cannot reach Kafka at ...: is the stack up?"). Until
session 37 the registry pages (``/api/models``, ``/api/lineage``, ...) answered a bare 500 "Server got itself in
trouble" after 10 s, and the page said "cannot load: Internal Server Error". No stack needed: nothing listens on
the addresses given."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from streams.console.launch import start_console


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def down_console(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("console-down")
    kafka, redis = _closed_port(), _closed_port()
    env = {
        "DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{redis}/0",
        "DRIFTLINE_TOPIC_PREFIX": "down37.",
        "DRIFTLINE_STATE_DIR": str(tmp),
    }
    console = start_console(env, tmp / "console.log", port=0)
    try:
        yield console, kafka, redis
    finally:
        console.stop()


@pytest.mark.parametrize("page", ["models", "models/current", "models/3", "lineage", "quality"])
def test_a_registry_page_with_kafka_down_names_the_address_and_what_to_do(
    down_console: Any, page: str
) -> None:
    console, kafka, _ = down_console
    status, body = _get(console.url + "api/" + page)
    assert status == 503, (status, body)
    assert f"cannot reach Kafka at 127.0.0.1:{kafka}" in body["error"], body
    assert "driftline stack up" in body["error"], body


def test_status_with_the_stack_down_still_answers_with_both_down(down_console: Any) -> None:
    console, kafka, _ = down_console
    status, body = _get(console.url + "api/status")
    assert status == 200
    assert body["stack"]["kafka"]["up"] is False and body["stack"]["redis"]["up"] is False
    assert body["stack"]["kafka"]["address"] == f"127.0.0.1:{kafka}"


def test_the_dead_letters_page_says_kafka_cannot_be_read_rather_than_showing_none(down_console: Any) -> None:
    console, kafka, _ = down_console
    deadline = time.monotonic() + 30
    body: Any = None
    while time.monotonic() < deadline:
        status, body = _get(console.url + "api/deadletters")
        assert status == 200
        if body.get("error"):
            break
        time.sleep(1)
    assert body["total"] == 0
    assert body.get("error") and f"Kafka at 127.0.0.1:{kafka}" in body["error"], body


def test_a_command_s_answer_with_redis_down_says_redis_cannot_be_read(down_console: Any) -> None:
    """Not ``{"answered": false}``, which a page polling for the trainer's answer took for "not yet" for ever."""
    console, _, redis = down_console
    status, body = _get(console.url + "api/actions/0123456789abcdef")
    assert status == 503, (status, body)
    assert f"cannot reach Redis at 127.0.0.1:{redis}/0" in body["error"], body
    assert "driftline stack up" in body["error"], body
