"""`bench` and `demo` stop on SIGTERM as on Ctrl-C, so their clean-up runs (session 34: `timeout 60 driftline
bench` died at once and left its score worker running, orphaned, and its topics on the broker). A subprocess stands
in for each command, its work replaced by one that SIGTERMs itself; no broker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import bench.suite, streams.demo.runner

    def work(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
        finally:
            open(sys.argv[1], "w").write("cleaned up")
        return {}

    bench.suite.run_bench = work
    streams.demo.runner.DemoRun = work
    from streams.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize("command", [["bench", "--quick"], ["demo", "--no-live"]], ids=" ".join)
def test_sigterm_runs_the_clean_up(command: list[str], tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env["DRIFTLINE_STATE_DIR"] = str(tmp_path / "state")
    report = ["--report", str(tmp_path / "report")] if command[0] == "demo" else []
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(marker), *command, *report],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert marker.exists() and marker.read_text() == "cleaned up", proc.stderr[-2000:]
    assert proc.returncode == 130 and "interrupted" in proc.stderr, (proc.returncode, proc.stderr[-2000:])
