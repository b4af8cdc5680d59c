"""The batch loop's pipeline bound (streams/batches.py ``BatchLoop._room``), in process: no broker, finished futures.

What must hold: the records in flight are counted as batches enter and leave the pipeline (never re-summed), and
``_room`` waits for the oldest batches, in order, until the incoming batch fits the bound in records and the bound
in batches; a batch larger than the record bound waits for every earlier one.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from streams.batches import BatchLoop, _Inflight, _Pipeline
from streams.finisher import Finisher
from streams.runtime import RawRecord


class _Source:
    """What ``_collect`` needs of a BatchSource: ``done`` (offsets stored), recorded."""

    def __init__(self) -> None:
        self.done_sizes: list[int] = []

    def done(self, raws: list[RawRecord]) -> None:
        self.done_sizes.append(len(raws))


class _WhenWaited(Future[None]):
    """A finish step that is done once someone waits for it (so each wait of ``_collect`` is visible)."""

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self.done():
            self.set_result(None)
        return super().exception(timeout)


def _batch(size: int, start: int, finish: bool = True) -> _Inflight:
    raws = [RawRecord("t", 0, start + i, None, b"x") for i in range(size)]
    return _Inflight(raws, _WhenWaited() if finish else None)


def _loop(**bounds: Any) -> BatchLoop:
    return BatchLoop(None, "score", "t", "g", lambda raws: None, batch=10, within=0.05, **bounds)  # type: ignore[arg-type]


def test_the_pipeline_counts_its_records_as_batches_come_and_go() -> None:
    pipeline = _Pipeline()
    assert len(pipeline) == 0 and pipeline.records == 0 and not pipeline
    for size, start in ((30, 0), (50, 30), (1, 80)):
        pipeline.append(_batch(size, start))
    assert len(pipeline) == 3 and pipeline.records == 81
    assert pipeline[0].raws[0].offset == 0 and pipeline[1].raws[0].offset == 30
    assert len(pipeline.popleft().raws) == 30
    assert pipeline.records == 51 and len(pipeline) == 2


def test_room_waits_for_the_oldest_batches_until_the_incoming_batch_fits() -> None:
    loop = _loop(max_inflight_records=100)
    pipeline, source, stopping = _Pipeline(), _Source(), threading.Event()
    finisher = Finisher("score")
    try:
        for size, start in ((30, 0), (50, 30), (20, 80)):
            pipeline.append(_batch(size, start))
        assert loop._room(pipeline, 0, source, finisher, stopping)  # 100 + 0 fits: nothing waited for
        assert source.done_sizes == [] and pipeline.records == 100
        # 100 + 40 > 100: the oldest (30) and the next (50) must finish first; then 20 + 40 fits.
        assert loop._room(pipeline, 40, source, finisher, stopping)
        assert source.done_sizes == [30, 50] and pipeline.records == 20 and len(pipeline) == 1
        pipeline.append(_batch(40, 100))
        pipeline.append(
            _batch(0, 140, finish=False)
        )  # a batch without a finish step (offsets after the rest)
        assert pipeline.records == 60
        # Larger than the bound: waits for every earlier batch.
        assert loop._room(pipeline, 250, source, finisher, stopping)
        assert source.done_sizes == [30, 50, 20, 40, 0] and pipeline.records == 0 and not pipeline
    finally:
        finisher.close()


def test_room_bounds_the_batches_in_flight_too() -> None:
    loop = _loop(max_inflight=3, max_inflight_records=1_000)
    pipeline, source, stopping = _Pipeline(), _Source(), threading.Event()
    finisher = Finisher("score")
    try:
        for start in range(0, 30, 10):
            pipeline.append(_batch(10, start))
        assert loop._room(pipeline, 10, source, finisher, stopping)
        assert source.done_sizes == [10] and len(pipeline) == 2 and pipeline.records == 20
    finally:
        finisher.close()
