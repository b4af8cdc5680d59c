"""Measurements through the real pipeline: worker processes started by pid, events through the local broker.

- scoring throughput: ``features`` pre-filled, one ``score`` worker started, events per second from the first
  to the last Prediction's Kafka timestamp;
- latency: features produced at a fixed rate; latency is the Prediction's Kafka timestamp (set when the worker
  queued it) minus the FeatureEvent's Kafka timestamp (set when the bench queued it); ``visible`` latency is the
  bench consumer's receive time minus the same, so it also holds the worker's flush and the fetch;
- learning throughput: ``training`` pre-filled, one ``train`` worker started, examples learned per second from
  the trainer's own status (``labels_learned`` and ``updated_at``, published after every batch);
- release to scorers: a signed release published on ``models``, time until every score worker's
  ``driftline_served_model_version`` shows it.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.data import Row, feature_value, publish_release, raw_producer, release_record
from bench.env import busy_seconds, cpu_seconds, progress
from bench.rates import latency_phase, score_rate
from connectors.kafka_client import client_config
from connectors.producer import PRODUCER_DEFAULTS
from driftline.settings import Settings
from driftline.util import percentile
from schemas.codec import Codec
from streams.metrics_text import metric_value
from streams.processes import WorkerProcess
from streams.trainer_status import trainer_status


@dataclass
class Seen:
    """One Prediction read back: its Kafka timestamp, when the bench received it, and its bytes (decoded only
    when asked: the reader shares the machine with the worker it measures, so it stays cheap)."""

    kafka_ts_ms: int
    received_ms: float
    value: bytes


@dataclass
class PredictionReader:
    """A background consumer of ``predictions`` (every partition, from the beginning), indexed by event id."""

    settings: Settings
    codec: Codec
    seen: dict[str, Seen] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> PredictionReader:
        self._thread = threading.Thread(target=self._run, name="bench-predictions", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        topic = self.settings.topic("predictions")
        consumer = Consumer(
            client_config(
                self.settings,
                **{"group.id": f"{topic}-bench-reader", "enable.auto.commit": False, "fetch.wait.max.ms": 5},
            )
        )
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(1000, 0.05):
                    if msg.error():
                        continue
                    # The worker keys each Prediction with its event id (the contract).
                    key = msg.key()
                    if key is not None:
                        self.seen[key.decode()] = Seen(
                            msg.timestamp()[1], time.time() * 1000, msg.value() or b""
                        )
        finally:
            consumer.close()

    def wait_for(self, ids: list[str], timeout: float) -> list[Seen]:
        """The predictions for ``ids``; raises if they do not all arrive within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            missing = sum(1 for i in ids if i not in self.seen)
            if not missing:
                return [self.seen[i] for i in ids]
            time.sleep(0.1)
        got = sum(1 for i in ids if i in self.seen)
        raise RuntimeError(f"only {got} of {len(ids)} predictions arrived within {timeout:g} s")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def score_throughput(
    reader: PredictionReader, rows: list[Row], worker: WorkerProcess, timeout: float
) -> dict[str, Any]:
    """Events per second of one score worker over the pre-filled ``rows`` (first to last prediction out).

    Also the worker's CPU time per event (all threads, from ``/proc``) between the first prediction seen and the
    last: unlike events per second it barely depends on what else the machine runs.
    """
    deadline = time.monotonic() + timeout
    while not reader.seen and time.monotonic() < deadline and worker.alive():
        time.sleep(0.002)
    cpu0, n0 = cpu_seconds(worker.pid), len(reader.seen)
    try:
        seen = reader.wait_for([r[0] for r in rows], max(1.0, deadline - time.monotonic()))
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; worker log:\n{worker.log_tail()}") from exc
    cpu = cpu_seconds(worker.pid) - cpu0
    stamps = [s.kafka_ts_ms for s in seen]
    span_s = (max(stamps) - min(stamps)) / 1000.0
    cpu_us = cpu / max(1, len(rows) - n0) * 1e6 if cpu > 0 else None
    return {
        "score_eps": (len(rows) - 1) / span_s if span_s > 0 else 0.0,
        "score_span_s": span_s,
        "score_events": len(rows),
        # The median of the phase's half-second windows, with their spread: what the latency phase halves.
        **score_rate(stamps),
        # None when no CPU tick (10 ms) passed after the first prediction: a tiny run the worker scored at once.
        "score_cpu_us": cpu_us,
        # The rate the worker's CPU per event would sustain were all its threads' work serialised on one core.
        "score_cpu_eps": 1e6 / cpu_us if cpu_us else None,
        "null_predictions": sum(
            1 for s in seen if reader.codec.decode("Prediction", s.value)["prediction"] is None
        ),
    }


