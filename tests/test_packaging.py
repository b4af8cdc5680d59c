"""The distribution installs without setuptools warnings and carries its data files (schemas, Kafka config)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _copy_tree(dest: Path) -> Path:
    """A copy of the tracked files, so a build leaves nothing in the working tree."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _warnings(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Warning" in line or "absent from the `packages`" in line]


def test_editable_install_as_make_setup_does_it_prints_no_warning(tmp_path: Path) -> None:
    src = _copy_tree(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    target = tmp_path / "venv" / "bin" / "python"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(target), "install", "--no-deps", "-e", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _warnings(done.stdout + done.stderr) == []
    # The data files are found through the editable install.
    probe = (
        "import importlib.resources as r; print(r.files('connectors').joinpath('kafka', 'pom.xml').is_file())"
    )
    out = subprocess.run([str(target), "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_wheel_builds_cleanly_with_every_data_file(tmp_path: Path) -> None:
    src = _copy_tree(tmp_path / "src")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert _warnings(log) == []

    (wheel,) = (tmp_path / "dist").glob("driftline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("connectors/kafka/pom.xml", "connectors/kafka/server.properties",
                 "connectors/kafka/log4j2.properties", "schemas/Prediction.avsc",
                 "schemas/history/Prediction.avsc", "streams/console/static/index.html",
                 "streams/console/static/app.js", "streams/console/static/style.css"):  # fmt: skip
        assert data in names
    assert {n for n in names if n.endswith(".avsc")} == {
        str(p.relative_to(src)) for p in src.glob("schemas/**/*.avsc")
    }
    # Only the project's packages: no tests, no examples.
    assert {n.split("/")[0] for n in names if not n.startswith("driftline-0")} == {
        "driftline", "streams", "learners", "schemas", "connectors", "bench",
    }  # fmt: skip
