"""`driftline --help` and `--version` answer without loading the learning stack (River, scikit-learn, matplotlib):
every CLI call used to pay about 1.3 s importing River through two commands' modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("river", "sklearn", "scipy", "matplotlib")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["replay", "--help"], ["explain", "--help"]])
def test_help_and_version_do_not_import_the_learning_stack(argv: list[str]) -> None:
    code = (
        "import sys, streams.cli\n"
        f"try:\n    streams.cli.main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = out.stdout.rpartition("LOADED=")[2].strip()
    assert loaded == "", f"driftline {' '.join(argv)} imported {loaded}"
