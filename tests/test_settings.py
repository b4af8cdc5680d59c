"""The settings loader's behaviour, pinned: precedence, nested variables, secrets from files, masking, errors that
name the field. (The contract a replacement loader would have to keep.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from driftline.errors import ConfigError
from driftline.settings import Secret, load_settings, to_dict


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "driftline.yaml"
    path.write_text(text)
    return path


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path, "kafka:\n  bootstrap: file:1\n  partitions: 7\nguard:\n  alpha: 0.2\n")
    env = {"DRIFTLINE_KAFKA_BOOTSTRAP": "env:2", "DRIFTLINE__GUARD__ALPHA": "0.1"}
    s = load_settings(cfg, environ=env, overrides={"kafka.bootstrap": "flag:3"})
    assert s.kafka.bootstrap == "flag:3"  # flag beats environment and file
    assert s.guard.alpha == 0.1  # environment beats file
    assert s.kafka.partitions == 7  # file beats default
    assert load_settings(environ={}).kafka.partitions != 7  # ... which is something else
    assert load_settings(cfg, environ={}, overrides={"kafka.bootstrap": None}).kafka.bootstrap == "file:1"


def test_config_file_from_the_environment_and_nested_variables_are_typed(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path, "model:\n  release_every: 40\n")
    s = load_settings(
        environ={
            "DRIFTLINE_CONFIG": str(cfg),
            "DRIFTLINE__SERVING__BATCH_SIZE": "64",
            "DRIFTLINE__DRIFT__FEATURE_DRIFT": "false",
        }
    )
    assert s.model.release_every == 40
    assert s.serving.batch_size == 64 and isinstance(s.serving.batch_size, int)
    assert s.drift.feature_drift is False


def test_a_secret_comes_from_a_file_and_never_prints(tmp_path: Path) -> None:
    key = "k" * 64
    (tmp_path / "key").write_text(key + "\n")
    s = load_settings(environ={"DRIFTLINE_SIGNING_KEY_FILE": str(tmp_path / "key")})
    assert isinstance(s.model.signing_key, Secret) and s.model.signing_key.get() == key
    assert key not in repr(s) and key not in str(to_dict(s))
    # The variable itself wins over its _FILE form.
    other = "o" * 64
    both = {"DRIFTLINE_SIGNING_KEY": other, "DRIFTLINE_SIGNING_KEY_FILE": str(tmp_path / "key")}
    assert load_settings(environ=both).model.signing_key.get() == other


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ({"DRIFTLINE__KAFKA__PARTITIONS": "many"}, "kafka.partitions"),
        ({"DRIFTLINE__GUARD__ALPHA": "nan"}, "guard.alpha"),
        ({"DRIFTLINE__KAFKA__NOPE": "1"}, "kafka"),
        ({"DRIFTLINE__DRIFT__FEATURE_DRIFT": "perhaps"}, "drift.feature_drift"),
        ({"DRIFTLINE_SIGNING_KEY_FILE": "/nonexistent/key"}, "DRIFTLINE_SIGNING_KEY_FILE"),
    ],
)
def test_bad_values_are_errors_naming_the_field(source: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ=source)
    assert named in str(error.value)


def test_an_unknown_key_in_the_file_is_named_with_the_known_ones(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path, "guard:\n  alpah: 0.1\n")
    with pytest.raises(ConfigError) as error:
        load_settings(cfg, environ={})
    assert "alpah" in str(error.value) and "alpha" in str(error.value)


def test_a_file_that_is_not_a_mapping_or_not_yaml_is_refused_with_its_path(tmp_path: Path) -> None:
    for text in ("- a\n- b\n", "kafka: [unclosed\n"):
        cfg = _yaml(tmp_path, text)
        with pytest.raises(ConfigError) as error:
            load_settings(cfg, environ={})
        assert str(cfg) in str(error.value)


def test_score_and_join_workers_leave_their_group_after_the_session_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Faust's own 60 s default stalled a killed scorer's partitions for a minute (found from outside, session 28).
    from streams.app import build_app

    monkeypatch.delenv("BROKER_SESSION_TIMEOUT", raising=False)  # Faust's own variable would win
    monkeypatch.delenv("BROKER_HEARTBEAT_INTERVAL", raising=False)
    overrides = {"state_dir": str(tmp_path), "model.signing_key": "k" * 32, "kafka.bootstrap": "127.0.0.1:1"}
    assert load_settings(environ={}, overrides=overrides).kafka.session_timeout_s == 10.0
    s = load_settings(environ={"DRIFTLINE__KAFKA__SESSION_TIMEOUT_S": "7"}, overrides=overrides)
    worker = build_app(s, ("score", "join"))
    try:
        assert worker.app.conf.broker_session_timeout == 7.0
        assert worker.app.conf.broker_heartbeat_interval <= 7.0 / 3
    finally:
        worker.close()
    for name, value in (("session_timeout_s", "5"), ("trainer_session_timeout_s", "3600")):
        with pytest.raises(ConfigError, match=f"kafka.{name}: must be 6 to 1800 seconds"):
            load_settings(environ={f"DRIFTLINE__KAFKA__{name.upper()}": value}, overrides=overrides)


@pytest.mark.parametrize("null", ["null", "~", ""])
def test_a_null_string_setting_is_refused_naming_the_field(tmp_path: Path, null: str) -> None:
    # str(None) made the text "None": `artifact_store: null` had the trainer write artifacts to ./None.
    cfg = _yaml(tmp_path, f"model:\n  artifact_store: {null}\n")
    with pytest.raises(ConfigError, match=r"model\.artifact_store: expected a string, got null; write ''"):
        load_settings(cfg, environ={})
    assert (
        load_settings(_yaml(tmp_path, "model:\n  artifact_store: ''\n"), environ={}).model.artifact_store
        == ""
    )


def test_one_setting_given_by_both_its_variables_with_different_values_is_an_error(tmp_path: Path) -> None:
    """Session 34: DRIFTLINE_KAFKA_BOOTSTRAP and DRIFTLINE__KAFKA__BOOTSTRAP set to different addresses silently
    took the nested one. The error names both variables, never the values (they may be secrets)."""
    env = {"DRIFTLINE_KAFKA_BOOTSTRAP": "env:2", "DRIFTLINE__KAFKA__BOOTSTRAP": "env:4"}
    with pytest.raises(ConfigError) as error:
        load_settings(environ=env)
    text = str(error.value)
    assert (
        "kafka.bootstrap" in text
        and "DRIFTLINE_KAFKA_BOOTSTRAP" in text
        and "DRIFTLINE__KAFKA__BOOTSTRAP" in text
    )
    assert "env:2" not in text and "env:4" not in text
    key, other = "k" * 64, "o" * 64
    (tmp_path / "key").write_text(key + "\n")
    secret = {"DRIFTLINE_SIGNING_KEY_FILE": str(tmp_path / "key"), "DRIFTLINE__MODEL__SIGNING_KEY": other}
    with pytest.raises(ConfigError) as error:
        load_settings(environ=secret)
    assert "DRIFTLINE_SIGNING_KEY_FILE" in str(error.value) and key not in str(error.value)
    assert other not in str(error.value)
    # The same value both ways is no conflict.
    same = {"DRIFTLINE_KAFKA_BOOTSTRAP": "h:1", "DRIFTLINE__KAFKA__BOOTSTRAP": "h:1"}
    assert load_settings(environ=same).kafka.bootstrap == "h:1"


def test_two_nested_spellings_of_one_setting_with_different_values_are_an_error() -> None:
    """Nested names are case-insensitive: DRIFTLINE__KAFKA__BOOTSTRAP and DRIFTLINE__kafka__bootstrap are one
    setting, and with different values the one later in the environment won silently (the contract variable and
    its nested form were checked, two nested forms were not)."""
    env = {"DRIFTLINE__KAFKA__BOOTSTRAP": "env:2", "DRIFTLINE__kafka__bootstrap": "env:4"}
    with pytest.raises(ConfigError, match="DRIFTLINE__KAFKA__BOOTSTRAP and DRIFTLINE__kafka__bootstrap"):
        load_settings(environ=env)
    same = {"DRIFTLINE__KAFKA__BOOTSTRAP": "h:1", "DRIFTLINE__kafka__bootstrap": "h:1"}
    assert load_settings(environ=same).kafka.bootstrap == "h:1"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "kafka:\n  bootstrap: a:1\nguard:\n  alpha: 0.1\nkafka:\n  partitions: 3\n",
            "'kafka' is given twice",
        ),
        ("guard:\n  alpha: 0.1\n  alpha: 0.2\n", "'alpha' is given twice"),
        ("guard: {alpha: 0.1, alpha: 0.2}\n", "'alpha' is given twice"),
    ],
)
def test_a_key_written_twice_in_the_file_is_an_error_naming_it(tmp_path: Path, text: str, named: str) -> None:
    """Session 34: PyYAML kept the last of two `kafka:` sections silently, dropping every setting of the first."""
    with pytest.raises(ConfigError) as error:
        load_settings(_yaml(tmp_path, text), environ={})
    assert named in str(error.value)
    assert load_settings(_yaml(tmp_path, "guard: &g\n  alpha: 0.2\n"), environ={}).guard.alpha == 0.2


@pytest.mark.parametrize(
    ("file_text", "env", "flags", "source"),
    [
        ("model:\n  release_every: abc\n", {}, {}, "FILE"),
        ("guard: 5\n", {}, {}, "FILE"),
        ("", {"DRIFTLINE__GUARD__ALPHA": "abc"}, {}, "DRIFTLINE__GUARD__ALPHA"),
        ("guard:\n  alpha: abc\n", {"DRIFTLINE__GUARD__ALPHA": "x"}, {}, "DRIFTLINE__GUARD__ALPHA"),
        ("", {"DRIFTLINE_METRICS_PORT": "70000"}, {}, "DRIFTLINE_METRICS_PORT"),
        ("", {"DRIFTLINE__NOSUCH__X": "1"}, {}, "DRIFTLINE__NOSUCH__X"),
        (
            "kafka:\n  bootstrap: a:1\n",
            {"DRIFTLINE_KAFKA_BOOTSTRAP": "b:2"},
            {"kafka.bootstrap": " "},
            "the command line",
        ),
    ],
)
def test_an_error_about_a_value_names_where_it_was_set(
    tmp_path: Path, file_text: str, env: dict[str, str], flags: dict[str, str], source: str
) -> None:
    """Session 39: a worker started with DRIFTLINE_CONFIG and a dozen variables said only "guard.alpha: expected a
    number, got 'abc'": the file, the variable or a flag? The winning source is named; the field still leads."""
    cfg = _yaml(tmp_path, file_text)
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"DRIFTLINE_CONFIG": str(cfg), **env}, overrides=flags)
    text = str(error.value)
    assert text.endswith(f"(from {str(cfg) if source == 'FILE' else source})"), text
    assert not text.startswith("("), text
    with pytest.raises(ConfigError) as plain:  # `config validate FILE` names its one source itself
        load_settings(environ={"DRIFTLINE_CONFIG": str(cfg), **env}, overrides=flags, name_source=False)
    assert str(plain.value) == text.rsplit(" (from ", 1)[0]


