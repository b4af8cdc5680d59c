"""``start_console`` (what the demo uses) against the real stack: an empty deployment reads as empty, not as an
error, and the child process ends when stopped."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.console.launch import start_console
from tests.pipeline_helpers import KAFKA_BOOTSTRAP

pytestmark = pytest.mark.kafka


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def test_a_console_for_an_empty_deployment_starts_answers_and_stops(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    env = {
        "DRIFTLINE_KAFKA_BOOTSTRAP": KAFKA_BOOTSTRAP,
        "DRIFTLINE_TOPIC_PREFIX": prefix,
        "DRIFTLINE_REDIS_URL": redis_url,
        "DRIFTLINE_STATE_DIR": str(tmp_path),
    }
    console = start_console(env, tmp_path / "console.log", port=0)
    try:
        assert console.url.startswith("http://127.0.0.1:") and len(console.token) >= 16
        overview = _get(console.url + "api/overview")
        assert overview["status"]["topic_prefix"] == prefix
        assert overview["status"]["stack"]["kafka"]["up"] is True
        assert overview["served_version"] is None and overview["workers"] == []
        assert _get(console.url + "api/models") == []
        assert _get(console.url + "api/lineage")["releases"] == []
        assert _get(console.url + "api/deadletters")["total"] == 0
        log = (tmp_path / "console.log").read_text()
        assert console.url in log
    finally:
        console.stop()
    assert not console.alive()
