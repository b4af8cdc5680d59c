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


def test_a_second_sigterm_does_not_stop_the_clean_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second SIGTERM while bench cleaned up stopped it half way: its workers were stopped but its topics stayed
    on the broker (review34b). The clean-up now ignores interrupts until done; the handler is back after."""
    import signal
    from types import SimpleNamespace

    import bench.env
    from bench.env import BenchEnv
    from driftline.settings import load_settings
    from streams.cli import stop_on_sigterm

    deleted: list[list[str]] = []

    class Admin:
        def __init__(self, conf: object) -> None:
            pass

        def list_topics(self, timeout: float) -> SimpleNamespace:
            return SimpleNamespace(topics={f"{run.prefix}features": None, "other.features": None})

        def delete_topics(self, topics: list[str], operation_timeout: float) -> dict[str, object]:
            deleted.append(topics)
            return {}

        def list_consumer_groups(self, request_timeout: float) -> object:
            raise RuntimeError("no groups here")

    class Worker:
        def stop(self, timeout: float) -> None:
            os.kill(os.getpid(), signal.SIGTERM)  # the second SIGTERM, while the workers stop

    monkeypatch.setattr(bench.env, "AdminClient", Admin)
    monkeypatch.setattr(
        bench.env, "redis_client", lambda settings: SimpleNamespace(scan_iter=lambda **kw: [])
    )
    previous = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_sigterm()
        run = BenchEnv(load_settings(environ={}), workdir=tmp_path)
        run.workers.append(Worker())  # type: ignore[arg-type]
        try:
            run.close()
        except KeyboardInterrupt:
            pytest.fail("the second SIGTERM stopped the clean-up half way")
        assert deleted == [[f"{run.prefix}features"]]
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN  # Ctrl-C/SIGTERM stop it again after
    finally:
        signal.signal(signal.SIGTERM, previous)
