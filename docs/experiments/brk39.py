"""Issue 17's broker-failure promises driven from outside on a three-node cluster (helper brk39, session 39).

As a user would: ``driftline stack up --brokers 3``, ``driftline topics create``, separate ``driftline worker``
processes (score x2, join, train by default), and a producer and a consumer of this script's own that use plain
confluent-kafka (JSON FeatureEvents and Labels, as the contract allows; predictions decoded with fastavro and the
``.avsc`` files, as ``examples/consume_predictions.py`` does). The stream is River's Agrawal generator (function 0,
then function 2 from the middle: a concept drift), not the demo's; each label is published ``--label-delay`` events
after its event.

Faults, at seconds after the first acknowledged event:

- ``--leader-at``: kill -9 the broker that leads most partitions of ``features`` and ``predictions``; ``driftline
  stack up`` brings it back after ``--leader-down`` s;
- ``--worker-at``: kill -9 a score worker while it has a batch in hand (its partitions' lag > 0), restarted after
  ``--worker-down`` s (as a supervisor would);
- ``--quorum-at``: kill -9 two of the three nodes (every node is a KRaft controller and a broker: the quorum's
  majority), back after ``--quorum-down`` s.

Meanwhile ``driftline status --json`` is sampled every 5 s and every worker's metrics every 2 s. Then the producer
flushes, the pipeline drains, and every record is accounted (``chaos32.account``): every acknowledged event has a
prediction (duplicates counted), every label is learned once, no wrong join, versions increase, a release made
after the last fault reached the scorers, no worker died by itself. Prints a table and ``BRK39 {json}``.

    PYTHONPATH=. python docs/experiments/brk39.py --kafka-port 14092 --redis-port 14379 \
        --state-dir /tmp/brk39-state --out /tmp/brk39-runs
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import chaos32  # the sibling experiment: worker processes, metrics scraping, topic accounting
from chaos32 import Chaos, Run, log, metric
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from river.datasets import synth

from examples.consume_predictions import decode, load_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def verbose_workers() -> None:
    """Start every worker with ``-v`` (INFO: the trainer's assignments and restores, for tracing F1)."""
    import subprocess

    def start(self: chaos32.Worker) -> None:
        if self.alive():
            return
        self.incarnation += 1
        logf = open(self.run.out / f"{self.name}.{self.incarnation}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [chaos32.PY, "-m", "streams.cli", "-v", "worker", "--role", self.role, "--metrics-port", str(self.port)],
            env=self.run.env, stdout=logf, stderr=subprocess.STDOUT, cwd=chaos32.TREE,
        )  # fmt: skip
        self.expected_dead = False
        log(f"start {self.name} #{self.incarnation} pid {self.proc.pid} (-v)")

    chaos32.Worker.start = start  # type: ignore[method-assign]


class MyProducer(threading.Thread):
    """A user's service: JSON FeatureEvents, each label ``delay`` events later, acks=all and idempotent."""

    def __init__(self, bootstrap: str, prefix: str, n: int, rate: float, delay: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.conf = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
        }
        self.prefix, self.n, self.rate, self.delay, self.seed = prefix, n, rate, delay, seed
        self.acked: dict[str, set[str]] = {"features": set(), "labels": set()}
        self.failed: Counter[str] = Counter()
        self.unacked_at_end = 0
        self.first_ack: float | None = None
        self.last_ack = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()  # set: no more events (each sent event still gets its label)
        self.sent = 0

    def events(self) -> list[tuple[str, dict[str, Any], int]]:
        first = synth.Agrawal(classification_function=0, seed=self.seed)
        second = synth.Agrawal(classification_function=2, seed=self.seed + 1)
        half = self.n // 2
        rows = list(first.take(half)) + list(second.take(self.n - half))
        return [(f"a39-{i:06d}", {k: v for k, v in x.items()}, int(y)) for i, (x, y) in enumerate(rows)]

    def _report(self, topic: str, id_: str) -> Any:
        def cb(err: KafkaError | None, _msg: Any) -> None:
            with self.lock:
                if err is None:
                    self.acked[topic].add(id_)
                    self.last_ack = time.monotonic()
                    if self.first_ack is None:
                        self.first_ack = self.last_ack
                else:
                    self.failed[f"{topic}: {err.name()}"] += 1

        return cb

    def run(self) -> None:
        p = Producer(self.conf)
        rows = self.events()
        t0 = time.monotonic()

        def send(topic: str, id_: str, value: dict[str, Any]) -> None:
            while True:
                try:
                    p.produce(
                        self.prefix + topic,
                        json.dumps(value).encode(),
                        id_.encode(),
                        on_delivery=self._report(topic, id_),
                    )
                    break
                except BufferError:
                    p.poll(0.1)
            p.poll(0)

        for i, (id_, x, _y) in enumerate(rows):
            if self.stop.is_set():
                break
            send("features", id_, {"id": id_, "ts": int(time.time() * 1000), "features": x})
            self.sent = i + 1
            if i >= self.delay:
                bid, _, by = rows[i - self.delay]
                send("labels", bid, {"id": bid, "ts": int(time.time() * 1000), "label": by})
            ahead = t0 + (i + 1) / self.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        for bid, _, by in rows[max(0, self.sent - self.delay) : self.sent]:
            send("labels", bid, {"id": bid, "ts": int(time.time() * 1000), "label": by})
        self.unacked_at_end = p.flush(300)
        log(f"producer: flushed, {self.unacked_at_end} unacknowledged, failed {dict(self.failed)}")


class MyConsumer(threading.Thread):
    """A user's service reading predictions: every (id, version, prediction) and when it arrived."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        super().__init__(daemon=True)
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{prefix}my-consumer",
                "auto.offset.reset": "earliest",
            }
        )
        self.topic = prefix + "predictions"
        self.writers, readers = load_schemas(SCHEMAS)
        self.reader = readers["Prediction"]
        self.seen: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.first_answer: float | None = None  # the first non-null prediction: the pipeline is warm
        self.errors: Counter[str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        self.c.subscribe([self.topic])
        while not self.stop.is_set():
            for m in self.c.consume(500, 0.5):
                if m.error():
                    self.errors[m.error().name()] += 1
                    continue
                rec = decode(m.value(), self.writers, self.reader)
                self.seen[rec["id"]].append((int(rec["version"]), time.monotonic()))
                if rec["prediction"] is not None and self.first_answer is None:
                    self.first_answer = time.monotonic()
        self.c.close()


def partition_leaders(bootstrap: str, topics: list[str]) -> Counter[int]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=20)
    out: Counter[int] = Counter()
    for t in topics:
        for p in md.topics[t].partitions.values():
            out[p.leader] += 1
    return out


def node_pids(run: Run) -> dict[int, int]:
    r = run.cli("stack", "status", "--json", *run.stack_flags(), timeout=60)
    nodes = json.loads(r.stdout).get("kafka_nodes") or []
    return {int(n["name"].split("-")[1]): int(n["pid"]) for n in nodes if n.get("pid")}


def status_brief(run: Run) -> dict[str, Any]:
    r = run.cli("status", "--json", timeout=60)
    try:
        s = json.loads(r.stdout)
    except ValueError:
        return {"rc": r.returncode, "err": (r.stderr or r.stdout)[-200:]}
    return {"rc": r.returncode, "status": s}


def status_sample(run: Run) -> dict[str, Any]:
    """What ``driftline status --json`` says now, in brief: exit code, Kafka's state, whether the pipeline part is
    shown, the total lag, what the scorers serve, the replication problems."""
    got = status_brief(run)
    s = got.get("status") or {}
    kafka = (s.get("stack") or {}).get("kafka") or {}
    models = s.get("models") or []
    served = sorted(
        {v for m in models for v in ((m.get("scorers") or {}).get("served_versions") or {}) or []}
    )
    rep = s.get("kafka_replication") or {}
    return {
        "rc": got.get("rc"),
        "kafka": f"{kafka.get('state')}: {kafka.get('detail')}",
        "workers_shown": "workers" in s,
        "lag": chaos32.total_lag(s) if "workers" in s else None,
        "served": served[-3:],
        "missing_brokers": rep.get("missing_brokers"),
        "under_replicated": len(rep.get("under_replicated") or {}),
        "offline": len(rep.get("offline") or {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--events", type=int, default=60000, help="at most; the stream stops --tail s after the last fault"
    )
    ap.add_argument("--rate", type=float, default=150.0)
    ap.add_argument("--label-delay", type=int, default=300)
    ap.add_argument("--leader-down", type=float, default=10.0)
    ap.add_argument("--worker-down", type=float, default=10.0)
    ap.add_argument("--quorum-down", type=float, default=5.0)
    ap.add_argument("--gap", type=float, default=20.0, help="seconds between one fault's end and the next")
    ap.add_argument("--tail", type=float, default=60.0, help="seconds of stream after the last fault ended")
    ap.add_argument("--kafka-port", type=int, default=14092)
    ap.add_argument("--redis-port", type=int, default=14379)
    ap.add_argument("--metrics-base", type=int, default=14500)
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/brk39-state"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/brk39-runs"))
    ap.add_argument("--roles", default="score,score,join,train")
    ap.add_argument("--seed", type=int, default=39)
    ap.add_argument("--drain-timeout", type=float, default=400.0)
    ap.add_argument("--verbose-workers", action="store_true", help="workers log at INFO (-v)")
    a = ap.parse_args()
    if a.verbose_workers:
        verbose_workers()
    out = a.out / f"run-{int(time.time())}"
    out.mkdir(parents=True, exist_ok=True)
    run = Run(a.seed, a.events, a.rate, a.label_delay, a.kafka_port, a.redis_port, a.state_dir, out)
    run.prefix = f"brk39.{int(time.time()) % 100000}."
    bootstrap = ",".join(f"127.0.0.1:{a.kafka_port + 2 * i}" for i in range(3))
    run.env.update(
        {
            "DRIFTLINE_TOPIC_PREFIX": run.prefix,
            "DRIFTLINE_KAFKA_BOOTSTRAP": bootstrap,
            "DRIFTLINE__KAFKA__REPLICATION_FACTOR": "3",
        }
    )
    log(f"prefix {run.prefix}, logs in {out}")
    made = run.cli("topics", "create", timeout=120)
    log(f"topics create -> {made.returncode}")
    chaos = Chaos(run, tuple(a.roles.split(",")))
    chaos.t0 = time.monotonic()
    for w in chaos.workers:
        w.port = a.metrics_base + w.slot
        w.start()
    mon = threading.Thread(target=chaos.monitor, daemon=True)
    mon.start()
    consumer = MyConsumer(bootstrap, run.prefix)
    consumer.start()
    producer = MyProducer(bootstrap, run.prefix, a.events, a.rate, a.label_delay, a.seed)
    producer.start()
    while producer.first_ack is None:
        time.sleep(0.2)
    chaos.t0 = producer.first_ack
    statuses: list[tuple[float, dict[str, Any]]] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(4.0):
            statuses.append((round(time.monotonic() - chaos.t0, 1), status_sample(run)))

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    # The faults start once the pipeline is warm (a first non-null prediction came): the cold start's null
    # predictions (no trained release yet) are not the outage's.
    while consumer.first_answer is None:
        time.sleep(0.5)
    warm_at = consumer.first_answer - chaos.t0
    log(f"warm at t={warm_at:.1f}")
    time.sleep(10)
    fault_times: dict[str, tuple[float, float]] = {}
    versions_before_last_fault = 0
    try:
        # 1. the broker leading most partitions of features and predictions
        leaders = partition_leaders(bootstrap, [run.prefix + "features", run.prefix + "predictions"])
        victim = leaders.most_common(1)[0][0]
        pids = node_pids(run)
        t_kill = time.monotonic() - chaos.t0
        os.kill(pids[victim], signal.SIGKILL)
        chaos.note("leader_kill9", node=victim, leads=dict(leaders))
        time.sleep(a.leader_down)
        chaos.stack_up()
        fault_times["leader"] = (t_kill, time.monotonic() - chaos.t0)
        log(f"leader back at t={fault_times['leader'][1]:.1f}")
        time.sleep(a.gap)
        # 2. a score worker with a batch in hand (events stream at --rate: it always has one)
        scorer = next(w for w in chaos.workers if w.role == "score")
        t_kill = time.monotonic() - chaos.t0
        with chaos.lock:
            scorer.kill9()
        chaos.note("worker_kill9", worker=scorer.name)
        time.sleep(a.worker_down)
        with chaos.lock:
            scorer.start()
        fault_times["worker"] = (t_kill, time.monotonic() - chaos.t0)
        time.sleep(a.gap)
        # 3. the controllers' majority (each node is a controller and a broker)
        versions_before_last_fault = max((v for vs in list(consumer.seen.values()) for v, _ in vs), default=0)
        pids = node_pids(run)
        two = sorted(pids)[:2]
        t_kill = time.monotonic() - chaos.t0
        for node in two:
            os.kill(pids[node], signal.SIGKILL)
        chaos.note("quorum_majority_kill9", nodes=two)
        time.sleep(a.quorum_down)
        chaos.stack_up()
        fault_times["quorum"] = (t_kill, time.monotonic() - chaos.t0)
        log(f"quorum back at t={fault_times['quorum'][1]:.1f}")
        time.sleep(a.tail)
        producer.stop.set()
        producer.join(timeout=900)
        log(f"producer done: {producer.sent} events")
        status = chaos32.wait_drained(run, chaos, a.drain_timeout)
        time.sleep(5)
        consumer.stop.set()
        consumer.join(30)
        stop.set()
        result = chaos32.account(run, chaos, status, 0)
    finally:
        stop.set()
        consumer.stop.set()
        producer.stop.set()
        chaos.stop_monitor.set()
        for w in chaos.workers:
            w.terminate()
    acked_f, acked_l = producer.acked["features"], producer.acked["labels"]
    seen = consumer.seen
    after_last = fault_times["quorum"][1] + 30
    versions_after = [v for vs in seen.values() for v, t in vs if t - chaos.t0 > after_last]
    restarts: Counter[str] = Counter()
    for w in chaos.workers:
        for text in w.last_metrics.values():
            restarts[w.role] += metric(text, "driftline_consumer_restarts_total")
    warm_ids = {i for i, vs in seen.items() if vs and vs[0][1] - chaos.t0 > warm_at + 5}
    summary = {
        "prefix": run.prefix,
        "warm_at": round(warm_at, 1),
        "faults": {k: (round(x, 1), round(y, 1)) for k, (x, y) in fault_times.items()},
        "events_sent": producer.sent,
        "acked_features": len(acked_f),
        "acked_labels": len(acked_l),
        "producer_failed": dict(producer.failed),
        "producer_unacked_at_end": producer.unacked_at_end,
        "my_consumer_ids": len(seen),
        "my_consumer_missing": len(acked_f - set(seen)),
        "my_consumer_dups": sum(len(v) - 1 for v in seen.values()),
        "my_consumer_errors": dict(consumer.errors),
        "null_after_warm": sum(1 for i in warm_ids if seen[i][0][0] == 0),
        "topic_unpredicted": result.get("unpredicted"),
        "topic_pred_dups": result.get("pred_duplicates"),
        "labels_learned": result.get("labels_learned"),
        "not_joined": result.get("not_joined"),
        "wrong_joins": result.get("wrong_joins"),
        "train_dups": result.get("training_duplicates"),
        "deadletters": result.get("deadletters"),
        "deadletter_reasons": result.get("deadletter_reasons"),
        "releases": result.get("releases"),
        "non_increasing": result.get("non_increasing"),
        "max_version_before_quorum_kill": versions_before_last_fault,
        "max_version_served_30s_after_quorum_back": max(versions_after, default=None),
        "died_alone": result.get("died_alone"),
        "consumer_restarts_by_role": dict(restarts),
        "doctor_rc": result.get("doctor_rc"),
        "audit_verify_rc": result.get("audit_verify_rc"),
        "null_predictions": result.get("null_predictions"),
        "null_last_index": result.get("null_last_index"),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "statuses.json").write_text(json.dumps(statuses, default=str))
    (out / "faults.json").write_text(json.dumps(chaos.faults, default=str))
    for t, st in statuses:
        print(f"STATUS t={t} {json.dumps(st, default=str)}")
    print("BRK39 " + json.dumps(summary, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
