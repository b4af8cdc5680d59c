"""The batch thread: one stage's input read with :class:`~streams.runtime.BatchSource` instead of a Faust agent.

Used by processes that run ``score`` alone and by those that run ``train`` alone: Faust's per-message consume path
cost more CPU per event than scoring or learning it (BENCHMARKS.md). The contract is the agents' one: a batch's
outputs are flushed before its offsets are stored, a failing batch is retried with backoff (never skipped), and a
loop that breaks stops the whole process so its partitions move on and a supervisor restarts it.
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


@dataclass
class BatchLoop:
    """What one batch thread reads and does.

    ``handle(raws)`` processes a batch *and flushes its outputs*; ``idle()`` runs when a poll returned nothing;
    ``ready`` (if given) holds the assigned partitions paused until it is set, and ``gate()`` (if given) is called
    before every poll so the owner can set it.
    """

    ctx: WorkerContext
    stage: str
    topic: str
    group: str
    handle: Callable[[list[RawRecord]], None]
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
            )
            while not stopping.is_set():
                if self.gate is not None:
                    self.gate()
                raws = source.poll(self.batch, self.within)
                if raws:
                    body = _bind(self.handle, raws)
                    if not handle_batch_blocking(self.stage, ctx, body, stopping):
                        break  # stopping with the batch not handled: its offsets stay uncommitted
                    source.done(raws)
                elif self.idle is not None:
                    self.idle()
                if time.monotonic() >= next_lag:
                    ctx.metrics.set_consumer_lag(self.group, source.lags())
                    next_lag = time.monotonic() + 5.0
        except Exception:
            # Never a silent half-dead worker: stop the process so its partitions move and it gets restarted.
            log.exception("%s batch loop failed; stopping the worker", self.stage)
            ctx.metrics.set_worker_up(self.stage, False)
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            if source is not None:
                source.close()

    def thread(self, stopping: threading.Event) -> threading.Thread:
        return threading.Thread(target=self.run, args=(stopping,), name=f"{self.stage}-batches", daemon=True)


def _bind(handle: Callable[[list[RawRecord]], None], raws: list[RawRecord]) -> Callable[[], None]:
    return lambda: handle(raws)
