"""The batch thread: one stage's input read with :class:`~streams.runtime.BatchSource` instead of a Faust agent.

Used by processes that run ``score`` alone and by those that run ``train`` alone: Faust's per-message consume path
cost more CPU per event than scoring or learning it (BENCHMARKS.md). The contract is the agents' one: a batch's
outputs are acknowledged by the broker before its offsets are stored, a failing batch is retried with backoff
(never skipped), and a loop that breaks stops the whole process so its partitions move on and a supervisor
restarts it.

Poison records: a batch is retried only for failures that retrying can cure (:func:`transient`: the broker, Redis,
the file system). Any other failure of a whole batch (a record that makes a stage raise RecursionError, MemoryError,
a ValueError from a command's arguments...) would fail again on every retry and stall the partition for good, so the
batch is redone one record at a time (:func:`one_by_one`): a record that fails alone is dead-lettered with the
reason and the others are processed.

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

import redis
from confluent_kafka import KafkaException

from connectors.batch_source import BatchSource, RawRecord
from connectors.producer import DeliveryError
from driftline.errors import StackError
from streams.runtime import WorkerContext

log = logging.getLogger(__name__)

RETRY_MAX_S = 10.0

# Redis replies that say "not now" rather than "not this": the server is loading, busy, out of memory or a replica.
_REDIS_BUSY = (
    "LOADING", "BUSY", "OOM", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF", "NOSCRIPT",
)  # fmt: skip
_REDIS_NOT_NOW = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.NoScriptError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ExecAbortError,
    redis.exceptions.NoPermissionError,  # an ACL being fixed by an operator
)


def transient(exc: BaseException) -> bool:
    """True if ``exc`` is an infrastructure failure that the same batch may get past by retrying: Kafka (a lost
    delivery, an unreachable broker), Redis (connection, timeout, loading or out of memory), the file system. A
    failure caused by the records themselves (anything else) is not: retrying it would stall the partition.
    ``StackError`` (Kafka or Redis unreachable, as the connectors report it) and anything raised from one of these
    count as infrastructure too.

    >>> transient(DeliveryError("1 record(s) were not delivered")), transient(RecursionError("deep"))
    (True, False)
    """
    seen = 0
    # An error raised from another (``raise ... from``) counts as its cause too: JoinStore wraps Redis errors.
    while exc is not None and seen < 8:
        if isinstance(exc, redis.ResponseError):
            # redis-py strips the code it maps to a class ("OOM ..." becomes OutOfMemoryError("command not allowed"))
            if isinstance(exc, _REDIS_NOT_NOW) or str(exc).split(" ", 1)[0].upper() in _REDIS_BUSY:
                return True
        elif isinstance(exc, DeliveryError | KafkaException | redis.RedisError | OSError | StackError):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
        seen += 1
    return False


def _retry(stage: str, ctx: WorkerContext, what: str, exc: BaseException, delay: float) -> None:
    ctx.metrics.events.labels(stage=stage, outcome="retry").inc()
    log.error("%s: %s failed, retrying in %.1f s: %s: %s", stage, what, delay, type(exc).__name__, exc)


def handle_batch_blocking(
    stage: str,
    ctx: WorkerContext,
    body: Callable[[], None],
    stopping: threading.Event,
    fallback: Callable[[], bool] | None = None,
) -> bool:
    """Run ``body`` until it succeeds: True once it did, False if stopped before it did.

    With ``fallback``, a failure that is not :func:`transient` is not retried: ``fallback()`` runs instead (the
    batch one record at a time) and its result is returned.
    """
    delay = 0.2
    while True:
        try:
            body()
            return True
        except Exception as exc:
            if fallback is not None and not transient(exc):
                log.error(
                    "%s: batch failed (%s: %s), not an infrastructure error: redoing it one record at a time",
                    stage,
                    type(exc).__name__,
                    exc,
                )
                return fallback()
            _retry(stage, ctx, "batch", exc, delay)
            if stopping.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)


def one_by_one(
    stage: str,
    ctx: WorkerContext,
    raws: list[RawRecord],
    run: Callable[[list[RawRecord]], None],
    stopping: threading.Event,
) -> bool:
    """Process ``raws`` one record at a time with ``run([raw])`` (which must wait for its outputs): a record that
    fails with anything but a :func:`transient` error is dead-lettered with the reason (its delivery waited for)
    and the rest go on; transient errors are retried. True once every record is processed or dead-lettered, False
    if stopped first."""
    for raw in raws:
        failure: list[BaseException] = []
        delay = 0.2
        while True:
            try:
                if failure:
                    with ctx.out.tracking() as deliveries:
                        ctx.deadletter(stage, raw, _reason(stage, failure[0]))
                    ctx.out.wait(deliveries, 60)
                else:
                    run([raw])
                break
            except Exception as exc:
                if not transient(exc):
                    if failure:  # even the dead-letter copy cannot be encoded: say so loudly, never stall
                        log.error(
                            "%s: %s[%d]@%d could not be dead-lettered: %s",
                            stage,
                            raw.topic,
                            raw.partition,
                            raw.offset,
                            exc,
                        )
                        ctx.metrics.events.labels(stage=stage, outcome="lost").inc()
                        break
                    failure.append(exc)
                    continue
                _retry(stage, ctx, f"record {raw.topic}[{raw.partition}]@{raw.offset}", exc, delay)
                if stopping.wait(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)
    return True


def _reason(stage: str, exc: BaseException) -> str:
    return f"{stage} failed on this record: {type(exc).__name__}: {str(exc)[:1500]}"


def finishing(
    handle: Callable[[list[RawRecord]], Callable[[], None] | None],
) -> Callable[[list[RawRecord]], None]:
    """``handle`` as a synchronous step: its finish step (if any) run at once, for :func:`one_by_one`."""

    def run(raws: list[RawRecord]) -> None:
        finish = handle(raws)
        if finish is not None:
            finish()

    return run


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
                on_restart=ctx.metrics.consumer_restarts.labels(group=self.group).inc,
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
        poisoned = False
        try:
            result.append(self.handle(raws))
        except Exception as exc:
            poisoned = not transient(exc)
            log.error("%s: batch failed (%s: %s)", self.stage, type(exc).__name__, exc)
            self.ctx.metrics.events.labels(stage=self.stage, outcome="retry").inc()
        if inflight is not None and not self._finish(inflight, source, stopping):
            return False, None
        if poisoned:  # retrying the batch would fail again: one record at a time, dead-lettering what fails
            return self._one_by_one(raws, stopping), None

        def record_by_record() -> bool:
            done = self._one_by_one(raws, stopping)
            if done:
                result.append(None)
            return done

        if not result and not handle_batch_blocking(
            self.stage, self.ctx, lambda: result.append(self.handle(raws)), stopping, record_by_record
        ):
            return False, None
        return True, result[0]

    def _one_by_one(self, raws: list[RawRecord], stopping: threading.Event) -> bool:
        return one_by_one(self.stage, self.ctx, raws, finishing(self.handle), stopping)

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

        if not handle_batch_blocking(
            self.stage, self.ctx, attempt, stopping, lambda: self._one_by_one(raws, stopping)
        ):
            return False
        source.done(raws)
        return True

    def thread(self, stopping: threading.Event) -> threading.Thread:
        return threading.Thread(target=self.run, args=(stopping,), name=f"{self.stage}-batches", daemon=True)
