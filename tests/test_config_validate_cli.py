"""``driftline config validate FILE``: a file the worker would refuse at start-up is refused here, naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams.cli import main


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("drift:\n  error_detector: bogus\n", "drift.error_detector: unknown detector 'bogus'"),
        ("drift:\n  loss_detector_params: {window: 3}\n", "drift.loss_detector_params: page_hinkley has no"),
        (
            "model:\n  task: regression\ndrift:\n  error_detector: ddm\n",
            "drift.error_detector 'ddm' takes 0/1",
        ),
        ("model:\n  learner: {name: nosuch}\n", "model.learner: unknown learner 'nosuch'"),
        ("model:\n  learner: {name: logistic_regression, params: {bogus: 1}}\n", "model.learner: learner"),
        ("model:\n  challenger: {name: hoeffding_tree, params: {grace: 1}}\n", "model.challenger: learner"),
        ("model:\n  task: regression\n  learner: {name: logistic_regression}\n", "model.learner:"),
    ],
)
def test_a_file_the_worker_would_refuse_is_invalid_naming_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    proc = validate(tmp_path, text)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert field in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_good_file_is_valid(tmp_path: Path) -> None:
    text = "model:\n  learner: {name: hoeffding_tree}\n  challenger: {name: logistic_regression}\n"
    proc = validate(tmp_path, text + "drift:\n  error_detector: kswin\n")
    assert proc.returncode == 0 and "valid" in proc.stdout, (proc.stdout, proc.stderr)


@pytest.mark.parametrize("url", ["http://u:hunter2@127.0.0.1:6379/0", "127.0.0.1:6379", "reds://h/0"])
def test_a_redis_url_redis_cannot_open_is_refused_naming_the_field(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It was "valid", then every command that opened Redis died with a redis-py ValueError traceback (outside,
    # session 29). The URL itself is a secret: the message names its scheme only.
    path = tmp_path / "c.yaml"
    path.write_text(f"redis:\n  url: '{url}'\n")
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "redis.url: must start with redis://, rediss:// or unix://" in err
    assert "hunter2" not in err
