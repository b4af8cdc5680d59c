"""Warming a freshly started broker (connectors.warmup): the compiler-thread probe, the quiet rule, who warms
(``stack up --warm`` and ``ensure_stack(warm=True)`` only for a broker they started), and one short warm-up through the
test stack's broker that cleans up after itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from connectors import stack as stack_module
from connectors import warmup
from connectors.stack_config import ServiceStatus, StackStatus
from connectors.warmup import WarmupReport, compiler_cpu_seconds, quiet_for, warm_broker
from driftline.settings import Settings, load_settings
from streams import cli
from streams.commands import stack as stack_command


def _task(proc: Path, pid: int, tid: int, comm: str, utime: int, stime: int) -> None:
    task = proc / str(pid) / "task" / str(tid)
    task.mkdir(parents=True)
    # /proc/<pid>/task/<tid>/stat: pid (comm) state ppid ...; utime and stime are fields 14 and 15.
    rest = ["S", "1"] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 30
    (task / "stat").write_text(f"{tid} ({comm}) " + " ".join(rest) + "\n")


def test_compiler_cpu_counts_only_the_jit_compiler_threads(tmp_path: Path) -> None:
    tick = warmup._TICK
    _task(tmp_path, 7, 8, "C2 CompilerThre", 3 * tick, 1 * tick)
    _task(tmp_path, 7, 9, "C1 CompilerThre", 1 * tick, 0)
    _task(tmp_path, 7, 10, "data-plane-kafka-request-handler-0", 50 * tick, 9 * tick)
    _task(tmp_path, 7, 11, "kafka (with) parens)", 20 * tick, 0)  # a comm may hold ')' itself
    assert compiler_cpu_seconds(7, proc=tmp_path) == pytest.approx(5.0)
    assert compiler_cpu_seconds(8, proc=tmp_path) is None  # no such process


def test_quiet_only_over_a_full_window_under_the_threshold() -> None:
    busy = [(float(t), 0.5 * t) for t in range(10)]  # half a core throughout
    assert not quiet_for(busy, 3.0, 0.1)
    settling = [*busy, (10.0, 5.0), (11.0, 5.05), (12.0, 5.1), (13.0, 5.12)]
    assert quiet_for(settling, 3.0, 0.1)
    assert not quiet_for(settling, 5.0, 0.1)  # the last 5 s still hold a busy second
    assert not quiet_for([(0.0, 1.0), (1.0, 1.0)], 3.0, 0.1)  # too short to tell
    assert not quiet_for([], 3.0, 0.1)


def _status(kafka_state: str, pid: int | None = 4242, started: tuple[str, ...] = ()) -> StackStatus:
    return StackStatus(
        ServiceStatus("kafka", "127.0.0.1:9092", kafka_state, pid if kafka_state == "up" else None),
        ServiceStatus("redis", "127.0.0.1:6379", "up", 4343),
        Path("/tmp/state"),
        started=started,
    )


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``stack up`` against fakes: Kafka's state before the call is ``seen["before"]``; warm-ups are recorded."""
    seen: dict[str, Any] = {"before": "down", "warmed": []}

    def status(cfg: Any, state_dir: Any = None) -> StackStatus:
        return _status(seen["before"])

    def warm(settings: Settings, pid: int | None = None, **_: Any) -> WarmupReport:
        seen["warmed"].append((settings.kafka.bootstrap, pid))
        return WarmupReport(1000, 1000, 12.0, "quiet", (0.5, 0.05))

    for module in (stack_command, stack_module):
        monkeypatch.setattr(module, "stack_status", status)
        # stack_up says what it started itself (a broker down before the call).
        monkeypatch.setattr(
            module,
            "stack_up",
            lambda cfg, state_dir=None, timeout_s=120.0: _status(
                "up", started=("kafka",) if seen["before"] == "down" else ()
            ),
        )
    monkeypatch.setattr(stack_command, "warm_broker", warm)
    monkeypatch.setattr(warmup, "warm_broker", warm)
    return seen


@pytest.mark.parametrize(
    ("before", "flags", "warmed"),
    [
        ("down", ["--warm"], True),
        ("up", ["--warm"], False),
        ("external", ["--warm"], False),
        ("down", [], False),
    ],
)
def test_stack_up_warms_only_a_broker_it_started(
    fake_stack: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    before: str,
    flags: list[str],
    warmed: bool,
) -> None:
    fake_stack["before"] = before
    code = cli.main(["stack", "up", "--kafka-port", "19999", "--no-topics", "--json", *flags])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    if warmed:
        # On the stack's own address (the port given), with the pid whose compiler threads it watches.
        assert fake_stack["warmed"] == [("127.0.0.1:19999", 4242)]
        assert out["warmup"]["stopped"] == "quiet" and out["warmup"]["produced"] == 1000
    else:
        assert fake_stack["warmed"] == [] and "warmup" not in out


def test_stack_up_says_how_long_it_warmed(
    fake_stack: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["stack", "up", "--no-topics", "--warm"]) == 0
    assert "warmup 1,000 records through the broker in 12 s (until its JIT compiler went quiet)" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("before", "warm", "warmed"), [("down", True, True), ("up", True, False), ("down", False, False)]
)
def test_ensure_stack_warms_when_asked_and_it_started_the_broker(
    fake_stack: dict[str, Any], before: str, warm: bool, warmed: bool
) -> None:
    fake_stack["before"] = before
    stack_module.ensure_stack(load_settings(environ={}), "/tmp/state", warm=warm)
    assert fake_stack["warmed"] == ([("127.0.0.1:9092", 4242)] if warmed else [])


@pytest.mark.kafka
def test_a_short_warm_up_runs_records_through_and_deletes_its_topics(settings: Settings) -> None:
    report = warm_broker(settings, pid=None, min_seconds=0.5, max_seconds=2.0, rate=500)
    assert report.stopped == "max"  # no pid: nothing to watch, so it runs to the limit
    assert report.produced > 0 and report.echoed > 0
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    left = [t for t in admin.list_topics(timeout=10).topics if t.startswith("__driftline-warmup-")]
    assert left == []
