"""Trainers that shard and fail over: every ``train`` process is one member of the deployment's trainer group.

- ``training``, ``control`` and ``changelog`` are keyed by model name and have the same number of partitions
  (``kafka.training_partitions``). The group (``driftline-<prefix>trainers``) uses the range assignor, so partition
  p of ``training`` and of ``control`` go to the same member: it owns every model whose name hashes to p (one
  writer per model) and receives exactly those models' control commands.
- Each model's trainer state is the latest record under its name on the compacted ``changelog`` topic, sealed with
  the signing key (:func:`streams.train.seal`). Local files are not needed: any member on any machine can go on.
- Exactly-once learning with Kafka transactions (:mod:`streams.trainer_transactions`; when one ends, and what it
  gathers: :mod:`streams.trainer_gather`): per batch, one transaction
  holds the batch's releases, drift events, dead letters and audit entries, the changelog record of every model the
  batch touched, and the input offsets (``send_offsets_to_transaction`` with the consumer's group metadata). A
  read_committed reader sees all of it or none of it. A crash loses the open transaction; the new owner restores
  the committed state and reads from the committed offsets: nothing is learned twice, nothing is skipped, versions
  stay strictly increasing.
- Fencing: the group metadata carries the member's generation. A member that was paused past the session timeout
  (a zombie) is out of the group; its commit is refused by the coordinator, it aborts (its releases are never
  read) and rejoins with fresh state. A transaction left open by a killed member is aborted by the coordinator
  after ``transaction.timeout.ms``; until then a new owner's read of the changelog waits for it.
- After every rebalance a member drops its models and restores those it owns from the changelog, lazily, on their
  first record (the default model and ``routing.models`` at once, so they have a v1 before any label).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from functools import partial
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from connectors.batch_source import GroupWatchdog, close_in_background, consumer_lags
from connectors.changelog import read_changelog
from connectors.consumer import IncompleteRead
from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.redis_store import hset_fields_if_newer, redis_client
from connectors.topics import ensure_topics, partition_for
from driftline.errors import ConfigError, SecurityError
from driftline.settings import Settings
from driftline.util import now_ms
from learners import kernels
from schemas.codec import Codec
from streams.join import owners_key, trainer_group
from streams.metrics import CHANGELOG_REFUSALS, CONTROL_REFUSALS, Metrics
from streams.releases import UNVERIFIED_MODEL, read_checked_releases
from streams.security_log import ThrottledLog
from streams.train import StateRefused, Trainer, seal_header, sealed_by, unseal
from streams.trainer_gather import COMMIT_MAX, GatheringBatches
from streams.trainer_status import (
    CONFIG_DIFFERS_FIX,
    config_differences,
    differences_text,
    learning_config,
    publish_worker_config,
    trainer_configs_key,
    worker_configs,
)
from streams.trainer_transactions import Chunk

log = logging.getLogger(__name__)
security_log = logging.getLogger("driftline.security")

STATUS_EVERY_S = 5.0
# Sealed records of a model kept when its newest state is refused (_newest_loadable): the newest ones that load win;
# a bound on memory (each may be tens of MB) and on restricted loads (~0.5 s per 1.5 MB ARF state).
FALLBACK_RECORDS = 8
# How often a running trainer checks that nobody added partitions to training, control or changelog.
TOPICS_EVERY_S = 30.0
# What to do when partitions were added to the by-model topics (README, Operations).
PARTITIONS_ADDED_FIX = (
    "A model's records and its trainer state are placed by murmur2(model name) modulo the partition count, so "
    "adding partitions moves models away from their state and their owner; the trainers refuse to go on rather "
    "than start second lineages. Kafka cannot take partitions away: to run with more partitions, create a new "
    "topic prefix with kafka.training_partitions set (`driftline topics create`) and start the workers on it "
    "(README, Operations: 'Adding partitions')"
)


def partitions_added(counts: dict[str, int], started: int) -> str:
    """The refusal of a trainer that sees the by-model topics' partition counts change under it."""
    return (
        "partitions were added while the trainers ran: "
        + ", ".join(f"{t} has {n}" for t, n in counts.items())
        + f" partitions, the trainer started with {started}. {PARTITIONS_ADDED_FIX}"
    )