def test_a_misspelt_variable_is_named_on_stderr_not_ignored_silently(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Session 39: DRIFTLINE_KAFKA_BOOSTRAP=host:9093 was ignored without a word and every command went to the
    default 127.0.0.1:9092. The CLI warns, naming the variable and the one it resembles; known ones are quiet."""
    from streams.cli import main

    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("DRIFTLINE_TEST_WHATEVER", "1")  # the tests' own
    monkeypatch.setenv("DRIFTLINE_NO_JIT", "1")
    assert main(["config", "show", "--json"]) == 0
    err = capsys.readouterr().err
    assert (
        "DRIFTLINE_KAFKA_BOOSTRAP is not a driftline variable" in err and "DRIFTLINE_KAFKA_BOOTSTRAP?" in err
    )
    assert "DRIFTLINE_TEST_WHATEVER" not in err and "DRIFTLINE_NO_JIT" not in err


# -- hostile settings (session 42, helper hostile42): each gave a traceback, a hang or a silent wrong value


def _laughs(levels: int) -> tuple[str, str]:
    """YAML aliases that build a list of 9**levels strings from a few lines ("billion laughs")."""
    text = '      a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"      a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return text, f"*a{levels - 1}"


def test_a_wrong_value_built_by_yaml_aliases_is_shown_bounded(tmp_path: Path) -> None:
    # 9**4 strings: its plain repr is ~50 KB (at 9**9 it never ended and ate memory). Since session 45 a file
    # past 100,000 values once expanded is refused as it is read (9**6 here: below).
    big, _ = _laughs(6)
    with pytest.raises(ConfigError, match=r"more than 100,000 values once its aliases"):
        load_settings(
            _yaml(tmp_path, f"model:\n  learner:\n    name: logistic_regression\n    params:\n{big}"),
            environ={},
        )
    anchors, alias = _laughs(4)
    cfg = _yaml(tmp_path, f"model:\n  learner:\n    name: logistic_regression\n    params:\n{anchors}kafka:\n"
                          f"  client_id: {alias}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"kafka\.client_id: expected a string") as err:
        load_settings(cfg, environ={})
    assert len(str(err.value)) < 1000
    cfg = _yaml(tmp_path, f"model:\n  learner:\n    name: logistic_regression\n    params:\n{anchors}routing:\n"
                          f"  models: {alias}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"routing\.models: .* cannot name a model") as err:
        load_settings(cfg, environ={})
    # shown by structure, not as a prefix of its whole text (str() of 9**9 strings never ended)
    assert len(str(err.value)) < 1000 and "[...]" in str(err.value)


def test_yaml_nested_too_deeply_is_an_error_naming_the_file(tmp_path: Path) -> None:
    cfg = _yaml(tmp_path, "model: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_settings(cfg, environ={})


def test_a_yaml_boolean_or_float_for_a_text_setting_is_refused_not_turned_into_text(tmp_path: Path) -> None:
    # `name: no` named the model "False"; `topic_prefix: 1.10` would have been "1.1"
    with pytest.raises(ConfigError, match=r"model\.name: expected a string, got the bool False: quote"):
        load_settings(_yaml(tmp_path, "model:\n  name: no\n"), environ={})
    with pytest.raises(ConfigError, match=r"kafka\.topic_prefix: expected a string, got the float"):
        load_settings(_yaml(tmp_path, "kafka:\n  topic_prefix: 1.10\n"), environ={})
    assert load_settings(_yaml(tmp_path, "model:\n  name: 'no'\n"), environ={}).model.name == "no"


@pytest.mark.parametrize(
    "var",
    [
        "DRIFTLINE_KAFKA_BOOTSTRAP",
        "DRIFTLINE_REDIS_URL",
        "DRIFTLINE_SIGNING_KEY",
        "DRIFTLINE__KAFKA__CLIENT_ID",
    ],
)
def test_a_variable_holding_bytes_that_are_not_utf8_is_an_error_naming_it(var: str) -> None:
    # os.environ reads b"\xff" as "\udcff": it failed later in confluent-kafka (SystemError), Redis (idna) or the
    # HMAC (UnicodeEncodeError), each with a traceback
    value = os.fsdecode(b"\xff\xfe" + b"k" * 40)
    with pytest.raises(ConfigError, match=rf"not UTF-8 text.*\(from {var}\)"):
        load_settings(environ={var: value})


def test_a_config_or_secret_file_that_never_ends_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="larger than 1,048,576 bytes"):
        load_settings("/dev/zero", environ={})
    with pytest.raises(ConfigError, match="DRIFTLINE_SIGNING_KEY_FILE: /dev/zero: larger than"):
        load_settings(environ={"DRIFTLINE_SIGNING_KEY_FILE": "/dev/zero"})
    bad = tmp_path / "key"
    bad.write_bytes(b"\xff" * 40)
    with pytest.raises(ConfigError, match=r"DRIFTLINE_SIGNING_KEY_FILE: .* is not UTF-8 text"):
        load_settings(environ={"DRIFTLINE_SIGNING_KEY_FILE": str(bad)})
