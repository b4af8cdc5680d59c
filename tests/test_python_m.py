"""``python -m driftline`` runs the CLI (outside, session 33: it failed with "No module named driftline.__main__";
only the console script worked). A subprocess, no broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_m_driftline_runs_the_cli() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "driftline", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("driftline ")
    bad = subprocess.run(
        [sys.executable, "-m", "driftline", "config", "validate", "/nonexistent.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert bad.returncode == 2 and "/nonexistent.yaml" in bad.stderr
