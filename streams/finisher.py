"""Finish steps off the batch thread: :class:`Finisher` runs them in order in a thread of its own, and
:class:`PipelinedFinish` is the step a pipelined stage returns (wait for the batch's outputs, then its joins).

Why: the score worker's batch thread used to wait, after every batch, for the previous batch's acknowledgements and
then for its Redis round trip (the join contexts). Under load that wait took a third of the thread's time, 15-100 ms
at a time, and held up the next batch's predictions: it set the feature -> prediction p99 (BENCHMARKS.md, issue 16).
Now the batch thread only scores and produces; the finisher waits.

Why merge: with the waits gone the batch thread takes small batches (what arrived since the last one), and one
Redis call per small batch made the finisher the bottleneck. Steps queued behind each other are run as one:
one wait for all their outputs, one Redis call for all their contexts, in the same order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from connectors.producer import Deliveries, EventProducer

Finish = Callable[[], None]

# A pass merges queued steps up to this many input records: it bounds one Redis call (a Lua script, ~10 us per
# context on the server, which answers nobody else meanwhile) to ~20 ms.
MAX_MERGE_RECORDS = 2000


class Abandoned(Exception):
    """A finish step not run because the loop stopped first (its batch's offsets are never stored)."""


class _PastAfter:
    """A pass's ``after`` done, its outputs acknowledged: the value ``last`` takes, and whether ``last`` ran. Shared
    by the batches the pass merged, so the first of them run again alone finishes the whole pass and the others
    have nothing left to do."""

    __slots__ = ("finished", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.finished = False


class PipelinedFinish:
    """Wait until a batch's outputs are acknowledged, then ``after(result)`` (its own outputs waited for too;
    returns what ``last`` takes), then ``last(...)``. Steps with the same ``after``/``last``/``combine`` merge:
    ``combine`` turns their results, in batch order, into one."""

    def __init__(
        self,
        out: EventProducer,
        deliveries: Sequence[Deliveries],
        result: Any,
        after: Callable[[Any], Any] | None,
        last: Callable[[Any], None],
        combine: Callable[[list[Any]], Any],
        size: int = 1,
        timeout: float = 60.0,
    ) -> None:
        self.out = out
        self.size = size  # input records behind it
        self.deliveries = list(deliveries)
        self.result = result
        self.after = after
        self.last = last
        self.combine = combine
        self.timeout = timeout
        # The batches' own steps this one runs (itself, or those it merges) and whether this step's ``deliveries``
        # are acknowledged: a step run again after a failure that came later (Redis refusing the joins) waits for
        # nothing already acknowledged and does only what follows (see :meth:`delivered`).
        self.parts: list[PipelinedFinish] = [self]
        self.acknowledged = False
        # Set on every part once a pass's ``after`` is done and its outputs acknowledged: a pass failing in ``last``
        # (Redis refusing ``mark_joined``) is run again from there. Running ``after`` again joined the parked
        # labels it had joined and published their TrainingExamples again (CI of session 43: 1,070 examples of
        # 1,000 labels in test_redis_refusing_writes_does_not_publish_predictions_again).
        self.past_after: _PastAfter | None = None

    @property
    def delivered(self) -> bool:
        """Whether every output of the batch(es) behind this step is acknowledged: if it then fails, only ``after``
        and ``last`` need to run again (``streams.batches.BatchLoop`` does that instead of handling the batch
        again, which published its outputs again at every retry: arch41, loose end b)."""
        return all(part.acknowledged for part in self.parts)

    def __call__(self) -> None:
        past = self.parts[0].past_after
        if past is None or any(part.past_after is not past for part in self.parts):
            # With the producer's linger, never a flush: a flush per pass made every pass's outputs requests of their
            # own (session 22, BENCHMARKS.md); nothing waits on this thread but the offsets and the joins.
            for part in self.parts:
                if not part.acknowledged:
                    for deliveries in part.deliveries:
                        self.out.wait(deliveries, self.timeout, linger=True)
                    part.acknowledged = True
            value = self.result
            if self.after is not None:
                with self.out.tracking() as more:
                    value = self.after(self.result)
                self.out.wait(more, self.timeout, linger=True)
            past = _PastAfter(value)
            for part in self.parts:
                part.past_after = past
        # Finished already: a batch of a failed pass run again alone after another batch of it finished the pass.
        if not past.finished:
            self.last(past.value)
            past.finished = True

    def merges_with(self, other: object) -> bool:
        return (
            isinstance(other, PipelinedFinish)
            and other.out is self.out
            and other.after == self.after
            and other.last == self.last
            and other.combine == self.combine
        )

    def merged(self, later: Sequence[PipelinedFinish]) -> PipelinedFinish:
        steps = [self, *later]
        step = PipelinedFinish(
            self.out,
            [d for s in steps for d in s.deliveries],
            self.combine([s.result for s in steps]),
            self.after,
            self.last,
            self.combine,
            sum(s.size for s in steps),
            self.timeout,
        )
        step.parts = [part for s in steps for part in s.parts]
        return step


class Finisher:
    """Runs finish steps in a thread of its own, in the order they were submitted; consecutive
    :class:`PipelinedFinish` steps waiting together run as one pass (each keeps its own future).

    After a pass fails, nothing behind it runs until :meth:`resume` (the batch thread redoes the failed batches
    first): outputs are acknowledged, and joins stored, in batch order.
    """

    def __init__(self, stage: str) -> None:
        self._queue: deque[tuple[Finish, Future[None]]] = deque()
        self._cond = threading.Condition()
        self._held = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"{stage}-finish", daemon=True)
        self._thread.start()

    def submit(self, finish: Finish) -> Future[None]:
        future: Future[None] = Future()
        with self._cond:
            if self._closing:
                future.set_exception(Abandoned())
                return future
            self._queue.append((finish, future))
            self._cond.notify()
        return future

    def resume(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify()

    def _take(self) -> list[tuple[Finish, Future[None]]] | None:
        with self._cond:
            while not self._closing and (self._held or not self._queue):
                self._cond.wait()
            if self._closing:
                return None
            taken = [self._queue.popleft()]
            first = taken[0][0]
            if isinstance(first, PipelinedFinish):
                size = first.size
                while self._queue and first.merges_with(nxt := self._queue[0][0]):
                    size += nxt.size  # type: ignore[attr-defined]
                    if size > MAX_MERGE_RECORDS:
                        break
                    taken.append(self._queue.popleft())
            return taken

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            first = taken[0][0]
            step = first.merged([s for s, _ in taken[1:]]) if len(taken) > 1 else first  # type: ignore[attr-defined]
            try:
                step()
            except BaseException as exc:
                with self._cond:
                    # Hold the later steps until the batch thread redid these batches (it resumes once it sees no
                    # failed batch behind the one it redid: every future of the pass is failed before it looks).
                    self._held = True
                    for _, future in taken:
                        future.set_exception(exc)
            else:
                for _, future in taken:
                    future.set_result(None)

    def close(self, timeout: float = 120.0) -> None:
        """Finish the step running now (if any) and drop the queued ones: their offsets are never stored."""
        with self._cond:
            self._closing = True
            dropped = list(self._queue)
            self._queue.clear()
            self._cond.notify()
        for _, future in dropped:
            future.set_exception(Abandoned())
        self._thread.join(timeout)
