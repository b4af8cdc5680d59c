"""The batch thread: one stage's input read with :class:`~streams.runtime.BatchSource` instead of a Faust agent.

Used by processes that run ``score`` alone and by those that run ``train`` alone: Faust's per-message consume path
cost more CPU per event than scoring or learning it (BENCHMARKS.md). The contract is the agents' one: a batch's
outputs are acknowledged by the broker before its offsets are stored, a failing batch is retried with backoff
(never skipped), and a loop that breaks stops the whole process so its partitions move on and a supervisor
restarts it.

Pipelining: a stage's ``handle`` may return a *finish* step (wait for this batch's deliveries, then whatever must
follow them). The loop then processes the next batch while the previous one's outputs travel to the broker and
finishes the previous one afterwards, so a round trip to the broker per batch no longer caps the rate at small
batches. At most one batch is in flight; offsets are still stored in order and only once the outputs are
acknowledged. A finish that fails (a delivery lost) redoes that batch synchronously before anything later is
acknowledged.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from streams.runtime import BatchSource, RawRecord, WorkerContext

log = logging.getLogger(__name__)

RETRY_MAX_S = 10.0


def handle_batch_blocking(
    stage: str, ctx: WorkerContext, body: Callable[[], None], stopping: threading.Event
) -> bool:
    """Run ``body`` until it succeeds: True once it did, False if stopped before it did."""
    delay = 0.2
    while True:
        try:
            body()
            return True
        except Exception as exc:
            ctx.metrics.events.labels(stage=stage, outcome="retry").inc()
            log.error("%s: batch failed, retrying in %.1f s: %s", stage, delay, exc)
            if stopping.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)


Finish = Callable[[], None]


@dataclass
class BatchLoop:
    """What one batch thread reads and does.

    ``handle(raws)`` processes a batch and either has its outputs acknowledged before returning ``None``, or
    returns the *finish* step that waits for them (see the module docstring); ``idle()`` runs when a poll
    returned nothing;
    ``ready`` (if given) holds the assigned partitions paused until it is set, and ``gate()`` (if given) is called
    before every poll so the owner can set it.
    """

    ctx: WorkerContext
    stage: str
    topic: str
    group: str
    handle: Callable[[list[RawRecord]], Finish | None]
    batch: int
    within: float
    session_timeout_s: float | None = None
    heartbeat_s: float | None = None
    max_poll_interval_s: float | None = None
    idle: Callable[[], object] | None = None
    ready: threading.Event | None = None
    gate: Callable[[], None] | None = None

    def run(self, stopping: threading.Event) -> None:
        ctx = self.ctx
        source: BatchSource | None = None
        next_lag = 0.0
        try:
            # Inside the try: a consumer that cannot be created (bad settings) stops the worker, never leaves a
            # worker that is up but does nothing.
            source = BatchSource(
                ctx.settings,
                self.group,
                self.topic,
                session_timeout_s=self.session_timeout_s,
                heartbeat_s=self.heartbeat_s,
                max_poll_interval_s=self.max_poll_interval_s,
                ready=self.ready,
                metrics=ctx.metrics,
            )
            inflight: tuple[list[RawRecord], Finish] | None = None
            while not stopping.is_set():
                if self.gate is not None:
                    self.gate()
                # With a batch in flight, take what is already fetched and otherwise finish that one first.
                raws = source.poll(self.batch, 0.0 if inflight else self.within)
                if raws:
                    handled, finish = self._start(raws, inflight, source, stopping)
                    inflight = None  # finished by _start, before anything of this batch is acknowledged
                    if not handled:
                        break  # stopping with the batch not handled: its offsets stay uncommitted
                    if finish is None:
                        source.done(raws)
                    else:
                        inflight = (raws, finish)
                elif inflight is not None:
                    if not self._finish(inflight, source, stopping):
                        break
                    inflight = None
                elif self.idle is not None:
                    self.idle()
                if time.monotonic() >= next_lag:
                    ctx.metrics.set_consumer_lag(self.group, source.lags())
                    next_lag = time.monotonic() + 5.0
            if inflight is not None:
                # Stopping: the batch's outputs were produced; acknowledge its input once they are delivered.
                self._finish(inflight, source, stopping)
        except Exception:
            # Never a silent half-dead worker: stop the process so its partitions move and it gets restarted.
            log.exception("%s batch loop failed; stopping the worker", self.stage)
            ctx.metrics.set_worker_up(self.stage, False)
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            if source is not None:
                source.close()

    def _start(
        self,
        raws: list[RawRecord],
        inflight: tuple[list[RawRecord], Finish] | None,
        source: BatchSource,
        stopping: threading.Event,
    ) -> tuple[bool, Finish | None]:
        """Handle ``raws`` and finish the batch in flight (in that order: the broker round trip of the one
        overlaps the work of the other). Returns (handled, the new batch's finish step or None); handled is
        False only when stopped first."""
        result: list[Finish | None] = []
        try:
            result.append(self.handle(raws))
        except Exception as exc:
            log.error("%s: batch failed, retrying: %s", self.stage, exc)
            self.ctx.metrics.events.labels(stage=self.stage, outcome="retry").inc()
        if inflight is not None and not self._finish(inflight, source, stopping):
            return False, None
        if not result and not handle_batch_blocking(
            self.stage, self.ctx, lambda: result.append(self.handle(raws)), stopping
        ):
            return False, None
        return True, result[0]

    def _finish(
        self, inflight: tuple[list[RawRecord], Finish], source: BatchSource, stopping: threading.Event
    ) -> bool:
        """Wait for the batch's outputs, then store its offsets; a lost delivery redoes the batch synchronously."""
        raws, finish = inflight
        steps = [finish]

        def attempt() -> None:
            if not steps:  # the first finish failed: handle the batch again and wait for it at once
                again = self.handle(raws)
                if again is not None:
                    steps.append(again)
            if steps:
                steps.pop()()

        if not handle_batch_blocking(self.stage, self.ctx, attempt, stopping):
            return False
        source.done(raws)
        return True

    def thread(self, stopping: threading.Event) -> threading.Thread:
        return threading.Thread(target=self.run, args=(stopping,), name=f"{self.stage}-batches", daemon=True)
