"""A worker whose broker stops answering while Faust starts waits for it and starts again (helper chaos32, seed 6:
a score worker restarted just before a broker restart passed the start-up check, then Faust's producer could not
bootstrap; the worker exited 1 with a traceback and stayed down for good)."""

from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from driftline.errors import StackError
from streams.cli import build_parser
from streams.commands import worker as worker_cmd


class Exec(Exception):
    """Raised by the fake ``os.execv``: the process would have been replaced."""


def faust_exit(cause: BaseException | None) -> SystemExit:
    """What ``faust.Worker.execute_from_commandline`` raises after a failure: SystemExit(1) inside ``except``."""
    try:
        if cause is not None:
            raise cause
        raise SystemExit(1)
    except SystemExit as exc:
        return exc
    except Exception:
        try:
            sys.exit(1)
        except SystemExit as exc:
            return exc
    raise AssertionError("unreachable")


def test_broker_lost_reads_faust_exit_cause() -> None:
    assert isinstance(
        worker_cmd.broker_lost(faust_exit(KafkaConnectionError("no bootstrap"))), KafkaConnectionError
    )
    assert worker_cmd.broker_lost(faust_exit(ValueError("a bug"))) is None
    assert worker_cmd.broker_lost(faust_exit(None)) is None


@pytest.fixture
def fake_worker(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``worker.run`` with everything around Faust faked: the broker 'answers' from the second check on."""
    calls: dict[str, Any] = {"checks": 0, "execv": None, "faust_error": None}

    def check_reachable(settings: Any, timeout: float = 5) -> None:
        calls["checks"] += 1
        if calls["checks"] == 2:  # the first check after the loss: still down
            raise StackError("cannot reach Kafka")

    class FakeFaustWorker:
        def __init__(self, *a: Any, **k: Any) -> None:
            self.stdout = SimpleNamespace(isatty=lambda: True)

        def execute_from_commandline(self) -> None:
            raise faust_exit(calls["faust_error"])

    def execv(path: str, argv: list[str]) -> None:
        calls["execv"] = (path, argv)
        raise Exec

    closable = SimpleNamespace(close=lambda: None)
    monkeypatch.setattr(worker_cmd, "check_reachable", check_reachable)
    monkeypatch.setattr(worker_cmd, "check_redis_reachable", lambda s: None)
    monkeypatch.setattr(worker_cmd, "ensure_topics", lambda s, t: None)
    monkeypatch.setattr(
        "streams.app.build_app",
        lambda s, r: SimpleNamespace(app=None, ctx=SimpleNamespace(metrics=None), close=lambda: None),
    )
    monkeypatch.setattr(
        "streams.metrics.serve_metrics", lambda *a: SimpleNamespace(url="http://x", close=closable.close)
    )
    monkeypatch.setattr("faust.Worker", FakeFaustWorker)
    monkeypatch.setattr(worker_cmd.os, "execv", execv)
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY", "k" * 64)
    monkeypatch.delenv(worker_cmd.ATTEMPT_ENV, raising=False)
    return calls


def args() -> argparse.Namespace:
    return build_parser().parse_args(["worker", "--role", "score", "--metrics-port", "0"])


def test_worker_starts_again_when_the_broker_goes_away_during_start(fake_worker: dict[str, Any]) -> None:
    fake_worker["faust_error"] = KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 17092)]")
    with pytest.raises(Exec):
        worker_cmd.run(args())
    path, argv = fake_worker["execv"]
    assert path == sys.executable and argv == [sys.executable, *sys.orig_argv[1:]]
    assert fake_worker["checks"] == 3  # start-up check, one refused while waiting, one answered
    assert os.environ[worker_cmd.ATTEMPT_ENV] == "2"


def test_worker_gives_up_after_the_attempts(
    fake_worker: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_worker["faust_error"] = KafkaConnectionError("Unable to bootstrap")
    monkeypatch.setenv(worker_cmd.ATTEMPT_ENV, str(worker_cmd.START_ATTEMPTS))
    with pytest.raises(SystemExit) as exc:
        worker_cmd.run(args())
    assert exc.value.code == 1 and fake_worker["execv"] is None


def test_other_failures_still_exit(fake_worker: dict[str, Any]) -> None:
    fake_worker["faust_error"] = ValueError("a bug")
    with pytest.raises(SystemExit) as exc:
        worker_cmd.run(args())
    assert exc.value.code == 1 and fake_worker["execv"] is None


def test_waiting_for_the_broker_does_not_spin(
    fake_worker: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review32: ``check_reachable`` raises at once for refused credentials or a failed TLS handshake, and the wait
    for the broker called it back to back (an admin client each) for the whole ``START_WAIT_S``: it now pauses
    between checks. The clock is faked: 1 ms a check, a sleep advances it."""
    clock = {"now": 0.0, "checks": 0}

    def refused(settings: Any, timeout: float = 5) -> None:
        clock["checks"] += 1
        clock["now"] += 0.001
        raise StackError("Kafka refused the SASL login")

    def sleep(s: float) -> None:
        clock["now"] += s

    monkeypatch.setattr(worker_cmd, "check_reachable", refused)
    monkeypatch.setattr(worker_cmd, "time", SimpleNamespace(monotonic=lambda: clock["now"], sleep=sleep))
    worker_cmd.start_again(
        SimpleNamespace(kafka=SimpleNamespace(bootstrap="127.0.0.1:1")), KafkaConnectionError("x"), 0.0
    )
    assert fake_worker["execv"] is None  # gave up after START_WAIT_S
    assert clock["checks"] <= worker_cmd.START_WAIT_S + 2, clock  # about one a second, not 120,000
