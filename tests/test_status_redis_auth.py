"""``driftline status`` with a Redis that answers but refuses the configured credentials (sec35's F6): it said
"up" and exited 0, while every worker using those credentials failed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from connectors.localproc import free_port, redis_ping
from driftline.settings import load_settings
from streams.commands.status import render
from streams.status import _stack


@pytest.fixture
def guarded_redis() -> Iterator[int]:
    port = free_port()
    server = shutil.which("redis-server")
    assert server, "redis-server is installed by make test-deps"
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", "right-password-0123",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while redis_ping("127.0.0.1", port) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("password, up", [("wrong-password", False), ("right-password-0123", True)])
def test_status_says_a_redis_refusing_the_credentials_is_not_up(
    guarded_redis: int, password: str, up: bool
) -> None:
    settings = load_settings(
        overrides={
            "kafka": {"bootstrap": f"127.0.0.1:{free_port()}"},
            "redis": {"url": f"redis://:{password}@127.0.0.1:{guarded_redis}/0"},
        }
    )
    stack = _stack(settings)
    assert stack["redis"]["up"] is up
    line = next(
        line for line in render({"topic_prefix": "p.", "stack": stack}).splitlines() if "redis" in line
    )
    if up:
        assert line.rstrip().endswith("up"), line
    else:
        assert stack["redis"]["state"] == "refused" and not stack["up"]
        assert "REFUSED" in line and "password" in line and "wrong-password" not in line, line
