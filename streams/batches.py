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
follow them: the scorer's join contexts to Redis). Finish steps run in a thread of their own, in order, while the
batch thread goes on with the next batches (up to ``MAX_INFLIGHT_RECORDS`` input records in flight), so neither a
round trip to the broker nor one to Redis holds up scoring. Offsets are still stored by the batch thread, in order, and
only once a batch's finish succeeded. A finish that fails redoes that batch on the batch thread before anything
later is acknowledged, and the finish steps behind it wait until it is redone: the whole batch if an output was lost,
only the finish step if its outputs were acknowledged and what failed came after them (Redis).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import redis
from confluent_kafka import KafkaException

from connectors.batch_source import BatchSource, RawRecord
from connectors.producer import DeliveryError
from driftline.errors import StackError
from streams.finisher import Abandoned, Finish, Finisher, PipelinedFinish
from streams.runtime import WorkerContext
from streams.serving import scorer_id

log = logging.getLogger(__name__)

RETRY_MAX_S = 10.0
RETRY_FIRST_S = 0.2  # the first wait before a retry, doubled after each failure up to RETRY_MAX_S

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
    waiting: Callable[[], object] | None = None,
) -> bool:
    """Run ``body`` until it succeeds: True once it did, False if stopped before it did.

    With ``fallback``, a failure that is not :func:`transient` is not retried: ``fallback()`` runs instead (the
    batch one record at a time) and its result is returned. ``waiting()`` (if given) runs before every wait for a
    retry: the batch loop refreshes its lag gauge there, so a stalled partition shows on /metrics.
    """
    delay = RETRY_FIRST_S
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
            if waiting is not None:
                waiting()
            if stopping.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S)


def one_by_one(
    stage: str,
    ctx: WorkerContext,
    raws: list[RawRecord],
    run: Callable[[list[RawRecord]], None],
    stopping: threading.Event,
    waiting: Callable[[], object] | None = None,
) -> bool:
    """Process ``raws`` one record at a time with ``run([raw])`` (which must wait for its outputs): a record that
    fails with anything but a :func:`transient` error is dead-lettered with the reason (its delivery waited for)
    and the rest go on; transient errors are retried (``waiting()`` before each wait, as in
    :func:`handle_batch_blocking`). True once every record is processed or dead-lettered, False if stopped first."""
    for raw in raws:
        failure: list[BaseException] = []
        delay = RETRY_FIRST_S
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
                if waiting is not None:
                    waiting()
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


# Input records whose batches' finish steps may be queued or running at once. More lets the batch thread ride out a
# slow acknowledgement or Redis call for longer; each record (and its outputs) is held until its batch is finished.
# 32 full batches, as the bound in batches was. Why records: at half the maximum rate a batch is 10-40 records, and
# 32 batches in flight were 60-130 ms of input: one slow finish pass (an acknowledgement or a Redis call of
# 80-290 ms on a busy machine) filled the pipeline and held the batch thread, with the events behind it waiting
# (session 22, BENCHMARKS.md). Bounded in records, the same memory rides out several times as long.
MAX_INFLIGHT_RECORDS = 16_000
# And in batches (each holds a future and its delivery trackers): far above what the records allow at any rate
# where a finish could fall behind.
MAX_INFLIGHT = 512
# The score worker's young-generation threshold while its batch loop runs (see :func:`young_collections`).
SCORE_GC_YOUNG = 10_000
# How long a poll waits for input while batches are in flight: it returns as soon as a record arrives, and the
# finished batches' offsets are stored between polls.
INFLIGHT_POLL_S = 0.002


@dataclass
class _Inflight:
    """A handled batch whose offsets wait for its finish step (``None``: nothing to wait for)."""

    raws: list[RawRecord]
    future: Future[None] | None
    finish: Finish | None = None


class _Pipeline:
    """The batches in flight, oldest first, and how many input records they hold (counted as batches come and go,
    so the bound in records is checked without walking the batches at every poll)."""

    def __init__(self) -> None:
        self._entries: deque[_Inflight] = deque()
        self.records = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> _Inflight:
        return self._entries[index]

    def append(self, entry: _Inflight) -> None:
        self._entries.append(entry)
        self.records += len(entry.raws)

    def popleft(self) -> _Inflight:
        entry = self._entries.popleft()
        self.records -= len(entry.raws)
        return entry


def _failed(entry: _Inflight | None) -> bool:
    future = None if entry is None else entry.future
    return future is not None and future.done() and future.exception() is not None


