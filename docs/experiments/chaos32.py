"""Seeded random chaos against a running pipeline, then an accounting of every record (helper chaos32, session 32).

As a user would: the stack, the workers and the producer are the ``driftline`` command line in separate processes;
the faults are signals to their pids and ``driftline stack up``; control goes through ``driftline models``. Only the
accounting reads the topics directly (read_committed, decoded with the schemas' codec).

    PYTHONPATH=. python docs/experiments/chaos32.py --seed 1 --events 20000 --rate 200 \
        --kafka-port 17092 --redis-port 17379 --state-dir /tmp/chaos32-state

A random schedule (the seed) of: kill -9 a worker and restart it after a delay; SIGSTOP/SIGCONT a worker (a trainer
past its session timeout: a zombie); kill -9 redis-server and restart it (``redis_kill``: its append-only file keeps
the data; ``redis_wipe``: its files removed first, the data lost); kill -9 the broker and ``stack up``; live control
(``models set``, ``pause``/``resume``). Then every worker is brought back, the pipeline drains, and the topics are
accounted: every event predicted (duplicates counted), every label learned exactly once or dead-lettered (reason) or
still parked in the join store (counted), every TrainingExample joined with a published prediction, versions strictly
increasing and verified, no worker dead by itself, ``status``/``doctor`` at the end. Prints progress, a table and one
JSON line (``CHAOS32 {...}``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TREE = Path(__file__).resolve().parents[2]
PY = sys.executable
KEY = "c3" * 32  # a fixed 64-hex signing key: every process of a run shares it
ROLES = ("score", "score", "join", "train", "train")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Run:
    seed: int
    events: int
    rate: float
    label_delay: int
    kafka_port: int
    redis_port: int
    state_dir: Path
    out: Path
    prefix: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prefix = f"chaos32.s{self.seed}.{int(time.time()) % 100000}."
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
        self.env.update(
            {
                "PYTHONPATH": str(TREE),
                "DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.kafka_port}",
                "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "DRIFTLINE_STATE_DIR": str(self.state_dir),
                "DRIFTLINE_TOPIC_PREFIX": self.prefix,
                "DRIFTLINE_SIGNING_KEY": KEY,
            }
        )

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        cmd = [PY, "-m", "streams.cli", *args]
        try:
            return subprocess.run(
                cmd, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=TREE
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(cmd, 124, str(exc.stdout or ""), f"timeout after {timeout} s")

    def stack_flags(self) -> list[str]:
        return [
            "--kafka-port", str(self.kafka_port), "--controller-port", str(self.kafka_port + 1),
            "--redis-port", str(self.redis_port), "--state-dir", str(self.state_dir),
        ]  # fmt: skip


class Worker:
    """One ``driftline worker`` process; incarnations are restarts of the same slot."""

    def __init__(self, run: Run, slot: int, role: str) -> None:
        self.run, self.slot, self.role = run, slot, role
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.port = 17500 + slot
        self.stopped = False  # SIGSTOPped by the schedule
        self.expected_dead = False  # killed by the schedule, not yet restarted
        self.died_alone: list[str] = []
        self.last_metrics: dict[int, str] = {}  # incarnation -> last scrape

    @property
    def name(self) -> str:
        return f"{self.role}{self.slot}"

    def start(self) -> None:
        if self.alive():  # two overlapping faults on one worker: restarted once
            return
        self.incarnation += 1
        logf = open(self.run.out / f"{self.name}.{self.incarnation}.log", "wb")  # noqa: SIM115 - kept with the proc
        self.proc = subprocess.Popen(
            [PY, "-m", "streams.cli", "worker", "--role", self.role, "--metrics-port", str(self.port)],
            env=self.run.env, stdout=logf, stderr=subprocess.STDOUT, cwd=TREE,
        )  # fmt: skip
        self.expected_dead = False
        log(f"start {self.name} #{self.incarnation} pid {self.proc.pid}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """A worker that exited while nobody killed it died by itself."""
        if self.proc is not None and not self.expected_dead and self.proc.poll() is not None:
            logfile = self.run.out / f"{self.name}.{self.incarnation}.log"
            lines = [
                ln
                for ln in logfile.read_text(errors="replace").splitlines()
                if ("error" in ln.lower()) and "librdkafka" not in ln
            ]
            # "cannot reach ... at start" is the documented fail-fast of `driftline worker` (a supervisor restarts)
            why = lines[-1][:200] if lines else "no error logged"
            msg = f"{self.name} #{self.incarnation} exited {self.proc.returncode} by itself: {why}"
            self.died_alone.append(msg)
            log("VIOLATION? " + msg)
            self.expected_dead = True

    def kill9(self) -> None:
        if self.proc is not None and self.alive():
            if self.stopped:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.stopped = False
            self.expected_dead = True
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def sigstop(self) -> None:
        if self.alive() and not self.stopped:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.stopped = True

    def sigcont(self) -> None:
        if self.alive() and self.stopped:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)
        self.stopped = False

    def terminate(self) -> None:
        if self.proc is not None and self.alive():
            self.sigcont()
            self.expected_dead = True
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def scrape(self) -> None:
        if not self.alive() or self.stopped:
            return
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                self.last_metrics[self.incarnation] = r.read().decode()
        except OSError:
            pass


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"([a-z_]+)(\{.*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


# ------------------------------------------------------------------------------------------------------ faults


class Chaos:
    def __init__(self, run: Run, roles: tuple[str, ...] = ROLES) -> None:
        self.run = run
        self.rng = random.Random(run.seed)
        self.workers = [Worker(run, i, role) for i, role in enumerate(roles)]
        self.faults: list[dict[str, Any]] = []
        self.controls: list[dict[str, Any]] = []
        self.paused = False
        self.lock = threading.Lock()
        self.stop_monitor = threading.Event()
        self.weights: tuple[float, ...] = ()
        self.overlap = 1
        self.rollbacks = False

    def note(self, kind: str, **info: Any) -> None:
        entry = {"t": round(time.monotonic() - self.t0, 1), "kind": kind, **info}
        self.faults.append(entry)
        log(f"FAULT {kind} {info}")

    def monitor(self) -> None:
        while not self.stop_monitor.wait(2.0):
            with self.lock:
                for w in self.workers:
                    w.check()
                    w.scrape()

    def stack_pid(self, what: str) -> int | None:
        r = self.run.cli("stack", "status", "--json", *self.run.stack_flags(), timeout=60)
        try:
            return int(json.loads(r.stdout)[what]["pid"])
        except (ValueError, KeyError, TypeError):
            return None

    def stack_up(self) -> None:
        for attempt in range(5):
            r = self.run.cli("stack", "up", *self.run.stack_flags(), timeout=180)
            if r.returncode == 0:
                return
            log(f"stack up failed ({r.returncode}), attempt {attempt}: {r.stderr[-400:]}")
            time.sleep(2)
        raise SystemExit("stack up keeps failing")

    def control(self, *args: str) -> int:
        r = self.run.cli("models", *args, "--timeout", "40", timeout=60)
        entry = {"t": round(time.monotonic() - self.t0, 1), "args": list(args), "rc": r.returncode,
                 "out": (r.stdout + r.stderr).strip()[-300:]}  # fmt: skip
        self.controls.append(entry)
        log(f"CONTROL {' '.join(args)} -> {r.returncode} {entry['out'][:160]!r}")
        return r.returncode

    # each fault returns when it has been undone (restart, SIGCONT, stack up)
    def f_kill_worker(self) -> None:
        w = self.rng.choice(self.workers)
        delay = self.rng.uniform(0.5, 8.0)
        with self.lock:
            w.kill9()
        self.note("kill9", worker=w.name, restart_after=round(delay, 1))
        time.sleep(delay)
        with self.lock:
            w.start()

    def f_stop_worker(self) -> None:
        w = self.rng.choice(self.workers)
        # a trainer past its 10 s session timeout comes back a zombie; the others for a shorter stall
        hold = self.rng.uniform(12.0, 20.0) if w.role == "train" else self.rng.uniform(1.0, 14.0)
        with self.lock:
            w.sigstop()
        self.note("sigstop", worker=w.name, hold=round(hold, 1))
        time.sleep(hold)
        with self.lock:
            w.sigcont()

    def f_redis(self, wipe: bool) -> None:
        pid = self.stack_pid("redis")
        delay = self.rng.uniform(0.5, 6.0)
        if pid:
            os.kill(pid, signal.SIGKILL)
        if wipe:
            rdir = self.run.state_dir / "stack" / "redis"
            shutil.rmtree(rdir / "appendonlydir", ignore_errors=True)
            (rdir / "dump.rdb").unlink(missing_ok=True)
        self.note("redis_wipe" if wipe else "redis_kill", pid=pid, down=round(delay, 1))
        time.sleep(delay)
        self.stack_up()

    def f_broker(self) -> None:
        pid = self.stack_pid("kafka")
        delay = self.rng.uniform(0.5, 6.0)
        if pid:
            os.kill(pid, signal.SIGKILL)
        self.note("broker_kill9", pid=pid, down=round(delay, 1))
        time.sleep(delay)
        self.stack_up()

    def f_stack_restart(self) -> None:
        """`driftline stack down --force` (Kafka and Redis stopped cleanly) and `stack up` after a delay."""
        delay = self.rng.uniform(0.5, 6.0)
        r = self.run.cli("stack", "down", "--force", *self.run.stack_flags(), timeout=180)
        self.note("stack_restart", down_rc=r.returncode, down=round(delay, 1))
        time.sleep(delay)
        self.stack_up()

    def f_control(self) -> None:
        if self.rollbacks and self.rng.random() < 0.3:
            self.control("rollback")  # a new release restoring an older model: versions still increase
            return
        choice = self.rng.choice(["set", "pause", "set_drift"])
        if choice == "set":
            self.control("set", f"release_every={self.rng.choice([10, 25, 50, 100])}")
        elif choice == "set_drift":
            self.control("set", f"drift.adwin_delta={self.rng.choice(['0.002', '0.01', '0.0005'])}")
        else:
            discard = (
                False  # pause --discard drops labels on purpose: the accounting would have to excuse them
            )
            rc = self.control("pause", *(["--discard"] if discard else []))
            self.paused = self.paused or rc in (0, 3)
            time.sleep(self.rng.uniform(3.0, 15.0))
            if self.control("resume") == 0:
                self.paused = False

    def wait_first_events(self, timeout: float = 60.0) -> None:
        """Faults start once the producer has published: `driftline produce` checks the broker once at start
        (5 s) and exits 1 if it does not answer, sending nothing (seed 5 lost its stream to a broker kill then)."""
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer(
            {"bootstrap.servers": self.run.env["DRIFTLINE_KAFKA_BOOTSTRAP"], "group.id": "chaos32-probe"}
        )
        topic = self.run.prefix + "features"
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                parts = c.list_topics(topic, timeout=10).topics[topic].partitions
                if any(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] > 0 for p in parts):
                    log("first events on features: faults start")
                    return
                time.sleep(0.5)
        finally:
            c.close()

    def schedule(self, duration: float, weights: tuple[float, ...] = (4, 3, 1, 1, 1, 2)) -> None:
        """Faults drawn with ``weights``: kill -9 worker, SIGSTOP worker, Redis kill, Redis wipe, broker, control."""
        self.weights = weights
        fns = (
            self.f_kill_worker,
            self.f_stop_worker,
            lambda: self.f_redis(False),
            lambda: self.f_redis(True),
            self.f_broker,
            self.f_control,
            self.f_stack_restart,
        )
        weights = (*weights, *(0.0,) * (len(fns) - len(weights)))  # seeds of fewer weights draw as before
        end = self.t0 + duration
        self.wait_first_events()

        def lane(rng: random.Random) -> None:
            time.sleep(rng.uniform(5, 12))
            while time.monotonic() < end:
                self.rng = rng  # each fault draws its details from its lane's generator
                rng.choices(fns, weights)[0]()
                time.sleep(rng.uniform(2, 10))

        lanes = [
            threading.Thread(target=lane, args=(random.Random(self.run.seed * 1000 + i),))
            for i in range(self.overlap)
        ]
        for t in lanes:
            t.start()
        for t in lanes:
            t.join()


# -------------------------------------------------------------------------------------------------- accounting


def read_topic(run: Run, name: str, record: str | None) -> list[tuple[int, int, bytes | None, Any]]:
    """Every committed record of a topic: (partition, offset, key, decoded value or SchemaError/raw)."""
    sys.path.insert(0, str(TREE))
    from confluent_kafka import Consumer, TopicPartition

    from schemas.codec import default_codec

    codec = default_codec()
    topic = run.prefix + name
    c = Consumer(
        {
            "bootstrap.servers": run.env["DRIFTLINE_KAFKA_BOOTSTRAP"],
            "group.id": f"chaos32-audit-{time.time()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    md = c.list_topics(topic, timeout=30)
    parts = sorted(md.topics[topic].partitions)
    ends = {}
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        ends[p] = (lo, hi)
    c.assign([TopicPartition(topic, p, ends[p][0]) for p in parts])
    out: list[tuple[int, int, bytes | None, Any]] = []
    done = {p for p in parts if ends[p][1] <= ends[p][0]}
    deadline = time.monotonic() + 120
    while len(done) < len(parts) and time.monotonic() < deadline:
        for m in c.consume(2000, 1.0):
            if m.error():
                continue
            p, off = m.partition(), m.offset()
            if off >= ends[p][1] - 1:
                done.add(p)
            if record is None:
                value: Any = m.value()
            else:
                try:
                    value = codec.decode(
                        record, m.value(), topic=topic, allow_json=True, timestamp=m.timestamp()[1]
                    )
                except Exception as exc:  # counted as undecodable
                    value = exc
            out.append((p, off, m.key(), value))
        # a partition whose last offsets are transaction markers never delivers its end offset
        for p in parts:
            if p not in done:
                pos = c.position([TopicPartition(topic, p)])[0].offset
                if pos >= ends[p][1]:
                    done.add(p)
    c.close()
    return out


def wait_drained(run: Run, chaos: Chaos, timeout: float) -> dict[str, Any]:
    """Until status shows no lag and the trainer's labels_learned stopped moving for 20 s."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with chaos.lock:
            for w in chaos.workers:
                w.check()
                if not w.alive():
                    w.start()
        r = run.cli("status", "--json", timeout=60)
        try:
            status = json.loads(r.stdout)
        except ValueError:
            time.sleep(3)
            continue
        shown = run.cli("models", "show", "--json", timeout=60)
        try:
            learned = json.loads(shown.stdout).get("labels_learned")
        except ValueError:
            learned = None
        lag = total_lag(status)
        key = (learned, lag)
        if key != last:
            last, since = key, time.monotonic()
            log(f"drain: labels_learned={learned} lag={lag}")
        elif lag == 0 and time.monotonic() - since > 20:
            return status
        time.sleep(3)
    log("drain timed out")
    return status


