"""The fault suites' publisher itself (tests/fault_helpers.py), without a broker: a client that stops delivering
while the broker answers again has what it holds sent again through a new producer (at least once), not waited
on until the flush times out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from connectors.producer import Deliveries, DeliveryError
from connectors.producer_recovery import Purged
from tests.fault_helpers import Publisher, make_events


class FakeProducer:
    """Records what it is given; acknowledges it on ``poll`` only if ``delivers`` (a stuck client never does)."""

    def __init__(self, delivers: bool) -> None:
        self.delivers = delivers
        self.sent: list[tuple[str, str, int | None]] = []
        self.held: list[Deliveries] = []
        self.purged = False
        self._delivered = 0  # Deliveries counts acknowledgements here
        self._reports = 0  # and every report
        self._purged = Purged()  # where it would hand back records purged from a replaced client (none here)
        self._producer = self  # the raw client the publisher purges
        self._current: Deliveries | None = None

    @contextmanager
    def tracking(self) -> Iterator[Deliveries]:
        self._current = Deliveries(self)  # type: ignore[arg-type]
        try:
            yield self._current
        finally:
            self._current = None

    def _send(self, record: tuple[str, str, int | None]) -> None:
        self.sent.append(record)
        if self._current is not None:
            self._current.pending += 1
            self.held.append(self._current)

    def send_feature(self, id: str, features: Any, ts: int | None = None) -> None:
        self._send(("feature", id, ts))

    def send_label(self, id: str, label: Any, ts: int | None = None) -> None:
        self._send(("label", id, ts))

    def poll(self, timeout: float = 0) -> None:
        if self.delivers:
            for deliveries in self.held:
                deliveries._on_delivery(None, None)  # type: ignore[arg-type]
            self.held.clear()

    def purge(self, **_: Any) -> None:
        self.purged = True

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        if self.held:
            raise DeliveryError(f"{len(self.held)} record(s) still not acknowledged after {timeout:g} s")
        return 0

    def close(self, timeout: float = 0) -> None:
        self.flush(timeout)

    def __enter__(self) -> FakeProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakePipeline:
    def __init__(self, producer: FakeProducer) -> None:
        self._first = producer

    @contextmanager
    def producer(self) -> Iterator[FakeProducer]:
        yield self._first


def test_records_a_stuck_client_holds_are_sent_again_through_a_new_producer() -> None:
    stuck, fresh = FakeProducer(delivers=False), FakeProducer(delivers=True)
    made = [stuck, fresh]

    class Harness(Publisher):
        def new_producer(self) -> Any:
            return made.pop(0)

        def broker_answers(self) -> bool:
            return True

    events = make_events(40)
    publisher = Harness(FakePipeline(stuck), events, rate=1e9, label_lag=5, flush_timeout=20.0, stall_s=0.5)  # type: ignore[arg-type]
    publisher.run()
    assert publisher.error is None, publisher.error
    assert publisher.sent == 40
    assert len(stuck.sent) == 80  # 40 features, 40 labels
    assert publisher.resent == 80
    assert sorted(fresh.sent) == sorted(stuck.sent)  # the same records: same ids, kinds and event times
    assert stuck.purged, "the stuck client kept what it held (it could deliver it later, after the copies)"


def test_a_client_that_delivers_is_not_replaced() -> None:
    healthy = FakeProducer(delivers=True)
    made = [healthy]

    class Harness(Publisher):
        def new_producer(self) -> Any:
            return made.pop(0)

        def broker_answers(self) -> bool:
            raise AssertionError("asked whether the broker answers although every record was acknowledged")

    publisher = Harness(FakePipeline(healthy), make_events(30), rate=1e9, stall_s=0.5)  # type: ignore[arg-type]
    publisher.run()
    assert publisher.error is None, publisher.error
    assert publisher.resent == 0
    assert len(healthy.sent) == 60 and not healthy.purged
