"""Publish a stream of events (features and/or delayed labels) at a given rate: the library behind
``driftline produce`` and the demo's producer.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.producer import EventProducer
from connectors.sources import Event
from driftline.errors import ConfigError

__all__ = ["Summary", "publish"]


@dataclass
class Summary:
    """What a produce run did."""

    features: int = 0
    labels: int = 0
    elapsed_s: float = 0.0
    unlabelled: int = 0  # rows whose label cell was empty (or NaN/inf, read as missing): no Label sent

    def line(self) -> str:
        total = self.features + self.labels
        rate = total / self.elapsed_s if self.elapsed_s > 0 else 0.0
        skipped = f"; {self.unlabelled} row(s) without a label (empty, NaN or inf)" if self.unlabelled else ""
        return (
            f"sent {total} records ({self.features} features, {self.labels} labels) "
            f"in {self.elapsed_s:.2f} s ({rate:,.0f} records/s){skipped}"
        )

    def as_dict(self) -> dict[str, Any]:
        total = self.features + self.labels
        return {
            "sent": total,
            "features": self.features,
            "labels": self.labels,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": round(total / self.elapsed_s, 1) if self.elapsed_s > 0 else 0.0,
            "unlabelled": self.unlabelled,
        }


class _Pacer:
    """Sleep so that event ``i`` is not sent before ``start + i / rate`` (no drift from sleep jitter)."""

    def __init__(self, rate: float | None) -> None:
        if rate is not None and not rate > 0:  # NaN too: it would silently pace nothing
            raise ConfigError(f"--rate: must be positive, got {rate:g}")
        self._rate = rate
        self._start = time.monotonic()

    def wait(self, index: int, producer: EventProducer) -> None:
        if self._rate is None:
            return
        due = self._start + index / self._rate
        # Sleep in Python, serving delivery reports between naps: Ctrl-C inside a blocking librdkafka poll()
        # surfaced as "SystemError: <method 'poll' of 'cimpl.Producer' objects> returned NULL without setting an
        # exception" (a traceback, exit 1) instead of KeyboardInterrupt.
        while (delay := due - time.monotonic()) > 0:
            time.sleep(min(delay, 0.05))
            producer.poll(0)


def publish(
    producer: EventProducer,
    events: Iterable[Event],
    *,
    features: bool = True,
    labels: bool = False,
    label_delay: int = 0,
    rate: float | None = None,
    id_prefix: str = "",
    key_col: str | None = None,
    advance: Callable[[int], object] | None = None,
    summary: Summary | None = None,
) -> Summary:
    """Publish ``events`` (features and/or labels; each label ``label_delay`` features after its own).

    Labels are interleaved with later features, as delayed labels arrive in production; the ones still pending
    at the end follow the last feature. The caller owns ``producer`` (and its final ``close``/``flush``).
    ``summary``: counted into as the records are queued (what an interrupted run had sent), else a new one.
    """
    if label_delay < 0:
        raise ConfigError(f"--label-delay: must be at least 0, got {label_delay}")
    summary = Summary() if summary is None else summary
    pending: collections.deque[tuple[str, Any]] = collections.deque()
    pacer = _Pacer(rate)
    start = time.monotonic()
    for index, event in enumerate(events):
        pacer.wait(index, producer)
        event_id = f"{id_prefix}{event.id}"
        if features:
            feats = dict(event.features)
            if key_col and key_col not in feats:
                raise ConfigError(
                    f"--key-col: no column {key_col!r} in event {event.id} (columns: {', '.join(feats)})"
                )
            key = feats.pop(key_col, None) if key_col else event.key
            producer.send_feature(
                event_id, feats, ts=event.ts, key=None if key is None else str(key), model=event.model
            )
            summary.features += 1
        if labels and event.label is None:
            summary.unlabelled += 1
        elif labels:
            pending.append((event_id, event.label))
            # With delay d, a label goes out once d later features have been sent.
            while len(pending) > (label_delay if features else 0):
                producer.send_label(*pending.popleft())
                summary.labels += 1
        if advance is not None:
            advance(1)
    while pending:
        producer.send_label(*pending.popleft())
        summary.labels += 1
    producer.flush()
    summary.elapsed_s = time.monotonic() - start
    return summary