def _batches(worker: WorkerProcess) -> tuple[float, float]:
    text = worker.metrics_text()
    labels = {"stage": "score"}
    count = metric_value(text, "driftline_batch_size_count", labels) or 0.0
    return count, metric_value(text, "driftline_batch_size_sum", labels) or 0.0


def latency_at_rate(
    settings: Settings,
    codec: Codec,
    reader: PredictionReader,
    rows: list[Row],
    rate: float,
    timeout: float,
    worker: WorkerProcess | None = None,
    sent_ms: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Produce ``rows`` at ``rate`` events per second and measure feature-to-prediction latency of each.

    With ``worker`` (the only scorer), also its CPU per event and mean batch size over the phase. ``sent_ms``
    (if given) receives each event's send time (its Kafka timestamp) by id.
    """
    topic = settings.topic("features")
    before = (cpu_seconds(worker.pid), *_batches(worker)) if worker is not None else None
    # The producer a user would run (driftline's own defaults: linger 5 ms). With linger 0 every event became a
    # request of its own and the broker, on the same two cores, fell behind at a few thousand events/s: latency
    # measured the bench's producer, not the pipeline (BENCHMARKS.md). The linger is part of the measured latency.
    producer = raw_producer(settings, **{"linger.ms": PRODUCER_DEFAULTS["linger.ms"]})
    sent_ms = {} if sent_ms is None else sent_ms
    # Encoded before the clock starts: the bench shares the two cores with what it measures, and encoding in the
    # loop cost it ~25 us of CPU per event (a client on another machine would not take it from the worker). Each
    # event's ``ts`` is its scheduled send time; its Kafka timestamp, what latency is measured from, is the real one.
    t0 = time.perf_counter()
    head = [codec.encode("FeatureEvent", feature_value(r, 0), topic=topic) for r in rows[:200]]
    base_ms = (
        int(time.time() * 1000) + int(2000 * (time.perf_counter() - t0) * len(rows) / max(1, len(head))) + 200
    )
    encoded = [
        codec.encode("FeatureEvent", feature_value(row, base_ms + int(i * 1000 / rate)), topic=topic)
        for i, row in enumerate(rows)
    ]
    del head
    keys = [r[0].encode() for r in rows]
    time.sleep(max(0.0, base_ms / 1000 - time.time()))
    # The bench's own garbage collector, walking its large dicts of sent and received events, paused this loop for
    # 40-140 ms at a time: the events due meanwhile then reached the worker as a burst. Collect now, not during.
    gc.collect()
    gc.disable()
    bench_cpu0 = time.process_time()  # this process: the producer loop and the prediction reader
    try:
        start = time.perf_counter()
        for i, row in enumerate(rows):
            delay = start + i / rate - time.perf_counter()
            # Sleep only when an event is more than a millisecond ahead: a sleep per event (thousands of system
            # calls per second) cost the bench's producer more CPU than it left the worker on two cores. Events are
            # still produced within 1 ms of their schedule, each stamped when it is produced.
            if delay > 0.001:
                time.sleep(delay)
            now = int(time.time() * 1000)
            producer.produce(topic, encoded[i], keys[i], timestamp=now)
            sent_ms[row[0]] = now
            producer.poll(0)
        producer.flush(30)
        achieved = len(rows) / (time.perf_counter() - start)
        bench_cpu = time.process_time() - bench_cpu0
    finally:
        gc.enable()
    seen = reader.wait_for([r[0] for r in rows], timeout)
    sent = [sent_ms[r[0]] for r in rows]
    lat = [max(0.0, s.kafka_ts_ms - t) for t, s in zip(sent, seen, strict=True)]
    visible = [max(0.0, s.received_ms - sent_ms[r[0]]) for r, s in zip(rows, seen, strict=True)]
    extra: dict[str, float] = {}
    if worker is not None and before is not None:
        count, total = _batches(worker)
        extra["latency_cpu_us"] = (cpu_seconds(worker.pid) - before[0]) / len(rows) * 1e6
        extra["latency_mean_batch"] = (total - before[2]) / max(1.0, count - before[1])
    return {
        **extra,
        "latency_rate_eps": rate,
        "latency_achieved_eps": achieved,
        "latency_n": len(rows),
        # The bench's own CPU per event sent during the phase: it shares the machine with what it measures.
        "latency_bench_cpu_us": bench_cpu / len(rows) * 1e6,
        "latency_p50_ms": percentile(lat, 50, 0.0),
        "latency_p99_ms": percentile(lat, 99, 0.0),
        "latency_max_ms": max(lat),
        **latency_phase(sent, [s.kafka_ts_ms for s in seen], rate, achieved),
        "visible_latency_p50_ms": percentile(visible, 50, 0.0),
        "visible_latency_p99_ms": percentile(visible, 99, 0.0),
    }


def learn_throughput(settings: Settings, n: int, worker: WorkerProcess, timeout: float) -> dict[str, Any]:
    """Examples per second learned by one train worker over ``n`` TrainingExamples (pre-filled, or joined as it
    goes), from its first status report to the one that counts them all.

    Labels are counted as the status's ``labels_learned`` (every label learned, each once), not ``n_learned``:
    that is the served lineage's count, which a probation rollback (or a champion reset to the served snapshot)
    takes back to the restored version's, for good. Waiting for ``n_learned`` to reach ``n`` then waited out the
    whole timeout with every label learned and committed: the "stall" at 19,900 of 20,000 labels of sessions 19-20
    (BENCHMARKS.md, session 21). ``n_learned`` is still reported, next to ``labels_learned``.

    ``learn_other_cores``: the CPU every other process used meanwhile, in cores (the machine's busy time less the
    worker's, over the same wall time; absent off Linux): the load a CPU figure was measured under.

    ``learn_steady_*``: the same between the first report that counts any label (the end of the first transaction
    that learned) and the last report before the one that counts them all (the end of the last transaction that
    had more records waiting). The span of ``learn_eps`` also holds the start and the end of a finite run, where
    the trainer waits rather than learns (session 20, BENCHMARKS.md): its first report comes before it fetched a
    record (the consumer's first fetch waited up to the broker's ``fetch.wait.max.ms``, 0.3-0.4 s in most runs,
    before the trainer asked for 50 ms), and its last transaction, with no release in it, held the gather window
    (``COMMIT_EVERY_S``, 0.5 s) for records that never come (until session 21: a worker that was behind now ends
    it once caught up). Both are reported; ``learn_eps`` stays the headline. ``learn_tail_s``/``learn_tail_n``:
    the last transaction, from the report before it to the last one.
    """
    first: tuple[int, int] | None = None
    steady: tuple[int, int] | None = None
    last: tuple[int, int] = (0, 0)
    lineage = 0  # the last report's n_learned
    before_last: tuple[int, int] | None = None  # the last report before ``last`` (with the CPU then)
    cpu0 = cpu_steady = cpu_last = cpu_before_last = 0.0
    busy0: float | None = None
    wall0 = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = trainer_status(settings)
        # From the trainer's first report (it reports its model, at 0 labels, before it learns anything): a
        # trainer commits up to 5,000 labels per transaction, so a small run may be learned in one report.
        if status is not None:
            point = (status["labels_learned"], status["updated_at"])
            lineage = status["n_learned"]
            cpu = cpu_seconds(worker.pid)
            if first is None:
                first, cpu0 = point, cpu
                busy0, wall0 = busy_seconds(), time.monotonic()
            elif steady is None and first[0] < point[0] < n:
                steady, cpu_steady = point, cpu
            if point != last:
                before_last, cpu_before_last = last, cpu_last
                last, cpu_last = point, cpu
            if last[0] >= n:
                break
        if not worker.alive():
            raise RuntimeError(f"train worker exited:\n{worker.log_tail()}")
        time.sleep(0.02)
    if first is None or last[0] < n:
        raise RuntimeError(
            f"trainer learned {last[0]} of {n} within {timeout:g} s (n_learned {lineage}):\n{worker.log_tail()}"
        )
    cpu1, busy1, wall1 = cpu_seconds(worker.pid), busy_seconds(), time.monotonic()
    span_s = (last[1] - first[1]) / 1000.0
    out = {
        "learn_eps": (last[0] - first[0]) / span_s if span_s > 0 else 0.0,
        "learn_cpu_us": (cpu1 - cpu0) / max(1, last[0] - first[0]) * 1e6,
        "learn_span_s": span_s,
        "labels_learned": last[0],
        "n_learned": lineage,  # the served lineage's: below labels_learned after a rollback
    }
    if busy0 is not None and busy1 is not None and wall1 > wall0:
        out["learn_other_cores"] = max(0.0, (busy1 - busy0) - (cpu1 - cpu0)) / (wall1 - wall0)
    if before_last is not None and before_last[0] > first[0]:
        # The last transaction, report to report: where a finite run's end shows (session 21).
        out["learn_tail_s"] = (last[1] - before_last[1]) / 1000.0
        out["learn_tail_n"] = last[0] - before_last[0]
    # None when the bench saw no two reports between the first and the last (a run learned in few transactions).
    if steady is not None and before_last is not None and before_last[0] > steady[0]:
        steady_s = (before_last[1] - steady[1]) / 1000.0
        out["learn_steady_eps"] = (before_last[0] - steady[0]) / steady_s if steady_s > 0 else 0.0
        out["learn_steady_cpu_us"] = (cpu_before_last - cpu_steady) / (before_last[0] - steady[0]) * 1e6
        out["learn_steady_n"] = before_last[0] - steady[0]
    return out


def served_versions(workers: list[WorkerProcess], model: str) -> list[int]:
    out = []
    for w in workers:
        try:
            value = metric_value(w.metrics_text(1.0), "driftline_served_model_version", {"model": model})
        except OSError:
            value = None
        out.append(int(value or 0))
    return out


def wait_served(
    workers: list[WorkerProcess], model: str, version: int, timeout: float, poll_s: float = 0.005
) -> float:
    """Seconds until every worker serves ``version`` (raises after ``timeout``)."""
    t0 = time.perf_counter()
    while True:
        if min(served_versions(workers, model)) >= version:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            logs = "\n".join(w.log_tail(10) for w in workers)
            raise RuntimeError(f"{model} v{version} not served by every scorer within {timeout:g} s:\n{logs}")
        time.sleep(poll_s)


def release_to_scorers(
    settings: Settings,
    codec: Codec,
    workers: list[WorkerProcess],
    model: Any,
    key: str,
    first_version: int,
    count: int,
    between: Callable[[], None] = lambda: time.sleep(0.3),
) -> dict[str, Any]:
    """Publish ``count`` signed releases of ``model``; time each until every scorer in ``workers`` serves it."""
    producer = raw_producer(settings, **{"linger.ms": 0})
    times = []
    size = 0
    for version in range(first_version, first_version + count):
        record = release_record(settings, model, version, key)  # pickled and signed before the clock starts
        size = len(record["artifact"] or b"")
        t0 = time.perf_counter()
        publish_release(settings, codec, record, producer)
        wait_served(workers, settings.model.name, version, 30)
        times.append((time.perf_counter() - t0) * 1000)
        between()
    progress(f"  releases to {len(workers)} scorers: {', '.join(f'{t:.0f}' for t in times)} ms")
    return {
        "release_to_scorers_p50_ms": percentile(times, 50, 0.0),
        "release_to_scorers_p99_ms": percentile(times, 99, 0.0),
        "release_to_scorers_max_ms": max(times),
        "release_count": count,
        "release_bytes": size,
    }
