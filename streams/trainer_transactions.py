"""The trainer group's transactions: one Kafka transaction per batch, and what happens when one fails.

Per batch, one transaction holds the batch's releases, drift events, dead letters and audit entries, the changelog
record of every model the batch touched, and the input offsets (:meth:`TransactionalBatches._transaction`). A batch
that fails for a reason in its records is redone one record at a time, so a poison record is dead-lettered and never
stalls its partition (:meth:`TransactionalBatches._isolate`); a failed or hung transaction is aborted, its producer
replaced if need be, and the batch read again from the committed offsets (:meth:`TransactionalBatches._abort`).

:class:`TransactionalBatches` is a base of :class:`streams.trainers.TrainerGroup`, which holds the consumer, the
trainers and the committed states; it is not used alone.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from connectors.consumer import IncompleteRead
from connectors.producer import EventProducer
from connectors.topics import CHANGELOG_MAX_BYTES, partition_for
from driftline.errors import ConfigError, SchemaError
from driftline.settings import Settings, check_model_name
from driftline.util import now_ms
from schemas.codec import Codec
from streams.audit import read_topic
from streams.batches import transient
from streams.metrics import CONTROL_REFUSALS, Metrics
from streams.releases import UNVERIFIED_MODEL
from streams.runtime import RawRecord, WorkerContext
from streams.security_log import ThrottledLog
from streams.train import Trainer, seal

# The trainer group's logger: these messages keep the logger name they had in streams.trainers.
log = logging.getLogger("streams.trainers")

TXN_TIMEOUT_MS = (
    20_000  # an open transaction of a killed trainer blocks its partitions' readers at most this long
)
# The longest a transactional call may take before its producer is abandoned (see ``bounded``). A commit takes
# 5-20 ms per round trip on a local broker; its replacement fences it at once (same transactional.id), so this need
# not outwait transaction.timeout.ms (it was 2x that, 40 s, until session 35).
CALL_LIMIT_S = 10.0
# A transaction gathers the records of up to COMMIT_EVERY_S or up to COMMIT_MAX records (streams.trainer_gather).
COMMIT_MAX = 5_000
# A transaction that failed after being open this share of TXN_TIMEOUT_MS or longer was aborted by the broker's
# timeout: the next ones take fewer records (TransactionalBatches._shrink), growing back as they commit.
TIMEOUT_SHARE = 0.75
# The interpreter's switch interval while ``bounded``'s caller works meanwhile (see there).
MEANWHILE_SWITCH_S = 0.0005


def _next_offsets(msgs: list[Message]) -> list[TopicPartition]:
    """The offsets to commit once ``msgs`` are handled: one past the last record of each partition."""
    last: dict[tuple[str, int], int] = {}
    for msg in msgs:
        key = (msg.topic() or "", msg.partition() or 0)
        last[key] = max(last.get(key, -1), msg.offset() or 0)
    return [TopicPartition(topic, part, offset + 1) for (topic, part), offset in last.items()]


class TransactionHung(KafkaException):
    """A transactional call that did not return within its bound: the producer is abandoned to the thread it hangs
    in, and a new one starts over from the committed state."""


def bounded(
    call: Callable[[], None], what: str, limit_s: float, meanwhile: Callable[[], bool] | None = None
) -> None:
    """Run ``call`` (a transactional producer call) in a thread of its own and wait at most ``limit_s`` for it.

    librdkafka's ``send_offsets_to_transaction`` can block past its timeout, for good, when the group
    coordinator's broker is gone (librdkafka #5456 and #5511, open in the 2.16.0 used here): the fault suite's
    trainer stopped learning, silently, after the active controller was killed. The caller then replaces the
    producer with one of the same ``transactional.id`` (:meth:`TransactionalBatches._replace_producer`), whose
    ``init_transactions`` has the coordinator abort the open transaction and fence the old producer's epoch: the
    abandoned call can no longer commit anything, whatever it does later, without waiting for the broker to abort
    the transaction by its timeout.

    ``meanwhile`` (if given) is called again and again while ``call`` runs, until it returns False: work for the
    waiting thread that changes nothing ``call`` reads (the trainer group reads its next records ahead).
    """
    outcome: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the waiting thread
            outcome.append(exc)
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=run, name=f"trainer-{what}", daemon=True).start()
    if meanwhile is not None:
        # ``call`` takes the GIL back between its blocking calls and to return; with this thread busy in Python
        # (decoding) each took up to the switch interval (5 ms), which doubled the commit's wall. Shorter while
        # both run (session 20, BENCHMARKS.md).
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, MEANWHILE_SWITCH_S))
        try:
            while not done.is_set() and time.monotonic() - started < limit_s and meanwhile():
                pass
        finally:
            sys.setswitchinterval(interval)
    if not done.wait(max(0.0, limit_s - (time.monotonic() - started))):
        raise TransactionHung(KafkaError(KafkaError._TIMED_OUT, f"{what} did not return in {limit_s:.0f} s"))
    if outcome:
        raise outcome[0]


class Chunk(list[Message]):
    """Records read ahead while a transaction committed, with their :class:`RawRecord` and the training records'
    decoded TrainingExamples (:meth:`TransactionalBatches._prepare`): the next transaction learns them without
    decoding them again."""

    prepared: tuple[list[RawRecord], list[Any]]


# ``TransactionalBatches._transaction``'s source of further records: (opened, gathered, urgent) -> records.
More = Callable[[float, int, bool], list[Message]]


class Rebalanced(KafkaException):
    """The group rebalanced while a transaction was gathering: it is aborted, and the partitions' owners read its
    records again from the committed offsets."""


class ResumedPastCommitted(KafkaException):
    """A training partition was read from beyond where this trainer's last commit (or the restore's committed
    offset) left it: the records between would never be learned. The transaction is aborted and the partition read
    again from that offset (:meth:`TransactionalBatches._check_resumed`)."""


# A gap at the same offset of a partition found again after this many re-reads is taken as real: the records are no
# longer on the topic (retention deleted them before they were learned), said in an error, and reading goes on.
GAP_REREADS = 2


def _infrastructure(exc: Exception) -> bool:
    """Kafka or Redis being away (worth reading the batch again), rather than something in the records."""
    return isinstance(exc, KafkaException) or transient(exc)


class TransactionalBatches:
    """The transactions of a :class:`~streams.trainers.TrainerGroup` (its base class; see the module docstring)."""

    # Set by TrainerGroup.__init__ (and by its rebalance callbacks).
    settings: Settings
    metrics: Metrics
    codec: Codec
    member: str
    topics: tuple[str, str]
    keys: list[bytes]
    redis: redis.Redis
    ctx: WorkerContext
    consumer: Consumer | None
    trainers: dict[str, Trainer]
    states: dict[str, bytes]
    partitions: int  # of training, control and changelog (the topics', TrainerGroup.check_topics)
    _restore_needed: bool
    _audit: dict[str, list[Any]] | IncompleteRead | None
    _replies: list[dict[str, Any]]
    _error: Exception | None
    # Records read ahead while the last transaction committed (GatheringBatches._read_ahead), not yet learned: they
    # are after the committed offsets, so every seek (an abort's rewind, a rebalance) drops them.
    _ahead: list[Chunk]
    # At most this many records per transaction after one was aborted by its timeout (:meth:`_shrink`); None: the
    # gathering's own bounds.
    cap: int | None = None
    _ahead_rebalanced: bool
    # The offset each training partition's last commit (or, after an assignment, the restore's committed offset)
    # left it at; the partitions whose first record since then (or since an abort) is still to be seen there; and
    # how often a gap at an offset was read again (see _check_resumed).
    _resume: dict[tuple[str, int], int]
    _unchecked: set[tuple[str, int]]
    _gap_rereads: dict[tuple[str, int, int], int]
    _txn_id: str | None = None  # see _transactional_id
    _security: ThrottledLog  # SECURITY lines, throttled (TrainerGroup's)

    def _trainer(self, name: str, create: bool = True) -> Trainer | None:
        raise NotImplementedError  # TrainerGroup's: the trainer of ``name``

    def _misplaced(self, name: str, raw: RawRecord, field: str) -> str | None:
        """Why a record naming model ``name`` must not be handled here: it came on another partition than the
        model's (murmur2 of its name), so another trainer may own the model; starting it here would make a second
        lineage whose changelog record replaces the model's state. None when it is on its model's partition."""
        home = partition_for(name, self.partitions)
        if raw.partition == home:
            return None
        return (
            f"{field} {name!r} belongs on partition {home} of {raw.topic} (murmur2 of the model name, as "
            f"driftline's producers and Java's partition it), not {raw.partition}: written with another "
            "partitioner? (kcat: -X partitioner=murmur2_random)"
        )

    def _publish_status(self, trainers: list[Trainer]) -> None:
        raise NotImplementedError  # TrainerGroup's: the owned models' live status

    def _read_ahead(self) -> bool:
        raise NotImplementedError  # GatheringBatches': the next records, fetched and decoded while a commit runs

    # -- the transactional producer ------------------------------------------------------------------------------
    def _transactional_id(self) -> str:
        """This group member's ``transactional.id``, the same for every producer it makes: a replacement's
        ``init_transactions`` aborts the open transaction of the producer it replaces and fences that producer, so
        a hung call of the abandoned one can never commit later (:func:`bounded`). Unique per member object (a
        test runs several in one process: with a shared id they would fence each other)."""
        if self._txn_id is None:
            prefix = self.settings.kafka.topic_prefix
            self._txn_id = f"driftline-{prefix}trainer-{self.member}-{uuid.uuid4().hex[:8]}"
        return self._txn_id

    def _new_context(self) -> WorkerContext:
        s = self.settings
        config: dict[str, Any] = {
            "transactional.id": self._transactional_id(),
            "transaction.timeout.ms": TXN_TIMEOUT_MS,
            "message.max.bytes": CHANGELOG_MAX_BYTES + 1024 * 1024,
        }
        producer = EventProducer(s, self.codec, **config)
        producer.init_transactions()
        return WorkerContext(
            s, self.codec, self.metrics, producer, audit_deferred=True, audit_source=self._audit_entries
        )

    def _audit_entries(self) -> dict[str, list[Any]]:
        """Every model's entries on the ``audit`` topic, for the chains this trainer opens (``AuditLog.open``
        levels each model's file and topic copies). Read once per restore or abort, not once per chain: a read
        that could not reach the topic's end (:class:`IncompleteRead`) is not tried again until then, since each
        try may take its whole timeout (15 s) and a chain may be opened inside a transaction of at most 20 s."""
        if self._audit is None:
            self._read_audit()
        if isinstance(self._audit, IncompleteRead):
            raise IncompleteRead(str(self._audit))
        assert self._audit is not None
        return self._audit

    def _read_audit(self) -> None:
        """Read the ``audit`` topic now, outside any transaction (at a restore, after an abort)."""
        try:
            self._audit = read_topic(self.settings)
        except IncompleteRead as exc:
            self._audit = exc

    # -- one transaction per batch -------------------------------------------------------------------------------
    def _transaction(
        self,
        msgs: list[Message],
        eager: Iterable[str] = (),
        *,
        isolate: bool = True,
        more: More | None = None,
    ) -> bool:
        """Learn ``msgs`` and commit everything they caused with their offsets, in one transaction; False if it
        was aborted. A batch that fails for a reason that is not the infrastructure's is redone one record at a
        time (:meth:`_isolate`), so a poison record never stalls its partition.

        ``more(opened, gathered, urgent)`` (the trainer group's gathering) returns the next records to learn in
        this transaction, or none to end it; ``urgent`` says the transaction holds something a reader waits for
        (a release, a control command's effect), so it should end soon. Learning while gathering, rather than
        gathering for the whole window and then learning, lets a release reach the scorers right after the
        records that produced it instead of up to a window plus the window's learning later."""
        out, m = self.ctx.out, self.metrics
        t0 = time.perf_counter()
        touched: dict[str, Trainer] = {}
        opened = time.monotonic()
        try:
            out.begin()
            opened = time.monotonic()
            for name in eager:
                touched[name] = self._trainer(name)  # type: ignore[assignment]
            self._check_resumed(msgs)
            urgent = self._handle(msgs, touched)
            while more is not None:
                chunk = more(opened, len(msgs), urgent)
                if not chunk:
                    break
                self._check_resumed(chunk)
                msgs = msgs + chunk  # what an abort or _isolate redoes, and the offsets committed
                urgent = self._handle(chunk, touched) or urgent
            committing: dict[str, bytes] = {}
            for name, trainer in touched.items():
                trainer.commits += 1
                committing[name] = seal(trainer.state(), self.keys[0])
                out.produce_bytes(self.settings.topic("changelog"), committing[name], name)
            assert self.consumer is not None
            group = self.consumer.consumer_group_metadata()
            # While the commit's round trips run (AddOffsetsToTxn, TxnOffsetCommit, EndTxn: 5-20 ms each on a
            # local broker), the records after these are fetched and decoded for the next transaction (only in
            # the main loop's transactions: an isolated record's or a restore's seeks would drop them).
            self._ahead_rebalanced = False
            ahead = self._read_ahead if more is not None else None
            bounded(partial(out.commit, _next_offsets(msgs), group), "commit", CALL_LIMIT_S, ahead)
            if not self._ahead_rebalanced:  # else dropped by the rebalance: the restore reads the changelog
                self.states.update(committing)  # only what was committed: an abort restores from these
                self._committed(_next_offsets(msgs))
        except Exception as exc:
            self._error = exc
            self._abort(exc, touched)
            self._shrink(len(msgs), time.monotonic() - opened)
            if isolate and len(msgs) > 1 and not self._restore_needed and not _infrastructure(exc):
                self._isolate(msgs)
            return False
        m.transactions.labels(outcome="committed").inc()
        if self.cap is not None:  # committed in time: take more again, a quarter more per commit
            self.cap = None if self.cap >= COMMIT_MAX else self.cap + max(1, self.cap // 4)
        for trainer in touched.values():
            trainer.ctx.commit_audit()
            trainer.ctx.publish_fairness()
        # The status before the answers: a sender that reads it after its answer sees the batch that answered it
        # (a `resume` that learned the held labels, then `status`, read the count of the batch before).
        self._publish_status(list(touched.values()))
        for trainer in touched.values():
            trainer.send_replies()
        self._send_replies()
        m.processing_seconds.labels(stage="train").observe(time.perf_counter() - t0)
        m.batch_size.labels(stage="train").observe(len(msgs))
        return True

    def _shrink(self, records: int, open_s: float) -> None:
        """A transaction of ``records`` that failed after being open ``open_s``: if that was near
        ``transaction.timeout.ms``, the broker aborted it by its timeout (its learning took that long), and the same
        records read again would be learned just as long and aborted again, for good (adv44: a tree slowed by a
        thousand classes). The next transactions take at most half as many (:attr:`cap`, down to one record),
        growing back as they commit in time."""
        if records <= 1 or open_s < TIMEOUT_SHARE * TXN_TIMEOUT_MS / 1000:
            return
        self.cap = max(1, min(records, self.cap or records) // 2)
        log.warning(
            "trainer %s: a transaction of %d records was open %.1f s, near transaction.timeout.ms (%.0f s), and "
            "failed: the next ones take at most %d records until they commit in time",
            self.member,
            records,
            open_s,
            TXN_TIMEOUT_MS / 1000,
            self.cap,
        )

    def _isolate(self, msgs: list[Message]) -> None:
        """Redo a failed batch one record per transaction; a record that fails alone is dead-lettered with the
        reason, in a transaction that commits its offset. Then read on after the batch."""
        assert self.consumer is not None
        log.error(
            "trainer %s: a batch failed (%r): redoing it one record at a time", self.member, self._error
        )
        for msg in msgs:
            if self._transaction([msg], isolate=False):
                continue
            if (
                self._restore_needed
            ):  # fenced or out of the group meanwhile: the new assignment reads it again
                return
            raw = RawRecord(
                msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value() or b""
            )
            stage = "train" if raw.topic == self.topics[0] else "control"
            try:
                self.ctx.out.begin()
                self.ctx.deadletter(stage, raw, f"{type(self._error).__name__}: {self._error}")
                group = self.consumer.consumer_group_metadata()
                bounded(partial(self.ctx.out.commit, _next_offsets([msg]), group), "commit", CALL_LIMIT_S)
            except Exception as exc:
                self._abort(exc, {})
                return
            self._committed(_next_offsets([msg]))
        self._ahead.clear()
        for tp in _next_offsets(msgs):
            self.consumer.seek(tp)
        self._committed(_next_offsets(msgs))

    def _prepare(self, msgs: list[Message]) -> tuple[list[RawRecord], list[Any]]:
        """``msgs`` as :class:`RawRecord`, and their training records decoded (TrainingExample or SchemaError)."""
        raws = [
            RawRecord(
                msg.topic() or "",
                msg.partition() or 0,
                msg.offset() or 0,
                msg.key(),
                msg.value() or b"",
                msg.timestamp()[1],
            )
            for msg in msgs
        ]
        training = [r.value for r in raws if r.topic == self.topics[0]]
        return raws, self.codec.decode_many("TrainingExample", training, topic=self.topics[0])

    def _handle(self, msgs: list[Message], touched: dict[str, Trainer]) -> bool:
        """Learn the training records of ``msgs`` and apply their control commands, inside the open transaction;
        True if that published a release or applied a command (someone waits for this transaction to end)."""
        raws, decoded = msgs.prepared if isinstance(msgs, Chunk) else self._prepare(msgs)
        before = sum(t.released for t in self.trainers.values())  # a trainer started here counts from 0
        self._learn([r for r in raws if r.topic == self.topics[0]], touched, decoded)
        released = sum(t.released for t in self.trainers.values()) > before
        commands = [r for r in raws if r.topic == self.topics[1]]
        self._control(commands, touched)
        return released or bool(commands)

    def _learn(self, raws: list[RawRecord], touched: dict[str, Trainer], decoded: list[Any]) -> None:
        """Learn ``raws`` (training records; ``decoded``: each one's TrainingExample or SchemaError)."""
        ctx, m = self.ctx, self.metrics
        by_model: dict[str, list[tuple[RawRecord, dict[str, Any]]]] = {}
        refused: dict[str, str] = {}  # names checked in this batch: each is checked once, not once per record
        homes: dict[str, int] = {}  # each model's partition (its records come on it)
        for raw, example in zip(raws, decoded, strict=True):
            if isinstance(example, SchemaError):
                ctx.deadletter("train", raw, example)
                continue
            name = example["model"]  # a string (the schema's)
            group = by_model.get(name)
            if group is None:
                if name in refused:
                    ctx.deadletter("train", raw, refused[name])
                    continue
                try:
                    check_model_name(name, "TrainingExample.model")
                except ConfigError as exc:
                    refused[name] = str(exc)
                    ctx.deadletter("train", raw, refused[name])
                    continue
                homes[name] = partition_for(name, self.partitions)
                group = by_model[name] = []
            if raw.partition != homes[name]:
                ctx.deadletter("train", raw, self._misplaced(name, raw, "TrainingExample.model") or "")
                continue
            group.append((raw, example))
        by_model = {name: group for name, group in by_model.items() if group}
        for name, examples in by_model.items():
            trainer = touched.get(name) or self._trainer(name)
            if trainer is None:  # a new model past routing.max_models: none is created
                reason = (
                    f"TrainingExample.model {name!r} would be a new model past routing.max_models "
                    f"({self.settings.routing.max_models}) of this trainer; raise it if that many models are meant"
                )
                for raw, _ in examples:
                    ctx.deadletter("train", raw, reason)
                continue
            touched[name] = trainer
            m.events.labels(stage="train", outcome="ok").inc(trainer.process(examples))

    def _control(self, raws: list[RawRecord], touched: dict[str, Trainer]) -> None:
        ctx = self.ctx
        decoded = self.codec.decode_many(
            "ControlCommand",
            [r.value for r in raws],
            topic=self.topics[1],
            allow_json=True,
            timestamps=lambda i: raws[i].timestamp_ms,
        )
        for raw, cmd in zip(raws, decoded, strict=True):
            if isinstance(cmd, SchemaError):
                ctx.deadletter("control", raw, cmd)
                continue
            name = str(cmd["model"])
            try:
                check_model_name(name, "ControlCommand.model")
                # Its model's owner may be another trainer: not applied here. No trainer reads it on its model's
                # partition either, so it is answered here (refused, saying why): its sender does not time out.
                misplaced = self._misplaced(name, raw, "ControlCommand.model")
                if misplaced is not None:
                    self._refuse(raw, cmd, name, "partition", misplaced)
                    continue
                trainer = touched.get(name) or self._trainer(name, create=False)
            except ConfigError as exc:
                ctx.deadletter("control", raw, str(exc))
                continue
            if trainer is None:
                self._unknown_model(raw, cmd, name)
                continue
            touched[name] = trainer
            where = f"{raw.topic}:{raw.partition}"
            if raw.offset <= trainer.offsets.get(where, -1):
                continue
            trainer.offsets[where] = raw.offset
            trainer.command(raw, cmd)

    def _unknown_model(self, raw: RawRecord, cmd: dict[str, Any], name: str) -> None:
        """A command for a model no trainer knows (no release, no state): checked as a known model's is. A forged,
        unsigned, stale or invalid one is refused and dead-lettered (bad input). An authentic, valid one is an
        operator's typo of ``--model``: answered (the CLI exits 1 naming it) and counted in
        ``driftline_events_total{stage="control",outcome="refused"}``, not dead-lettered (until session 37 it was,
        and fired ``DriftlineDeadLetters``), as a valid command the model's state does not allow."""
        from learners.lifecycle_control import validate_control
        from streams.control import operator_key, refusal

        s = self.settings
        # No replay check: nothing is applied, and the first answer filed under an id stands (write_reply).
        problem = refusal(cmd, [operator_key(s)], (), now_ms(), s.model.control_max_age_s)
        if problem is None:
            try:
                validate_control(str(cmd["command"]), dict(cmd.get("args") or {}), s.guard, s.drift)
            except Exception as exc:
                problem = ("invalid", f"{type(exc).__name__}: {exc}")
        if problem is not None:
            reason, why = problem
            command = str(cmd["command"])[:100]
            if reason in CONTROL_REFUSALS:
                # Not authentic or not fresh: a security matter, as for a known model. Counted under _unverified,
                # as a forged release is: the name is the forger's choice, and each one would keep a series for
                # good (review37: it was not counted, nor logged, at all).
                self.metrics.control_refused.labels(model=UNVERIFIED_MODEL, reason=reason).inc()
                self._security.warning(
                    "refused control commands of unknown models",
                    reason,
                    "SECURITY: control command %r for model %r refused: %s",
                    command,
                    name,
                    why,
                )
            self._refuse(raw, cmd, name, reason, f"control command {command!r} refused: {why}")
            return
        message = f"model {name!r} is unknown here: no release and no trainer state (check --model)"
        self.ctx.metrics.events.labels(stage="control", outcome="refused").inc()
        self._answer(cmd, name, "unknown", message)

    def _refuse(self, raw: RawRecord, cmd: dict[str, Any], name: str, reason: str, message: str) -> None:
        """Dead-letter a control command no trainer applies and, when it carries an id, answer it (refused) once
        the transaction commits, where its sender waits (streams.control.write_reply)."""
        self.ctx.deadletter("control", raw, message)
        self._answer(cmd, name, reason, message)

    def _answer(self, cmd: dict[str, Any], name: str, reason: str, message: str) -> None:
        """Answer a command no trainer applies (refused), when it carries an id, once the transaction commits."""
        if cmd.get("id"):
            self._replies.append(
                {
                    "id": cmd["id"],
                    "model": name,
                    "command": cmd["command"],
                    "outcome": "refused",
                    "reason": reason,
                    "message": message,
                    "at": now_ms(),
                }
            )

    def _abort(self, exc: Exception, touched: dict[str, Trainer]) -> None:
        """The batch's transaction failed: abort it, forget what it changed, read the batch again."""
        fenced = isinstance(exc, TransactionHung) or (
            isinstance(exc, KafkaException)
            and (exc.args[0].fatal() or exc.args[0].code() == KafkaError._FENCED)
        )
        log.warning(
            "trainer %s: transaction %s (%s); %s",
            self.member,
            "fenced" if fenced else "aborted",
            exc,
            "rejoining with the committed state" if fenced else "reading the batch again",
        )
        self.metrics.transactions.labels(outcome="fenced" if fenced else "aborted").inc()
        for trainer in touched.values():
            trainer.ctx.discard_audit()
            trainer.replies = []
        self._replies = []
        self.trainers.clear()  # restored lazily from self.states (the committed ones)
        # Their audit chains are opened again too, against the topic as it is now: the view read at the last
        # restore lacks every entry committed since, and a chain opened on it published them all a second time.
        self._audit = None
        if not fenced:
            try:
                bounded(self.ctx.out.abort, "abort", CALL_LIMIT_S)
            except (
                Exception
            ) as abort_exc:  # a coordinator away (a frozen broker): start over with a new producer
                log.warning("trainer %s: cannot abort (%s); a new producer", self.member, abort_exc)
                fenced = True
        if fenced:
            # A fatal producer error (fenced by a newer member, or our epoch bumped), a call that hung, or an abort
            # that failed: a new producer, and the state everyone committed since is read again. The old producer is
            # dropped unflushed; the new one, of the same transactional.id, aborts its open transaction and fences it.
            self.ctx = self._replace_producer()
            self._restore_needed = True
        else:
            self._read_audit()
        self._rewind()
        if isinstance(exc, ResumedPastCommitted):
            self._reread(exc.args[1])
        self._unchecked = set(
            self._resume
        )  # read again: each partition's first record must be where it was left

    def _replace_producer(self) -> WorkerContext:
        """A new transactional producer, retried until the transaction coordinator answers."""
        delay = 1.0
        while True:
            try:
                return self._new_context()
            except KafkaException as exc:
                log.warning(
                    "trainer %s: no transactional producer (%s); retry in %.0f s", self.member, exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _rewind(self) -> None:
        """Seek every owned partition back to its committed offset (the aborted batch is read again)."""
        assert self.consumer is not None
        self._ahead.clear()  # after the committed offsets: read again
        assigned = self.consumer.assignment()
        if not assigned:
            return
        try:
            for tp in self.consumer.committed(assigned, timeout=10):
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        except KafkaException as exc:
            # Out of the group meanwhile: the rebalance that follows restores everything anyway.
            log.warning("trainer %s: cannot rewind (%s); waiting for the rebalance", self.member, exc)
            self._restore_needed = True

    # -- reading on from where the last commit left off ------------------------------------------------------------
    def _committed(self, offsets: list[TopicPartition]) -> None:
        """A commit of ``offsets`` (one past each partition's last record handled): each training partition's next
        record must be at its offset."""
        training = self.topics[0]
        for tp in offsets:
            if tp.topic == training:
                self._resume[(tp.topic, tp.partition)] = tp.offset
        self._unchecked = set(self._resume)
        self._gap_rereads.clear()

    def _check_resumed(self, msgs: list[Message]) -> None:
        """Raise :class:`ResumedPastCommitted` when a training partition's first record since its last commit (or
        restore, or an abort) comes after the offset that left it at.

        A rewind that did not take (the consumer read on from its position after an aborted batch) loses labels
        for good: after a transaction whose commit hung through the loss of two of three brokers, the next one
        learned the 500 records after the aborted batch and committed past the aborted batch's 110, which were
        never learned (helper brk39, session 39, run 2: the restored state was right, the position was not). The
        cause was not reproduced; this check catches any of them. Only the first record of each partition is
        compared: a transaction pays a dict lookup per record until each armed partition has shown up."""
        unchecked = self._unchecked
        if not unchecked:
            return
        gaps: dict[tuple[str, int], tuple[int, int]] = {}
        for msg in msgs:
            key = (msg.topic() or "", msg.partition() or 0)
            if key not in unchecked:
                continue
            unchecked.discard(key)
            expected, offset = self._resume[key], msg.offset() or 0
            if offset > expected:
                tries = self._gap_rereads.get((*key, expected), 0)
                if tries < GAP_REREADS:
                    gaps[key] = (expected, offset)
                    self._gap_rereads[(*key, expected)] = tries + 1
                else:
                    log.error(
                        "trainer %s: records %d-%d of %s partition %d are not on the topic any more (read again "
                        "%d times from %d, the first record is still %d): deleted by retention before they were "
                        "learned? They are never learned; reading on",
                        self.member, expected, offset - 1, key[0], key[1], tries, expected, offset,
                    )  # fmt: skip
            if not unchecked:
                break
        if gaps:
            where = ", ".join(f"partition {p} at {o}, not {e}" for (_, p), (e, o) in sorted(gaps.items()))
            raise ResumedPastCommitted(
                KafkaError(KafkaError._STATE, f"training read on past the committed offsets ({where})"), gaps
            )

    def _reread(self, gaps: dict[tuple[str, int], tuple[int, int]]) -> None:
        """Read each partition of ``gaps`` again from the offset its last commit left it at."""
        assert self.consumer is not None
        for (topic, partition), (expected, _) in gaps.items():
            try:
                self.consumer.seek(TopicPartition(topic, partition, expected))
            except (
                KafkaException
            ) as exc:  # no longer assigned: its new owner reads it from the committed offset
                log.warning(
                    "trainer %s: cannot read %s partition %d again (%s)", self.member, topic, partition, exc
                )

    # -- after a commit ------------------------------------------------------------------------------------------
    def _send_replies(self) -> None:
        from streams.control import write_reply

        replies, self._replies = self._replies, []
        for reply in replies:
            try:
                # Filed where the sender of that model's command waits for it.
                write_reply(self.redis, self.settings.for_model(reply["model"]), str(reply["id"]), reply)
            except redis.RedisError as exc:
                log.warning("cannot file the answer to control command %s: %s", reply["id"], exc)