# How often the group's lag per owned partition (driftline_consumer_lag) is refreshed, as the other stages do.
LAG_EVERY_S = 5.0
# The cyclic collector's young-generation threshold in a train worker (see TrainerGroup.run).
GC_YOUNG = 100_000
# The longest the broker holds the trainer consumer's fetch of partitions with nothing new (see consumer_config):
# below trainer_gather.GATHER_MIN_S, so records that became fetchable meanwhile wait less than one such poll.
FETCH_WAIT_MS = 50


class TrainerGroup(GatheringBatches):
    """The trainers of one process: a member of the trainer group, with one :class:`Trainer` per owned model."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        codec: Codec,
        *,
        session_timeout_s: float = 10.0,
        heartbeat_s: float = 1.0,
        max_poll_interval_s: float = 300.0,
        scores_here: bool = False,
    ) -> None:
        s = self.settings = settings
        self.metrics = metrics
        self.scores_here = scores_here  # a scorer in this process shares the served-version series (role all)
        for reason in CHANGELOG_REFUSALS:  # at zero, so an alert sees the first one
            metrics.changelog_rejected.labels(reason=reason)
        for reason in CONTROL_REFUSALS:  # commands without the key for models nobody knows (_unknown_model)
            metrics.control_refused.labels(model=UNVERIFIED_MODEL, reason=reason)
        self.codec = codec
        self.member = f"{socket.gethostname()}-{os.getpid()}"
        # A restore may meet thousands of forged changelog records: the first few of each kind in full, then one
        # summary line with the count at the end of the restore (each is still counted).
        self._security = ThrottledLog(security_log)
        self.group = trainer_group(s)
        self.topics = (s.topic("training"), s.topic("control"))
        self.keys = [s.model.signing_key.get().encode(), s.model.previous_signing_key.get().encode()]
        self.consumer_config = client_config(
            s,
            logger=LIBRDKAFKA_LOG,
            **{
                "group.id": self.group,
                "client.id": f"{s.kafka.client_id}-trainer-{self.member}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                # Range puts partition p of training and of control on the same member (same counts).
                "partition.assignment.strategy": "range",
                "session.timeout.ms": int(session_timeout_s * 1000),
                "heartbeat.interval.ms": int(heartbeat_s * 1000),
                "max.poll.interval.ms": int(max_poll_interval_s * 1000),
                # A transaction gathers up to COMMIT_MAX records, then learns them for a while: without these
                # the fetcher, its queue full, waited up to a second (fetch.queue.backoff.ms) after each drain.
                "queued.min.messages": 4 * COMMIT_MAX,
                "fetch.queue.backoff.ms": 10,
                # librdkafka keeps one fetch request in flight per broker, and the broker holds a fetch of empty
                # partitions for fetch.wait.max.ms (500 by default). After an assignment the first fetch often
                # went out with one empty partition before the others had their offsets: the partition with the
                # records waited for it, ~300-500 ms after the model's first status (session 20, BENCHMARKS.md;
                # also after every rewind, whose seek waits for the request in flight). An idle trainer's fetches
                # cost the broker ~1-2 % of a core more at this value (~13 % at 10 ms).
                "fetch.wait.max.ms": FETCH_WAIT_MS,
            },
        )
        # The same watchdog as the other stages' (BatchSource): seen in the fault suite, a trainer left in
        # join state wait-join after the active controller was killed, polling with no assignment and no error.
        self.watchdog = GroupWatchdog(self.topics, 2 * session_timeout_s)
        self.watchdog.configure(self.consumer_config)
        self.redis = redis_client(s)
        # What this member applies to the models it owns, published beside its peers' (streams.trainer_status):
        # a difference is logged here and shown by `driftline status`.
        self.config = learning_config(s)
        self._config_differences = ""  # the differences last logged
        self._config_at = 0.0  # when the configuration is next published (monotonic)
        self.ctx = self._new_context()
        self.consumer: Consumer | None = None
        self.trainers: dict[str, Trainer] = {}
        self.states: dict[str, bytes] = {}  # committed sealed state per owned model
        # Models dropped at a rebalance: their gauges go at the next restore unless this process owns them again.
        self._dropped: set[str] = set()
        self._commits_read: dict[str, int] = {}  # during a restore: the newest commit read per model
        self.latest: dict[str, int] = {}  # newest verified release per model
        self.owned: set[int] = set()
        self.partitions = s.kafka.training_partitions
        self._restore_needed = False
        self._restore_failing_since: float | None = None  # since when restores have failed on this consumer
        self._rebalanced = False
        self._audit: dict[str, list[Any]] | IncompleteRead | None = None  # see _audit_entries
        self._replies: list[dict[str, Any]] = []
        self._error: Exception | None = None
        self._status_at = 0.0
        self._polled_s = 0.0
        self._lag_at = 0.0
        self._topics_at = time.monotonic() + TOPICS_EVERY_S
        self._ahead: list[Chunk] = []
        self._ahead_rebalanced = False
        self._resume: dict[tuple[str, int], int] = {}  # see TransactionalBatches._check_resumed
        self._unchecked: set[tuple[str, int]] = set()
        self._gap_rereads: dict[tuple[str, int, int], int] = {}
        # A fetch returned BEHIND_AT records since the worker was last found caught up (_keep_gathering).
        self._behind = False

    # -- set-up --------------------------------------------------------------------------------------------------
    def check_topics(self, started: int | None = None) -> None:
        """training, control and changelog must have the same partition count (else ownership would split), and
        (``started``: checked again while running) still the count this trainer started with."""
        assert self.consumer is not None
        counts = {}
        for name in ("training", "control", "changelog"):
            topic = self.settings.topic(name)
            meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
            counts[topic] = len(meta.partitions) if meta is not None and meta.error is None else 0
        if started is not None:
            # A topic whose metadata is not available just now (a broker coming back) counts 0: looked at again
            # later, never taken for a change.
            if 0 not in counts.values() and set(counts.values()) != {started}:
                raise ConfigError(partitions_added(counts, started))
            return
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise ConfigError(
                "kafka.training_partitions: the topics "
                + ", ".join(f"{t} ({n} partitions)" for t, n in counts.items())
                + " must exist with the same partition count; `driftline topics describe` shows them"
                + (f". {PARTITIONS_ADDED_FIX}" if any(n > 0 for n in counts.values()) else "")
            )
        self.partitions = next(iter(counts.values()))

    def _first_check_topics(self, stopping: threading.Event) -> None:
        """:meth:`check_topics` at start, waiting while the broker does not answer (a broker paused or restarting
        as the trainer starts: the trainer exited, its worker with it; seen in the fault suite on a loaded
        machine, session 37). A topic layout that is wrong still stops it (ConfigError)."""
        while True:
            try:
                self.check_topics()
                return
            except KafkaException as exc:
                if stopping.is_set():
                    raise
                log.warning(
                    "trainer %s: cannot read the topics' metadata from %s yet (%s); retrying",
                    self.member,
                    self.settings.kafka.bootstrap,
                    exc,
                )
                stopping.wait(1.0)

    def _check_placement(self, where: dict[str, int]) -> None:
        """Refuse to go on when a model's committed state (``where``: model -> changelog partition it was read
        from) is not on the partition its name hashes to now: partitions were added since it was written, so its
        records and its state no longer meet at one owner (a second lineage, its state left behind)."""
        moved: dict[str, int] = {}
        for name, p in where.items():
            # Only where a smaller count puts it: a trainer wrote it before partitions were added. (A sealed record
            # copied to some other partition, by someone who can write the topic, does not stop the trainers.)
            if partition_for(name, self.partitions) != p and any(
                partition_for(name, n) == p for n in range(p + 1, self.partitions)
            ):
                moved[name] = p
        if not moved:
            return
        name, p = min(moved.items())
        raise ConfigError(
            f"{self.settings.topic('changelog')}: the committed state of {len(moved)} model(s) is not where its "
            f"name hashes with {self.partitions} partitions (e.g. {name!r} on partition {p}, where a smaller count "
            f"puts it; with {self.partitions} it goes on {partition_for(name, self.partitions)}): partitions were "
            f"added to training, control and changelog after these states were written. {PARTITIONS_ADDED_FIX}"
        )

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self, stopping: threading.Event) -> None:
        """Consume, learn and commit until ``stopping`` is set; the transaction in hand is finished first."""
        ensure_topics(self.settings, ("training", "control", "changelog", "models", "audit"))
        threshold = gc.get_threshold()
        try:
            # The compiled kernels (numba's import and their load: ~0.35 s idle, ~3 s on a loaded 2-core machine)
            # before joining the group: a member of the trainer group is ready to learn, so whoever waits for one
            # (the demo, before it produces) does not send labels that wait out the warm-up (session 35: its first
            # ~900 labels).
            kernels.warm_for(self.settings.model.learner, self.settings.model.challenger)
            consumer = self._subscribe()
            self._publish_config()
            self._first_check_topics(stopping)
            # Everything alive now (modules, the worker's app, clients) lives as long as the process: moved to the
            # permanent generation, the full collections that a batch's thousands of decoded examples trigger no
            # longer walk it (they were 8 % of the LR trainer's samples, 16 % of the tree's; py-spy, 20,000
            # labels). Nothing learned is frozen: models replaced later are still collected as before. The compiled
            # LR kernel (numba's modules) is loaded first (above), so it is frozen too.
            gc.freeze()
            # The young generation collected every GC_YOUNG allocations rather than 700: a batch's decoded
            # examples (three dicts each, alive until the batch is learned) set off a collection every ~230 labels,
            # and every tenth of those a walk of the older objects (the model's). GC was 2.5-3.5 us per label in
            # the worker, 0.7-1.8 with 10,000 (session 18, BENCHMARKS.md). Session 22: still ~8 collections per
            # 20,000 LR labels at ~3 ms each (the read-ahead's decoded records and each release's model copies are
            # young when one runs), 1.3-1.5 us per label; at 100,000 they are one in ten (BENCHMARKS.md, session
            # 22). Cycles wait at most GC_YOUNG allocations (net of those freed: ~3.5 per label here).
            gc.set_threshold(GC_YOUNG, *threshold[1:])
            while not stopping.is_set():
                msgs = self._gather(consumer)
                if not msgs and self._stuck(consumer):
                    consumer = self._subscribe()
                    continue
                if self._restore_needed:
                    try:
                        self._restore()
                        self._restore_failing_since = None
                    except KafkaException as exc:  # the broker is away: keep polling (the group needs it)
                        log.warning("trainer %s cannot restore yet: %s; retrying", self.member, exc)
                        self._restore_needed = True
                        if self._restore_stuck(consumer):
                            consumer = self._subscribe()
                            continue
                        self._rewind()
                        stopping.wait(1.0)
                        continue
                if msgs:
                    self._transaction(msgs, more=partial(self._more, consumer))
                elif time.monotonic() - self._status_at > STATUS_EVERY_S:
                    self._publish_status(list(self.trainers.values()))
                if time.monotonic() >= self._lag_at:
                    # From the committed offsets (``_resume``), not the read position: a batch whose transaction
                    # keeps failing is read again and again, and the lag must show it (hostile40, finding 5).
                    self.metrics.set_consumer_lag(self.group, consumer_lags(consumer, self._resume))
                    self._lag_at = time.monotonic() + LAG_EVERY_S
                if time.monotonic() >= self._topics_at:
                    self._topics_at = time.monotonic() + TOPICS_EVERY_S
                    try:  # partitions added to changelog alone cause no rebalance: looked at now and then
                        self.check_topics(started=self.partitions)
                    except KafkaException as exc:
                        log.debug("trainer %s: topics not checked (%s)", self.member, exc)
        finally:
            gc.set_threshold(*threshold)  # a process that goes on (a test, `--role all` stopping) as it was
            with contextlib.suppress(redis.RedisError):  # a member that leaves is no peer any more
                self.redis.hdel(trainer_configs_key(self.settings), self.member)
            try:
                if self.consumer is not None:  # leaves the group at once: the next owner need not wait
                    self.consumer.close()
            finally:
                self.ctx.out.close(10)

    def _subscribe(self) -> Consumer:
        self._ahead.clear()  # the old consumer's records: the new one reads from the committed offsets
        self._resume.clear()  # armed again by the restore of its assignment
        self._unchecked.clear()
        consumer = self.consumer = Consumer(self.consumer_config)
        self.watchdog.reset()
        consumer.subscribe(
            list(self.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        return consumer

    def _stuck(self, consumer: Consumer) -> bool:
        """Out of the group, or not fetching what is there, for 2x the session timeout of polling: the consumer
        is closed (in the background, if its close hangs) and the caller makes a new one, which joins afresh and
        restores the committed state of whatever it is assigned."""
        state = self.watchdog.stuck(False, self._polled_s)
        if state is None:
            return False
        log.warning(
            "trainer %s: consumer of group %s made no progress for %.0f s of polling (%s): recreating it "
            "(every batch was committed or aborted: nothing in hand is lost)",
            self.member,
            self.group,
            self.watchdog.stuck_s,
            state,
        )
        self.metrics.consumer_restarts.labels(group=self.group).inc()
        self.owned = set()
        self._drop()
        self.consumer = None  # callbacks of the old consumer, closing, are ignored from here on
        close_in_background(consumer, self.topics[0])
        return True

    def _restore_stuck(self, consumer: Consumer) -> bool:
        """A restore that has failed on this consumer's client for as long as the watchdog allows a consumer out
        of its group: the consumer is closed (in the background) and the caller makes a new one, as
        :meth:`_stuck` does. A client can stay unable to reach a broker that came back: after a broker restart the
        trainer's restore failed with ``Failed to get metadata: Local: Broker transport failure`` every 11 s for
        over 3 minutes while the scorer and joiner went on; its consumer never rejoined its group (the broker
        removed the member 11 s after it was back and the group stayed empty), and the group watchdog, which counts
        only the seconds spent polling (a fraction of a second of each 11 s retry), had not fired when the test
        gave up (fault suite, session 38, test_broker_stopped_and_restarted at load 11-16: nothing learned)."""
        now = time.monotonic()
        if self._restore_failing_since is None:
            self._restore_failing_since = now
        if now - self._restore_failing_since < self.watchdog.stuck_after_s:
            return False
        log.warning(
            "trainer %s: restore failed for %.0f s on this consumer's client: recreating the consumer "
            "(every batch was committed or aborted: nothing in hand is lost)",
            self.member,
            now - self._restore_failing_since,
        )
        self._restore_failing_since = None
        self.metrics.consumer_restarts.labels(group=self.group).inc()
        self.owned = set()
        self._restore_needed = False  # the new consumer's assignment asks for the restore again
        self._drop()
        self.consumer = None  # callbacks of the old consumer, closing, are ignored from here on
        close_in_background(consumer, self.topics[0])
        return True

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self.consumer:  # a replaced consumer, closing
            return
        self.owned = {tp.partition for tp in partitions if tp.topic == self.topics[0]}
        self._restore_needed = self._rebalanced = True
        self._ahead.clear()
        self._resume.clear()  # the group's committed offsets now: armed by the restore
        self._unchecked.clear()
        log.info("trainer %s owns training partitions %s", self.member, sorted(self.owned))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self.consumer:  # a replaced consumer, closing: its state was dropped when replaced
            return
        # Called inside consume(): a transaction gathering records (GatheringBatches._more) raises Rebalanced right
        # after and is aborted, so nothing learned from the revoked partitions is committed here.
        self.owned = set()
        self._rebalanced = True
        self._ahead.clear()
        self._resume.clear()
        self._unchecked.clear()
        self._drop()

    def _drop(self) -> None:
        # Whether this process still speaks for these models is known at the next assignment (:meth:`_restore`):
        # an idle model kept across a rebalance keeps its gauges until its next label restores it.
        self._dropped.update(self.trainers)
        self.trainers.clear()
        self.states.clear()
        self.metrics.owned_models.set(0)

    def _restore(self) -> None:
        """After an assignment: read the owned partitions of the changelog, the newest releases, and start the
        models that must have a release before their first label."""
        self._restore_needed = False
        self._drop()
        self._audit = None
        t0 = time.perf_counter()
        self._commits_read = {}
        self.check_topics(started=self.partitions)
        where: dict[str, int] = {}
        self.states = read_changelog(
            self.settings, sorted(self.owned), accept=self._sealed_state, where=where
        )
        self._check_placement(where)
        self._security.flush(force=True)
        for name in self._dropped:  # owned by another trainer now: left behind, its gauges would go stale
            if partition_for(name, self.partitions) not in self.owned:
                self.metrics.forget_model(name, served=not self.scores_here)
        self._dropped = set()
        checked = read_checked_releases(self.settings, self.codec)
        self.latest = {}
        for release in checked.verified:
            name = str(release["model"])
            self.latest[name] = max(self.latest.get(name, 0), int(release["version"]))
        eager = [
            name
            for name in dict.fromkeys([self.settings.default_model, *self.settings.routing.models])
            if partition_for(name, self.partitions) in self.owned
        ]
        self._read_audit()  # before the first transaction, whose releases open the chains
        self._arm_resume()
        if eager:
            self._transaction([], eager=eager)
        self.metrics.owned_models.set(len(set(self.states) | set(self.trainers)))
        log.info(
            "trainer %s restored %d model state(s) of partitions %s in %.2f s",
            self.member,
            len(self.states),
            sorted(self.owned),
            time.perf_counter() - t0,
        )

    def _arm_resume(self) -> None:
        """Each owned training partition is read from its committed offset: its first record must be there
        (:meth:`_check_resumed`). A partition still armed from this trainer's own last commit (no assignment since)
        keeps that offset: the state just restored is the one that commit left. A partition with nothing committed
        yet is read from its low watermark (``auto.offset.reset=earliest``): armed there, so an abort of the
        first transaction that ever learned from it is caught too (CI, session 41: the test of this check
        patched the first commit, nothing was armed, and the batch's 200 labels were never learned)."""
        consumer = self.consumer
        assert consumer is not None
        owned = [TopicPartition(self.topics[0], p) for p in sorted(self.owned)]
        if not owned:
            return
        try:
            committed = consumer.committed(owned, timeout=10)
            for tp in committed:
                offset = tp.offset if tp.offset >= 0 else consumer.get_watermark_offsets(tp, timeout=10)[0]
                self._resume.setdefault((tp.topic, tp.partition), offset)
        except KafkaException as exc:  # not known now: nothing armed, as before this check
            log.warning("trainer %s: committed offsets not read (%s)", self.member, exc)
        self._unchecked = set(self._resume)

    def _sealed_state(self, name: str, value: bytes | None) -> bool:
        """Whether a ``changelog`` record may stand for ``name``'s committed state: only one a trainer sealed with
        the key. Anyone who can write the topic can publish garbage, a record sealed with another key or a
        tombstone (no trainer writes one) after the committed state; each is refused, logged and counted, and
        the newest sealed record before it is restored instead, so the lineage goes on (when compaction has
        already removed that one, the model starts a new lineage, see ``_trainer``)."""
        if value is not None and sealed_by(value, self.keys):
            return self._in_order(name, seal_header(value))
        if value is None:
            self._refuse_state(name, "tombstone", "a tombstone, which no trainer writes")
        else:
            why = "not sealed with the signing key (a forged, truncated or foreign record)"
            self._refuse_state(name, "signature", why)
        return False

    def _in_order(self, name: str, header: dict[str, Any] | None) -> bool:
        """Whether a sealed record (its :func:`streams.train.seal_header`) may follow the ones read before it for
        ``name``: one sealed for another model (copied under this name) is refused as ``model``; one that a
        trainer sealed before the newest read so far (an older record published again, which would rewind the
        model to it) as ``stale``. A record sealed before headers were written passes, unless a record with a
        header came before it."""
        best = self._commits_read.get(name, -1)
        if header is None:
            if best < 0:
                return True
            self._refuse_state(name, "stale", "a record sealed before the newest one read (published again)")
            return False
        if header.get("model") != name:
            self._refuse_state(name, "model", f"a state sealed for model {str(header.get('model'))[:100]!r}")
            return False
        commits = int(header.get("commits", 0))
        if commits < best:
            why = f"a record of commit {commits} after commit {best} (an older state published again)"
            self._refuse_state(name, "stale", why)
            return False
        self._commits_read[name] = commits
        return True

    def _refuse_state(self, name: str, reason: str, why: str) -> None:
        self.metrics.changelog_rejected.labels(reason=reason).inc()
        self._security.warning(
            f"refused {self.settings.topic('changelog')} records of model {name[:100]!r}",
            reason,
            "SECURITY: %s record of %r refused (%s): %s; its newest sealed state is restored instead",
            self.settings.topic("changelog"),
            name[:100],
            reason,
            why,
        )

    def _unseal_state(self, name: str, sealed: bytes) -> dict[str, Any] | None:
        """``name``'s committed state from its newest sealed record. The seal covers the state, not the record's
        key: a state sealed for another model (copied under this name by someone who can write the topic) is
        refused and counted (``model``), and so is one the restricted loader refuses (``allow_list``: a class
        outside the state's allow-list or over a cap, what a leaked key could carry; ``load``: it does not
        unpickle); the newest record sealed for this model that loads is read again instead (unpickling this
        model's records on its partition: only on that path). None: a new lineage."""
        where = f"{self.settings.topic('changelog')} record of {name!r}"
        try:
            state = unseal(sealed, self.keys, where)
        except StateRefused as exc:
            self._refuse_state(name, exc.reason, str(exc))
            return self._newest_loadable(name, where)
        except SecurityError as exc:
            security_log.warning("SECURITY: %s; the model starts a new lineage", exc)
            return None
        if state.get("model", name) == name:
            return state
        self._refuse_state(name, "model", f"a state sealed for model {str(state.get('model'))[:100]!r}")
        return self._newest_loadable(name, where)

    def _newest_loadable(self, name: str, where: str) -> dict[str, Any] | None:
        """The newest record on ``name``'s changelog partition that is sealed with the key, loads and is this
        model's state (None if compaction left none: a new lineage). The partition is read once, keeping the
        newest :data:`FALLBACK_RECORDS` records sealed for this model (their headers say so, without unpickling);
        they are then unsealed newest first until one loads: the restricted loader takes ~0.5 s for a 1.5 MB ARF
        state (docs/experiments/unseal43.md), and a partition holds one record per committed batch until
        compaction."""
        candidates: deque[bytes] = deque(maxlen=FALLBACK_RECORDS)

        def accept(key: str, value: bytes | None) -> bool:
            if key != name or value is None or not sealed_by(value, self.keys):
                return False
            header = seal_header(value)
            if header is None or header.get("model") == name:
                candidates.append(value)
            return False

        read_changelog(self.settings, [partition_for(name, self.partitions)], accept=accept)
        self._security.flush(force=True)
        for value in reversed(candidates):
            try:
                candidate = unseal(value, self.keys, where)
            except Exception:  # sealed with the key, yet refused or unreadable (counted once, above)
                continue
            if candidate.get("model", name) == name:
                return candidate
        security_log.warning("SECURITY: %s: no state sealed for this model is left; a new lineage", where)
        return None

    def _trainer(self, name: str, create: bool = True) -> Trainer | None:
        """The trainer of ``name``: in memory, restored from its committed state, or (``create``) a new model;
        None for a new model past ``routing.max_models`` (or when not ``create``)."""
        trainer = self.trainers.get(name)
        if trainer is not None:
            return trainer
        sealed = self.states.get(name)
        # A model no one has released: created only when asked to and within routing.max_models.
        if sealed is None and name not in self.latest and (not create or self._at_model_bound(name)):
            return None
        state = None if sealed is None else self._unseal_state(name, sealed)
        trainer = Trainer(self.ctx.for_model(name), self.redis)
        trainer.owner = self.member
        trainer.start(state, self.latest.get(name, 0))
        self.trainers[name] = trainer
        return trainer

    def _at_model_bound(self, name: str) -> bool:
        """True when a new model ``name`` would be past ``routing.max_models`` for this process (the default model
        and ``routing.models`` never are): its examples are dead-lettered instead (settings.RoutingSettings)."""
        routing = self.settings.routing
        if name == self.settings.default_model or name in routing.models:
            return False
        return len(self.trainers.keys() | self.states.keys()) >= routing.max_models

    def _publish_config(self) -> None:
        """Publish this member's learning configuration and log (once per change) how the live peers' differ."""
        self._config_at = time.monotonic() + STATUS_EVERY_S
        try:
            publish_worker_config(self.redis, self.settings, "trainer", self.member, self.config)
            configs = worker_configs(self.settings, "trainer", self.redis)
        except redis.RedisError as exc:
            log.warning("cannot publish the trainer's configuration to Redis: %s", exc)
            return
        configs[self.member] = self.config
        text = differences_text(config_differences(configs))
        if text and text != self._config_differences:
            log.warning(
                "trainer %s: the trainers of group %s run with different settings (%s): %s",
                self.member,
                self.group,
                text,
                CONFIG_DIFFERS_FIX,
            )
        elif self._config_differences and not text:
            log.info(
                "trainer %s: the trainers of group %s now run with the same settings", self.member, self.group
            )
        self._config_differences = text

    def _publish_status(self, trainers: list[Trainer]) -> None:
        """Each owned model's live status (Redis) and who owns it; a model whose partition this process no
        longer owns (it was frozen past the session timeout, say) is never reported by it."""
        self._status_at = time.monotonic()
        if self._status_at >= self._config_at:  # every few seconds, not with every transaction's status
            self._publish_config()
        self._security.flush()  # the count of throttled SECURITY lines (control commands for unknown models)
        owners: dict[str, tuple[str, int]] = {}
        for trainer in trainers:
            if partition_for(trainer.ctx.model, self.partitions) not in self.owned:
                continue
            trainer.publish_status()
            lc = trainer.lifecycle
            entry = {
                "owner": self.member,
                "partition": partition_for(trainer.ctx.model, self.partitions),
                "version": lc.served_version,
                "n_learned": lc.n_learned,
                # Every label learned: a rollback takes n_learned back, not this. The evaluator of what was served
                # counts every label, also those `pause --discard` dropped and those whose learning raised.
                "labels_learned": lc.overall.n - trainer.discarded - lc.unlearned,
                "paused": lc.paused,
                "updated_at": now_ms(),
                "commits": trainer.commits,
            }
            owners[trainer.ctx.model] = (json.dumps(entry), trainer.commits)
        if owners:
            try:
                hset_fields_if_newer(self.redis, owners_key(self.settings), owners)
            except redis.RedisError as exc:
                log.warning("cannot publish trainer ownership to Redis: %s", exc)
