"""Warm a broker that has just started before the pipeline meets it (``driftline stack up --warm``, and
``driftline bench`` for a broker it starts itself).

Why: a Kafka JVM that has just started runs its request paths in the interpreter and in C1 code while its C2
compiler thread recompiles the hot methods. On the 2-core development machine that took 0.4-0.6 of a core for the
first 15-20 s of load, and the broker's CPU per record was 4-5 times its warm figure, so the first pipeline to
run on a fresh broker queued behind it: the first latency phase of ``driftline bench`` after a fresh broker read
p99 in the hundreds of ms where later runs read 20-50 ms (BENCHMARKS.md, session 25). A broker that has run for
a while (any production cluster) has paid this long before; the local stack's users pay it in their first minute.
It is opt-in for ``stack up`` (10-40 s more: most users of a development stack would rather start at once than
have their first minute fast).

The warm-up drives the paths the pipeline uses, with the pipeline's client settings: an idempotent lz4 producer
with ``acks=all`` and a 5 ms linger (:data:`connectors.producer.PRODUCER_DEFAULTS`) into a scratch topic, a
consumer group reading it and echoing every record to a second scratch topic (as a score worker writes
``predictions``) with auto-committed offsets, and a plain reader of the second topic; a second producer without
linger sends half the records in many small requests. It stops once the broker's
JIT compiler threads have been quiet for a while (read from ``/proc`` when the broker's pid is known), or at
``max_seconds``. The scratch topics are deleted afterwards.

It pays part of the warm-up, not all of it: traffic of other shapes (more topics and clients, the bench's phases)
makes the broker compile and deoptimise more, and its compiler still took 0.2-0.25 of a core in the first latency
phase of a bench run right after (0.3-0.4 without the warm-up; BENCHMARKS.md, session 25).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.producer import PRODUCER_DEFAULTS
from driftline.settings import Settings

__all__ = ["WarmupReport", "compiler_cpu_seconds", "quiet_for", "warm_broker"]

#: Records per second the warm-up produces (each is also echoed and read once).
WARMUP_RATE = 5000.0
#: Bounds of a warm-up: at least ``MIN_SECONDS``, at most ``MAX_SECONDS``; in between it stops when the JIT
#: compiler threads used under ``QUIET_CORES`` of a core over the last ``QUIET_SECONDS``. At 5,000 records/s a
#: fresh broker's compiler settled (under 0.1 core) after 20-25 s (BENCHMARKS.md, session 25).
MIN_SECONDS = 10.0
MAX_SECONDS = 40.0
QUIET_SECONDS = 3.0
QUIET_CORES = 0.1
#: The size of a warm-up record: about a FeatureEvent of 20 doubles in the single-object encoding.
RECORD_BYTES = 230
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class WarmupReport:
    """What a warm-up did: records produced and echoed, wall seconds, why it stopped (``quiet``: the compiler
    threads went quiet; ``max``: ``max_seconds`` passed), and the compiler threads' CPU per second when known."""

    produced: int
    echoed: int
    seconds: float
    stopped: str
    compiler_cores: tuple[float, ...] = field(default=())


def compiler_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """CPU seconds the JIT compiler threads (``C1 CompilerThre...``, ``C2 CompilerThre...``) of JVM ``pid`` have
    used so far, from ``/proc/<pid>/task/*/stat``; None where that cannot be read (not Linux, no such process)."""
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return None
    total = 0.0
    for task in tasks:
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # a thread that ended meanwhile
        comm = text[text.find("(") + 1 : text.rfind(")")]
        if "CompilerThre" in comm:
            fields = text[text.rfind(")") + 1 :].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def quiet_for(samples: list[tuple[float, float]], window_s: float, cores: float) -> bool:
    """True when ``samples`` (time s, compiler CPU s so far) span ``window_s`` at the end and the compiler used
    less than ``cores`` of a core over that span.

    >>> quiet_for([(0.0, 5.0), (1.0, 5.5), (2.0, 5.52), (3.0, 5.55), (4.0, 5.56)], 3.0, 0.1)
    True
    >>> quiet_for([(0.0, 5.0), (1.0, 5.5), (2.0, 5.52)], 3.0, 0.1)
    False
    """
    if not samples or samples[-1][0] - samples[0][0] < window_s:
        return False
    end_t, end_cpu = samples[-1]
    start = next(s for s in reversed(samples) if end_t - s[0] >= window_s)
    return (end_cpu - start[1]) / (end_t - start[0]) < cores


