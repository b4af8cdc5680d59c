"""Faults brk39 did not try, driven from outside on a three-node cluster (helper fault40, session 40).

The harness is brk39's (its JSON producer and Avro consumer of plain confluent-kafka, River's Agrawal stream with a
drift in the middle, ``driftline worker`` processes score x2, join, train, metrics scraping and topic accounting from
chaos32). The faults, one after the other with ``--gap`` s between, once the pipeline is warm:

1. ``freeze``: SIGSTOP of the node that is the trainer's transaction coordinator (found from the broker's own
   ``__transaction_state`` partition holding the trainer's transactional id; else the node leading most partitions of
   ``features``/``predictions``/``training``), SIGCONT after ``--freeze-hold`` s: a node that holds its sockets
   open and answers nothing;
2. ``rolling``: a rolling restart as an operator upgrading: each node in turn SIGTERM (a clean shutdown), ``stack up``,
   and the next one only once every partition of the run's topics has its full ISR again;
3. ``trainer``: kill -9 of the trainer the moment a release record shows on ``models`` read uncommitted (its
   transaction is open: the release is written, not committed), restarted after 10 s;
4. ``redis_kill``: kill -9 of Redis (its AOF kept), ``stack up`` after 5 s;
5. ``redis_freeze``: SIGSTOP of Redis for ``--redis-hold`` s;
6. ``redis_wipe``: kill -9 of Redis and its data removed (a Redis without persistence, or a new one), ``stack up``
   after 5 s.

Then ``--tail`` s more of stream, the labels of every event, the drain and the accounting. ``driftline status
--json`` is sampled every 4 s (kept with the fault windows), every worker's metrics every 2 s; the workers log at INFO.
Prints ``STATUS`` lines and ``FAULT40 {json}``.

    PYTHONPATH=. python docs/experiments/fault40.py --kafka-port 17092 --redis-port 17379 \
        --state-dir /tmp/fault40-state --out /tmp/fault40-runs [--seed 40] [--only freeze,rolling,...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import brk39  # the harness: producer, consumer, node pids, status samples
import chaos32
from chaos32 import Chaos, Run, log, metric
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

FAULTS = ("freeze", "rolling", "trainer", "redis_kill", "redis_freeze", "redis_wipe")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # a zombie of ours is dead too
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def coordinator_node(run: Run, bootstrap: str) -> tuple[int | None, str]:
    """The node leading the ``__transaction_state`` partition that holds the trainer's transactional id."""
    needle = f"driftline-{run.prefix}trainer-".encode()
    stack = run.state_dir / "stack"
    for log_file in sorted(stack.glob("kafka-*/data/__transaction_state-*/*.log")):
        try:
            if needle in log_file.read_bytes():
                part = int(log_file.parent.name.rsplit("-", 1)[1])
                md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(
                    "__transaction_state", timeout=20
                )
                return md.topics["__transaction_state"].partitions[part].leader, f"__transaction_state-{part}"
        except (OSError, KeyError, ValueError):
            continue
    return None, "not found"


def isr_full(bootstrap: str, prefix: str) -> bool:
    try:
        md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    except Exception:
        return False
    for name, t in md.topics.items():
        if not name.startswith(prefix) and name != "__transaction_state":
            continue
        for p in t.partitions.values():
            if p.leader < 0 or len(p.isrs) < len(p.replicas):
                return False
    return True


