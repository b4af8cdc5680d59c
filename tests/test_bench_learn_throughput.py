"""bench.pipeline.learn_throughput on trainer reports made up here (no broker, no worker): what it waits for and
what it counts.

The train worker "stalls" of sessions 19 and 20 (a tree's run stopped at 19,900 of 20,000 labels until the bench's
300 s timeout) were this wait: the trainer had learned and committed every label, but a probation rollback had
taken the served lineage's ``n_learned`` back, for good, and the bench waited for ``n_learned`` (BENCHMARKS.md,
session 21).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import pipeline


class Worker:
    pid = 0

    def alive(self) -> bool:
        return True

    def log_tail(self, n: int = 20) -> str:
        return ""


def _replay(monkeypatch: pytest.MonkeyPatch, reports: list[tuple[int, int, int]]) -> None:
    """The trainer's status as the bench reads it: ``(labels_learned, n_learned, updated_at)`` one poll after
    another, the last one for good."""
    polls = iter(reports)
    current: list[dict[str, Any]] = []

    def status(settings: Any) -> dict[str, Any]:
        labels, lineage, at = next(polls, (None, None, None))
        if labels is not None:
            current[:] = [{"labels_learned": labels, "n_learned": lineage, "updated_at": at}]
        return current[0]

    monkeypatch.setattr(pipeline, "trainer_status", status)
    monkeypatch.setattr(pipeline, "cpu_seconds", lambda pid: 0.0)
    monkeypatch.setattr(pipeline.time, "sleep", lambda s: None)


def test_a_rollback_that_took_n_learned_back_does_not_keep_the_bench_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every label learned; a rollback near the end left the lineage at 19,900.
    _replay(
        monkeypatch,
        [(0, 0, 1_000), (4_000, 4_000, 1_500), (16_000, 16_000, 3_000), (20_000, 19_900, 3_400)],
    )
    out = pipeline.learn_throughput(None, 20_000, Worker(), timeout=5.0)  # type: ignore[arg-type]
    assert out["labels_learned"] == 20_000 and out["n_learned"] == 19_900
    assert out["learn_eps"] == pytest.approx(20_000 / 2.4)
    assert out["learn_tail_s"] == pytest.approx(0.4) and out["learn_tail_n"] == 4_000
    assert out["learn_steady_eps"] == pytest.approx(12_000 / 1.5)


def test_a_trainer_short_of_the_labels_still_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    _replay(monkeypatch, [(0, 0, 1_000), (19_900, 19_900, 3_000)])
    with pytest.raises(RuntimeError, match="learned 19900 of 20000"):
        pipeline.learn_throughput(None, 20_000, Worker(), timeout=0.2)  # type: ignore[arg-type]


@pytest.mark.parametrize(("worker_cpu", "others_busy"), [(0.0, True), (3.0, False)])
def test_the_load_beside_the_worker_is_the_machines_busy_time_less_the_workers(
    monkeypatch: pytest.MonkeyPatch, worker_cpu: float, others_busy: bool
) -> None:
    _replay(monkeypatch, [(0, 0, 1_000), (20_000, 20_000, 3_000)])
    busy = iter([100.0, 103.0])  # the machine: 3 CPU seconds busy over the run
    calls: list[int] = []

    def cpu(pid: int) -> float:  # the worker's own share of them: 0 at its first report, ``worker_cpu`` after
        calls.append(pid)
        return 0.0 if len(calls) == 1 else worker_cpu

    monkeypatch.setattr(pipeline, "busy_seconds", lambda: next(busy))
    monkeypatch.setattr(pipeline, "cpu_seconds", cpu)
    out = pipeline.learn_throughput(None, 20_000, Worker(), timeout=5.0)  # type: ignore[arg-type]
    assert (out["learn_other_cores"] > 0) is others_busy, out


def test_no_load_is_reported_where_the_machines_busy_time_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    _replay(monkeypatch, [(0, 0, 1_000), (20_000, 20_000, 3_000)])
    monkeypatch.setattr(pipeline, "busy_seconds", lambda: None)  # not Linux
    assert "learn_other_cores" not in pipeline.learn_throughput(None, 20_000, Worker(), timeout=5.0)  # type: ignore[arg-type]


def test_busy_seconds_reads_the_cpu_line_less_idle_and_iowait() -> None:
    from bench.env import busy_seconds

    tick = __import__("os").sysconf("SC_CLK_TCK")
    stat = "cpu  100 20 30 5000 40 5 6 7 0 0\ncpu0 50 10 15 2500 20 2 3 3 0 0\n"
    assert busy_seconds(stat) == pytest.approx((100 + 20 + 30 + 5 + 6 + 7) / tick)
    assert busy_seconds("intr 1 2 3\n") is None
    assert busy_seconds() is not None  # this machine's own /proc/stat (Linux)
