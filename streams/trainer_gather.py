"""When a trainer group's transaction ends, and where its records come from: the first records of a transaction
(:meth:`GatheringBatches._gather`), the records it gathers while it learns (:meth:`GatheringBatches._more`), the
records read ahead while the last transaction committed (:meth:`GatheringBatches._read_ahead`), and the fetch they
share (:meth:`GatheringBatches._fetch`).

:class:`GatheringBatches` is a base of :class:`streams.trainers.TrainerGroup`, which holds the consumer, its
watchdog and the rebalance callbacks; it is not used alone (split from ``streams/trainers.py`` in session 21).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from connectors.batch_source import GroupWatchdog, consumer_lags
from streams.trainer_transactions import COMMIT_MAX, Chunk, Rebalanced, TransactionalBatches

# The trainer group's logger: these messages keep the logger name they had in streams.trainers.
log = logging.getLogger("streams.trainers")

COMMIT_EVERY_S = 0.5  # one transaction gathers the records of up to this long, or COMMIT_MAX records ...
# ... but one of a worker that was behind (a fetch found BEHIND_AT records waiting) ends as soon as it has caught
# up (nothing fetched, every owned partition read to its end): the end of a backlog or a burst waits for no
# window, at most once per BEHIND_AT records read, while a trickle of labels still shares one transaction per
# window (session 21, BENCHMARKS.md).
BEHIND_AT = 500
# ... but one that published a release (or applied a control command) ends as soon as nothing more is waiting, or
# once it has been open this long while records keep coming: scorers see the release at once, and a busy trainer
# still writes each model's state at most ~1/RELEASE_COMMIT_S times a second (session 12, BENCHMARKS.md).
RELEASE_COMMIT_S = 0.1
# The shortest wait of a poll for a transaction's first records (GatheringBatches._gather;
# serving.batch_timeout_s when longer).
GATHER_MIN_S = 0.1


class GatheringBatches(TransactionalBatches):
    """The gathering of a :class:`~streams.trainers.TrainerGroup`'s transactions (its base class; see the module
    docstring)."""

    # Set by TrainerGroup.__init__ (and by its rebalance callbacks).
    watchdog: GroupWatchdog
    _polled_s: float
    _rebalanced: bool
    # A fetch returned BEHIND_AT records since the worker was last found caught up (_keep_gathering).
    _behind: bool

    def _gather(self, consumer: Consumer) -> list[Message]:
        """The first records of a transaction: what is fetched already, else the first to arrive within the
        batch timeout (at least ``GATHER_MIN_S``). The transaction gathers the rest while it learns (:meth:`_more`).

        Records fetched before a rebalance are dropped (the partitions' owners read them again from the
        committed offsets); those fetched after it, from the committed offsets of the new assignment, are kept."""
        if self._ahead:  # read while the last transaction committed
            self._polled_s = 0.0
            self.watchdog.stuck(True, 0.0)
            return self._ahead.pop(
                0
            )  # at most ``cap`` records (read so: the abort that set it dropped the rest)
        batch = min(self.settings.serving.batch_size, self.cap or COMMIT_MAX)
        within = max(self.settings.serving.batch_timeout_s, GATHER_MIN_S)
        started = time.monotonic()
        out, _ = self._fetch(consumer, batch, within)
        self._polled_s = time.monotonic() - started
        if out:
            self.watchdog.stuck(True, self._polled_s)
        return out

    def _more(self, consumer: Consumer, opened: float, gathered: int, urgent: bool) -> list[Message]:
        """The next records of the open transaction (opened at ``opened``, ``gathered`` records so far), or none
        to end it: at ``COMMIT_EVERY_S`` or ``COMMIT_MAX`` as before, and when it is ``urgent`` (it published a
        release) as soon as nothing more is waiting or it has been open ``RELEASE_COMMIT_S``.

        A transaction writes the state of every model it touched, so a larger one writes each state once for
        more labels (BENCHMARKS.md, learning scale-out): records that keep coming still share a transaction,
        while a release no longer waits for the whole window. Nor does the end of a backlog: a worker that found
        ``BEHIND_AT`` records waiting since it was last caught up ends the transaction once it has caught up
        (:meth:`_keep_gathering`), so the last labels of a burst (or of a finite run) are committed without
        waiting for records that are not coming; at most once per ``BEHIND_AT`` records read. A rebalance while
        gathering raises :class:`Rebalanced`: the transaction is aborted (the consumer rewound to the committed
        offsets) and its records read again by their partitions' owners."""
        now = time.monotonic()
        deadline = opened + COMMIT_EVERY_S
        most = min(COMMIT_MAX, self.cap or COMMIT_MAX)  # fewer after a transaction its timeout aborted
        if gathered >= most or now >= deadline or (urgent and now >= opened + RELEASE_COMMIT_S):
            return []
        # Read while the last transaction committed (a chunk past the bound ends this transaction instead).
        if self._ahead:
            return self._ahead.pop(0) if gathered + len(self._ahead[0]) <= most else []
        batch = min(self.settings.serving.batch_size, most - gathered)
        out, rebalanced = self._fetch(
            consumer, batch, 0.0 if urgent else deadline - now, partial(self._keep_gathering, consumer)
        )
        if rebalanced:
            raise Rebalanced(KafkaError(KafkaError.REBALANCE_IN_PROGRESS, "rebalanced while gathering"))
        return out

    def _read_ahead(self) -> bool:
        """While a transaction commits (:func:`streams.trainer_transactions.bounded`): fetch the records already
        fetched by librdkafka (no wait) and decode them for the next transaction; False once there is nothing to
        do (nothing waiting, ``COMMIT_MAX`` records in hand, or the group rebalanced).

        The commit's round trips were 5-20 ms per transaction in which the trainer thread only waited (session
        20, BENCHMARKS.md). Decoding changes nothing the commit reads, and nothing read ahead is learned before
        the commit returned: an abort's rewind, a seek or a new consumer drops it (read again from the committed
        offsets). A rebalance seen here drops what came before it, as :meth:`_gather` does (records fetched after
        it, from the new assignment's committed offsets, are kept for the transaction after the restore), and the
        committed state is not kept (the models were dropped: the restore reads the changelog, after this
        commit)."""
        consumer = self.consumer
        if consumer is None or self._restore_needed or sum(map(len, self._ahead)) >= COMMIT_MAX:
            return False
        out, rebalanced = self._fetch(
            consumer, min(self.settings.serving.batch_size, self.cap or COMMIT_MAX), 0.0
        )
        if rebalanced:
            self._ahead.clear()  # the callbacks cleared it already; what ``out`` holds came after them
            self._ahead_rebalanced = True
        if out:
            chunk = Chunk(out)
            chunk.prepared = self._prepare(out)
            self._ahead.append(chunk)
        return bool(out) and not rebalanced

    def _keep_gathering(self, consumer: Consumer) -> bool:
        """False (the open transaction ends) when the worker was behind (a fetch returned ``BEHIND_AT`` records
        since it was last found caught up) and has caught up: nothing was fetched just now, and every owned
        partition it has read is read to the end librdkafka last saw (no round trip:
        :func:`~connectors.batch_source.consumer_lags`). A trickle never finds that many records waiting: it
        keeps gathering for the window."""
        if not self._behind:
            return True
        try:
            lags = consumer_lags(consumer)
        except KafkaException:
            return True  # not known: the window, as before
        if not lags or any(lags.values()):
            return True
        self._behind = False
        return False

    def _fetch(
        self, consumer: Consumer, batch: int, wait_s: float, wait_if: Callable[[], bool] | None = None
    ) -> tuple[list[Message], bool]:
        """Up to ``batch`` records: those fetched already, else the first to arrive within ``wait_s`` (and what
        came with it; not waited for if ``wait_if`` says no); and whether the group rebalanced meanwhile (only
        records fetched after that are kept). ``consume(n, t)`` alone waits for all ``n`` or the whole ``t``: a
        label that arrived at once waited the whole timeout. ``BEHIND_AT`` records or more mark the worker as
        behind (see :meth:`_keep_gathering`)."""
        out: list[Message] = []
        rebalanced = False

        def take(n: int, timeout: float) -> int:
            nonlocal out, rebalanced
            self._rebalanced = False
            msgs = consumer.consume(n, timeout)
            # The revoke/assign callbacks ran inside this call: what came before it is stale.
            if self._rebalanced:
                out, rebalanced = [], True
            for msg in msgs:
                if msg.error():
                    log.warning("trainer consumer: %s", msg.error())
                else:
                    out.append(msg)
            return len(msgs)

        if (
            not take(batch, 0)
            and wait_s > 0
            and (wait_if is None or wait_if())
            and take(1, wait_s)
            and batch > 1
        ):
            take(batch - 1, 0)
        if len(out) >= BEHIND_AT:
            self._behind = True
        return out, rebalanced
