"""``driftline config validate FILE``: a file the worker would refuse at start-up is refused here, naming the field."""

from __future__ import annotations

import json
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


NO_ROOM = "model:\n  max_inline_bytes: {limit}\n  artifact_store: '{store}'\n"


@pytest.mark.parametrize("limit", [0, 1000])
def test_an_inline_limit_no_artifact_fits_without_a_store_is_refused_naming_the_fix(
    tmp_path: Path, limit: int
) -> None:
    # It was "valid", and the trainer then withheld every release, v1 included: no model was ever served
    # (fixes34, item 1). The default learner's untrained artifact is ~3 KB.
    proc = validate(tmp_path, NO_ROOM.format(limit=limit, store=""))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert (
        f"model.max_inline_bytes: {limit} bytes cannot carry even the untrained model.learner's"
        in proc.stderr
    )
    assert "set model.artifact_store" in proc.stderr and "or raise model.max_inline_bytes" in proc.stderr
    assert "Traceback" not in proc.stderr
    # With a store the limit only decides what goes by reference; with room the file is valid.
    store = tmp_path / "artifacts"
    assert validate(tmp_path, NO_ROOM.format(limit=limit, store=store)).returncode == 0
    assert validate(tmp_path, NO_ROOM.format(limit=100_000, store="")).returncode == 0


def test_a_challenger_no_inline_limit_carries_is_refused_saying_what_is_lost(tmp_path: Path) -> None:
    # The learner's releases fit (logistic regression, ~1.3 KB untrained), the challenger's do not (an untrained
    # forest, ~5 KB): the error said "every release would be withheld, v1 included", untrue (review34); only its
    # promotions are.
    text = (
        "model:\n  learner: {name: logistic_regression}\n  challenger: {name: adaptive_random_forest}\n"
        "  max_inline_bytes: 3000\n  artifact_store: ''\n"
    )
    proc = validate(tmp_path, text)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "cannot carry even the untrained model.challenger's artifact" in proc.stderr, proc.stderr
    assert "so every challenger promotion would be withheld: set model.artifact_store" in proc.stderr
    assert "v1 included" not in proc.stderr


