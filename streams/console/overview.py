"""The overview page's numbers: ``status --json`` plus rates, pending joins and the versions scorers serve.

Rates come from totals sampled over time, so they need no access to the workers' metrics ports and read the same
however the workers are laid out. The totals of ``training`` and ``deadletter`` are records, counted by the
console's tail (which reads those topics whole); those of ``features`` and ``predictions`` are end offsets, which a
transaction's commit markers take too (the trainer writes its dead letters in transactions: 7 offsets for 6 dead
letters). Each rate says which it counts (``counts``: ``records`` or ``offsets``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.errors import DriftlineError
from driftline.settings import Settings
from schemas.codec import default_codec
from streams.console import sources
from streams.serving import refused_newer
from streams.status import kafka_answers, stack_state_text, withheld_text

__all__ = ["Overview"]

RATE_TOPICS = ("features", "predictions", "training", "deadletter")
RATE_WINDOW_S = 15.0


ROLES = ("score", "join", "train")


def _stamp(ms: int) -> str:
    """A time for the page: fixed (not "5s ago"), so the overview redraws only when something changed."""
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


def _role(group: str) -> str:
    """A stage's consumer group -> its role: ``driftline-<prefix><model>-score`` -> ``score`` (a model name may
    contain dashes too, so only known role words are taken); ``driftline-<prefix>trainers`` -> ``train``."""
    if group.endswith("trainers"):
        return "train"
    parts = group.split("-")
    roles: list[str] = []
    while parts and parts[-1] in ROLES:
        roles.insert(0, parts.pop())
    return "+".join(roles) or "?"


class Overview:
    """Computes the overview (at most once per ``ttl_s``; callers from several requests share the result)."""

    def __init__(
        self,
        settings: Settings,
        ttl_s: float = 2.0,
        records: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        """``records``: records on some of RATE_TOPICS (:meth:`TopicTail.counts`), used instead of their end
        offsets."""
        self.settings = settings
        self.ttl_s = ttl_s
        self._records = records
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._ends: deque[tuple[float, dict[str, tuple[int, str]]]] = deque(maxlen=64)
        self._consumer: Consumer | None = None

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl_s:
                return self._cached[1]
            value = self._compute()
            self._cached = (time.monotonic(), value)
            return value

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()

    def _compute(self) -> dict[str, Any]:
        s = self.settings
        out: dict[str, Any] = {"generated_at": int(time.time() * 1000), "model": s.model.name}
        out["status"] = status = sources.status(s)
        # Each service's state in the words of `driftline status` (a Redis refusing the credentials: the page said
        # DOWN where status says REFUSED and what to check; review35).
        out["stack_state"] = {
            name: stack_state_text(name, status["stack"][name]) for name in ("kafka", "redis")
        }
        if not kafka_answers(status["stack"]["kafka"]):
            return out
        live = sources.trainer(s)
        out["trainer"] = None if live is None else {k: v for k, v in live.items() if k != "metrics"}
        # The trainer's withheld releases in the words of `driftline status` (the page showed none of them).
        withheld = live.get("withheld") if live else None
        out["withheld"] = (
            withheld_text(withheld, live["served_version"], _stamp) if live and withheld else None
        )
        # A candidate held for approval, as status reads it (the page read a `held` the trainer's status lacks).
        out["held_candidate"] = bool(live and live.get("metrics", {}).get("held"))
        workers = []
        for g in status.get("workers", []):
            workers.append({**g, "role": _role(g["group"])})
        out["workers"] = workers
        mine: dict[str, Any] = next((m for m in status.get("models", []) if m["model"] == s.model.name), {})
        # What the scorers report serving (else what was released), and the signed releases they refused.
        out["served_version"] = mine.get("served_version")
        out["refused"] = refused_newer(mine.get("scorers"))
        out["scorers"] = self._served_by_partition()
        out["rates"] = self._rates()
        # The join store as status reads it (its one read, under model.name): a key holding junk of the wrong type
        # is named in joins_damaged and only its figure is unknown (the console's own read showed both unknown).
        joins = mine.get("joins") or {}
        out["pending_joins"], out["parked_labels"] = joins.get("pending"), joins.get("parked")
        out["joins_damaged"] = joins.get("damaged", [])
        return out

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                client_config(
                    self.settings,
                    **{
                        "group.id": "driftline-console",
                        "enable.auto.commit": False,
                        "logger": LIBRDKAFKA_LOG,
                    },
                )
            )
        return self._consumer

    def _ends_now(self) -> dict[str, int]:
        consumer, out = self._client(), {}
        metadata = consumer.list_topics(timeout=5)
        for name in RATE_TOPICS:
            topic = self.settings.topic(name)
            tmeta = metadata.topics.get(topic)
            if tmeta is None or tmeta.error is not None:
                continue
            out[name] = sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                for p in tmeta.partitions
            )
        return out

    def _rates(self) -> dict[str, Any]:
        now = time.monotonic()
        try:
            offsets = self._ends_now()
        except KafkaException:
            return {}
        records = self._records() if self._records is not None else {}
        ends = {
            name: (records[name], "records") if name in records else (offsets.get(name, 0), "offsets")
            for name in RATE_TOPICS
        }
        self._ends.append((now, ends))
        while len(self._ends) > 2 and now - self._ends[0][0] > RATE_WINDOW_S:
            self._ends.popleft()
        t0, first = self._ends[0]
        span = now - t0
        out = {}
        for name, (total, counts) in ends.items():
            then, counted = first.get(name, (0, counts))
            # A rate only between two totals of the same kind (a topic's count switches from offsets to records
            # once the tail has read it to its end).
            same = counted == counts and span > 0
            out[name] = {
                "total": total,
                "counts": counts,
                "per_s": max(0, total - then) / span if same else None,
            }
        return out

    def _served_by_partition(self) -> list[dict[str, Any]]:
        """The version on the newest prediction of each ``predictions`` partition: what scorers serve now."""
        consumer, topic = self._client(), self.settings.topic("predictions")
        try:
            tmeta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if tmeta is None or tmeta.error is not None:
                return []
            wanted = {}
            for p in sorted(tmeta.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                if high > low:
                    wanted[p] = high - 1
            if not wanted:
                return []
            consumer.assign([TopicPartition(topic, p, o) for p, o in wanted.items()])
            found: dict[int, dict[str, Any]] = {}
            codec = default_codec()
            deadline = time.monotonic() + 3.0
            while len(found) < len(wanted) and time.monotonic() < deadline:
                for msg in consumer.consume(len(wanted), 0.5):
                    if msg.error() is not None or msg.partition() in found:
                        continue
                    try:
                        value = codec.decode("Prediction", msg.value() or b"", topic=topic, allow_json=True)
                    except DriftlineError:
                        continue
                    found[int(msg.partition() or 0)] = {
                        "partition": msg.partition(),
                        "version": value.get("version"),
                        "model": value.get("model"),
                        "scored_at": value.get("scored_at") or msg.timestamp()[1],
                    }
            consumer.unassign()
            return [found[p] for p in sorted(found)]
        except KafkaException:
            return []