def total_lag(status: dict[str, Any]) -> int | None:
    groups = status.get("workers") or []
    lags = [g.get("total_lag") for g in groups if isinstance(g, dict)]
    return None if not lags or None in lags else int(sum(lags))


def account(run: Run, chaos: Chaos, status: dict[str, Any], produce_rc: int) -> dict[str, Any]:
    features = read_topic(run, "features", "FeatureEvent")
    labels = read_topic(run, "labels", "Label")
    preds = read_topic(run, "predictions", "Prediction")
    training = read_topic(run, "training", "TrainingExample")
    models = read_topic(run, "models", "ModelRelease")
    deadletters = read_topic(run, "deadletter", "DeadLetter")
    feat_ids = Counter(v["id"] for *_, v in features if isinstance(v, dict))
    label_ids = Counter(v["id"] for *_, v in labels if isinstance(v, dict))
    pred_ids = Counter(v["id"] for *_, v in preds if isinstance(v, dict))
    served: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for *_, v in preds:
        if isinstance(v, dict):
            served[v["id"]].add((int(v["version"]), json.dumps(v["prediction"])))
    # a null prediction (version 0: no release yet; or v1, published untrained at the trainer's start) is expected
    # only in the cold start, before the first labels (label delay) were learned; a later one means a scorer served
    # without a trained model
    nulls = sorted(
        int(v["id"].rsplit("-", 1)[-1]) for *_, v in preds if isinstance(v, dict) and v["prediction"] is None
    )
    train_ids = Counter(v["id"] for *_, v in training if isinstance(v, dict))
    wrong_join = [
        v["id"]
        for *_, v in training
        if isinstance(v, dict)
        and (int(v["version"]), json.dumps(v["prediction"])) not in served.get(v["id"], set())
    ]
    dl_reasons: Counter[str] = Counter()
    dl_label_ids: set[str] = set()
    dl_feature_ids: set[str] = set()
    for _, _, key, v in deadletters:
        if not isinstance(v, dict):
            continue
        src = v["source_topic"].removeprefix(run.prefix)
        reason = re.sub(r"\d+", "N", str(v["error"]))[:90]
        dl_reasons[f"{src}: {reason}"] += 1
        k = (
            (v.get("key") or key or b"").decode(errors="replace")
            if isinstance(v.get("key") or key, bytes)
            else ""
        )
        if src == "labels":
            dl_label_ids.add(k)
        elif src == "features":
            dl_feature_ids.add(k)
    unpredicted = [i for i in feat_ids if i not in pred_ids and i not in dl_feature_ids]
    not_joined = [i for i in label_ids if i not in train_ids and i not in dl_label_ids]
    # versions per model in offset order (one partition)
    per_model: dict[str, list[int]] = defaultdict(list)
    for *_, v in sorted(models, key=lambda r: (r[0], r[1])):
        if isinstance(v, dict):
            per_model[v["model"]].append(int(v["version"]))
    non_increasing = {m: [(a, b) for a, b in itertools.pairwise(vs) if b <= a] for m, vs in per_model.items()}
    listed = run.cli("models", "list", "--json", timeout=60)
    unverified = []
    for line in listed.stdout.splitlines():
        try:
            rel = json.loads(line)
        except ValueError:
            continue
        if isinstance(rel, dict) and rel.get("verified") is False:
            unverified.append(rel.get("version"))
    shown = run.cli("models", "show", "--json", timeout=60)
    try:
        show = json.loads(shown.stdout)
    except ValueError:
        show = {}
    labels_learned = show.get("labels_learned")
    joins = status_joins(status)
    doctor = run.cli("doctor", "--json", timeout=120)
    audit = run.cli("audit", "verify", "--json", timeout=120)
    # metrics: the last scrape of every incarnation
    mets: dict[str, float] = Counter()
    for w in chaos.workers:
        for text in w.last_metrics.values():
            if w.role in ("score", "all"):
                mets["score_ok"] += metric(text, "driftline_events_total", stage="score", outcome="ok")
            if w.role in ("join", "all"):
                mets["joined"] += metric(text, "driftline_joins_total", outcome="joined")
                mets["parked"] += metric(text, "driftline_joins_total", outcome="parked")
                mets["duplicate"] += metric(text, "driftline_joins_total", outcome="duplicate")
                mets["lost"] += metric(text, "driftline_joins_total", outcome="lost")
            mets["deadletters"] += metric(text, "driftline_deadletters_total")
    final_metrics: dict[str, float] = Counter()
    for w in chaos.workers:
        text = w.last_metrics.get(w.incarnation, "")
        if w.role in ("train", "all"):
            final_metrics["trainer_n_learned_max"] = max(
                final_metrics["trainer_n_learned_max"], metric(text, "driftline_n_learned")
            )
    return {
        "seed": run.seed,
        "weights": chaos.weights,
        "overlap": chaos.overlap,
        "roles": [w.role for w in chaos.workers],
        "prefix": run.prefix,
        "produce_rc": produce_rc,
        "features": len(features),
        "feature_ids": len(feat_ids),
        "predictions": len(preds),
        "predicted_ids": len(pred_ids),
        "pred_duplicates": len(preds) - len(pred_ids),
        "null_predictions": len(nulls),
        "null_last_index": nulls[-1] if nulls else None,
        "unpredicted": len(unpredicted),
        "unpredicted_sample": unpredicted[:5],
        "labels": len(labels),
        "label_ids": len(label_ids),
        "training": len(training),
        "training_ids": len(train_ids),
        "training_duplicates": len(training) - len(train_ids),
        "labels_learned": labels_learned,
        "learned_minus_training_ids": None if labels_learned is None else labels_learned - len(train_ids),
        "not_joined": len(not_joined),
        "not_joined_sample": not_joined[:5],
        "status_joins": joins,
        "wrong_joins": len(wrong_join),
        "wrong_join_sample": wrong_join[:5],
        "deadletters": len(deadletters),
        "deadletter_reasons": dict(dl_reasons.most_common(8)),
        "releases": {m: len(vs) for m, vs in per_model.items()},
        "non_increasing": {m: v[:5] for m, v in non_increasing.items() if v},
        "unverified": unverified[:10],
        "n_learned_show": show.get("n_learned"),
        "died_alone": [m for w in chaos.workers for m in w.died_alone],
        "doctor_rc": doctor.returncode,
        "audit_verify_rc": audit.returncode,
        "audit_verify": (audit.stdout + audit.stderr)[-400:] if audit.returncode else "ok",
        "doctor_problems": doctor_problems(doctor.stdout),
        "metrics_all_incarnations": dict(mets),
        "metrics_final": dict(final_metrics),
        "faults": Counter(f["kind"] for f in chaos.faults),
        "controls": [(" ".join(c["args"]), c["rc"]) for c in chaos.controls],
        "paused_at_end": show.get("paused"),
    }


