"""``driftline status`` with a Redis that answers but refuses the configured credentials (sec35's F6): it said
"up" and exited 0, while every worker using those credentials failed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from connectors.localproc import free_port, redis_ping
from driftline.settings import load_settings
from streams.commands.status import render
from streams.status import _stack


@contextmanager
def _guarded_redis(host: str) -> Iterator[str]:
    """A Redis that requires the password ``right-password-0123``, on ``host`` (its address is yielded)."""
    port = free_port()
    server = shutil.which("redis-server")
    assert server, "redis-server is installed by make test-deps"
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", host, "--requirepass", "right-password-0123",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while redis_ping(host, port) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"{host}:{port}"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def guarded_redis() -> Iterator[int]:
    with _guarded_redis("127.0.0.1") as address:
        yield int(address.rpartition(":")[2])


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


def test_a_redis_refusing_another_way_is_not_told_to_check_a_password(guarded_redis: int) -> None:
    # review35: a db index out of range (a URL with the right password, or none) said "REFUSED: refused this client
    # (check the password in the URL)".
    settings = load_settings(
        overrides={
            "kafka": {"bootstrap": f"127.0.0.1:{free_port()}"},
            "redis": {"url": f"redis://:right-password-0123@127.0.0.1:{guarded_redis}/99"},
        }
    )
    stack = _stack(settings)
    assert stack["redis"]["up"] is False and stack["redis"]["state"] == "error", stack["redis"]
    line = render_line(stack)
    assert "ERROR: DB index is out of range (check the redis URL)" in line and "password" not in line, line


@pytest.fixture
def remote_guarded_redis() -> Iterator[str]:
    """A Redis with a password on an address the local stack does not manage (127.0.0.2: `status` asks it, as it
    asks a remote server)."""
    with _guarded_redis("127.0.0.2") as address:
        yield address


@pytest.mark.parametrize("password, state", [("wrong-password", "refused"), ("right-password-0123", "up")])
def test_a_remote_redis_refusing_the_credentials_is_refused_not_down(
    remote_guarded_redis: str, password: str, state: str
) -> None:
    # review35: on the remote path (servers the local stack does not manage) a refusal said DOWN.
    settings = load_settings(
        overrides={
            "kafka": {"bootstrap": f"127.0.0.2:{free_port()}"},
            "redis": {"url": f"redis://:{password}@{remote_guarded_redis}/0"},
        }
    )
    stack = _stack(settings)
    assert stack["redis"]["state"] == state and stack["redis"]["up"] is (state == "up"), stack["redis"]
    line = render_line(stack)
    assert (
        ("REFUSED" in line and "password" in line) if state == "refused" else line.rstrip().endswith("up")
    ), line
    assert "wrong-password" not in line


def test_the_console_says_the_redis_state_as_status_does(
    guarded_redis: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import streams.console.overview as overview_mod
    from streams.console import sources

    settings = load_settings(
        overrides={
            "kafka": {"bootstrap": f"127.0.0.1:{free_port()}"},
            "redis": {"url": f"redis://:wrong-password@127.0.0.1:{guarded_redis}/0"},
        }
    )
    stack = _stack(settings)
    monkeypatch.setattr(sources, "status", lambda s: {"stack": stack, "workers": [], "models": []})
    said = overview_mod.Overview(settings)._compute()["stack_state"]
    assert said["redis"].startswith("REFUSED: ") and said["redis"] in render_line(stack), (
        said,
        render_line(stack),
    )
    assert said["kafka"] == "DOWN"
    app = (Path(overview_mod.__file__).parent / "static" / "app.js").read_text()
    assert "o.stack_state.redis" in app and "o.stack_state.kafka" in app


def render_line(stack: dict[str, Any]) -> str:
    return next(
        line for line in render({"topic_prefix": "p.", "stack": stack}).splitlines() if "redis" in line
    )
