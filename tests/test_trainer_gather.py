"""When the trainer group ends a transaction (``GatheringBatches._more``), without a broker: a fake consumer stands in.

A transaction that published a release ends as soon as nothing more is waiting, or once it has been open
``RELEASE_COMMIT_S`` while records keep coming; one without a release gathers for the whole window (or
``COMMIT_MAX`` records), as before; a rebalance while gathering aborts it (``Rebalanced``).
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any

import pytest

from connectors.batch_source import GroupWatchdog
from driftline.settings import load_settings
from streams import trainer_gather
from streams.trainer_transactions import Rebalanced
from streams.trainers import TrainerGroup


class Msg:
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def error(self) -> None:
        return None

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """``consume(n, t)``: the queued records at once; when none are queued, ``arrive`` (if any) after a wait."""

    def __init__(self, queued: int = 0, arrive: int = 0) -> None:
        self.queued = [Msg(i) for i in range(queued)]
        self.arrive = arrive
        self.waits: list[float] = []

    def consume(self, n: int, timeout: float) -> list[Any]:
        if not self.queued and timeout > 0:
            self.waits.append(timeout)
            self.queued = [Msg(1000 + i) for i in range(self.arrive)]
            self.arrive = 0
        out, self.queued = self.queued[:n], self.queued[n:]
        return out


def _group() -> TrainerGroup:
    group = TrainerGroup.__new__(TrainerGroup)  # no broker: only what _more reads
    group.settings = load_settings(environ={})
    group._rebalanced = False
    group._ahead = []
    group._behind = False
    group.watchdog = types.SimpleNamespace(stuck=lambda *a: None)  # type: ignore[assignment]
    return group


def test_a_release_ends_the_transaction_when_nothing_more_waits() -> None:
    consumer = FakeConsumer(queued=0, arrive=5)
    assert _group()._more(consumer, time.monotonic(), 10, urgent=True) == []  # type: ignore[arg-type]
    assert consumer.waits == []  # did not wait for the window


def test_without_a_release_the_transaction_waits_for_more_records() -> None:
    consumer = FakeConsumer(queued=0, arrive=5)
    got = _group()._more(consumer, time.monotonic(), 10, urgent=False)  # type: ignore[arg-type]
    assert len(got) == 5
    assert consumer.waits and consumer.waits[0] <= trainer_gather.COMMIT_EVERY_S


def test_a_release_still_takes_what_is_waiting_until_its_floor() -> None:
    group, consumer = _group(), FakeConsumer(queued=7)
    assert len(group._more(consumer, time.monotonic(), 10, urgent=True)) == 7  # type: ignore[arg-type]
    old = time.monotonic() - trainer_gather.RELEASE_COMMIT_S - 0.01
    assert group._more(FakeConsumer(queued=7), old, 10, urgent=True) == []  # type: ignore[arg-type]


def test_the_window_and_the_size_still_bound_a_transaction() -> None:
    group = _group()
    late = time.monotonic() - trainer_gather.COMMIT_EVERY_S - 0.01
    assert group._more(FakeConsumer(queued=3), late, 10, urgent=False) == []  # type: ignore[arg-type]
    full = FakeConsumer(queued=3)
    assert group._more(full, time.monotonic(), trainer_gather.COMMIT_MAX, urgent=False) == []  # type: ignore[arg-type]
    capped = FakeConsumer(queued=900)
    got = group._more(capped, time.monotonic(), trainer_gather.COMMIT_MAX - 2, urgent=False)  # type: ignore[arg-type]
    assert len(got) == 2


def test_after_a_timeout_abort_a_transaction_gathers_at_most_the_bound() -> None:
    """``cap`` (set when the broker aborted a transaction by its timeout: TransactionalBatches._shrink) bounds the
    records a transaction gathers, its first ones and those it adds."""
    group = _group()
    group.cap = 7
    assert len(group._gather(FakeConsumer(queued=900))) == 7  # type: ignore[arg-type]
    got = group._more(FakeConsumer(queued=900), time.monotonic(), 5, urgent=False)  # type: ignore[arg-type]
    assert len(got) == 2
    assert group._more(FakeConsumer(queued=900), time.monotonic(), 7, urgent=False) == []  # type: ignore[arg-type]


def test_a_rebalance_while_gathering_aborts_the_transaction() -> None:
    group = _group()

    class Revoking(FakeConsumer):
        def consume(self, n: int, timeout: float) -> list[Any]:
            group._rebalanced = True  # as the revoke callback does inside consume()
            return super().consume(n, timeout)

    with pytest.raises(Rebalanced):
        group._more(Revoking(queued=3), time.monotonic(), 10, urgent=False)  # type: ignore[arg-type]


# -- reading ahead while a transaction commits (session 20) ---------------------------------------------------------
def _ahead_group(consumer: FakeConsumer) -> TrainerGroup:
    group = _group()
    group.consumer = consumer  # type: ignore[assignment]
    group._restore_needed = False
    group._ahead_rebalanced = False
    group.watchdog = GroupWatchdog(("training", "control"), 20.0)
    group._prepare = lambda msgs: ([], [m.offset() for m in msgs])  # type: ignore[method-assign,assignment]
    return group


def test_records_read_ahead_during_a_commit_open_the_next_transaction_in_order() -> None:
    consumer = FakeConsumer(queued=1200)
    group = _ahead_group(consumer)
    while group._read_ahead():
        pass
    assert [len(c) for c in group._ahead] == [500, 500, 200]
    assert group._ahead[0].prepared[1][:3] == [0, 1, 2]  # decoded while the commit ran
    first = group._gather(consumer)  # type: ignore[arg-type]
    assert [m.offset() for m in first] == list(range(500))
    nxt = group._more(consumer, time.monotonic(), 500, urgent=False)  # type: ignore[arg-type]
    assert [m.offset() for m in nxt] == list(range(500, 1000))
    assert consumer.waits == []  # nothing was fetched again


def test_reading_ahead_stops_at_commit_max_and_a_chunk_past_it_ends_the_transaction() -> None:
    group = _ahead_group(FakeConsumer(queued=trainer_gather.COMMIT_MAX + 1000))
    while group._read_ahead():
        pass
    assert sum(map(len, group._ahead)) == trainer_gather.COMMIT_MAX
    consumer = FakeConsumer(queued=10)
    assert group._more(consumer, time.monotonic(), trainer_gather.COMMIT_MAX - 10, urgent=False) == []  # type: ignore[arg-type]
    assert len(consumer.queued) == 10  # not read past the stash either


def test_a_rebalance_while_reading_ahead_drops_what_came_before_it_and_keeps_what_came_after() -> None:
    consumer = FakeConsumer(queued=700)
    group = _ahead_group(consumer)
    assert group._read_ahead()
    real = consumer.consume

    def rebalancing(n: int, timeout: float) -> list[Any]:
        # As the callbacks do inside consume(): the records it returns come after them.
        group._rebalanced = True
        group._ahead.clear()
        return real(n, timeout)

    consumer.consume = rebalancing  # type: ignore[method-assign]
    assert not group._read_ahead()  # stops reading ahead
    assert group._ahead_rebalanced
    assert [[m.offset() for m in c] for c in group._ahead] == [list(range(500, 700))]


def test_bounded_works_meanwhile_until_the_call_returns_and_still_bounds_a_hung_call() -> None:
    from streams.trainer_transactions import TransactionHung, bounded

    release, turns = threading.Event(), []

    def meanwhile() -> bool:
        turns.append(1)
        if len(turns) == 3:
            release.set()  # the call returns once the waiting thread did some work
        return len(turns) < 5

    bounded(lambda: release.wait(5) and None, "commit", 10.0, meanwhile)
    assert 3 <= len(turns) <= 5
    with pytest.raises(TransactionHung):
        bounded(lambda: time.sleep(5), "commit", 0.2, lambda: True)


# -- the end of a backlog (session 21) ----------------------------------------------------------------------------
class TP:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = "training", 0, offset


class EndConsumer(FakeConsumer):
    """A consumer whose one partition is read up to ``position`` of ``end`` (librdkafka's cached high watermark)."""

    def __init__(self, position: int, end: int, queued: int = 0, arrive: int = 0) -> None:
        super().__init__(queued=queued, arrive=arrive)
        self.position_at, self.end = position, end

    def assignment(self) -> list[TP]:
        return [TP(-1001)]

    def position(self, partitions: list[TP]) -> list[TP]:
        return [TP(self.position_at)]

    def get_watermark_offsets(self, tp: TP, cached: bool = False) -> tuple[int, int]:
        assert cached  # no round trip to the broker
        return 0, self.end


def test_a_worker_that_was_behind_ends_the_transaction_once_it_has_caught_up() -> None:
    group = _group()
    backlog = EndConsumer(position=0, end=trainer_gather.BEHIND_AT, queued=trainer_gather.BEHIND_AT)
    assert len(group._more(backlog, time.monotonic(), 10, urgent=False)) == trainer_gather.BEHIND_AT  # type: ignore[arg-type]
    assert group._behind  # a full batch was waiting
    # Read to the end: the transaction ends now, without waiting for the window.
    done = EndConsumer(position=trainer_gather.BEHIND_AT, end=trainer_gather.BEHIND_AT, arrive=5)
    assert group._more(done, time.monotonic(), 10 + trainer_gather.BEHIND_AT, urgent=False) == []  # type: ignore[arg-type]
    assert done.waits == [] and not group._behind
    # Caught up, the worker gathers for the window again until a backlog fills a batch.
    trickle = EndConsumer(position=600, end=600, arrive=5)
    assert len(group._more(trickle, time.monotonic(), 5, urgent=False)) == 5  # type: ignore[arg-type]
    assert trickle.waits and trickle.waits[0] <= trainer_gather.COMMIT_EVERY_S


def test_a_worker_that_is_still_behind_or_never_was_keeps_gathering_for_the_window() -> None:
    group = _group()
    group._behind = True
    # Nothing fetched yet, but the partition's end is past the read position: records are on the way.
    behind = EndConsumer(position=500, end=900, arrive=5)
    assert len(group._more(behind, time.monotonic(), 600, urgent=False)) == 5  # type: ignore[arg-type]
    assert behind.waits and group._behind
    # A trickle (no fetch ever found BEHIND_AT records waiting) read to the end still waits for more.
    group._behind = False
    trickle = EndConsumer(position=900, end=900, arrive=3)
    assert len(group._more(trickle, time.monotonic(), 40, urgent=False)) == 3  # type: ignore[arg-type]
    assert trickle.waits and not group._behind


def test_the_kernels_are_warmed_before_the_group_is_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    # session 35: the warm-up (numba's import, ~3 s on a loaded machine) ran after subscribing, so the group had a
    # member that could not learn yet: the demo, which waits for a member before producing, sent its first ~900
    # labels into the warm-up.
    import streams.trainers as trainers_mod
    from driftline.config import LearnerSpec
    from schemas.codec import default_codec
    from streams.metrics import build_metrics

    order: list[str] = []

    class Joined(Exception):
        pass

    def subscribe(self: TrainerGroup) -> None:
        order.append("subscribe")
        raise Joined

    monkeypatch.setattr(trainers_mod, "ensure_topics", lambda settings, names: None)
    monkeypatch.setattr(trainers_mod.kernels, "warm_for", lambda *specs: order.append("warm") or 0.0)
    monkeypatch.setattr(TrainerGroup, "_subscribe", subscribe)
    # No broker: the transactional producer's init_transactions would reach whatever DRIFTLINE_KAFKA_BOOTSTRAP
    # names (9092 by default) from a test not marked kafka (session 38: it timed out against no broker there).
    closed = types.SimpleNamespace(close=lambda timeout: order.append("closed"))
    monkeypatch.setattr(TrainerGroup, "_new_context", lambda self: types.SimpleNamespace(out=closed))
    settings = load_settings(overrides={"model": {"learner": {"name": "hoeffding_tree"}}})
    assert settings.model.learner == LearnerSpec("hoeffding_tree")
    group = TrainerGroup(settings, build_metrics(), default_codec())
    with pytest.raises(Joined):
        group.run(threading.Event())
    assert order == ["warm", "subscribe", "closed"]


class TrainingMsg(Msg):
    def topic(self) -> str:
        return "t.training"

    def partition(self) -> int:
        return 0


def test_a_partition_read_past_its_commit_is_read_again_then_a_gap_that_stays_is_taken() -> None:
    """``_check_resumed``: the first record of a training partition after its commit must be at the committed
    offset; one past it raises ResumedPastCommitted (the partition is read again from there). A gap found again
    after ``GAP_REREADS`` re-reads is the topic's (retention deleted the records): said, and reading goes on."""
    from streams.trainer_transactions import GAP_REREADS, ResumedPastCommitted

    group = _group()
    group.topics = ("t.training", "t.control")
    group.member = "m"
    group._resume, group._unchecked, group._gap_rereads = {}, set(), {}
    group._committed([types.SimpleNamespace(topic="t.training", partition=0, offset=200)])  # type: ignore[list-item]
    group._check_resumed([TrainingMsg(200), TrainingMsg(201)])  # where the commit left it: nothing raised
    assert not group._unchecked  # checked once: the records after the first cost nothing
    group._check_resumed([TrainingMsg(400)])  # not armed again until a commit, a restore or an abort
    for _ in range(GAP_REREADS):
        group._unchecked = set(group._resume)  # as after the abort the gap causes
        with pytest.raises(ResumedPastCommitted) as raised:
            group._check_resumed([TrainingMsg(310), TrainingMsg(311)])
        assert raised.value.args[1] == {("t.training", 0): (200, 310)}
    group._unchecked = set(group._resume)
    group._check_resumed(
        [TrainingMsg(310)]
    )  # the same gap after GAP_REREADS re-reads: taken, reading goes on
    group._committed([types.SimpleNamespace(topic="t.training", partition=0, offset=311)])  # type: ignore[list-item]
    assert group._gap_rereads == {}
