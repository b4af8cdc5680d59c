"""Every command that reads Kafka names the address it tried when nothing answers there, with exit 1 and one
line, not a ``cimpl.KafkaException`` traceback after dozens of librdkafka retry lines (``models list``, ``models
diff``, ``audit verify``, ``explain`` and ``cleanup`` did that; ``tail``, ``topics``, ``produce`` already named it).
No broker needed: nothing listens on the address.
"""

from __future__ import annotations

import json

import pytest

from connectors.localproc import free_port
from streams.cli import main


@pytest.mark.parametrize(
    "command",
    [
        ["models", "list"],
        ["models", "show"],
        ["models", "diff", "1", "2"],
        ["audit", "verify"],
        ["explain", "e1", "--timeout", "2"],
        ["cleanup", "--prefix", "nobody.", "--dry-run"],
        # The control commands said "cannot list topics on ADDR: KafkaError{...}" after 30 s (outside, session 29).
        ["models", "pause", "--timeout", "2"],
        ["models", "set", "guard.alpha=0.01", "--timeout", "2"],
        ["models", "rollback", "--timeout", "2"],
    ],
)
def test_unreachable_broker_is_named_not_a_traceback(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", "cli-unreachable-test-signing-key-of-32-bytes")
    address = f"127.0.0.1:{free_port()}"
    assert main(["--bootstrap", address, "--topic-prefix", "nobody.", *command]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Kafka at {address}" in err
    assert "Connect to" not in err.split("error:")[0]  # no librdkafka retry spam before the message


@pytest.mark.parametrize(
    "command",
    [["models", "show"], ["models", "show", "3"], ["models", "settings"], ["models", "diff", "1", "2"]],
)
def test_every_models_subcommand_that_reads_one_model_takes_model_after_it(command: list[str]) -> None:
    """The README writes ``driftline models list|show [VERSION]|promote VERSION|rollback [--model M]``: ``show``,
    ``settings`` and ``diff`` refused ``--model M`` after the subcommand (``show --model m`` read ``m`` as VERSION)."""
    from streams.cli import build_parser

    assert build_parser().parse_args([*command, "--model", "m1"]).model == "m1"
    assert build_parser().parse_args(["--model", "m2", *command]).model == "m2"


@pytest.mark.parametrize("n", ["-3", "x"])
def test_tail_refuses_a_count_that_is_not_a_whole_number(n: str, capsys: pytest.CaptureFixture[str]) -> None:
    # (``-n -3`` printed nothing and exited 0; found from outside, session 27.) Refused before any broker is asked.
    with pytest.raises(SystemExit) as exit_:
        main(["--bootstrap", "127.0.0.1:1", "tail", "predictions", "-n", n])
    assert exit_.value.code == 2
    assert "must be a whole number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["models", "show", "5_0"],
        ["models", "show", "\uff15"],
        ["models", "show", "\u00b2"],
        ["models", "show", "0"],
        ["models", "diff", "1", "5_0"],
        ["tail", "predictions", "-n", "1_000"],
    ],
)
def test_numbers_are_written_in_ascii_digits(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Found from outside (session 46, adv46): argparse's ``type=int`` read ``5_0`` as 50 and a fullwidth 5 as 5, so
    ``models show 5_0`` showed v50 (and ``²`` failed as 'invalid int value'). Refused before any broker is asked."""
    with pytest.raises(SystemExit) as exit_:
        main(["--bootstrap", "127.0.0.1:1", *argv])
    assert exit_.value.code == 2
    assert "must be a whole number >= " in capsys.readouterr().err


def test_models_settings_names_an_unreachable_redis(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # It said "no live state from the trainer ... (is a train worker running?)": the trainer may well be running,
    # it is Redis that nobody can reach (outside, session 29). Needs no broker: the settings live in Redis only.
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path))
    port = free_port()
    url = f"redis://user:s3cret-pw@127.0.0.1:{port}/0"
    assert main(["--redis-url", url, "--topic-prefix", "nobody.", "models", "settings"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Redis at 127.0.0.1:{port}/0" in err
    assert "s3cret-pw" not in err
    assert "Traceback" not in err


def test_status_counts_what_pause_discard_dropped() -> None:
    # `status` printed "learning PAUSED: 0 label(s) discarded" under `pause --discard` while the trainer had
    # discarded 100 (it printed the held count, always 0 then): outside, session 29.
    from streams.commands.status import render

    live = {"n_learned": 601, "served_version": 3, "paused": True, "updated_at": 0, "owner": "t1",
            "held_examples": 0, "pause_discard": True, "discarded": 100, "held_candidate": False}  # fmt: skip
    model = {"model": "m", "served_version": 3, "latest_release": None, "trainer": live, "releases": 3,
             "joins": None, "unverified_releases": []}  # fmt: skip
    status = {"topic_prefix": "p.", "default_model": "m", "models": [model], "workers": [],
              "drift_last_hour": {"total": 0, "by_signal": {}},
              "stack": {n: {"address": "127.0.0.1:1", "up": True} for n in ("kafka", "redis")}}  # fmt: skip
    text = render(status)
    assert "labels arriving now are discarded (pause --discard); 100 discarded so far" in text
    live.update(pause_discard=False, held_examples=7)
    assert "7 label(s) held for resume" in render(status)


def test_status_marks_a_group_that_lags_with_no_member() -> None:
    # A worker group with records waiting and nobody reading them looked like any other line (outside, session 29).
    from streams.commands.status import render

    groups = [
        {"group": "driftline-p.default-score", "state": "empty", "members": [], "lag": {"p.features": 300}},
        {"group": "driftline-p.default-join", "state": "stable", "members": ["w@h"], "lag": {"p.labels": 5}},
        {"group": "driftline-p.trainers", "state": "empty", "members": [], "lag": {"p.training": 0}},
    ]
    status = {"topic_prefix": "p.", "default_model": "m", "models": [], "workers": groups,
              "drift_last_hour": {"total": 0, "by_signal": {}},
              "stack": {n: {"address": "127.0.0.1:1", "up": True} for n in ("kafka", "redis")}}  # fmt: skip
    lines = {line.split()[0]: line for line in render(status).splitlines() if line.startswith("  driftline-")}
    assert lines["driftline-p.default-score"].endswith("<- no member reads it")
    assert "<-" not in lines["driftline-p.default-join"] and "<-" not in lines["driftline-p.trainers"]


def test_console_on_a_taken_port_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # It printed its URL and token, then an aiohttp OSError traceback (outside, session 29).
    import socket

    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--bootstrap", "127.0.0.1:1", "console", "--port", str(port)]) == 2
    out = capsys.readouterr()
    assert f"cannot listen on 127.0.0.1:{port}" in out.err
    assert "Traceback" not in out.err and "http://" not in out.out


def test_a_command_refused_before_sending_still_answers_in_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # `models set guard.alpha=7 --json` printed nothing on stdout (outside, session 29): a script reading the JSON
    # had no object to read. Refused before any broker is asked, so the address needs nothing listening.
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", "cli-unreachable-test-signing-key-of-32-bytes")
    assert main(["--bootstrap", "127.0.0.1:1", "models", "set", "guard.alpha=7", "--json"]) == 2
    out = capsys.readouterr()
    answer = json.loads(out.out)
    assert answer["sent"] is None and answer["waited"] is False
    assert answer["answer"]["outcome"] == "refused" and "guard.alpha" in answer["answer"]["message"]
    assert "guard.alpha" in out.err
