"""The batch consumer every high-rate stage reads with: :class:`BatchSource` (one confluent-kafka consumer in a
group, batches out, offsets stored only when the caller says a batch is handled) and its :class:`GroupWatchdog`
(also used by the trainer group's own consumer), plus :class:`RawRecord`, one input message as it came.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RawRecord:
    """One input message as it came (bytes untouched, so it can be dead-lettered as it came)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0


class BatchSource:
    """A stage's input as batches from one confluent-kafka consumer in consumer group ``group``.

    Why not a Faust stream here: Faust hands every message from its aiokafka thread through the conductor with a
    future per message, which cost about 115 us of CPU per event on the bench machine (as much as scoring it);
    ``consume()`` hands over a whole batch from librdkafka's C buffers (see BENCHMARKS.md). At-least-once stays
    as it was: :meth:`done` stores a batch's offsets only after the caller flushed the batch's outputs, and
    librdkafka commits stored offsets every second, on a rebalance and on :meth:`close`. Rebalance callbacks run
    inside :meth:`poll`, between batches, so a partition is never revoked with an unflushed batch.

    A watchdog recreates the consumer when it stays out of its group (or stops fetching partitions that have
    unread messages) for ``stuck_after_s`` seconds of polling, 2x the session timeout by default. Why: after a
    frozen broker (SIGSTOP 30 s in the fault suite) librdkafka drops the coordinator's broker handle ("Group
    coordinator decommissioned") and has to find the coordinator again; it did in every run seen here, but
    coordinator rediscovery after a decommission has open bugs (librdkafka #5511), and a consumer stuck out of
    its group would otherwise wait with no assignment and no error until someone restarts it. The health signal
    is librdkafka's own statistics (``cgrp.join_state``), so a member that legitimately owns no partition (more
    workers than partitions) is healthy and never restarted. Time the caller spends between polls (handling a
    batch) does not count: a slow batch is the group protocol's business (``max.poll.interval.ms``).
    """

    def __init__(
        self,
        settings: Settings,
        group: str,
        topic: str,
        *,
        session_timeout_s: float | None = None,
        heartbeat_s: float | None = None,
        max_poll_interval_s: float | None = None,
        ready: threading.Event | None = None,
        on_restart: Callable[[], None] | None = None,
        stuck_after_s: float | None = None,
        on_revoke: Callable[[], None] | None = None,
        batch: int | None = None,
        client_id: str | None = None,
    ) -> None:
        extra: dict[str, Any] = {
            "group.id": group,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
        }
        if batch is not None:
            extra.update(prefetch_config(batch))
        if client_id is not None:
            # The member's name in the group (``status`` lists each member with its partitions), so several
            # workers of one group can be told apart and matched with their processes.
            extra["client.id"] = client_id
        for key, seconds in (
            ("session.timeout.ms", session_timeout_s),
            ("heartbeat.interval.ms", heartbeat_s),
            ("max.poll.interval.ms", max_poll_interval_s),
        ):
            if seconds:
                extra[key] = int(seconds * 1000)
        self.group = group
        self.topic = topic
        self.watchdog = GroupWatchdog(
            (topic,), stuck_after_s or 2 * (session_timeout_s or LIBRDKAFKA_SESSION_TIMEOUT_S)
        )
        self._conf = self.watchdog.configure(client_config(settings, logger=LIBRDKAFKA_LOG, **extra))
        self._on_restart = on_restart  # e.g. count it in driftline_consumer_restarts_total
        # Called inside poll() just before partitions are taken away (a rebalance): offsets stored by then are
        # committed with the revocation (auto commit), so batches finished here are not redone by the new owner.
        self._on_revoke = on_revoke
        self.restarts = 0
        # Join the group at once (a new scorer takes its share promptly), but hold assigned partitions paused
        # until ``ready`` (the first model loaded), so early events are not answered by "no model".
        self._ready = ready
        self._held = False
        # The next offset of every partition whose batches this process handled (outputs acknowledged), kept
        # across rebalances and consumer restarts: see :meth:`_resume_handled`.
        self._handled: dict[int, int] = {}
        # The first offset not yet handled of every owned partition that this consumer read from since it was
        # assigned (set by the first record read, moved by :meth:`done`): the lag is counted from it, not from
        # the read position, which prefetch moves past a batch still being retried (see :meth:`lags`).
        self._unhandled: dict[int, int] = {}
        self._consumer = self._subscribe()

    def _subscribe(self) -> Consumer:
        consumer = Consumer(self._conf)
        self._held = False
        self._unhandled.clear()
        self.watchdog.reset()
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._revoked)
        return consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._unhandled.pop(tp.partition, None)
        resumed = self._resume_handled(consumer, partitions)
        consumer.assign(partitions)
        if resumed:
            try:  # committed with the next auto commit, even if no new record comes on these partitions
                consumer.store_offsets(offsets=resumed)
            except KafkaException as exc:
                log.warning("%s: offsets of handled batches not stored again: %s", self.topic, exc)
        if self._ready is None:
            return
        if not self._ready.is_set():
            consumer.pause(partitions)
            self._held = True
        else:
            # librdkafka keeps a partition's pause flag across a rebalance (librdkafka #1849): a partition paused
            # while held, revoked before ``ready`` and assigned again would stay paused for good. This happened
            # in the fault suite: a broker frozen while the scorer waited for its first model (a resume no-op).
            consumer.resume(partitions)

    def _resume_handled(self, consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Start each assigned partition after the batches this process already handled there when the group's
        committed offset is behind them; the partitions so set (``partitions`` is changed in place).

        Why: after a broker kill the consumers lost their group coordinator for ~30 s (``wait-unassign-call``)
        while they went on fetching and scoring; the auto commits of those batches failed, the watchdog
        recreated the consumer, and the new one read everything since the last commit again (chaos32 seed 11:
        11,357 duplicate predictions in 20,000 events). A handled batch's outputs were acknowledged, so starting
        after it skips nothing unanswered. A committed offset ahead of ours (another member handled more since)
        wins; when it cannot be read the partition starts from the committed offset, as before (duplicates at
        worst, never a loss)."""
        mine = [tp for tp in partitions if tp.topic == self.topic and tp.partition in self._handled]
        if not mine:
            return []
        try:
            committed = {
                tp.partition: tp.offset
                for tp in consumer.committed([TopicPartition(self.topic, tp.partition) for tp in mine], 10)
            }
        except KafkaException as exc:
            log.warning(
                "%s: committed offsets unknown (%s): handled batches may be read again", self.topic, exc
            )
            return []
        resumed = []
        for tp in mine:
            handled = self._handled[tp.partition]
            if handled > committed.get(tp.partition, -1):
                tp.offset = handled
                resumed.append(TopicPartition(self.topic, tp.partition, handled))
        if resumed:
            log.warning(  # rare (after commits that failed), and it explains a duplicate count that stays low
                "%s: %d partition(s) start after the batches handled here but not committed: %s",
                self.topic,
                len(resumed),
                ", ".join(f"{tp.partition}@{tp.offset}" for tp in resumed),
            )
        return resumed

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # confluent-kafka unassigns them after this returns (it does when the callback does not).
        if self._on_revoke is not None:
            self._on_revoke()
        for tp in partitions:
            self._unhandled.pop(tp.partition, None)

    def poll(self, max_records: int, timeout: float) -> list[RawRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first.

        Whatever is already fetched is returned at once: ``consume(n, t)`` alone would hold a half-full batch
        for the whole timeout, adding up to ``timeout`` of latency to every event at moderate rates. Batches
        still grow by themselves under load (records pile up while the previous batch is handled).
        """
        started = time.monotonic()
        if self._held and self._ready is not None and self._ready.is_set():
            self._consumer.resume(self._consumer.assignment())
            self._held = False
        consume = self._consumer.consume
        messages = consume(max_records, 0)
        if not messages:
            messages = consume(1, timeout)
            if messages and max_records > 1:
                messages += consume(max_records - 1, 0)
        out = []
        unhandled = self._unhandled
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("%s: consumer error: %s", self.topic, err)
                continue
            kind, ts = m.timestamp()
            if m.partition() not in unhandled:
                unhandled[m.partition() or 0] = m.offset() or 0
            out.append(
                RawRecord(
                    self.topic,
                    m.partition() or 0,
                    m.offset() or 0,
                    m.key(),
                    m.value() or b"",
                    0 if kind == TIMESTAMP_NOT_AVAILABLE else ts,
                )
            )
        self._watch(bool(out), time.monotonic() - started)
        return out

    def _watch(self, got_records: bool, polled_s: float) -> None:
        """Count polling time without progress; recreate the consumer past the watchdog's limit."""
        state = self.watchdog.stuck(got_records, polled_s, check_lag=not self._held)
        if state is None:
            return
        log.warning(
            "%s: consumer of group %s made no progress for %.0f s of polling (%s): recreating it "
            "(offsets of handled batches were stored; anything not committed is read again, never skipped)",
            self.topic,
            self.group,
            self.watchdog.stuck_s,
            state,
        )
        self._restart()

    def _restart(self) -> None:
        close_in_background(self._consumer, self.topic)
        self._consumer = self._subscribe()
        self.restarts += 1
        if self._on_restart is not None:
            self._on_restart()

    def done(self, raws: Sequence[RawRecord]) -> None:
        """Mark ``raws`` handled (call only once their outputs are flushed); committed within a second."""
        last: dict[int, int] = {}
        for r in raws:
            if r.offset > last.get(r.partition, -1):
                last[r.partition] = r.offset
        handled, unhandled = self._handled, self._unhandled
        for p, o in last.items():
            if o + 1 > handled.get(p, -1):
                handled[p] = o + 1
            if p in unhandled and o + 1 > unhandled[p]:  # not a partition revoked meanwhile
                unhandled[p] = o + 1
        try:
            self._consumer.store_offsets(
                offsets=[TopicPartition(self.topic, p, o + 1) for p, o in last.items()]
            )
        except KafkaException as exc:
            # Revoked while the batch ran (this process stalled past the session timeout): the partition's new
            # owner starts from the last commit and redoes the batch: a duplicate, never a loss.
            log.warning("%s: offsets not stored (partition moved to another worker): %s", self.topic, exc)

    def lags(self, *, fresh: bool = False) -> dict[tuple[str, int], int]:
        """Messages not yet handled, per owned partition: from the first offset not handled (the committed offset
        once stored offsets are committed, within a second) to the partition's end.

        Why not from the read position: prefetch reads ahead of a batch that is being retried, so a stalled
        partition showed no lag at all (hostile40, finding 5: 0 for 2 minutes with 50+ events unanswered).
        ``fresh``: ask the broker for the ends (a round trip per partition, for a refresh during a retry, when
        this consumer is not polling and librdkafka's cached ends stop moving once the prefetch is full)."""
        topic = self.topic
        return consumer_lags(self._consumer, {(topic, p): o for p, o in self._unhandled.items()}, fresh=fresh)

    def close(self) -> None:
        """Commit what was stored and leave the group (its partitions move to the other workers at once)."""
        self._consumer.close()


# How many batches of input the consumer fetches ahead of the batch loop (librdkafka's local queue, see
# :func:`prefetch_config`).
PREFETCH_BATCHES = 8
# A generous record size for the prefetch's byte bound: a FeatureEvent of 20 numeric features is ~290 bytes in Avro
# and ~600 in JSON, so for such records the bound in records is the one that applies.
PREFETCH_RECORD_BYTES = 1024
# How long librdkafka waits before it fetches again once the prefetch bound was reached (its default is 1 s).
PREFETCH_BACKOFF_MS = 10


def prefetch_config(batch: int) -> dict[str, int]:
    """librdkafka settings that bound a consumer's prefetch to ``PREFETCH_BATCHES`` batches of ``batch`` records.

    Why: librdkafka fetches ahead into a local queue of up to ``queued.min.messages`` (100,000) records or
    ``queued.max.messages.kbytes`` (64 MB) by default. Whenever a producer ran ahead of the score worker the queue
    filled (52,000-78,000 records, 15-22 MB of payload in a 1M-event soak of the tree, librdkafka's statistics),
    and the memory it took stayed with the process: the worker's RSS rose with the deepest backlog seen so far
    (BENCHMARKS.md, sessions 22 and 23). Eight batches (4,000 records at the default batch of 500) are still
    80 ms of input at 50,000 events/s, and librdkafka tops the queue up after ``PREFETCH_BACKOFF_MS`` instead of
    its default second (``fetch.queue.backoff.ms``), so the batch loop is not starved. The byte bound
    (``PREFETCH_RECORD_BYTES`` per record, at least 1 MB) applies only to large records; a fetch response may
    overshoot either bound by up to ``fetch.message.max.bytes`` per partition (librdkafka's documentation).

    >>> prefetch_config(500)
    {'queued.min.messages': 4000, 'queued.max.messages.kbytes': 4000, 'fetch.queue.backoff.ms': 10}
    """
    records = PREFETCH_BATCHES * max(1, batch)
    return {
        "queued.min.messages": records,
        "queued.max.messages.kbytes": max(1024, records * PREFETCH_RECORD_BYTES // 1024),
        "fetch.queue.backoff.ms": PREFETCH_BACKOFF_MS,
    }


# librdkafka's session.timeout.ms default, for the watchdog period when the caller sets none.
LIBRDKAFKA_SESSION_TIMEOUT_S = 45.0
# How long a watchdog restart waits for the stuck consumer's close() before moving on without it.
CLOSE_WAIT_S = 10.0


# How long a fresh end offset (``consumer_lags(fresh=True)``) is waited for, per partition, before the cached one
# is used.
FRESH_END_TIMEOUT_S = 1.0


def consumer_lags(
    consumer: Consumer, unhandled: Mapping[tuple[str, int], int] | None = None, *, fresh: bool = False
) -> dict[tuple[str, int], int]:
    """Messages between the first offset not handled and the partition end, per assigned partition.

    ``unhandled`` ({(topic, partition): first offset not handled}) where the caller knows it (it read from the
    partition); else ``consumer``'s read position, which is where reading started as long as nothing was read.
    The ends are those librdkafka last fetched (no broker round trip) unless ``fresh``: then asked of the broker,
    falling back to the cached ones when it does not answer within ``FRESH_END_TIMEOUT_S``."""
    out: dict[tuple[str, int], int] = {}
    assigned = consumer.assignment()
    if not assigned:
        return out
    unhandled = unhandled or {}
    for tp in consumer.position(assigned):
        start = unhandled.get((tp.topic, tp.partition), tp.offset)
        high = None
        if fresh:
            try:
                _, high = consumer.get_watermark_offsets(tp, timeout=FRESH_END_TIMEOUT_S, cached=False)
            except KafkaException:
                fresh = False  # the broker does not answer: the cached ends for this and the other partitions
        if high is None:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
        if high is not None and high >= 0 and start is not None and start >= 0:
            out[(tp.topic, tp.partition)] = max(0, high - start)
    return out


def _close_quietly(consumer: Consumer, topic: str) -> None:
    try:
        consumer.close()
    except Exception as exc:  # a broken consumer may fail to close; it is being replaced either way
        log.warning("%s: closing the stuck consumer failed: %s", topic, exc)


def close_in_background(consumer: Consumer, topic: str) -> None:
    """Close a stuck consumer, waiting at most ``CLOSE_WAIT_S``: a close that hangs on the broken group must not
    hang the stage, so it is left to finish in the background. (Only offsets of handled batches were stored or
    committed, so close() commits nothing unprocessed.)"""
    closer = threading.Thread(target=_close_quietly, args=(consumer, topic), daemon=True)
    closer.start()
    closer.join(CLOSE_WAIT_S)
    if closer.is_alive():
        log.warning(
            "%s: the old consumer did not close in %.0f s; left to finish in the background",
            topic,
            CLOSE_WAIT_S,
        )


class GroupWatchdog:
    """Counts the time a group consumer spends polling without progress, from librdkafka's own statistics.

    Healthy means: a record arrived, or the latest statistics report (fresh) shows the member in its group with
    a settled assignment (possibly empty) and, if ``check_lag``, nothing unfetched in the assigned partitions of
    ``topics``. :meth:`stuck` says why once ``stuck_after_s`` seconds of unhealthy polling add up; the caller
    recreates its consumer (and calls :meth:`reset`). See :class:`BatchSource` for why this exists.
    """

    def __init__(self, topics: Sequence[str], stuck_after_s: float) -> None:
        self.topics = tuple(topics)
        self.stuck_after_s = stuck_after_s
        # Four looks at the group state per watchdog period, at most one a second (a stats report is ~2 KB JSON).
        self.stats_ms = int(min(max(stuck_after_s / 4, 1.0), 10.0) * 1000)
        # A report older than this means librdkafka's main thread stopped reporting: not healthy either.
        self._fresh_s = 3 * self.stats_ms / 1000
        self.reset()

    def configure(self, conf: dict[str, Any]) -> dict[str, Any]:
        """``conf`` (a librdkafka config, already through ``client_config``) with statistics reported here."""
        conf["statistics.interval.ms"] = self.stats_ms
        conf["stats_cb"] = self.on_stats  # set after client_config, which would turn "_" into "."
        return conf

    def reset(self) -> None:
        """A new consumer: nothing known about it yet."""
        self._health: _GroupHealth | None = None  # from the latest statistics report
        self.stuck_s = 0.0  # seconds spent polling since the consumer last looked healthy

    def on_stats(self, report: str) -> None:
        # Runs inside consume(), in the polling thread: no lock needed. A format change must never stop polling.
        try:
            self._health = _GroupHealth.parse(json.loads(report), self.topics)
        except (ValueError, TypeError, AttributeError) as exc:
            log.debug("%s: unreadable librdkafka statistics: %s", self.topics, exc)

    def stuck(self, got_records: bool, polled_s: float, *, check_lag: bool = True) -> str | None:
        """After a poll that took ``polled_s``: None while healthy (or not unhealthy for long enough), else the
        group state to report."""
        health = self._health
        fresh = health is not None and time.monotonic() - health.at <= self._fresh_s
        if got_records or (fresh and health is not None and health.ok(check_lag=check_lag)):
            self.stuck_s = 0.0
            return None
        self.stuck_s += polled_s
        if self.stuck_s < self.stuck_after_s:
            return None
        return health.describe() if fresh and health is not None else "no statistics from librdkafka"


@dataclass(frozen=True)
class _GroupHealth:
    """What one librdkafka statistics report says about the group membership and fetching of ``topic``."""

    at: float  # time.monotonic() when the report arrived
    state: str  # cgrp.state: "up" once the coordinator is known and connected
    join_state: str  # cgrp.join_state: "steady" once the assignment is settled (possibly empty)
    unread: int  # messages in assigned, actively fetched partitions that are not fetched yet

    @classmethod
    def parse(cls, stats: dict[str, Any], topics: Sequence[str]) -> _GroupHealth:
        cgrp = stats.get("cgrp") or {}
        unread = 0
        every = stats.get("topics") or {}
        partitions = [p for topic in topics for p in every.get(topic, {}).get("partitions", {}).items()]
        for number, p in partitions:
            if number == "-1" or p.get("fetch_state") != "active":
                continue
            # The fetch position against the last stable offset (the high watermark without transactions): it
            # moves past transaction markers and aborted records, which never reach us as messages.
            position, stable = p.get("next_offset", -1), p.get("ls_offset", -1)
            end = stable if stable >= 0 else p.get("hi_offset", -1)
            if position >= 0 and end > position:
                unread += end - position
        return cls(time.monotonic(), str(cgrp.get("state", "")), str(cgrp.get("join_state", "")), unread)

    def ok(self, *, check_lag: bool = True) -> bool:
        """In the group with a settled assignment and (if ``check_lag``) nothing left unfetched."""
        return self.state == "up" and self.join_state == "steady" and not (check_lag and self.unread > 0)

    def describe(self) -> str:
        return f"group state {self.state or '?'}, join state {self.join_state or '?'}, {self.unread} unread"
