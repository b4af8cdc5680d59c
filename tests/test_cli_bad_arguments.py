"""Wrong arguments are refused by the command line with a clear error and exit 2, never a traceback or a wrong
answer (session 34, an operator's audit from outside): `stack up --kafka-port 99999` ended in an OverflowError
traceback, `doctor --timeout -1` reported Kafka and Redis as failing, `audit show -n -3` printed every entry but the
first three, `audit show --kind bogus` said "no audit entries" and exited 0, and `models list --model M` for a model
with no release said "no releases on driftline.models" and exited 0 while other models had releases.
In-process: the parser, and `models list` with its broker reads replaced; no broker."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

import streams.commands.models as models_cmd
from streams.cli import build_parser, main
from streams.releases import CheckedReleases


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("action", ["up", "down", "status"])
@pytest.mark.parametrize("flag", ["--kafka-port", "--controller-port", "--redis-port"])
@pytest.mark.parametrize("port", ["99999", "0", "-1", "abc"])
def test_stack_ports_out_of_range_are_refused(
    action: str, flag: str, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["stack", action, flag, port], capsys)
    assert f"argument {flag}: expected a TCP port (1-65535)" in err and port in err


@pytest.mark.parametrize(
    "argv",
    [["doctor"], ["topics", "list"], ["topics", "create"], ["topics", "describe"], ["stack", "up"]],
    ids=" ".join,
)
@pytest.mark.parametrize("seconds", ["-1", "0", "nan", "inf", "soon"])
def test_timeouts_must_be_positive_seconds(
    argv: list[str], seconds: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused([*argv, "--timeout", seconds], capsys)
    assert "argument --timeout" in err and seconds in err


def test_a_good_port_and_timeout_still_parse() -> None:
    args = build_parser().parse_args(["stack", "up", "--kafka-port", "19092", "--timeout", "7.5"])
    assert (args.kafka_port, args.timeout) == (19092, 7.5)
    assert build_parser().parse_args(["doctor"]).timeout == 3.0


@pytest.mark.parametrize("n", ["-3", "x"])
def test_audit_show_counts_are_whole_numbers(n: str, capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["audit", "show", "-n", n], capsys)
    assert "argument -n: must be a whole number >= 0" in err


def test_audit_show_names_the_kinds_it_knows(capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["audit", "show", "--kind", "bogus"], capsys)
    assert "invalid choice: 'bogus'" in err
    for kind in ("release", "decision", "control"):
        assert kind in err
    assert build_parser().parse_args(["audit", "show", "--kind", "control"]).kind == "control"


def _one_release(model: str) -> dict[str, Any]:
    return {"model": model, "version": 1, "reason": "initial", "created_at": 1, "metrics": {"n_learned": 0.0}}


@pytest.fixture
def _registry(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = CheckedReleases([_one_release("default")], [], [], True)
    monkeypatch.setattr(models_cmd, "check_reachable", lambda *a, **k: None)
    monkeypatch.setattr(models_cmd, "read_checked_releases", lambda *a, **k: checked)
    monkeypatch.setattr(models_cmd, "model_owners", lambda *a, **k: {})
    monkeypatch.setattr(models_cmd, "trainer_lags", lambda *a, **k: {})
    monkeypatch.setattr(models_cmd, "read_serving", lambda *a, **k: None)
    for var in ("DRIFTLINE_CONFIG", "DRIFTLINE_MODEL", "DRIFTLINE__MODEL__NAME"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.usefixtures("_registry")
@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_models_list_of_a_model_without_releases_says_so_and_exits_1(
    json_flag: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--model", "nosuch", *json_flag]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "model 'nosuch' has no release on driftline.models (models: default; check --model)" in err


@pytest.mark.usefixtures("_registry")
def test_models_list_of_a_model_with_releases_lists_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--model", "default"]) == 0
    assert "initial" in capsys.readouterr().out


def test_the_model_option_of_models_says_its_default() -> None:
    parser = build_parser()
    models = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["models"]
    actions = next(a for a in models._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in actions.items():
        text = " ".join(sub.format_help().split())
        assert "see above" not in text, name
        if name == "list":
            assert "one model (default: every model)" in text


def test_models_set_refuses_a_key_given_twice_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`models set guard.alpha=0.01 guard.alpha=0.02` applied 0.02 and said nothing of the 0.01."""
    sent: list[Any] = []
    monkeypatch.setattr(models_cmd, "_run", lambda *a, **k: sent.append(a) or 0)
    assert main(["models", "set", "guard.alpha=0.01", "guard.alpha=0.02"]) == 2
    assert "guard.alpha is given twice" in capsys.readouterr().err
    assert sent == []
    assert main(["models", "set", "guard.alpha=0.01", "drift.adwin_delta=0.01"]) == 0
    assert sent and sent[0][2] == {"guard.alpha": "0.01", "drift.adwin_delta": "0.01"}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["demo", "--rate", "0"], "argument --rate: expected events per second > 0"),  # was ZeroDivisionError
        (["demo", "--rate", "nan"], "argument --rate"),
        (
            ["produce", "synthetic", "--rate", "1e-300"],
            "argument --rate: expected events per second >= 1.16e-05 (one a day)",
        ),
        (
            ["produce", "synthetic", "--rate", "inf"],
            "argument --rate: expected events per second > 0",
        ),  # paced nothing
        (["demo", "--label-delay", "-1"], "argument --label-delay: must be a whole number >= 0"),
        (["demo", "--timeout", "0"], "argument --timeout"),
        (["demo", "--console-port", "70000"], "argument --console-port: expected a TCP port"),
        (["bench", "--soak", "-5"], "argument --soak: must be a whole number >= 0"),  # ran the whole bench
        (["bench", "--events", "0"], "argument --events: must be a whole number >= 1"),
        (["bench", "--score-events", "-1"], "argument --score-events"),
        (["bench", "--releases", "0"], "argument --releases"),
        (["bench", "--latency-seconds", "-1"], "argument --latency-seconds"),
        (["bench", "--trainer-models", "-1"], "argument --trainer-models"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_demo_and_bench_sizes_are_checked_by_the_parser(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert named in _refused(argv, capsys)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["bench", "--models", "logistic_regression,nosuch"], "--models: unknown learner kind 'nosuch'"),
        (["bench", "--soak", "10", "--soak-model", "nosuch"], "--soak-model: unknown learner kind 'nosuch'"),
    ],
)
def test_bench_refuses_an_unknown_learner_kind_before_it_starts(
    argv: list[str], named: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bench.suite

    started: list[Any] = []
    monkeypatch.setattr(bench.suite, "run_bench", lambda *a, **k: started.append(a))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "known: " in err and "logistic_regression" in err
    assert started == []


@pytest.mark.parametrize(
    "command", [["replay", "--stream", "sea-abrupt", "--limit", "50"], ["demo", "--no-live"]]
)
def test_an_unwritable_report_dir_is_refused_before_the_run(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay --report /proc/x` ended in a FileNotFoundError traceback; `demo` would have run to its end first."""
    import streams.demo.runner

    monkeypatch.setattr(streams.demo.runner, "DemoRun", lambda *a, **k: pytest.fail("the demo started"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([*command, "--report", str(blocker / "report")]) == 2
    assert f"--report: cannot create {blocker / 'report'}" in capsys.readouterr().err
    assert main([*command, "--report", str(blocker)]) == 2
    assert f"--report: {blocker} is a file" in capsys.readouterr().err


def test_explain_checks_its_timeout_and_spends_no_more_on_the_broker_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`explain ID --timeout 3` against a broker that is down said "tried for 5 s"; `--timeout -1` was taken."""
    import streams.commands.explain as explain_cmd
    from driftline.errors import StackError

    tried: list[float] = []

    def unreachable(settings: Any, timeout: float = 5) -> None:
        tried.append(timeout)
        raise StackError(f"cannot reach Kafka (tried for {timeout:g} s)")

    monkeypatch.setattr(explain_cmd, "check_reachable", unreachable)
    assert main(["explain", "e1", "--timeout", "3"]) == 1
    assert tried == [3.0] and "tried for 3 s" in capsys.readouterr().err
    assert "argument --timeout" in _refused(["explain", "e1", "--timeout", "-1"], capsys)
    assert "argument --top" in _refused(["explain", "e1", "--top", "-2"], capsys)


@pytest.mark.parametrize("port", ["99999", "0", "abc"])
def test_console_port_out_of_range_is_refused(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`console --port 99999` was an OverflowError traceback (audit34, found; fixed by the lead)."""
    err = _refused(["console", "--port", port], capsys)
    assert "argument --port: expected a TCP port (1-65535)" in err


def test_demo_console_port_zero_asks_for_any_free_port(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --console-port 0` let the console take any free port (start_console's 0) until the ports were checked
    as 1-65535 (session 34): 0 is still accepted there, a negative port is not."""
    assert build_parser().parse_args(["demo", "--console-port", "0"]).console_port == 0
    err = _refused(["demo", "--console-port", "-1"], capsys)
    assert "argument --console-port: expected a TCP port (1-65535, 0: any free one)" in err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["produce", "synthetic", "--events", str(10**20)], "--events: must be 1 to 1,000,000,000,000"),
        (["demo", "--no-live", "--events", str(10**20)], "--events: must be 1 to 1,000,000,000,000"),
        (["replay", "--stream", "sea", "--n", str(10**20)], "--n: must be 0 to 1,000,000,000,000"),
        (["replay", "--stream", "sea", "--limit", str(10**20)], "--limit: must be 0 to 1,000,000,000,000"),
        (["replay", "--stream", "sea", "--release-every", "0"], "--release-every: must be at least 1, got 0"),
    ],
)
def test_event_counts_past_the_bound_and_a_zero_release_every_are_refused_before_the_run(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """10^20 events ended produce and replay with an islice ValueError traceback; replay took --release-every 0 as
    "not given" (session 45)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err, err
