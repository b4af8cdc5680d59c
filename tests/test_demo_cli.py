"""``driftline demo`` end to end: a subprocess against the real broker, three worker processes, a report."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.pipeline_helpers import KAFKA_BOOTSTRAP

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 1500


def demo_env(prefix: str, tmp_path: Path) -> dict[str, str]:
    """The caller's environment with a private state directory and Redis key prefix, and no config file."""
    env = {
        **os.environ,
        "DRIFTLINE_STATE_DIR": str(tmp_path / "state"),
        "DRIFTLINE__REDIS__KEY_PREFIX": prefix.rstrip("."),
    }
    env.pop("DRIFTLINE_CONFIG", None)
    return env


def demo_cmd(prefix: str, redis_url: str, *args: str) -> list[str]:
    """``driftline demo ARGS`` on the run's topic prefix, Redis and the local broker."""
    return [sys.executable, "-m", "streams.cli", "--topic-prefix", prefix, "--redis-url", redis_url,
            "--bootstrap", KAFKA_BOOTSTRAP, "demo", *args]  # fmt: skip


def test_demo_runs_to_completion_and_writes_a_valid_report(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    env = demo_env(prefix, tmp_path)
    cmd = demo_cmd(prefix, redis_url, "--events", str(EVENTS), "--rate", "300", "--label-delay", "100",
                   "--no-live", "--report", str(report), "--json")  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])

    # Every event was scored exactly once, every label joined and learned.
    assert summary["outcome"] == "completed"
    assert summary["events"] == summary["predictions"] == EVENTS
    assert summary["labels"] == summary["training_examples"] == summary["learned"] == EVENTS
    assert summary["versions_released"] >= 2 and summary["latest_version"] >= summary["served_version"] >= 1
    assert 0.5 < summary["accuracy"] <= 1.0
    # The guard tax: the served learner's kind with no guard, on the same events, next to the served model.
    assert summary["plain_learner"] == "auto" and 0.5 < summary["plain_accuracy"] <= 1.0
    assert summary["guard_tax"] == pytest.approx(
        summary["plain_accuracy"] - summary["served_accuracy_same_events"], abs=2e-4
    )
    assert "guard tax" in done.stderr
    # The stack was up before the demo (the test stack): it says it leaves it up (session 41, first41).
    assert "the local stack was running before this demo and stays up" in done.stderr
    assert summary["latency_p50_ms"] <= summary["latency_p99_ms"]
    assert summary["dead_letters"] == 0
    # the served model is at least the label delay (100 events) behind the stream, and the demo says by how much
    assert summary["served_behind_p50_events"] >= 90, summary
    assert summary["served_behind_p90_events"] >= summary["served_behind_p50_events"]
    assert summary["topic_prefix"] == prefix
    # The workers were stopped (SIGTERM, clean exit), not left behind.
    assert summary["worker_exit"] == {"score": 0, "join": 0, "train": 0}
    # A progress line per few seconds in --no-live mode.
    assert re.search(r"produced \d+/1500 scored \d+", done.stderr)

    # The run's signing key is kept (owner-only) and the last lines say how to check its audit trail: it verifies.
    # (`driftline` when PATH finds this install, else its script's path: streams.demo.runner.cli_invocation)
    verify = re.search(r"audit trail: DRIFTLINE_SIGNING_KEY=\$\(cat (\S+)\) DRIFTLINE_STATE_DIR=(\S+) "
                       r"(?:\S*driftline|\S+ -m driftline) --topic-prefix (\S+) audit verify", done.stderr)  # fmt: skip
    assert verify is not None, done.stderr[-2000:]
    assert os.stat(verify[1]).st_mode & 0o777 == 0o600 and verify[3] == prefix
    checked = subprocess.run(
        [sys.executable, "-m", "streams.cli", "--topic-prefix", prefix, "--bootstrap", KAFKA_BOOTSTRAP,
         "audit", "verify", "--json"],
        env={**env, "DRIFTLINE_SIGNING_KEY": Path(verify[1]).read_text().strip(), "DRIFTLINE_STATE_DIR": verify[2]},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"] is True, (
        checked.stdout + checked.stderr
    )

    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    # Every release has a readable "what changed" row, from the signed audit trail (README, Governance).
    changes = {row[0]: row for row in summary["release_changes"]}
    assert len(changes) == summary["versions_released"] and "What changed in each release" in page
    for version, _parent, reason, learned, changed, guard in changes.values():
        if reason in ("incremental", "challenger"):
            assert learned.startswith("examples ") and guard.startswith("accuracy "), changes[version]
            assert changed.endswith(")") and "not compared" not in changed, changes[version]
    for name in ("accuracy", "throughput_latency", "label_delay", "pipeline"):
        with Image.open(report / f"{name}.png") as im:
            assert im.format == "PNG"
            assert 800 <= im.width <= 2000 and 300 <= im.height <= 1200
            im.verify()


def test_demo_over_several_models_routes_learns_and_releases_each(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    """``--models 3``: the stream is spread by `tenant` over three models; each is scored, learned and released."""
    report = tmp_path / "report"
    env = demo_env(prefix, tmp_path)
    events = 900
    cmd = demo_cmd(prefix, redis_url, "--events", str(events), "--rate", "300", "--label-delay", "50",
                   "--models", "3", "--no-live", "--no-console", "--report", str(report), "--json")  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["outcome"] == "completed"
    assert summary["events"] == summary["predictions"] == events
    assert summary["learned"] == events and summary["dead_letters"] == 0
    rows = {row["model"]: row for row in summary["models"]}
    # The fallback model (routing.default, v1 untrained) gets no event: every one carried its tenant.
    fallback = rows.pop("default", None)
    assert fallback is None or fallback["n_learned"] == 0, fallback
    assert sorted(rows) == ["tenant-00", "tenant-01", "tenant-02"]
    # Round robin: each model learned about a third of the labels and has a release of its own.
    for row in rows.values():
        assert row["version"] >= 1 and 0 < row["n_learned"] <= events // 3, row
    assert json.loads((report / "models.json").read_text()) == summary["models"]
    for name in rows:
        assert name in done.stderr  # the per-model lines at the end


def test_ctrl_c_stops_producing_and_loses_nothing(prefix: str, redis_url: str, tmp_path: Path) -> None:
    env = demo_env(prefix, tmp_path)
    cmd = demo_cmd(prefix, redis_url, "--events", "20000", "--rate", "200", "--no-live", "--report",
                   str(tmp_path / "r"), "--json")  # fmt: skip
    # Started with SIGINT ignored, as a shell without job control starts a background command: CI ran the whole
    # suite so, and the demo, with no KeyboardInterrupt handler, ran to completion through the interrupt.
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert proc.stderr is not None
        # Interrupt while producing: after the second progress line (a few seconds into the stream).
        seen = 0
        for line in proc.stderr:
            seen += "producing: produced" in line
            if seen == 2:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["outcome"] == "interrupted"
    assert 0 < summary["events"] < 20000
    # Every event sent before the interrupt was scored, and its label (owed later) still sent, joined and learned.
    assert summary["predictions"] == summary["events"] == summary["labels"]
    assert summary["training_examples"] == summary["learned"] == summary["events"]
    assert all(code is not None for code in summary["worker_exit"].values())
    assert (tmp_path / "r" / "report.html").is_file()
