"""Every form of secret in a URL is masked in ``config show`` and in log lines; signing keys under 32 bytes are
refused with an error that says how to make one."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from contextlib import redirect_stdout

import pytest

from driftline.errors import ConfigError
from driftline.settings import (
    MIN_SIGNING_KEY_BYTES,
    MaskSecrets,
    load_settings,
    mask_excepthook,
    mask_secrets,
    mask_url,
)
from streams.cli import main

PW = "Pw-9f3e1c"  # a password that must never be printed


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"redis://:{PW}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"redis://user:{PW}@127.0.0.1:6379/0", "redis://user:***@127.0.0.1:6379/0"),
        (f"redis://127.0.0.1:6379/0?password={PW}&db=1", "redis://127.0.0.1:6379/0?password=***&db=1"),
        (f"rediss://h:6380/0?ssl_ca_certs=/ca.pem&ssl_password={PW}", "rediss://h:6380/0?ssl_ca_certs=/ca.pem&ssl_password=***"),
        (f"sasl_ssl://alice:{PW}@b1:9093,b2:9093", "sasl_ssl://alice:***@b1:9093,b2:9093"),
        # a password holding / # ? or @ unescaped (base64 ones hold "/"): the match ended at the "/" (session 35)
        (f"sasl_ssl://alice:ab/{PW}@b1:9093", "sasl_ssl://alice:***@b1:9093"),
        (f"error (redis://:x#y?{PW}@h:6379/0) retried", "error (redis://:***@h:6379/0) retried"),
        (f"redis://:p@{PW}@h:6379/0", "redis://:***@h:6379/0"),
        (f"kafka error: sasl.password={PW} rejected", "kafka error: sasl.password=*** rejected"),
        (f'{{"sasl_password": "{PW}"}}', '{"sasl_password": "***"}'),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("a plain line about keyboards", "a plain line about keyboards"),
        # session 36: a password with a space was printed whole; a port before an "@" that is not the URL's
        # was masked, and a password is still masked when a later word holds an "@"
        (f"redis://:my {PW}@h:6379/0", "redis://:***@h:6379/0"),
        (f"sasl_ssl://alice:a b {PW}@b1:9093 failed", "sasl_ssl://alice:***@b1:9093 failed"),
        ("redis://host:6379/0,x@y", "redis://host:6379/0,x@y"),
        ("redis://h:6379/0 for bob@example.com", "redis://h:6379/0 for bob@example.com"),
        (f"redis://:{PW}@h1:1/0 and redis://:{PW}@h2:2/0", "redis://:***@h1:1/0 and redis://:***@h2:2/0"),
        # session 37: a password of digits, a path and a separator was taken for a port and shown. A port needs a
        # host before it, and an "@" followed by host:port ends a URL's userinfo (an e-mail address has no port).
        ("redis://:12345/Pw 9f3e@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://:6379/0,Pw9f3e@h", "redis://:***@h"),
        ("redis://default:12345/Pw 9f3e@redis.internal:6379/0", "redis://default:***@redis.internal:6379/0"),
        ("sasl_ssl://alice:42;Pw9f3e@b1:9093,b2:9093", "sasl_ssl://alice:***@b1:9093,b2:9093"),
        # review37: the host:port after the "@" ends a quote, a sentence or a clause (an error's repr of the URL),
        # or the host is an IPv6 literal: the password was shown (the port had to end at a space, ",", ";", ")"
        # or "]" or a path, and "[::1]" was not a host)
        ("invalid URL 'redis://default:2024;Pw9f3e@redis.internal:6379'", "invalid URL 'redis://default:***@redis.internal:6379'"),
        ('"redis://u:12 Pw9f3e@h:6379"', '"redis://u:***@h:6379"'),
        ("cannot reach redis://u:2024;Pw9f3e@h:6379. Retrying", "cannot reach redis://u:***@h:6379. Retrying"),
        ("redis://u:2024;Pw9f3e@h:6379: refused", "redis://u:***@h:6379: refused"),
        ("redis://default:2024;Pw9f3e@[::1]:6379/0", "redis://default:***@[::1]:6379/0"),
        ("sasl_ssl://u:1 Pw9f3e@[fe80::1%eth0]:9093", "sasl_ssl://u:***@[fe80::1%eth0]:9093"),
    ],
)  # fmt: skip
def test_mask_secrets_hides_every_form(text: str, shown: str) -> None:
    assert mask_secrets(text) == shown


def test_mask_url_hides_query_passwords_too() -> None:
    assert mask_url(f"redis://h:6379/0?password={PW}") == "redis://h:6379/0?password=***"


def _show(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    for var in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["config", "show", "--json"]) == 0
    return out.getvalue()


def test_config_show_masks_query_and_bootstrap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _show(
        {
            "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:6379/0?password={PW}",
            "DRIFTLINE_KAFKA_BOOTSTRAP": f"sasl_ssl://alice:{PW}@127.0.0.1:9093",
        },
        monkeypatch,
    )
    assert PW not in text
    shown = json.loads(text)
    assert shown["redis"]["url"] == "redis://127.0.0.1:6379/0?password=***"
    assert shown["kafka"]["bootstrap"] == "sasl_ssl://alice:***@127.0.0.1:9093"


def test_text_put_into_a_log_line_stays_on_it_and_its_escapes_are_shown() -> None:
    """Found from outside (session 46, adv46): the trainer logged ``input warning for m4: feature_type:<name>`` with
    the feature's name raw: ESC]0;...BEL set the title of the terminal reading the log, ESC[2J cleared it, and a
    newline began a line of its own (a forged log line)."""
    name = "evil\x1b]0;PWNED\x07\x1b[2J\n2026-12-07 21:53:32,982 ERROR forged"
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "input warning for %s: %s %s", None, None)
    record.args = ("m4", f"feature_type:{name}", {"feature": name})
    assert MaskSecrets().filter(record)
    message = record.getMessage()
    assert "\x1b" not in message and "\x07" not in message and "\n" not in message, message
    assert "feature_type:evil\\x1b]0;PWNED\\x07\\x1b[2J\\n2026-12-07" in message
    masked = logging.LogRecord("x", logging.ERROR, __file__, 1, "at %s\n%s", None, None)
    masked.args = (f"redis://u:{PW}@h:1/0", "x\ny")
    assert MaskSecrets().filter(masked)
    assert masked.getMessage() == "at redis://u:***@h:1/0\nx\\ny"  # the format's own newline is kept


def test_log_lines_are_masked_by_the_cli_filter() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "cannot reach %s (%s)", None, None)
    record.args = (f"redis://user:{PW}@h:6379/0", f"sasl.password={PW}")
    assert MaskSecrets().filter(record)
    assert PW not in record.getMessage() and "redis://user:***@h:6379/0" in record.getMessage()
    out = io.StringIO()  # main() attaches the filter to the root handlers
    with redirect_stdout(out):
        main(["config", "show", "--json"])
    assert any(isinstance(f, MaskSecrets) for h in logging.getLogger().handlers for f in h.filters)


@pytest.mark.parametrize(
    "name", ["DRIFTLINE_SIGNING_KEY", "DRIFTLINE_PREVIOUS_SIGNING_KEY", "DRIFTLINE_OPERATOR_KEY"]
)
def test_short_signing_keys_are_refused_with_how_to_make_one(name: str) -> None:
    env = {"DRIFTLINE_SIGNING_KEY": "k" * MIN_SIGNING_KEY_BYTES, name: "k" * (MIN_SIGNING_KEY_BYTES - 1)}
    with pytest.raises(ConfigError, match=r"at least 32; make one with `openssl rand -hex 32`") as error:
        load_settings(environ=env)
    assert f"put it in {name}_FILE" in str(error.value)
    one_char = {"DRIFTLINE_SIGNING_KEY": "x"}
    with pytest.raises(ConfigError, match="the key is 1 bytes"):
        load_settings(environ=one_char)


def test_a_32_byte_key_and_no_key_are_accepted() -> None:
    assert load_settings(environ={"DRIFTLINE_SIGNING_KEY": "k" * 32}).model.signing_key.get() == "k" * 32
    assert not load_settings(
        environ={}
    ).model.signing_key  # no key: refused later, by the commands that need one


def test_cli_refuses_a_short_key_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", "short")
    assert main(["config", "show"]) == 2
    assert "openssl rand -hex 32" in capsys.readouterr().err


def test_a_worker_keeps_masking_after_faust_sets_up_logging(capsys: pytest.CaptureFixture[str]) -> None:
    """Faust (``mode``) clears the root handlers when a worker starts; the configuration the worker hands it puts
    the masking filter back, on stderr, at the level ``-v`` asked for."""
    from mode.utils.logging import setup_logging

    from streams.commands.worker import logging_config

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        level = setup_logging(loglevel=logging.INFO, logging_config=logging_config(logging.INFO))
        assert level == logging.INFO
        logging.getLogger("streams.join").info("cannot reach redis://user:%s@h:6379/0", PW)
        logging.getLogger("streams.join").debug("not at INFO")
        err = capsys.readouterr().err
        assert "redis://user:***@h:6379/0" in err and PW not in err
        assert "INFO streams.join: cannot reach" in err and "not at INFO" not in err
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


@pytest.mark.parametrize(("flags", "level"), [([], "WARNING"), (["-v"], "INFO"), (["-vv"], "DEBUG")])
def test_worker_log_level_follows_the_verbose_flag(flags: list[str], level: str) -> None:
    from streams.cli import build_parser
    from streams.commands.worker import worker_log_level

    args = build_parser().parse_args([*flags, "worker", "--role", "join"])
    assert logging.getLevelName(worker_log_level(args)) == level
    args = build_parser().parse_args([*flags, "worker", "--loglevel", "error"])
    assert worker_log_level(args) == logging.ERROR


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:Zx9/{PW}@127.0.0.1:6379/0",  # urllib read "Zx9" as the port and printed it in a traceback
        f"redis://:123/{PW}@127.0.0.1:6379/0",  # a number: read as the port, the host became the path
        f"redis://:Zx9#{PW}@127.0.0.1:6379/0",
        f"rediss://:Zx9?{PW}@127.0.0.1:6380/0",
        "redis://127.0.0.1:notaport/0",
    ],
)
def test_a_redis_url_whose_host_and_port_cannot_be_read_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(
        ConfigError, match=r"redis.url: its host:port cannot be read .* percent-encode"
    ) as error:
        load_settings(environ={"DRIFTLINE_REDIS_URL": url})
    assert PW not in str(error.value) and "Zx9" not in str(error.value) and "notaport" not in str(error.value)


def test_an_escaped_password_is_accepted() -> None:
    url = "redis://:Zx9%2Fq%23r@127.0.0.1:6379/0"
    assert load_settings(environ={"DRIFTLINE_REDIS_URL": url}).redis.url.get() == url


@pytest.mark.parametrize("password", [PW, f"two {PW}"], ids=["plain", "with-a-space"])
def test_a_cli_error_naming_a_bootstrap_with_a_password_is_masked(
    password: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", f"sasl_ssl://alice:{password}@127.0.0.1:1")
    assert main(["tail", "models", "-n", "1"]) == 1  # nothing listens on port 1
    err = capsys.readouterr().err
    assert "cannot reach Kafka at sasl_ssl://alice:***@127.0.0.1:1" in err and PW not in err, err


def test_masking_a_cli_error_keeps_the_name_of_the_field_it_is_about(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DRIFTLINE_KAFKA_SASL_PASSWORD", PW)
    monkeypatch.setenv("DRIFTLINE__KAFKA__SASL_PASSWORD", PW + "-other")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert "error: kafka.sasl_password: set twice in the environment with different values" in err
    assert PW not in err


def test_a_secret_value_after_its_field_name_in_a_cli_error_is_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streams.cli import _masked_error

    for var in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(var)
    # a quoted value in an error about a secret setting
    assert _masked_error(f"kafka.sasl_password: expected a string, got '{PW}'") == (
        "kafka.sasl_password: expected a string, got '***'"
    )
    assert _masked_error("routing.default: got 'plain'") == "routing.default: got 'plain'"  # not a secret
    # the value of a secret variable, wherever the message shows it, quoted or not
    monkeypatch.setenv("DRIFTLINE__MODEL__SIGNING_KEY", PW)
    assert _masked_error(f"model.signing_key: {PW} is too short") == "model.signing_key: *** is too short"
    assert _masked_error(f"model.signing_key: set twice ({PW})") == "model.signing_key: set twice (***)"
    # the field's name and the message about it stay
    assert _masked_error("model.signing_key: set twice in the environment with different values") == (
        "model.signing_key: set twice in the environment with different values"
    )


def test_tracebacks_are_masked_in_log_records_and_when_uncaught(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise ConnectionError(f"Error connecting to redis://:{PW}@h:6379/0")
    except ConnectionError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "batch failed", None, sys.exc_info())
        exc_info = sys.exc_info()
    assert MaskSecrets().filter(record)
    formatted = logging.Formatter().format(record)
    assert "ConnectionError: Error connecting to redis://:***@h:6379/0" in formatted and PW not in formatted
    mask_excepthook(*exc_info)
    err = capsys.readouterr().err
    assert "redis://:***@h:6379/0" in err and PW not in err


@pytest.mark.parametrize(
    "hostile",
    [
        "a://b:" * 50_000,
        "a." * 150_000 + " password",
        "x://" + "u:" * 100_000 + "@h",
        "a://h:1/ x@" * 27_000
        + "h:1",  # every "@" tried as the end of a userinfo, a host:port looked for after it
        "redis://:1/ x@" + "h" * 300_000 + ":1",
    ],
)
def test_a_hostile_line_is_masked_in_linear_time_not_hung(hostile: str) -> None:
    """Every log line passes through mask_secrets. Its URL pattern scanned from each "x://" or word start to the end
    of the line: 300 KB of "a://b:" took 86 s to mask (a worker logging such a line stalls). The scheme and the
    password are bounded now. Not a timing assertion: a liveness guard 30x over the slowest input's ~1 s here."""
    import signal

    def hung(signum: int, frame: object) -> None:
        raise TimeoutError("mask_secrets did not finish within 30 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        masked = mask_secrets(hostile)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert len(masked) <= len(hostile)
    # What it is for still works beside such a line.
    assert "hunter2" not in mask_secrets(hostile[:1000] + " redis://:hunter2@h:6379/0")
