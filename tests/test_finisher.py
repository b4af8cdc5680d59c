"""The finisher (streams/finisher.py): finish steps in order off the batch thread, queued pipelined steps merged
into one pass, a failed pass holding everything behind it until resumed. Pure logic: the producer here never
sends anything (every step's deliveries are empty), so no broker is needed.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from connectors.producer import Deliveries, EventProducer
from driftline.settings import Settings
from streams.finisher import MAX_MERGE_RECORDS, Abandoned, Finisher, PipelinedFinish


def _concat(results: list[list[int]]) -> list[int]:
    return [x for r in results for x in r]


class _Stage:
    """Records what the finish steps do, in order."""

    def __init__(self, out: EventProducer) -> None:
        self.out = out
        self.after_calls: list[list[int]] = []
        self.last_calls: list[Any] = []
        self.fail_after = False

    def after(self, result: list[int]) -> list[int]:
        if self.fail_after:
            raise ConnectionError("Redis went away")
        self.after_calls.append(list(result))
        return [x * 10 for x in result]

    def last(self, value: list[int]) -> None:
        self.last_calls.append(value)

    def step(self, result: list[int], size: int = 1) -> PipelinedFinish:
        return PipelinedFinish(self.out, [Deliveries(self.out)], result, self.after, self.last, _concat, size)


@pytest.fixture
def stage(settings: Settings) -> Any:
    out = EventProducer(settings)
    yield _Stage(out)
    out.close(1)


def _blocker(finisher: Finisher) -> threading.Event:
    """Occupy the finisher until the returned event is set, so the steps submitted meanwhile queue up."""
    gate, started = threading.Event(), threading.Event()

    def step() -> None:
        started.set()
        gate.wait(10)

    finisher.submit(step)
    assert started.wait(10)
    return gate


def test_queued_steps_run_as_one_pass_in_order(stage: _Stage) -> None:
    finisher = Finisher("test")
    try:
        gate = _blocker(finisher)
        futures = [finisher.submit(stage.step([i, i + 100])) for i in range(5)]
        gate.set()
        for f in futures:
            f.result(10)
        # One Redis call (after) and one mark (last) for the five batches, their results in batch order.
        assert stage.after_calls == [[0, 100, 1, 101, 2, 102, 3, 103, 4, 104]]
        assert stage.last_calls == [[0, 1000, 10, 1010, 20, 1020, 30, 1030, 40, 1040]]
        # A step submitted alone later runs alone.
        finisher.submit(stage.step([7])).result(10)
        assert stage.after_calls[-1] == [7] and len(stage.after_calls) == 2
    finally:
        finisher.close()


def test_a_pass_merges_up_to_max_merge_records(stage: _Stage) -> None:
    finisher = Finisher("test")
    try:
        gate = _blocker(finisher)
        half = MAX_MERGE_RECORDS // 2
        futures = [finisher.submit(stage.step([i], size=half)) for i in range(5)]
        gate.set()
        for f in futures:
            f.result(10)
        # Two batches of half the bound fit in one pass, a third does not: one Redis call never grows past it.
        assert stage.after_calls == [[0, 1], [2, 3], [4]]
    finally:
        finisher.close()


def test_a_failed_pass_fails_each_of_its_batches_and_holds_the_rest_until_resumed(stage: _Stage) -> None:
    finisher = Finisher("test")
    try:
        gate = _blocker(finisher)
        failing = [finisher.submit(stage.step([i])) for i in range(3)]
        stage.fail_after = True
        gate.set()
        for f in failing:
            assert isinstance(f.exception(10), ConnectionError)
        stage.fail_after = False
        ran = threading.Event()
        behind = finisher.submit(ran.set)
        assert not ran.wait(0.5), (
            "nothing runs behind a failed pass until the batch thread resumes the finisher"
        )
        assert stage.last_calls == []
        finisher.resume()
        behind.result(10)
        assert ran.is_set()
    finally:
        finisher.close()


def test_a_pass_failing_after_the_outputs_leaves_each_batch_delivered_to_run_its_step_again_alone(
    stage: _Stage,
) -> None:
    """Redis failing a merged pass after its outputs were acknowledged: each batch's own step is marked delivered,
    and run again (by the batch thread) it does only ``after`` and ``last`` for its own result."""
    finisher = Finisher("test")
    try:
        gate = _blocker(finisher)
        steps = [stage.step([i]) for i in range(3)]
        failing = [finisher.submit(step) for step in steps]
        stage.fail_after = True
        gate.set()
        for f in failing:
            assert isinstance(f.exception(10), ConnectionError)
        assert all(step.delivered for step in steps)
        stage.fail_after = False
        for step in steps:
            step()
        assert stage.after_calls == [[0], [1], [2]]
        assert stage.last_calls == [[0], [10], [20]]
        assert not stage.step([5]).delivered, "a step not run yet has nothing acknowledged"
    finally:
        finisher.resume()
        finisher.close()


def test_a_pass_failing_in_its_last_step_is_finished_once_without_running_after_again(stage: _Stage) -> None:
    """Redis refusing ``mark_joined`` (``last``) after a merged pass's ``after`` joined the parked labels and their
    TrainingExamples were acknowledged: run again, the batches' steps finish that pass (``last`` once, with the
    pass's value) and never run ``after`` again, which joined the same labels and published their examples a
    second time (CI of session 43: 1,070 TrainingExamples of 1,000 labels)."""
    finisher = Finisher("test")
    refusals = {"left": 1}
    last = stage.last

    def refusing_last(value: list[int]) -> None:
        if refusals["left"]:
            refusals["left"] -= 1
            raise ConnectionError("OOM command not allowed when used memory > 'maxmemory'")
        last(value)

    stage.last = refusing_last  # type: ignore[method-assign]
    try:
        gate = _blocker(finisher)
        steps = [stage.step([i]) for i in range(3)]
        failing = [finisher.submit(step) for step in steps]
        gate.set()
        for f in failing:
            assert isinstance(f.exception(10), ConnectionError)
        assert stage.after_calls == [[0, 1, 2]]
        for step in steps:
            assert step.delivered
            step()
        assert stage.after_calls == [[0, 1, 2]], "after ran once, for the pass"
        assert stage.last_calls == [[0, 10, 20]], "last ran once, with the pass's value"
    finally:
        finisher.resume()
        finisher.close()


def test_close_drops_what_is_queued(stage: _Stage) -> None:
    finisher = Finisher("test")
    gate = _blocker(finisher)
    queued = finisher.submit(stage.step([1]))
    closer = threading.Thread(target=finisher.close)
    closer.start()
    assert isinstance(queued.exception(10), Abandoned)
    gate.set()
    closer.join(10)
    assert not closer.is_alive()
    assert stage.after_calls == []
    assert isinstance(finisher.submit(stage.step([2])).exception(1), Abandoned)


class _FakeClient:
    """Stands in for the confluent-kafka Producer under an EventProducer: ``poll`` acknowledges what is queued,
    ``flush`` is recorded (a flush sends at once, ignoring ``linger.ms``)."""

    def __init__(self) -> None:
        self.queued: list[Any] = []
        self.flushes = 0

    def produce(self, topic: str, value: bytes, key: Any = None, on_delivery: Any = None) -> None:
        self.queued.append(on_delivery)

    def __len__(self) -> int:
        return len(self.queued)

    def poll(self, timeout: float = 0) -> int:
        acknowledged, self.queued = self.queued, []
        for on_delivery in acknowledged:
            on_delivery(None, None)
        return len(acknowledged)

    def flush(self, timeout: float = 0) -> int:
        self.flushes += 1
        return self.poll(timeout)


def _waited(out: EventProducer, client: _FakeClient, **how: Any) -> int:
    with out.tracking() as deliveries:
        out._producer.produce("t", b"v", None, on_delivery=deliveries._on_delivery)
        deliveries.pending += 1
    out.wait(deliveries, 5, **how)
    return client.flushes


def test_wait_with_linger_never_flushes(settings: Settings) -> None:
    out = EventProducer(settings)
    try:
        client = out._producer = _FakeClient()  # type: ignore[assignment]
        assert _waited(out, client) == 1, "by default, a wait with nothing else queued is a flush"
        client.flushes = 0
        assert _waited(out, client, linger=True) == 0
    finally:
        out._producer = _FakeClient()  # type: ignore[assignment]


def test_a_pipelined_finish_waits_for_its_outputs_with_the_producers_linger(stage: _Stage) -> None:
    # A flush per finish pass sent each pass's outputs as requests of their own (session 22, BENCHMARKS.md).
    how: list[bool] = []
    original = stage.out.wait

    def wait(deliveries: Deliveries, timeout: float = 30.0, *, linger: bool = False) -> None:
        how.append(linger)
        original(deliveries, timeout, linger=linger)

    stage.out.wait = wait  # type: ignore[method-assign]
    stage.step([1, 2])()
    assert how and all(how), how