def young_collections(threshold: int) -> Callable[[], None]:
    """Freeze what is alive now and collect the young generation every ``threshold`` allocations instead of 700;
    returns the call that puts the threshold back (if no one changed it meanwhile).

    Why, for the score worker: a batch's decoded events, Predictions and join contexts stay alive until its finish
    step has run (tens of milliseconds, up to ``MAX_INFLIGHT_RECORDS`` records), so with a young collection every
    700 allocations they were walked again and again and promoted to the oldest generation, whose full collections
    then came every second or so. In an 8 s latency phase at 12,000 events/s: 1,160-1,200 young, 105-108 middle
    and 10-11 full collections on the batch thread, 0.9-1.2 s of its wall time, full ones of up to 88-132 ms
    (session 22, BENCHMARKS.md); at 10,000: 19-21, 2 and none. Frozen (modules, clients, the app) is never walked
    again; models loaded later are frozen by ``collector_paused``. Cycles still wait at most ``threshold``
    allocations, as in the train worker (``streams.trainers.GC_YOUNG``).
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, *before[1:])

    def restore() -> None:
        if gc.get_threshold()[0] == threshold:
            gc.set_threshold(*before)

    return restore


@dataclass
class BatchLoop:
    """What one batch thread reads and does.

    ``handle(raws)`` processes a batch and either has its outputs acknowledged before returning ``None``, or
    returns the *finish* step that waits for them (see the module docstring); ``idle()`` runs when a poll
    returned nothing;
    ``ready`` (if given) holds the assigned partitions paused until it is set, and ``gate()`` (if given) is called
    before every poll so the owner can set it.

    Finish steps run in a thread of their own (:class:`~streams.finisher.Finisher`), so the batch thread goes on
    polling and handling while a batch's outputs travel to the broker and its joins go to Redis: a slow
    acknowledgement or Redis call no longer holds up the next batch (it did, and set the feature -> prediction p99).
    Offsets are still stored by the batch thread, in batch order, and only for batches whose finish succeeded.
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
    max_inflight: int = MAX_INFLIGHT
    max_inflight_records: int = MAX_INFLIGHT_RECORDS
    # The cyclic collector while this loop runs (None: left as it is); see :func:`young_collections`.
    gc_young: int | None = None
    # Refreshes the lag gauge from the broker while a batch is retried (set by :meth:`run` once its source exists).
    _lag_now: Callable[[], None] | None = field(default=None, init=False, repr=False)

    def run(self, stopping: threading.Event) -> None:
        ctx = self.ctx
        source: BatchSource | None = None
        finisher = Finisher(self.stage)
        next_lag = 0.0
        inflight = _Pipeline()
        batch_thread = threading.get_ident()
        running: list[BatchSource] = []  # the source, while the loop runs (not while it closes)
        restore_gc: list[Callable[[], None]] = []

        def drain_before_revoke() -> None:
            # Partitions are about to move (a rebalance, inside this thread's poll): finish the batches in flight
            # first, so their offsets are committed with the revocation instead of their batches being redone by
            # the new owner. Not from a closer thread (a watchdog restart) and not once the loop is closing.
            if running and inflight and threading.get_ident() == batch_thread:
                try:
                    self._collect(inflight, running[0], finisher, stopping, wait=len(inflight))
                except Exception as exc:  # never fail the rebalance: the batches are redone instead
                    log.warning("%s: batches in flight not finished before a rebalance: %s", self.stage, exc)

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
                on_revoke=drain_before_revoke,
                batch=self.batch,  # the prefetch bounded to a few batches (connectors.batch_source)
                # Named as the trainers name themselves (and as the scorers report in Redis): each member of the
                # group is told apart in ``status``, e.g. ``driftline-score-host-4242``.
                client_id=f"{ctx.settings.kafka.client_id}-{self.stage}-{scorer_id()}",
            )
            running.append(source)
            # A batch retried blocks this thread (it does not poll): the lag gauge is refreshed from the broker's
            # ends at every retry, counted from the first offset not handled, so the stall shows (hostile40).
            lag_source = source
            self._lag_now = lambda: ctx.metrics.set_consumer_lag(self.group, lag_source.lags(fresh=True))
            if self.gc_young is not None:
                restore_gc.append(young_collections(self.gc_young))
            while not stopping.is_set():
                if self.gate is not None:
                    self.gate()
                if not self._collect(inflight, source, finisher, stopping, wait=0):
                    break
                raws = source.poll(self.batch, INFLIGHT_POLL_S if inflight else self.within)
                if raws:
                    # A full pipeline: wait for the oldest batches before taking on another.
                    if not self._room(inflight, len(raws), source, finisher, stopping):
                        break
                    handled, finish = self._start(raws, stopping)
                    if not handled:
                        break  # stopping with the batch not handled: its offsets stay uncommitted
                    if finish is not None:
                        inflight.append(_Inflight(raws, finisher.submit(finish), finish))
                    elif inflight:
                        inflight.append(_Inflight(raws, None))  # its offsets after the earlier batches'
                    else:
                        source.done(raws)
                elif not inflight and self.idle is not None:
                    self.idle()
                if time.monotonic() >= next_lag:
                    ctx.metrics.set_consumer_lag(self.group, source.lags())
                    next_lag = time.monotonic() + 5.0
            if inflight:
                # Stopping: the batches' outputs were produced; acknowledge their input once they are delivered.
                self._collect(inflight, source, finisher, stopping, wait=len(inflight))
        except Exception:
            # Never a silent half-dead worker: stop the process so its partitions move and it gets restarted.
            log.exception("%s batch loop failed; stopping the worker", self.stage)
            ctx.metrics.set_worker_up(self.stage, False)
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            for restore in restore_gc:
                restore()
            running.clear()
            finisher.close()
            if source is not None:
                source.close()

    def _room(
        self,
        inflight: _Pipeline,
        incoming: int,
        source: BatchSource,
        finisher: Finisher,
        stopping: threading.Event,
    ) -> bool:
        """Wait for the oldest batches in flight until ``incoming`` more records fit the bounds (in batches and in
        records; a batch larger than the record bound waits for every earlier one). False if stopped first."""
        while inflight and (
            len(inflight) >= self.max_inflight or inflight.records + incoming > self.max_inflight_records
        ):
            if not self._collect(inflight, source, finisher, stopping, wait=1):
                return False
        return True

    def _start(self, raws: list[RawRecord], stopping: threading.Event) -> tuple[bool, Finish | None]:
        """Handle ``raws``: (handled, the batch's finish step or None); handled is False only when stopped
        first. A failure is retried (transient) or the batch redone one record at a time (anything else)."""
        result: list[Finish | None] = []
        try:
            result.append(self.handle(raws))
        except Exception as exc:
            log.error("%s: batch failed (%s: %s)", self.stage, type(exc).__name__, exc)
            self.ctx.metrics.events.labels(stage=self.stage, outcome="retry").inc()
            if not transient(exc):  # retrying the batch would fail again: one record at a time
                return self._one_by_one(raws, stopping), None

        def record_by_record() -> bool:
            done = self._one_by_one(raws, stopping)
            if done:
                result.append(None)
            return done

        if not result and not handle_batch_blocking(
            self.stage,
            self.ctx,
            lambda: result.append(self.handle(raws)),
            stopping,
            record_by_record,
            self._refresh_lag,
        ):
            return False, None
        return True, result[0]

    def _one_by_one(self, raws: list[RawRecord], stopping: threading.Event) -> bool:
        return one_by_one(self.stage, self.ctx, raws, finishing(self.handle), stopping, self._refresh_lag)

    def _refresh_lag(self) -> None:
        if self._lag_now is None:
            return
        try:
            self._lag_now()
        except Exception as exc:  # a metric never stops a retry
            log.debug("%s: lag not refreshed during a retry: %s", self.stage, exc)

    def _collect(
        self,
        inflight: _Pipeline,
        source: BatchSource,
        finisher: Finisher,
        stopping: threading.Event,
        wait: int,
    ) -> bool:
        """Store the offsets of the finished batches at the front, in order, waiting for the first ``wait`` of
        them; a batch whose finish failed is redone first. False if stopped before a failed batch was redone."""
        while inflight:
            head = inflight[0]
            if head.future is not None:
                if not head.future.done() and wait <= 0:
                    return True
                error = head.future.exception()  # waits for it
                if error is not None and not self._redo(head.raws, error, stopping, head.finish):
                    return False
                if error is not None and not _failed(inflight[1] if len(inflight) > 1 else None):
                    finisher.resume()  # every failed batch of that pass is redone: the later steps may run
            source.done(head.raws)
            inflight.popleft()
            wait -= 1
        return True

    def _redo(
        self,
        raws: list[RawRecord],
        error: BaseException,
        stopping: threading.Event,
        finish: Finish | None = None,
    ) -> bool:
        """A batch whose finish failed: do it again here, before anything later is acknowledged; a failure that
        retrying cannot cure goes one record at a time.

        Again means: if the batch's outputs were all acknowledged before the failure (a
        :class:`~streams.finisher.PipelinedFinish` failing after them, at Redis), only the finish step runs again
        (the scorer's join contexts and parked labels, idempotent for the batch's records; past them, only
        ``mark_joined``: streams/finisher.py); else (a delivery lost)
        the batch is handled again. Handling it again at every retry published its outputs again each time: a
        ~40 s Redis outage gave a consumer of ``predictions`` 3,958 duplicates of 1,000 events (arch41)."""
        if not isinstance(error, Exception) or isinstance(error, Abandoned):
            return False
        if not transient(error):
            log.error(
                "%s: batch failed (%s: %s), not an infrastructure error: redoing it one record at a time",
                self.stage,
                type(error).__name__,
                error,
            )
            return self._one_by_one(raws, stopping)
        _retry(self.stage, self.ctx, "batch", error, 0.2)
        if stopping.wait(0.2):
            return False
        again: Callable[[], None]
        if isinstance(finish, PipelinedFinish) and finish.delivered:
            again = finish
        else:
            again = lambda: finishing(self.handle)(raws)  # noqa: E731
        return handle_batch_blocking(
            self.stage,
            self.ctx,
            again,
            stopping,
            lambda: self._one_by_one(raws, stopping),
            self._refresh_lag,
        )

    def thread(self, stopping: threading.Event) -> threading.Thread:
        return threading.Thread(target=self.run, args=(stopping,), name=f"{self.stage}-batches", daemon=True)