class ReleaseWatch:
    """``models`` read uncommitted: the first release record after ``arm()`` (its transaction still open)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "fault40-unused",
                "isolation.level": "read_uncommitted",
                "enable.auto.commit": False,
            }
        )
        md = self.c.list_topics(topic, timeout=20)
        self.c.assign([TopicPartition(topic, p, OFFSET_END) for p in md.topics[topic].partitions])

    def wait_release(self, timeout: float) -> tuple[int, int] | None:
        deadline = time.monotonic() + timeout
        # drain what is there first: a release written after this call
        while self.c.consume(500, 0.2):
            pass
        while time.monotonic() < deadline:
            for m in self.c.consume(10, 0.05):
                if not m.error() and m.value():
                    return m.partition() or 0, m.offset() or 0
        return None

    def close(self) -> None:
        self.c.close()


def grep_logs(out: Path, pattern: str) -> list[str]:
    rx = re.compile(pattern)
    hits = []
    for f in sorted(out.glob("*.log")):
        for line in f.read_text(errors="replace").splitlines():
            if rx.search(line):
                hits.append(f"{f.name}: {line[:300]}")
    return hits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300000, help="at most; stops --tail s after the last fault")
    ap.add_argument("--rate", type=float, default=150.0)
    ap.add_argument("--label-delay", type=int, default=300)
    ap.add_argument("--freeze-hold", type=float, default=60.0)
    ap.add_argument("--redis-hold", type=float, default=45.0)
    ap.add_argument("--gap", type=float, default=20.0)
    ap.add_argument("--tail", type=float, default=60.0)
    ap.add_argument("--kafka-port", type=int, default=17092)
    ap.add_argument("--redis-port", type=int, default=17379)
    ap.add_argument("--metrics-base", type=int, default=17500)
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/fault40-state"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/fault40-runs"))
    ap.add_argument("--roles", default="score,score,join,train")
    ap.add_argument("--seed", type=int, default=40)
    ap.add_argument("--only", default=",".join(FAULTS), help="comma-separated faults, in this order")
    ap.add_argument("--drain-timeout", type=float, default=400.0)
    a = ap.parse_args()
    brk39.verbose_workers()
    out = a.out / f"run-{int(time.time())}"
    out.mkdir(parents=True, exist_ok=True)
    run = Run(a.seed, a.events, a.rate, a.label_delay, a.kafka_port, a.redis_port, a.state_dir, out)
    run.prefix = f"fault40.{int(time.time()) % 100000}."
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
    threading.Thread(target=chaos.monitor, daemon=True).start()
    consumer = brk39.MyConsumer(bootstrap, run.prefix)
    consumer.start()
    producer = brk39.MyProducer(bootstrap, run.prefix, a.events, a.rate, a.label_delay, a.seed)
    producer.start()
    while producer.first_ack is None:
        time.sleep(0.2)
    chaos.t0 = producer.first_ack
    statuses: list[tuple[float, dict[str, Any]]] = []
    stop = threading.Event()

    def sample() -> dict[str, Any]:
        got = brk39.status_brief(run)
        st = got.get("status") or {}
        kafka = (st.get("stack") or {}).get("kafka") or {}
        redis = (st.get("stack") or {}).get("redis") or {}
        rep = st.get("kafka_replication") or {}
        return {
            "rc": got.get("rc"),
            "err": got.get("err"),
            "kafka": f"{kafka.get('state')}: {kafka.get('detail')}"[:160],
            "redis": f"{redis.get('state')}: {redis.get('detail', '')}"[:160],
            "lag": chaos32.total_lag(st) if "workers" in st else None,
            "missing_brokers": rep.get("missing_brokers"),
            "under_replicated": len(rep.get("under_replicated") or {}),
        }

    def sampler() -> None:
        while not stop.wait(4.0):
            statuses.append((round(time.monotonic() - chaos.t0, 1), sample()))

    threading.Thread(target=sampler, daemon=True).start()
    while consumer.first_answer is None:
        time.sleep(0.5)
    warm_at = consumer.first_answer - chaos.t0
    log(f"warm at t={warm_at:.1f}")
    time.sleep(10)
    windows: dict[str, tuple[float, float]] = {}
    info: dict[str, Any] = {}
    trainer = next(w for w in chaos.workers if w.role == "train")
    versions_before_last: int = 0

    def now() -> float:
        return time.monotonic() - chaos.t0

    def f_freeze() -> None:
        node, where = coordinator_node(run, bootstrap)
        if node is None:
            leaders = brk39.partition_leaders(
                bootstrap, [run.prefix + t for t in ("features", "predictions", "training")]
            )
            node, where = leaders.most_common(1)[0][0], f"leads {dict(leaders)}"
        pid = brk39.node_pids(run)[node]
        t = now()
        os.kill(pid, signal.SIGSTOP)
        chaos.note("node_sigstop", node=node, why=where, hold=a.freeze_hold)
        time.sleep(a.freeze_hold)
        os.kill(pid, signal.SIGCONT)
        chaos.note("node_sigcont", node=node)
        windows["freeze"] = (t, now())
        info["freeze_node"] = {"node": node, "chosen_as": where}

    def f_rolling() -> None:
        t = now()
        per: dict[int, float] = {}
        for node in sorted(brk39.node_pids(run)):
            pid = brk39.node_pids(run)[node]
            t1 = now()
            os.kill(pid, signal.SIGTERM)
            chaos.note("node_sigterm", node=node, pid=pid)
            deadline = time.monotonic() + 120
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.5)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                chaos.note("node_sigkill_after_term_timeout", node=node)
            chaos.stack_up()
            deadline = time.monotonic() + 180
            while not isr_full(bootstrap, run.prefix) and time.monotonic() < deadline:
                time.sleep(2)
            per[node] = round(now() - t1, 1)
            chaos.note("node_back_isr_full", node=node, took=per[node], full=isr_full(bootstrap, run.prefix))
        windows["rolling"] = (t, now())
        info["rolling_per_node_s"] = per

    def f_trainer() -> None:
        watch = ReleaseWatch(bootstrap, run.prefix + "models")
        try:
            seen = watch.wait_release(120)
            t = now()
            with chaos.lock:
                trainer.kill9()
        finally:
            watch.close()
        chaos.note("trainer_kill9_at_release", release_at=seen)
        info["trainer_killed_at_uncommitted_release"] = seen
        time.sleep(10)
        with chaos.lock:
            trainer.start()
        windows["trainer"] = (t, now())

    def f_redis(kind: str) -> None:
        pid = chaos.stack_pid("redis")
        t = now()
        if kind == "redis_freeze":
            assert pid
            os.kill(pid, signal.SIGSTOP)
            chaos.note("redis_sigstop", pid=pid, hold=a.redis_hold)
            time.sleep(a.redis_hold)
            os.kill(pid, signal.SIGCONT)
        else:
            if pid:
                os.kill(pid, signal.SIGKILL)
            if kind == "redis_wipe":
                rdir = run.state_dir / "stack" / "redis"
                import shutil

                shutil.rmtree(rdir / "appendonlydir", ignore_errors=True)
                (rdir / "dump.rdb").unlink(missing_ok=True)
            chaos.note(kind, pid=pid)
            time.sleep(5)
            chaos.stack_up()
        windows[kind] = (t, now())

    todo = [f for f in a.only.split(",") if f]
    try:
        for i, fault in enumerate(todo):
            if i:
                time.sleep(a.gap)
            versions_before_last = max((v for vs in list(consumer.seen.values()) for v, _ in vs), default=0)
            log(f"fault {fault} at t={now():.1f}")
            {
                "freeze": f_freeze,
                "rolling": f_rolling,
                "trainer": f_trainer,
                "redis_kill": lambda: f_redis("redis_kill"),
                "redis_freeze": lambda: f_redis("redis_freeze"),
                "redis_wipe": lambda: f_redis("redis_wipe"),
            }[fault]()
            log(f"fault {fault} over at t={now():.1f}")
        last_end = now()
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
    versions_after = [v for vs in seen.values() for v, t in vs if t - chaos.t0 > last_end + 30]
    mets: Counter[str] = Counter()
    for w in chaos.workers:
        for text in w.last_metrics.values():
            mets[f"consumer_restarts.{w.role}"] += metric(text, "driftline_consumer_restarts_total")
            mets[f"retries.{w.role}"] += metric(text, "driftline_events_total", outcome="retry")
            mets[f"producer_restarts.{w.role}"] += metric(text, "driftline_producer_restarts_total")
            if w.role == "join":
                for outcome in ("joined", "parked", "duplicate", "lost", "expired", "orphan", "rebuilt"):
                    mets[f"joins.{outcome}"] += metric(text, "driftline_joins_total", outcome=outcome)
            if w.role == "train":
                for outcome in ("committed", "aborted", "fenced"):
                    mets[f"txn.{outcome}"] += metric(
                        text, "driftline_trainer_transactions_total", outcome=outcome
                    )
    warm_ids = {i for i, vs in seen.items() if vs and vs[0][1] - chaos.t0 > warm_at + 5}
    # what status said inside each fault window
    in_window: dict[str, list[Any]] = {}
    for name, (t1, t2) in windows.items():
        in_window[name] = [{"t": t, **s} for t, s in statuses if t1 <= t <= t2 + 20]
    summary = {
        "prefix": run.prefix,
        "warm_at": round(warm_at, 1),
        "windows": {k: (round(x, 1), round(y, 1)) for k, (x, y) in windows.items()},
        "info": info,
        "events_sent": producer.sent,
        "acked_features": len(acked_f),
        "acked_labels": len(acked_l),
        "producer_failed": dict(producer.failed),
        "producer_unacked_at_end": producer.unacked_at_end,
        "my_consumer_missing": len(acked_f - set(seen)),
        "my_consumer_dups": sum(len(v) - 1 for v in seen.values()),
        "null_after_warm": sum(1 for i in warm_ids if seen[i][0][0] == 0),
        "null_after_warm_any": sum(1 for i in warm_ids if any(v == 0 for v, _ in seen[i])),
        "topic_unpredicted": result.get("unpredicted"),
        "topic_pred_dups": result.get("pred_duplicates"),
        "labels_learned": result.get("labels_learned"),
        "learned_minus_training_ids": result.get("learned_minus_training_ids"),
        "training_ids": result.get("training_ids"),
        "not_joined": result.get("not_joined"),
        "not_joined_sample": result.get("not_joined_sample"),
        "wrong_joins": result.get("wrong_joins"),
        "train_dups": result.get("training_duplicates"),
        "deadletters": result.get("deadletters"),
        "deadletter_reasons": result.get("deadletter_reasons"),
        "status_joins": result.get("status_joins"),
        "releases": result.get("releases"),
        "non_increasing": result.get("non_increasing"),
        "unverified": result.get("unverified"),
        "max_version_before_last_fault": versions_before_last,
        "max_version_served_30s_after_last_fault": max(versions_after, default=None),
        "died_alone": result.get("died_alone"),
        "metrics": dict(mets),
        "doctor_rc": result.get("doctor_rc"),
        "doctor_problems": result.get("doctor_problems"),
        "audit_verify_rc": result.get("audit_verify_rc"),
        "resumed_past_committed": grep_logs(out, r"read on past the committed|ResumedPastCommitted"),
        "fenced_lines": grep_logs(
            out, r"transaction fenced|cannot rewind|cannot abort|no transactional producer"
        )[:20],
    }
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "statuses.json").write_text(json.dumps(statuses, default=str))
    (out / "faults.json").write_text(json.dumps(chaos.faults, default=str))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    for name, rows in in_window.items():
        for r in rows:
            print(f"STATUS {name} {json.dumps(r, default=str)}")
    print("FAULT40 " + json.dumps(summary, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
