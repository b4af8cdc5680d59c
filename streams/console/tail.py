"""A background reader of the topics the console draws: ``training``, ``drift`` and ``deadletter``.

One group-less consumer (no commits, so looking never moves a worker's offsets) starts a bounded distance before
the end of each partition and then follows it, so the pages update live and memory stays bounded whatever the
topic's size. Topics that do not exist yet are looked for again every few seconds.

``training`` and ``deadletter`` are read from their beginning, but the records before the kept ones are only counted
(``training`` per model, by the record's key: the join keys every TrainingExample by its model), not decoded or
kept. So the overview's totals of those two topics are records, not end offsets (a transaction's commit marker takes
an offset: 7 dead letters were shown with 6 on the topic); and the quality page places each kept
example at its index in its model's stream, the index the trainer gives the DriftEvents and guard decisions it
files, so alarms and releases land at the example they were raised at however far behind the trainer is.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import Counter, deque
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from connectors.consumer import decode_message
from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.settings import Settings
from driftline.util import rolling_mean
from schemas.codec import default_codec
from streams.decisions import decision_object

__all__ = ["TopicTail", "deadletter_view", "quality_view"]

log = logging.getLogger(__name__)

TOPICS = ("training", "drift", "deadletter")
COUNTED = ("training", "deadletter")  # read from the beginning: every record counted, the last ones kept
KEEP = {"training": 20000, "drift": 2000, "deadletter": 2000}
PREVIEW_CHARS = 2000


class TopicTail:
    """Keeps the last records of each console topic in memory; ``snapshot(name)`` copies them out."""

    def __init__(self, settings: Settings, keep: dict[str, int] | None = None) -> None:
        self.settings = settings
        self.keep = {**KEEP, **(keep or {})}
        self.codec = default_codec()
        self._rows: dict[str, deque[dict[str, Any]]] = {n: deque(maxlen=self.keep[n]) for n in TOPICS}
        # Per model, the TrainingExamples before the first one kept (counted, not kept); and per training
        # partition, the offset from which records are kept.
        self._dropped: Counter[str] = Counter()
        self._keep_from: dict[tuple[str, int], int] = {}
        # Records read of each COUNTED topic, and the end offsets it had when assigned (until reached, the count
        # is not the topic's yet).
        self._count: Counter[str] = Counter()
        self._ends: dict[str, list[TopicPartition]] = {}
        self._caught_up: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-tail", daemon=True)
        self.version = 0  # bumped whenever new records arrive: the live stream tells pages to refresh
        self.error = ""

    def start(self) -> TopicTail:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def snapshot(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows[name])

    def training(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The kept TrainingExamples and, per model, how many of its examples came before the first one kept
        (read at the same moment: the first kept example of model ``m`` is the ``dropped[m]``-th of its stream)."""
        with self._lock:
            return list(self._rows["training"]), dict(self._dropped)

    def counts(self) -> dict[str, int]:
        """Records on each of ``training`` and ``deadletter`` (every record read since the topic's first offset),
        for the topics read up to the end they had when the tail started: a topic still being read is left out."""
        with self._lock:
            return {n: self._count[n] for n in COUNTED if n in self._caught_up}

    def _consumer(self) -> Consumer:
        conf = client_config(
            self.settings,
            **{
                "group.id": "driftline-console",  # required by the client; never joined, never committed
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "logger": LIBRDKAFKA_LOG,
            },
        )
        return Consumer(conf)

    def _assign_missing(self, consumer: Consumer, assigned: set[str]) -> None:
        todo = [n for n in TOPICS if n not in assigned]
        if not todo:
            return
        parts = list(consumer.assignment())
        metadata = consumer.list_topics(timeout=5)
        for name in todo:
            topic = self.settings.topic(name)
            tmeta = metadata.topics.get(topic)
            if tmeta is None or tmeta.error is not None or not tmeta.partitions:
                continue
            ends = []
            for p in sorted(tmeta.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                start = max(low, high - self.keep[name])
                if name in COUNTED:  # counted from the beginning, kept from ``start``
                    self._keep_from[(name, p)] = start
                    start = low
                    if high > low:
                        ends.append(TopicPartition(topic, p, high))
                parts.append(TopicPartition(topic, p, start))
            if name in COUNTED:
                self._ends[name] = ends
            assigned.add(name)
        consumer.assign(parts)

    def _run(self) -> None:
        consumer = self._consumer()
        assigned: set[str] = set()
        next_look = 0.0
        try:
            while not self._stop.is_set():
                if len(assigned) < len(TOPICS) and time.monotonic() >= next_look:
                    try:
                        self._assign_missing(consumer, assigned)
                        self.error = ""
                    except KafkaException as exc:
                        self.error = (
                            f"cannot read the topics from Kafka at {self.settings.kafka.bootstrap}: {exc} "
                            "(is the stack up? `driftline doctor` checks)"
                        )
                    next_look = time.monotonic() + 3.0
                if not assigned:
                    self._stop.wait(0.5)
                    continue
                messages = consumer.consume(1000, 0.5)
                if messages:
                    self._add(messages)
                self._check_caught_up(consumer)
        finally:
            consumer.close()

    def _check_caught_up(self, consumer: Consumer) -> None:
        """A COUNTED topic's count is the topic's once the tail's position passed the end offsets it had when
        assigned (the position, not the last record's offset: a commit marker can be the last offset)."""
        for name, ends in list(self._ends.items()):
            if ends:
                here = {tp.partition: tp.offset for tp in consumer.position(list(ends))}
                if any(here.get(tp.partition, -1) < tp.offset for tp in ends):
                    continue
            with self._lock:
                self._caught_up.add(name)
            del self._ends[name]

    def _add(self, messages: list[Any]) -> None:
        prefix = self.settings.kafka.topic_prefix
        rows: list[tuple[str, dict[str, Any]]] = []
        for msg in messages:
            if msg.error() is not None:
                continue
            name = str(msg.topic())[len(prefix) :]
            before = msg.offset() < self._keep_from.get((name, msg.partition()), 0)
            if before and name != "training":
                rows.append(("-", {"topic": name}))  # before the kept ones: counted only
                continue
            key = msg.key()
            if before and isinstance(key, bytes):
                rows.append(("-", {"topic": name, "model": key.decode("utf-8", "replace")}))
                continue
            item = decode_message(self.codec, name, msg)
            if before:  # a record without a key: its model is in the value
                model = item.value.get("model") if item.ok and item.value is not None else None
                rows.append(("-", {"topic": name, "model": None if model is None else str(model)}))
                continue
            # The record's own coordinates under names no contract record uses (a DeadLetter has its own
            # ``partition``/``offset``: those of the source record).
            row: dict[str, Any] = {
                "_partition": item.partition,
                "_offset": item.offset,
                "kafka_ts": item.timestamp_ms,
            }
            if item.ok and item.value is not None:
                row.update(item.value)
            else:
                row["undecodable"] = str(item.error)
            rows.append((name, row))
        with self._lock:
            for name, row in rows:
                if name == "-":
                    self._count[row["topic"]] += 1
                    if row.get("model") is not None:
                        self._dropped[row["model"]] += 1
                    continue
                self._count[name] += 1
                kept = self._rows[name]
                if name == "training" and len(kept) == kept.maxlen and "undecodable" not in kept[0]:
                    self._dropped[str(kept[0].get("model"))] += 1  # about to fall off the left
                kept.append(row)
            self.version += 1


# -- views ---------------------------------------------------------------------------------------------------------
def _text(data: Any) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return str(data)


def reason_of(error: str) -> str:
    """The kind of a dead letter: the error's leading ``Type:`` or first words (for grouping, not for meaning)."""
    head = error.split(":", 1)[0].strip()
    return head[:60] if head else "unknown"


def deadletter_view(
    rows: list[dict[str, Any]],
    reason: str | None = None,
    source: str | None = None,
    limit: int = 200,
    prefix: str = "",
) -> dict[str, Any]:
    """Dead letters newest first, filtered by reason and source topic (its full name, or the contract's name
    without ``prefix``), with counts of each (for the filters): ``total`` dead letters read, ``matched`` by the
    filters.

    Payloads are returned as text (invalid UTF-8 replaced), cut to ``PREVIEW_CHARS``; the page shows them as
    text, never as markup.
    """
    items = []
    for r in rows:
        value: Any
        if "undecodable" in r:
            error, src, value = f"undecodable dead letter: {r['undecodable']}", "?", b""
        else:
            error, src, value = str(r.get("error", "")), str(r.get("source_topic", "")), r.get("value")
        text = _text(value)
        items.append(
            {
                "reason": reason_of(error),
                "error": error,
                "source_topic": src,
                "source_partition": r.get("partition"),
                "source_offset": r.get("offset"),
                "key": _text(r.get("key")),
                "value_preview": text[:PREVIEW_CHARS],
                "value_bytes": len(value) if isinstance(value, bytes) else len(text),
                "ts": r.get("ts") or r.get("kafka_ts"),
                "dlq_partition": r["_partition"],
                "dlq_offset": r["_offset"],
            }
        )
    by_reason = Counter(i["reason"] for i in items)
    by_source = Counter(i["source_topic"] for i in items)
    chosen = [
        i
        for i in items
        if (reason is None or i["reason"] == reason)
        and (source is None or i["source_topic"] in (source, prefix + source))
    ]
    return {
        "total": len(items),
        "matched": len(chosen),
        "by_reason": dict(by_reason.most_common()),
        "by_source": dict(by_source.most_common()),
        "items": list(reversed(chosen))[:limit],
    }


def quality_view(
    settings: Settings,
    training: list[dict[str, Any]],
    drift: list[dict[str, Any]],
    releases: list[dict[str, Any]],
    trainer_metrics: dict[str, float] | None,
    window: int = 200,
    points: int = 400,
    dropped: int = 0,
) -> dict[str, Any]:
    """The served model's rolling accuracy (classification) or MAE (regression) over labelled examples, with
    drift alarms, promotions and rollbacks on the same axis; per-feature drift; segment metrics.

    The axis is the example's index in its model's stream, as the trainer counts it (``dropped``: how many of the
    model's examples came before the first of ``training``; a repeated id is skipped, as the trainer skips it).
    A DriftEvent is placed at its ``index`` and a release at its guard decision's ``index``, as the demo report
    places them (``streams/demo/collect.py``), not by time: a trainer behind the stream files them after examples
    it has not learned yet. Only one without an index (-1, a release without a guard decision) is placed by time,
    at the first example written after it. ``first`` is the index of the first example read.
    """
    model, regression = settings.model.name, settings.model.task == "regression"
    examples: list[dict[str, Any]] = []
    ids: set[Any] = set()
    for t in training:
        if t.get("model", model) != model or "undecodable" in t:
            continue
        if t.get("id") is not None:
            if t["id"] in ids:
                continue
            ids.add(t["id"])
        examples.append(t)
    scored: list[tuple[int, float]] = []  # (example index, 1/0 correct or absolute error)
    for i, t in enumerate(examples):
        y, p = t.get("label"), t.get("prediction")
        if p is None:
            # A cold model (before its first release learned anything) answers null: not a wrong answer, as the
            # demo report counts it (streams/reporting/demo.py). Counted as wrong, the console drew 0 % accuracy
            # for the first hundreds of examples of a stream the report started at its first answer.
            continue
        if not regression:
            scored.append((i, 1.0 if p == y else 0.0))
            continue
        try:
            scored.append((i, abs(float(p) - float(y))))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue  # no numeric prediction (an untrained model answers None): no error to average
    rolled = rolling_mean([v for _, v in scored], window)
    step = max(1, len(rolled) // points)
    keep = sorted(set(range(0, len(rolled), step)) | ({len(rolled) - 1} if rolled else set()))
    series = [
        {
            "i": dropped + scored[k][0],
            "value": rolled[k],
            "version": int(examples[scored[k][0]].get("version") or 0),
        }
        for k in keep
    ]
    times = [int(t["kafka_ts"]) for t in examples]

    def at(index: Any, ts: Any) -> int:
        if isinstance(index, (int, float)) and not isinstance(index, bool) and index >= 0:
            return int(index)
        return dropped + bisect.bisect_right(times, int(ts or 0))

    alarms = [
        {
            "i": at(d.get("index"), d.get("ts")),
            "ts": d.get("ts"),
            "signal": d.get("signal"),
            "detector": d.get("detector"),
        }
        for d in drift
        if d.get("model", model) == model and not str(d.get("signal", "")).startswith("feature:")
    ]
    marks = [
        {
            "i": at(decision_object(r.get("decision")).get("index"), r.get("created_at")),
            "version": r["version"],
            "reason": r.get("reason"),
        }
        for r in releases
        if r.get("model") == model
    ]
    features: dict[str, dict[str, Any]] = {}
    for d in drift:
        signal = str(d.get("signal", ""))
        if d.get("model", model) == model and signal.startswith("feature:"):
            f = features.setdefault(signal[8:], {"feature": signal[8:], "alarms": 0, "last_ts": 0})
            f["alarms"] += 1
            if int(d.get("ts") or 0) >= f["last_ts"]:
                f["last_ts"], f["detector"], f["details"] = (
                    int(d.get("ts") or 0),
                    d.get("detector"),
                    d.get("details"),
                )
    segments: dict[str, dict[str, float]] = {}
    for key, value in (trainer_metrics or {}).items():
        if key.startswith("segment."):
            # segment.<value>.<metric>: the segment value may itself contain dots, the metric name does not
            seg, _, metric = key[len("segment.") :].rpartition(".")
            segments.setdefault(seg or metric, {})[metric if seg else "value"] = value
    return {
        "model": model,
        "metric": "mae" if regression else "accuracy",
        "window": window,
        "n": len(examples),
        "first": dropped,
        "series": series,
        "alarms": alarms,
        "releases": marks,
        "features": sorted(features.values(), key=lambda f: -f["alarms"]),
        "segment_feature": getattr(settings.model, "segment_feature", None),
        "segments": segments,
    }