def status_joins(status: dict[str, Any]) -> Any:
    """What ``status`` says of the join store, the trainer and the groups (checked against the topics)."""
    out: dict[str, Any] = {}
    for m in status.get("models") or []:
        trainer = m.get("trainer") or {}
        out[m.get("model", "?")] = {
            "joins": m.get("joins"),
            "served_version": m.get("served_version"),
            "releases": m.get("releases"),
            "verified": m.get("releases_verified"),
            "paused": trainer.get("paused"),
            "held_examples": trainer.get("held_examples"),
            "n_learned": trainer.get("n_learned"),
        }
    out["groups"] = {
        g.get("group", "?").rsplit("-", 1)[-1].rsplit(".", 1)[-1]: (
            len(g.get("members") or []),
            g.get("total_lag"),
        )
        for g in status.get("workers") or []
    }
    return out


def doctor_problems(text: str) -> Any:
    try:
        checks = json.loads(text).get("checks", [])
    except (ValueError, AttributeError):
        return text[-300:]
    return [
        f"{c.get('name')}: {c.get('status')}: {c.get('detail')}" for c in checks if c.get("status") != "ok"
    ]


# ------------------------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--label-delay", type=int, default=300)
    ap.add_argument("--kafka-port", type=int, default=17092)
    ap.add_argument("--redis-port", type=int, default=17379)
    ap.add_argument("--state-dir", type=Path, default=Path("/tmp/chaos32-state"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/chaos32-runs"))
    ap.add_argument("--drain-timeout", type=float, default=300.0)
    ap.add_argument("--roles", default=",".join(ROLES), help="one worker per role, e.g. all,all")
    ap.add_argument("--rollbacks", action="store_true", help="control also sends `models rollback`")
    ap.add_argument("--overlap", type=int, default=1, help="fault lanes running at once (overlapping faults)")
    ap.add_argument(
        "--weights",
        default="4,3,1,1,1,2",
        help="fault weights: kill -9 worker, SIGSTOP worker, Redis kill, Redis wipe, broker kill, control, stack "
        "down --force/up (missing weights are 0)",
    )
    a = ap.parse_args()
    out = a.out / f"seed{a.seed}-{int(time.time())}"
    out.mkdir(parents=True, exist_ok=True)
    run = Run(a.seed, a.events, a.rate, a.label_delay, a.kafka_port, a.redis_port, a.state_dir, out)
    log(f"seed {a.seed}: prefix {run.prefix}, logs in {out}")
    chaos = Chaos(run, tuple(a.roles.split(",")))
    chaos.overlap = a.overlap
    chaos.rollbacks = a.rollbacks
    chaos.stack_up()
    chaos.t0 = time.monotonic()
    for w in chaos.workers:
        w.start()
    mon = threading.Thread(target=chaos.monitor, daemon=True)
    mon.start()
    time.sleep(15)  # the workers join their groups, the trainer publishes v1 on its first label
    produce_log = open(out / "produce.log", "wb")  # noqa: SIM115
    producer = subprocess.Popen(
        [PY, "-m", "streams.cli", "produce", "synthetic", "--stream", "sea-drift", "--events", str(a.events),
         "--label-delay", str(a.label_delay), "--rate", str(a.rate), "--seed", str(a.seed),
         "--id-prefix", f"s{a.seed}-", "--json"],
        env=run.env, stdout=produce_log, stderr=subprocess.STDOUT, cwd=TREE,
    )  # fmt: skip
    log(f"producer pid {producer.pid}: {a.events} events at {a.rate}/s")
    chaos.t0 = time.monotonic()
    duration = a.events / a.rate
    try:
        chaos.schedule(duration, tuple(float(w) for w in a.weights.split(",")))
        if chaos.paused:
            while chaos.control("resume") not in (0, 1):
                time.sleep(3)
        produce_rc = producer.wait(timeout=600)
        log(f"producer exited {produce_rc}")
        with chaos.lock:
            for w in chaos.workers:
                w.sigcont()
        status = wait_drained(run, chaos, a.drain_timeout)
        chaos.stop_monitor.set()
        mon.join()
        for w in chaos.workers:
            w.scrape()
        result = account(run, chaos, status, produce_rc)
    finally:
        chaos.stop_monitor.set()
        if producer.poll() is None:
            producer.kill()
        for w in chaos.workers:
            w.terminate()
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "faults.json").write_text(
        json.dumps({"faults": chaos.faults, "controls": chaos.controls}, indent=1)
    )
    print_table(result)
    print("CHAOS32 " + json.dumps(result, default=str), flush=True)
    return 0


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("events on features", r["features"], f"{r['feature_ids']} ids"),
        ("predictions", r["predictions"], f"{r['predicted_ids']} ids, {r['pred_duplicates']} duplicates"),
        (
            "null predictions (cold start)",
            r["null_predictions"],
            f"last event index {r['null_last_index']}",
        ),
        ("events never predicted", r["unpredicted"], "VIOLATION" if r["unpredicted"] else "ok"),
        ("labels", r["labels"], f"{r['label_ids']} ids"),
        (
            "training examples",
            r["training"],
            f"{r['training_ids']} ids, {r['training_duplicates']} duplicates",
        ),
        (
            "trainer labels_learned",
            r["labels_learned"],
            f"minus training ids: {r['learned_minus_training_ids']}",
        ),
        (
            "labels not joined, not dead-lettered",
            r["not_joined"],
            json.dumps(r["status_joins"], default=str)[:80],
        ),
        ("wrong joins", r["wrong_joins"], "VIOLATION" if r["wrong_joins"] else "ok"),
        ("dead letters", r["deadletters"], json.dumps(r["deadletter_reasons"])[:80]),
        (
            "releases",
            json.dumps(r["releases"]),
            f"non-increasing {r['non_increasing']} unverified {r['unverified']}",
        ),
        ("workers dead by themselves", len(r["died_alone"]), "; ".join(r["died_alone"])[:80]),
        ("audit verify rc", r["audit_verify_rc"], r["audit_verify"][:80]),
        ("doctor rc", r["doctor_rc"], json.dumps(r["doctor_problems"], default=str)[:80]),
        ("faults", json.dumps(r["faults"]), ""),
        ("status", "", json.dumps(r["status_joins"], default=str)),
        ("controls", "", json.dumps(r["controls"])[:200]),
    ]
    print(f"\n=== chaos32 seed {r['seed']} ===")
    for name, value, note in rows:
        print(f"{name:40} {value!s:>12}  {note}")


if __name__ == "__main__":
    raise SystemExit(main())