def _record(i: int) -> bytes:
    # Half random, half repeated: lz4 finds about as much to compress as in Avro records of doubles.
    return os.urandom(RECORD_BYTES // 2) + (b"%08d" % i) * (RECORD_BYTES // 16)


def warm_broker(
    settings: Settings,
    pid: int | None = None,
    *,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    rate: float = WARMUP_RATE,
    clock: Callable[[], float] = time.monotonic,
) -> WarmupReport:
    """Produce, consume-and-echo and read through the broker of ``settings`` at ``rate`` records/s until its
    compiler threads are quiet (``pid``: the broker's process, on this machine) or ``max_seconds`` pass."""
    run = f"__driftline-warmup-{secrets.token_hex(4)}"
    topic_in, topic_out = f"{run}.in", f"{run}.out"
    admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
    k = settings.kafka
    new = [NewTopic(t, k.partitions, k.replication_factor) for t in (topic_in, topic_out)]
    for future in admin.create_topics(new, operation_timeout=30).values():
        future.result()
    producer = Producer(client_config(settings, logger=LIBRDKAFKA_LOG, **PRODUCER_DEFAULTS))
    # A second producer that sends at once (linger 0): the same records in many more, smaller requests. The
    # broker's per-request methods (parsing a produce request, appending to a partition) reach the C2 compiler's
    # invocation thresholds only after thousands of requests; at one request per 5 ms linger they had not
    # within a 25 s warm-up, and were compiled during the next pipeline's run instead (session 25).
    eager = Producer(client_config(settings, logger=LIBRDKAFKA_LOG, **{**PRODUCER_DEFAULTS, "linger.ms": 0}))
    common = {"auto.offset.reset": "earliest", "fetch.wait.max.ms": 5}
    echo = Consumer(
        client_config(
            settings,
            logger=LIBRDKAFKA_LOG,
            **{"group.id": run, "enable.auto.commit": True, "auto.commit.interval.ms": 200, **common},
        )
    )
    reader = Consumer(client_config(settings, logger=LIBRDKAFKA_LOG, **{"group.id": f"{run}.r", **common}))
    echo.subscribe([topic_in])
    reader.subscribe([topic_out])
    produced = echoed = 0
    samples: list[tuple[float, float]] = []
    stopped = "max"
    start = next_sample = clock()
    try:
        while (now := clock()) - start < max_seconds:
            if pid is not None and now >= next_sample:
                cpu = compiler_cpu_seconds(pid)
                if cpu is not None:
                    samples.append((now - start, cpu))
                next_sample = now + 1.0
                if now - start >= min_seconds and quiet_for(samples, QUIET_SECONDS, QUIET_CORES):
                    stopped = "quiet"
                    break
            due = int((now - start) * rate)
            while produced < due:
                try:
                    (eager if produced % 2 else producer).produce(
                        topic_in, _record(produced), str(produced).encode()
                    )
                except BufferError:
                    break
                produced += 1
            producer.poll(0)
            eager.poll(0)
            for msg in echo.consume(500, 0.005):
                if msg.error() is None:
                    producer.produce(topic_out, msg.value(), msg.key())
                    echoed += 1
            reader.consume(500, 0.005)
        producer.flush(10)
        eager.flush(10)
    finally:
        for consumer in (echo, reader):
            with contextlib.suppress(KafkaException, RuntimeError):
                consumer.close()
        for future in admin.delete_topics([topic_in, topic_out], operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # best effort: a scratch topic left over is harmless
                future.result()
    per_second = tuple(
        round((b[1] - a[1]) / (b[0] - a[0]), 2) for a, b in itertools.pairwise(samples) if b[0] > a[0]
    )
    return WarmupReport(produced, echoed, clock() - start, stopped, per_second)