def test_the_train_worker_refuses_to_start_with_an_inline_limit_no_artifact_fits(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(NO_ROOM.format(limit=0, store=""))
    env = {
        "PATH": "/usr/bin:/bin",
        "DRIFTLINE_CONFIG": str(path),
        "DRIFTLINE_SIGNING_KEY": "worker-start-test-signing-key-32-bytes!!",
        # Refused before any connection: no broker or Redis is needed (none answers here).
        "DRIFTLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "DRIFTLINE_REDIS_URL": "redis://127.0.0.1:1/0",
        "DRIFTLINE_STATE_DIR": str(tmp_path / "state"),
    }
    for role in ("train", "all"):
        proc = subprocess.run(
            [sys.executable, "-m", "streams.cli", "worker", "--role", role],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert proc.returncode == 2, (role, proc.stdout, proc.stderr)
        assert "model.max_inline_bytes: 0 bytes cannot carry" in proc.stderr, proc.stderr
        assert "set model.artifact_store" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "valid", "field"),
    [
        ("drift:\n  adwin_delta: 0.002\n", True, None),
        ("drift:\n  adwin_delta: 5\n", False, "drift.adwin_delta"),
        ("nosuch: 1\n", False, "nosuch"),
    ],
)
def test_validate_json_names_the_field(
    text: str, valid: bool, field: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config validate --json` (audit34: only `config show` had one): one object a script reads, same exit codes."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["config", "validate", str(path), "--json"]) == (0 if valid else 2)
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is valid and out["field"] == field and out["file"] == str(path)
    assert (out["error"] is None) is valid and (valid or out["error"].startswith(f"{field}: "))


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("settings.yaml", "kafka:\n  partitions: 3\nkafka:\n  partitions: 4\n", "given twice"),
        ("settings.yaml", "kafka: [\n", "not valid YAML"),
        ("nosuch.yaml", None, "cannot read config file"),
    ],
)
def test_validate_json_names_no_field_for_an_error_of_the_file_itself(
    name: str,
    text: str | None,
    says: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A relative file name looks like a dotted field: `config validate settings.yaml --json` on a file with a key
    written twice said "field": "settings.yaml"."""
    monkeypatch.chdir(tmp_path)
    if text is not None:
        (tmp_path / name).write_text(text)
    assert main(["config", "validate", name, "--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is False and out["field"] is None and out["file"] == name
    assert out["error"].startswith(f"{name}: ") and says in out["error"]


@pytest.mark.parametrize(
    "text", ["model:\n  learner: [oops\nguard:\n  alpha: 0.1\n", "model:\n  task: x\nmodel:\n  task: y\n"]
)
def test_a_yaml_error_points_into_the_file_not_into_a_string(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PyYAML names a str stream "<unicode string>": the error's line and column pointed into no file a user has."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f'in "{path}", line ' in err and "unicode string" not in err, err
    assert "^" in err  # the offending line is still shown under the mark


def cli(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("model:\n  learner: {name: logistic_regression, params: {bogus: 1}}\n", "model.learner: learner"),
        ("model:\n  challenger: {name: hoeffding_tree, params: {grace: 1}}\n", "model.challenger: learner"),
        ("drift:\n  error_detector: bogus\n", "drift.error_detector: unknown detector 'bogus'"),
    ],
)
def test_config_show_refuses_a_file_config_validate_refuses(tmp_path: Path, text: str, field: str) -> None:
    """Outside, session 42: `config show` printed a file with a learner parameter `config validate` refuses (and a
    worker would not start on) and exited 0. Both refuse it now, with the same message and exit code 2."""
    path = tmp_path / "settings.yaml"
    path.write_text(text)
    shown = cli(["config", "show"], {"DRIFTLINE_CONFIG": str(path)}, tmp_path)
    validated = cli(["config", "validate", str(path)], {}, tmp_path)
    for proc in (shown, validated):
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert field in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert shown.stdout == ""
    # the same message: validate's after the file's name, show's after the command's
    assert validated.stderr.split(": invalid: ", 1)[1] == shown.stderr.split("error: ", 1)[1]


@pytest.mark.parametrize(
    ("var", "setting"),
    [
        ("DRIFTLINE_KAFKA_BOOTSTRAP", "kafka.bootstrap"),
        ("DRIFTLINE_REDIS_URL", "redis.url"),
        ("DRIFTLINE_TOPIC_PREFIX", "kafka.topic_prefix"),
        ("DRIFTLINE_METRICS_PORT", "metrics.port"),
        ("DRIFTLINE_MODEL", "model.name"),
        ("DRIFTLINE_STATE_DIR", "state_dir"),
    ],
)
def test_an_empty_variable_is_an_error_naming_it_not_the_default(
    tmp_path: Path, var: str, setting: str
) -> None:
    """Outside, session 42: `DRIFTLINE_KAFKA_BOOTSTRAP=$KAFKA` with KAFKA unset counted as unset, and every command
    went to the default 127.0.0.1:9092 (on a shared machine, someone else's stack) without a word."""
    proc = cli(["config", "show"], {var: ""}, tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"{setting}: {var} is set but empty: unset it for the default" in proc.stderr, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_an_empty_secret_variable_still_counts_as_unset_and_an_empty_state_dir_is_refused(
    tmp_path: Path,
) -> None:
    """A secret's empty variable is unset (its _FILE is read: `KEY=${KEY:-}` next to `KEY_FILE` in a compose file);
    an empty state_dir from the nested form was the working directory of whatever command ran."""
    key = tmp_path / "key"
    key.write_text("k" * 40)
    proc = cli(
        ["config", "show", "--json"],
        {"DRIFTLINE_SIGNING_KEY": "", "DRIFTLINE_SIGNING_KEY_FILE": str(key)},
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["model"]["signing_key"] not in ("", None)
    proc = cli(["config", "show"], {"DRIFTLINE__STATE_DIR": ""}, tmp_path)
    assert proc.returncode == 2 and "state_dir: must name a directory" in proc.stderr, proc.stderr
