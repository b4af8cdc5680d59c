"""Run ``driftline console`` as a child process next to other work (the demo), and stop it by pid.

>>> from streams.console import console_url
>>> console_url("127.0.0.1", 8765)
'http://127.0.0.1:8765/'
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from connectors.localproc import free_port, stop_with_parent_env
from driftline.errors import StackError
from streams.console.server import console_url

__all__ = ["ConsoleProcess", "start_console"]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


@dataclass
class ConsoleProcess:
    """A running console: open ``url``; ``token`` authorises actions. ``stop()`` ends it (SIGTERM, then KILL)."""

    url: str
    token: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def start_console(
    env: Mapping[str, str],
    log_path: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    timeout: float = 60.0,
) -> ConsoleProcess:
    """Start ``driftline console`` with ``env`` (the deployment's DRIFTLINE_* variables) and wait until it answers.

    ``port`` is taken if free, else (or when 0) any free port. The token is ``DRIFTLINE_CONSOLE_TOKEN`` from
    ``env`` or a new one. Raises :class:`StackError` with the console's log if it does not come up.
    """
    if port == 0 or not _port_free(host, port):
        port = free_port(host)
    token = env.get("DRIFTLINE_CONSOLE_TOKEN") or secrets.token_urlsafe(24)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "console", "--host", host, "--port", str(port)],
        env={**os.environ, **env, "DRIFTLINE_CONSOLE_TOKEN": token, **stop_with_parent_env()},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    console = ConsoleProcess(console_url(host, port), token, proc, log_path, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and console.alive():
        try:
            # A static file: answers as soon as the server listens, without asking Kafka anything.
            with urllib.request.urlopen(console.url + "static/style.css", timeout=2):
                return console
        except urllib.error.HTTPError:
            return console  # bound beyond loopback: it answers, with 401 until given the token
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    console.stop()
    tail = log_path.read_text(errors="replace")[-2000:]
    raise StackError(f"the console did not start on {console.url}; its log says:\n{tail}")
