"""Start and stop ``driftline worker`` processes by pid (demo, bench, tests and the fault suite use this).

Only processes started here are ever signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from connectors.localproc import free_port, stop_with_parent_env


@dataclass
class WorkerProcess:
    """One ``driftline worker --role ROLE`` child process with its own metrics port and log file."""

    role: str
    env: Mapping[str, str | None]  # over this process's environment; None removes the variable
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    _terminating: bool = False  # SIGTERM sent: a second one would kill a worker mid-drain (see :meth:`stop`)

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._terminating = False
        cmd = [
            sys.executable,
            "-m",
            "streams.cli",
            *self.extra_args,
            "worker",
            "--role",
            self.role,
            "--metrics-port",
            str(self.metrics_port),
        ]
        self.proc = subprocess.Popen(
            cmd,
            env=self.child_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def child_env(self) -> dict[str, str]:
        """This process's environment with :attr:`env` over it (a None value removes the variable), and the variable
        that stops the worker with this process, however this one dies."""
        env = {**os.environ, **stop_with_parent_env()}
        for name, value in self.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics_text(self, timeout: float = 2.0) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return str(resp.read().decode())

    def wait_metrics(self, timeout: float = 60.0) -> bool:
        """Wait until the metrics endpoint answers (the worker finished starting up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                self.metrics_text(1.0)
                return True
            except OSError:
                time.sleep(0.3)
        return False

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)
            self._terminating |= sig == signal.SIGTERM

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            # Once only: Faust's worker drops its signal handlers while it shuts down, so a second SIGTERM (after
            # :meth:`signal` sent one to drain every worker at once) killed a draining worker by the signal's
            # default action (exit -15 in the demo's report, its last offsets maybe uncommitted).
            if not self._terminating:
                os.kill(self.pid, signal.SIGTERM)
                self._terminating = True
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup at all."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            assert self.proc is not None
            self.proc.wait(10)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
