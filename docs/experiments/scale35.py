"""Scale-out checked from outside (helper scale35, session 35): several scorers and trainers, rebalances, status.

Everything the system does is driven through the ``driftline`` command line in separate processes (stack, topics,
workers, producers, status, models); only the accounting reads the topics directly (read_committed, decoded with the
schemas' codec) and the workers' /metrics over HTTP.

    PYTHONPATH=. python docs/experiments/scale35.py scale --partitions 8 --events 15000 --rate 300 \
        --kafka-port 14092 --redis-port 14379 --state-dir /tmp/scale35-state
    PYTHONPATH=. python docs/experiments/scale35.py trainers ...

``scale``: 3 scorers + join + train; a 4th scorer joins at 20 % of the stream, scorer 1 gets SIGTERM at 45 %,
scorer 2 kill -9 at 70 %. Counts predictions per event id (missing, duplicated), the longest time an event waited
for its prediction per partition (unserved), each scorer's served version after every release (skew), the version
the newcomer served when it first scored, and ``status --json`` against every scorer's /metrics.

``trainers``: two models (events name their model) with two train workers, then a third train worker for the same
models; kill -9 of the owner. Checks versions on ``models`` strictly increasing per model and verified, and which
trainer owns what (``models list --json``).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

TREE = Path(__file__).resolve().parents[2]
PY = sys.executable
KEY = "5a" * 32


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Deployment:
    def __init__(
        self, args: argparse.Namespace, prefix: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.prefix = prefix
        self.out = Path(args.out) / prefix.rstrip(".")
        self.out.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update(
            {
                "PYTHONPATH": str(TREE),
                "DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{args.kafka_port}",
                "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{args.redis_port}/0",
                "DRIFTLINE_STATE_DIR": args.state_dir,
                "DRIFTLINE_TOPIC_PREFIX": prefix,
                "DRIFTLINE_SIGNING_KEY": KEY,
                "DRIFTLINE__KAFKA__PARTITIONS": str(args.partitions),
            }
        )
        self.env.update(extra_env or {})
        self.workers: dict[str, tuple[subprocess.Popen, int, str]] = {}
        self.next_port = args.metrics_base

    def cli(self, *argv: str, timeout: float = 120, env: dict[str, str] | None = None) -> tuple[int, str]:
        e = dict(self.env, **(env or {}))
        p = subprocess.run(
            [PY, "-m", "driftline", *argv], env=e, capture_output=True, text=True, timeout=timeout, cwd=TREE
        )
        return p.returncode, p.stdout + p.stderr

    def start(self, name: str, role: str) -> int:
        port = self.next_port
        self.next_port += 1
        errf = open(self.out / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(
            [PY, "-m", "driftline", "-v", "worker", "--role", role, "--metrics-port", str(port)],
            env=self.env,
            stdout=errf,
            stderr=subprocess.STDOUT,
            cwd=TREE,
        )
        self.workers[name] = (p, port, role)
        log(f"started {name} ({role}) pid {p.pid} metrics :{port}")
        return p.pid

    def stop_all(self) -> None:
        for _name, (p, _port, _role) in self.workers.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for _name, (p, _port, _role) in self.workers.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except Exception:
        return None
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        with contextlib.suppress(ValueError):
            out[m.group(1)].append((labels, float(m.group(4))))
    return out


def metric(ms: dict, name: str, **want: str) -> float | None:
    total = None
    for labels, v in ms.get(name, []):
        if all(labels.get(k) == w for k, w in want.items()):
            total = (total or 0.0) + v
    return total


class Poller(threading.Thread):
    """Scrapes every live worker's /metrics every ``period`` s: (t, name, served version, scored, partitions)."""

    def __init__(self, dep: Deployment, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.dep, self.period = dep, period
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for name, (p, port, role) in list(self.dep.workers.items()):
                if p.poll() is not None:
                    continue
                ms = scrape(port)
                if ms is None:
                    continue
                served = {lab.get("model"): v for lab, v in ms.get("driftline_served_model_version", [])}
                parts = sorted(
                    int(lab["partition"])
                    for lab, _v in ms.get("driftline_consumer_lag", [])
                    if lab.get("topic", "").endswith("features")
                )
                self.samples.append(
                    {
                        "t": time.time(),
                        "name": name,
                        "role": role,
                        "served": served,
                        "scored": metric(ms, "driftline_events_total", stage="score") or 0.0,
                        "parts": parts,
                    }
                )
            self.stop.wait(self.period)


def read_topic(dep: Deployment, name: str, record: str | None) -> list[tuple[int, int, int, Any]]:
    """Every committed record of a topic: (partition, offset, kafka timestamp ms, decoded value)."""
    sys.path.insert(0, str(TREE))
    from confluent_kafka import Consumer, TopicPartition

    from schemas.codec import default_codec

    codec = default_codec()
    topic = dep.prefix + name
    c = Consumer(
        {
            "bootstrap.servers": dep.env["DRIFTLINE_KAFKA_BOOTSTRAP"],
            "group.id": f"scale35-audit-{time.time()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    md = c.list_topics(topic, timeout=30)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[tuple[int, int, int, Any]] = []
    idle = 0
    while idle < 4:
        msgs = c.consume(5000, 1.0)
        if not msgs:
            idle += 1
            continue
        idle = 0
        for m in msgs:
            if m.error():
                continue
            value: Any = m.value()
            if record is not None:
                try:
                    value = codec.decode(
                        record, m.value(), topic=topic, allow_json=True, timestamp=m.timestamp()[1]
                    )
                except Exception as exc:
                    value = exc
            out.append((m.partition(), m.offset(), m.timestamp()[1], value))
    c.close()
    return out


def wait_drained(dep: Deployment, poller: Poller, want: int, timeout: float = 180) -> None:
    """Until the scorers' score count has stopped moving and the labels were learned (or timeout)."""
    deadline = time.time() + timeout
    last, still = -1.0, 0
    while time.time() < deadline:
        _rc, out = dep.cli("status", "--json", timeout=60)
        try:
            st = json.loads(out[out.index("{") :])
        except ValueError:
            time.sleep(2)
            continue
        lag = sum(int(g.get("total_lag") or 0) for g in st.get("workers", []) if isinstance(g, dict))
        total = sum(s["scored"] for s in latest(poller).values())
        if lag == 0 and total == last:
            still += 1
            if still >= 3:
                return
        else:
            still = 0
        last = total
        time.sleep(3)
    log("drain: timed out")


def latest(poller: Poller) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in poller.samples:
        out[s["name"]] = s
    return out


def wait_up(dep: Deployment, names: list[str], timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok = 0
        for n in names:
            ms = scrape(dep.workers[n][1])
            if ms and (metric(ms, "driftline_worker_up") or 0) >= 1:
                ok += 1
        if ok == len(names):
            return
        time.sleep(0.5)
    log(f"workers not all up after {timeout} s")


def scale(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"s35s{int(time.time()) % 100000}."
    dep = Deployment(args, prefix)
    rc, out = dep.cli("topics", "create")
    log(f"topics create rc={rc}: {out.strip().splitlines()[-1] if out.strip() else ''}")
    for i in (1, 2, 3):
        dep.start(f"score{i}", "score")
    dep.start("join", "join")
    if args.joiners == 2:
        dep.start("join2", "join")
    dep.start("train", "train")
    wait_up(dep, list(dep.workers))
    poller = Poller(dep)
    poller.start()
    duration = args.events / args.rate
    t0 = time.time()
    prod = subprocess.Popen(
        [PY, "-m", "driftline", "produce", "synthetic", "--events", str(args.events), "--rate", str(args.rate),
         "--label-delay", "300", "--id-prefix", prefix, "--json"],
        env=dep.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=TREE,
    )  # fmt: skip
    # The producer takes seconds to start under load: the schedule counts from the first event scored.
    while time.time() < t0 + 120 and sum(s["scored"] for s in latest(poller).values()) == 0:
        time.sleep(0.2)
    t0 = time.time()
    events: list[tuple[float, str]] = []
    plan = [(0.2, "add score4"), (0.45, "sigterm score1"), (0.7, "kill9 score2")]
    if args.joiners == 2:
        plan.insert(2, (0.55, "kill9 join2"))
    for frac, what in plan:
        time.sleep(max(0.0, t0 + frac * duration - time.time()))
        verb, name = what.split()
        events.append((time.time(), what))
        if verb == "add":
            dep.start(name, "score")
        elif verb == "sigterm":
            dep.workers[name][0].send_signal(signal.SIGTERM)
        else:
            dep.workers[name][0].send_signal(signal.SIGKILL)
        log(what)
    time.sleep(3)
    # a few seconds after the kill -9
    (dep.out / "status_mid.txt").write_text(dep.cli("status", timeout=60)[1])
    pout, _ = prod.communicate(timeout=duration * 3 + 120)
    log(f"producer rc={prod.returncode}: {pout.strip().splitlines()[-1] if pout.strip() else ''}")
    wait_drained(dep, poller, args.events)
    rc, status_out = dep.cli("status", "--json", timeout=60)
    status_snap = latest(poller)
    metrics_now = {n: scrape(port) for n, (p, port, _r) in dep.workers.items() if p.poll() is None}
    poller.stop.set()
    poller.join()

    feats = read_topic(dep, "features", "FeatureEvent")
    preds = read_topic(dep, "predictions", "Prediction")
    models = read_topic(dep, "models", "ModelRelease")
    dls = read_topic(dep, "deadletter", "DeadLetter")
    training = read_topic(dep, "training", "TrainingExample")
    feat_ts: dict[str, tuple[int, int]] = {}
    for p, _o, ts, v in feats:
        if isinstance(v, dict):
            feat_ts.setdefault(v["id"], (p, ts))
    per_id = Counter(v["id"] for _p, _o, _ts, v in preds if isinstance(v, dict))
    first_pred: dict[str, tuple[int, int]] = {}
    for _p, _o, ts, v in preds:
        if isinstance(v, dict) and (v["id"] not in first_pred or ts < first_pred[v["id"]][0]):
            first_pred[v["id"]] = (ts, v["version"])
    missing = [i for i in feat_ts if i not in per_id]
    dups = sum(c - 1 for c in per_id.values() if c > 1)
    wait_by_part: dict[int, int] = defaultdict(int)
    for i, (p, ts) in feat_ts.items():
        if i in first_pred:
            wait_by_part[p] = max(wait_by_part[p], first_pred[i][0] - ts)
    # versions on the models topic (Kafka timestamp = when it was published)
    rel = sorted((ts, v["version"]) for _p, _o, ts, v in models if isinstance(v, dict))
    versions = [v for _ts, v in rel]
    strictly = all(b > a for a, b in itertools.pairwise(versions))
    # skew: for each release, how long until each live scorer reported serving it (or newer)
    skew: list[float] = []
    scorer_samples: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in poller.samples:
        if s["role"] == "score":
            scorer_samples[s["name"]].append(s)
    for ts, v in rel:
        t_rel = ts / 1000
        for _name, ss in scorer_samples.items():
            alive_after = [s for s in ss if s["t"] >= t_rel]
            alive_before = [s for s in ss if t_rel - 1 <= s["t"] < t_rel and s["served"]]
            if not alive_before or not alive_after or alive_after[-1]["t"] < t_rel + 5:
                continue  # scorer not serving yet, or gone around then
            hit = next((s for s in alive_after if max(s["served"].values(), default=0) >= v), None)
            if hit is not None:
                skew.append(hit["t"] - t_rel)
    # newcomer: first sample where it had scored something, and what it served then; newest release before it
    first4 = next((s for s in scorer_samples["score4"] if s["scored"] > 0), None)
    newest_before = max((v for ts, v in rel if first4 and ts / 1000 <= first4["t"]), default=None)
    try:
        st = json.loads(status_out[status_out.index("{") :])
    except ValueError:
        st = {"unparsed": status_out[-2000:]}
    res = {
        "prefix": prefix,
        "partitions": args.partitions,
        "events": len(feat_ts),
        "predictions": len(preds),
        "missing": len(missing),
        "missing_sample": missing[:5],
        "duplicates": dups,
        "deadletters": len(dls),
        "max_wait_ms_by_partition": dict(sorted(wait_by_part.items())),
        "releases": len(versions),
        "versions_strictly_increasing": strictly,
        "skew_p50_s": sorted(skew)[len(skew) // 2] if skew else None,
        "skew_p99_s": sorted(skew)[int(len(skew) * 0.99)] if skew else None,
        "skew_max_s": max(skew) if skew else None,
        "newcomer_first_sample": first4 and {"served": first4["served"], "parts": first4["parts"]},
        "newest_release_before_newcomer_scored": newest_before,
        "partitions_at_end": {n: s["parts"] for n, s in status_snap.items() if s["role"] == "score"},
        "served_at_end": {n: s["served"] for n, s in status_snap.items()},
        "training_examples": len(training),
        "training_distinct": len({v["id"] for _p, _o, _ts, v in training if isinstance(v, dict)}),
        "labels_learned": metric(metrics_now.get("train") or {}, "driftline_n_learned"),
        "exit_codes": {n: p.poll() for n, (p, _port, _r) in dep.workers.items()},
        "faults": [(round(t - t0, 1), w) for t, w in events],
    }
    (dep.out / "status.json").write_text(json.dumps(st, indent=1, default=str))
    (dep.out / "metrics_end.json").write_text(json.dumps(metrics_now, default=str))
    (dep.out / "samples.json").write_text(json.dumps(poller.samples))
    dep.stop_all()
    return res


def trainers(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"s35t{int(time.time()) % 100000}."
    dep = Deployment(args, prefix)
    dep.cli("topics", "create")
    dep.start("score1", "score")
    dep.start("join", "join")
    dep.start("train1", "train")
    dep.start("train2", "train")
    wait_up(dep, list(dep.workers))
    poller = Poller(dep)
    poller.start()
    duration = args.events / args.rate
    prods = []
    for m in ("alpha", "beta"):
        e = dict(dep.env)
        cmd = [PY, "-m", "driftline", "--model", m, "produce", "synthetic", "--events", str(args.events)]
        cmd += ["--rate", str(args.rate / 2), "--label-delay", "200", "--id-prefix", f"{prefix}{m}-"]
        cmd += ["--seed", str(len(m))]
        prods.append(
            subprocess.Popen(
                cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=TREE
            )
        )
    t0 = time.time()
    time.sleep(duration * 0.3)
    _rc, lst1 = dep.cli("models", "list", "--json")
    dep.start("train3", "train")
    log("added train3")
    time.sleep(max(0, t0 + duration * 0.6 - time.time()))
    _rc, lst2 = dep.cli("models", "list", "--json")
    owners = {}
    for line in lst2.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("owner"):
            owners[r["model"]] = r["owner"]
    log(f"owners before kill: {owners}")
    # kill -9 the trainer owning alpha: the owner is named host-pid
    victim = None
    for name, (p, _port, role) in dep.workers.items():
        if role == "train" and p.poll() is None and owners.get("alpha", "").endswith(f"-{p.pid}"):
            victim = name
    if victim:
        dep.workers[victim][0].send_signal(signal.SIGKILL)
        log(f"kill9 {victim} (owned alpha)")
    for p in prods:
        p.communicate(timeout=duration * 3 + 120)
    wait_drained(dep, poller, args.events)
    _rc, lst3 = dep.cli("models", "list", "--json")
    _rc, status_out = dep.cli("status", "--json")
    poller.stop.set()
    models = read_topic(dep, "models", "ModelRelease")
    training = read_topic(dep, "training", "TrainingExample")
    by_model: dict[str, list[int]] = defaultdict(list)
    for _p, _o, _ts, v in models:
        if isinstance(v, dict):
            by_model[v["model"]].append(v["version"])
    mono = {m: all(b > a for a, b in itertools.pairwise(vs)) for m, vs in by_model.items()}
    verified = Counter()
    for line in lst3.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        verified[(r.get("model"), bool(r.get("verified", True)))] += 1
    learned = {}
    for name, (p, port, role) in dep.workers.items():
        if role == "train" and p.poll() is None:
            ms = scrape(port) or {}
            learned[name] = {lab.get("model"): v for lab, v in ms.get("driftline_n_learned", [])}
    train_ids = Counter((v["id"]) for _p, _o, _ts, v in training if isinstance(v, dict))
    (dep.out / "models_list.txt").write_text(lst1 + "\n----\n" + lst2 + "\n----\n" + lst3)
    (dep.out / "status.txt").write_text(status_out)
    res = {
        "prefix": prefix,
        "releases_by_model": {m: len(v) for m, v in by_model.items()},
        "strictly_increasing": mono,
        "verified_rows": {f"{m}:{ok}": c for (m, ok), c in verified.items()},
        "owners_before_kill": owners,
        "victim": victim,
        "n_learned_live": learned,
        "training_examples": len(training),
        "training_distinct": len(train_ids),
        "exit_codes": {n: p.poll() for n, (p, _port, _r) in dep.workers.items()},
    }
    dep.stop_all()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["scale", "trainers"])
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument(
        "--joiners", type=int, choices=[1, 2], default=1, help="2: a second joiner, killed -9 at 55 %%"
    )
    ap.add_argument("--events", type=int, default=15000)
    ap.add_argument("--rate", type=float, default=300)
    ap.add_argument("--kafka-port", type=int, default=14092)
    ap.add_argument("--redis-port", type=int, default=14379)
    ap.add_argument("--state-dir", default="/tmp/scale35-state")
    ap.add_argument("--metrics-base", type=int, default=14500)
    ap.add_argument("--out", default="/tmp/scale35-runs")
    args = ap.parse_args()
    res = scale(args) if args.what == "scale" else trainers(args)
    print("SCALE35 " + json.dumps(res, default=str), flush=True)


if __name__ == "__main__":
    main()
