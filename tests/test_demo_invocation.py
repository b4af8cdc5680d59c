"""The command the demo prints for its audit trail runs from a shell (session 39: a newcomer's `make demo` ran
`.venv/bin/driftline`, and the printed `driftline ... audit verify` was "command not found")."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from streams.demo.runner import cli_invocation


def test_without_driftline_on_path_the_printed_command_names_this_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a shell where `driftline` is not found
    cmd = cli_invocation()
    assert cmd != "driftline"
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    shown = subprocess.run(
        [*shlex.split(cmd), "--version"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert shown.returncode == 0 and "driftline" in shown.stdout + shown.stderr, shown.stderr[-500:]


def test_with_this_install_on_path_it_is_plain_driftline(monkeypatch: pytest.MonkeyPatch) -> None:
    here = Path(sys.executable).parent
    if not (here / "driftline").exists():
        pytest.fail(
            f"no driftline script next to {sys.executable}: the package is not installed in this venv"
        )
    monkeypatch.setenv("PATH", f"{here}{os.pathsep}/usr/bin:/bin")
    assert cli_invocation() == "driftline"
