"""``driftline console`` on a port already taken says so and exits 1, instead of a traceback (nothing is started:
the check comes before the app)."""

from __future__ import annotations

import socket

import pytest

from streams.cli import main


def test_a_port_in_use_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import streams.console

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the app was built although the port is taken")

    monkeypatch.setattr(streams.console, "build_app", never)
    monkeypatch.setenv("DRIFTLINE_CONSOLE_TOKEN", "x" * 24)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["console", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "in use" in err and "Traceback" not in err
