"""The distribution builds without setuptools warnings and carries its data files (schemas, Kafka config)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_builds_cleanly_with_every_data_file(tmp_path: Path) -> None:
    # Build from a copy of the tracked files, so the build leaves nothing in the working tree.
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    src = tmp_path / "src"
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "absent from the `packages` configuration" not in log
    assert "Warning" not in "\n".join(line for line in log.splitlines() if "setuptools" in line)

    (wheel,) = (tmp_path / "dist").glob("driftline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("connectors/kafka/pom.xml", "connectors/kafka/server.properties",
                 "connectors/kafka/log4j2.properties", "schemas/Prediction.avsc",
                 "schemas/history/Prediction.avsc"):  # fmt: skip
        assert data in names
    assert {n for n in names if n.endswith(".avsc")} == {
        str(p.relative_to(src)) for p in src.glob("schemas/**/*.avsc")
    }
    # Only the project's packages: no tests, no examples.
    assert {n.split("/")[0] for n in names if not n.startswith("driftline-0")} == {
        "driftline", "streams", "learners", "schemas", "connectors", "bench",
    }  # fmt: skip
