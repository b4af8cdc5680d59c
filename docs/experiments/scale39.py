"""Issue 15's promises driven from outside (helper scale39, session 39): many models of different kinds, scorers
and trainers joining and leaving, a trainer failing over to one with an empty state directory, two prefixes that
share model names.

Everything the system does is driven through the ``driftline`` command line in separate processes (topics, workers,
status, models list); the input is this script's own confluent-kafka producer writing JSON records, generated here
with a fresh seed (data nobody has seen); the accounting reads the topics with a read_committed consumer (decoded
with the schemas' codec) and scrapes every worker's /metrics.

    PYTHONPATH=. python docs/experiments/scale39.py multi --seconds 75 --rate 40 \
        --kafka-port 15092 --redis-port 15379 --state-dir /tmp/scale39-state

``multi``: prefix A (classification, ``routing.feature=tenant``) serves ``bin`` (boolean labels, a concept that
flips halfway), ``multi`` (three string classes), ``acme`` (routed by its ``tenant`` feature, integer labels 0/1)
and ``late`` (its first event at 50 % of the stream: a model added while running); prefix B (regression) serves
``reg`` and another ``bin`` (the same name as A's, float labels). A: scorers 1 and 2, a joiner, trainers 1 and 2;
at 20 % scorer 3 starts; at 35 % the trainer owning ``multi`` is killed -9 and trainer 3 starts with an empty
state directory; at 55 % scorer 1 is killed -9; at 70 % trainer 2 gets SIGTERM. B: one of each. Each label is sent
~2 s after its event. Prints one ``SCALE39 {json}`` line with every check.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale35 import Deployment, Poller, latest, log, read_topic, scrape, wait_up


class Feed(threading.Thread):
    """Publishes JSON FeatureEvents and, ~``delay`` s later, their Labels; remembers what Kafka acknowledged."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        streams: dict[str, Any],
        rate: float,
        seconds: float,
        delay: float,
        seed: int,
    ) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        self.p = Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
        )
        self.prefix, self.streams, self.rate, self.seconds, self.delay = prefix, streams, rate, seconds, delay
        self.rng = random.Random(seed)
        self.acked_events: dict[str, str] = {}  # id -> model it must be answered by
        self.acked_labels: dict[str, str] = {}
        self.failed = 0
        self.t0 = 0.0
        self.done = threading.Event()

    def _cb(self, kind: str, eid: str, model: str) -> Any:
        def cb(err: Any, _msg: Any) -> None:
            if err is not None:
                self.failed += 1
            elif kind == "e":
                self.acked_events[eid] = model
            else:
                self.acked_labels[eid] = model

        return cb

    def run(self) -> None:
        pending: list[tuple[float, str, str, Any]] = []
        self.t0 = time.time()
        n = 0
        period = 1.0 / self.rate
        while (now := time.time()) < self.t0 + self.seconds:
            frac = (now - self.t0) / self.seconds
            for name, gen in self.streams.items():
                if frac < gen["start"]:
                    continue
                eid = f"{self.prefix}{name}-{n}"
                feats, label = gen["make"](self.rng, frac)
                rec: dict[str, Any] = {"id": eid, "ts": int(now * 1000), "features": feats}
                if gen.get("explicit", True):
                    rec["model"] = name
                self.p.produce(
                    self.prefix + "features",
                    json.dumps(rec).encode(),
                    key=eid.encode(),
                    on_delivery=self._cb("e", eid, name),
                )
                pending.append((now + self.delay, eid, name, label))
            n += 1
            while pending and pending[0][0] <= now:
                _t, eid, name, label = pending.pop(0)
                lab = {"id": eid, "ts": int(now * 1000), "label": label}
                self.p.produce(
                    self.prefix + "labels",
                    json.dumps(lab).encode(),
                    key=eid.encode(),
                    on_delivery=self._cb("l", eid, name),
                )
            self.p.poll(0)
            time.sleep(max(0.0, self.t0 + n * period - time.time()))
        time.sleep(self.delay)
        for _t, eid, name, label in pending:
            lab = {"id": eid, "ts": int(time.time() * 1000), "label": label}
            self.p.produce(
                self.prefix + "labels",
                json.dumps(lab).encode(),
                key=eid.encode(),
                on_delivery=self._cb("l", eid, name),
            )
        self.p.flush(60)
        self.done.set()


def _x(rng: random.Random, k: int = 4) -> dict[str, float]:
    return {f"x{i}": round(rng.gauss(0, 1), 4) for i in range(k)}


def make_bin(rng: random.Random, frac: float) -> tuple[dict[str, Any], Any]:
    f = _x(rng)
    s = f["x0"] - 0.5 * f["x1"] + 0.3 * f["x2"]
    return f, bool((s > 0) if frac < 0.5 else (s < 0))  # the concept flips halfway


def make_multi(rng: random.Random, _frac: float) -> tuple[dict[str, Any], Any]:
    f = _x(rng)
    scores = {"red": f["x0"], "green": f["x1"] - 0.2, "blue": 0.7 * f["x2"] + 0.1 * f["x3"]}
    f["shade"] = rng.choice(["light", "dark"])
    return f, max(scores, key=lambda c: scores[c])


def make_acme(rng: random.Random, _frac: float) -> tuple[dict[str, Any], Any]:
    f: dict[str, Any] = _x(rng, 3)
    f["tenant"] = "acme"
    return f, int(f["x1"] + 0.5 * f["x2"] > 0.2)


def make_late(rng: random.Random, _frac: float) -> tuple[dict[str, Any], Any]:
    f = _x(rng, 2)
    return f, bool(f["x0"] * f["x1"] > 0)


def make_reg(rng: random.Random, _frac: float) -> tuple[dict[str, Any], Any]:
    f = _x(rng, 3)
    return f, round(2.0 * f["x0"] - f["x1"] + rng.gauss(0, 0.1), 4)


def make_bin_reg(rng: random.Random, _frac: float) -> tuple[dict[str, Any], Any]:
    f = _x(rng, 2)
    return f, round(10 + 3 * f["x1"], 4)


def owner_map(dep: Deployment, tries: int = 1) -> dict[str, str]:
    """model -> owner (host-pid) of its current release, from ``models list --json`` (one row per release)."""
    for _ in range(tries):
        rc, out = dep.cli("models", "list", "--json", timeout=90)
        rows = [r for r in _json_rows(out) if isinstance(r, dict) and r.get("current")]
        owners = {r["model"]: r.get("owner") or "" for r in rows}
        if rc == 0 and owners and all(owners.values()):
            return owners
        log(f"models list rc={rc}: {out.strip()[-300:] if not rows else owners}")
        time.sleep(1)
    return owners


def _json_rows(out: str) -> list[Any]:
    try:
        doc = json.loads(out[out.index("[") :]) if out.lstrip().startswith("[") else None
    except ValueError:
        doc = None
    if isinstance(doc, list):
        return doc
    rows = []
    for line in out.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    flat: list[Any] = []
    for r in rows:
        flat.extend(r if isinstance(r, list) else r.get("models", [r]) if isinstance(r, dict) else [])
    return flat


def worker_of(dep: Deployment, owner: str) -> str | None:
    for name, (p, _port, role) in dep.workers.items():
        if role == "train" and p.poll() is None and owner.endswith(f"-{p.pid}"):
            return name
    return None


def account(dep: Deployment, feed: Feed, poller: Poller) -> dict[str, Any]:
    feats = read_topic(dep, "features", "FeatureEvent")
    preds = read_topic(dep, "predictions", "Prediction")
    rels = read_topic(dep, "models", "ModelRelease")
    training = read_topic(dep, "training", "TrainingExample")
    dls = read_topic(dep, "deadletter", "DeadLetter")
    pred_by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _p, _o, _ts, v in preds:
        if isinstance(v, dict):
            pred_by_id[v["id"]].append(v)
    missing = [i for i in feed.acked_events if i not in pred_by_id]
    wrong_model = [
        i for i, m in feed.acked_events.items() if any(p["model"] != m for p in pred_by_id.get(i, []))
    ]
    dups = sum(len(v) - 1 for v in pred_by_id.values() if len(v) > 1)
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _p, _o, ts, v in sorted(rels, key=lambda r: (r[0], r[1])):
        if isinstance(v, dict):
            by_model[v["model"]].append(dict(v, _ts=ts))
    releases = {}
    for m, rs in by_model.items():
        vs = [r["version"] for r in rs]
        nl = [(r["version"], r["reason"], (r.get("metrics") or {}).get("n_learned")) for r in rs]
        drops = [
            (a, b)
            for a, b in itertools.pairwise(nl)
            if a[2] is not None and b[2] is not None and b[2] < a[2] and b[1] != "rollback"
        ]
        mono = all(b > a for a, b in itertools.pairwise(vs))
        releases[m] = {
            "n": len(vs),
            "last": vs[-1],
            "strictly_increasing": mono,
            "n_learned_drops": drops[:5],
            "reasons": dict(Counter(r["reason"] for r in rs)),
        }
    train_ids = Counter(v["id"] for _p, _o, _ts, v in training if isinstance(v, dict))
    labels_by_model = Counter(feed.acked_labels.values())
    events_by_model = Counter(feed.acked_events.values())
    return {
        "propagation": propagation(rels, poller),
        "events_acked": dict(events_by_model),
        "labels_acked": dict(labels_by_model),
        "features_on_topic": len(feats),
        "missing_predictions": len(missing),
        "missing_sample": missing[:5],
        "predicted_by_wrong_model": len(wrong_model),
        "duplicate_predictions": dups,
        "deadletters": len(dls),
        "deadletter_errors": dict(
            Counter(str(v.get("error"))[:100] for _p, _o, _ts, v in dls if isinstance(v, dict))
        ),
        "releases": releases,
        "training_examples": len(train_ids and list(train_ids.elements())),
        "training_distinct": len(train_ids),
        "producer_failed": feed.failed,
    }


def propagation(rels: list[tuple[int, int, int, Any]], poller: Poller) -> dict[str, Any]:
    """For each release and each scorer serving before and after it: seconds until its /metrics served it."""
    by_scorer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for smp in poller.samples:
        if smp["role"] == "score":
            by_scorer[smp["name"]].append(smp)
    lags: list[float] = []
    misses: list[tuple[str, str, int]] = []
    for _p, _o, ts, v in rels:
        if not isinstance(v, dict):
            continue
        t_rel, model, version = ts / 1000, v["model"], v["version"]
        for name, ss in by_scorer.items():
            before = [x for x in ss if t_rel - 2 <= x["t"] < t_rel and x["served"]]
            after = [x for x in ss if x["t"] >= t_rel]
            if not before or not after or after[-1]["t"] < t_rel + 10:
                continue  # not serving yet, or gone soon after
            hit = next((x for x in after if x["served"].get(model, 0) >= version), None)
            if hit is None:
                misses.append((name, model, version))
            else:
                lags.append(hit["t"] - t_rel)
    lags.sort()
    return {
        "pairs": len(lags) + len(misses),
        "missed": misses[:10],
        "n_missed": len(misses),
        "p50_s": lags[len(lags) // 2] if lags else None,
        "p99_s": lags[int(len(lags) * 0.99)] if lags else None,
        "max_s": lags[-1] if lags else None,
    }


def trainer_counts(dep: Deployment) -> dict[str, dict[str, float]]:
    out = {}
    for name, (p, port, role) in dep.workers.items():
        if role == "train" and p.poll() is None:
            ms = scrape(port) or {}
            out[name] = {lab.get("model", "?"): v for lab, v in ms.get("driftline_n_learned", [])}
    return out


def scorer_served(dep: Deployment) -> dict[str, dict[str, float]]:
    out = {}
    for name, (p, port, role) in dep.workers.items():
        if role == "score" and p.poll() is None:
            ms = scrape(port) or {}
            out[name] = {lab.get("model", "?"): v for lab, v in ms.get("driftline_served_model_version", [])}
    return out


def wait_learned(deps: list[tuple[Deployment, Feed]], timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok = True
        for dep, feed in deps:
            want = Counter(feed.acked_labels.values())
            have: dict[str, float] = {}
            for counts in trainer_counts(dep).values():
                for m, v in counts.items():
                    have[m] = max(have.get(m, 0), v)
            if any(have.get(m, 0) < n for m, n in want.items()):
                ok = False
        if ok:
            return
        time.sleep(3)
    log("wait_learned: timed out")


def multi(args: argparse.Namespace) -> dict[str, Any]:
    tag = int(time.time()) % 100000
    a = Deployment(args, f"s39a{tag}.", {"DRIFTLINE__ROUTING__FEATURE": "tenant"})
    b = Deployment(args, f"s39b{tag}.", {"DRIFTLINE__MODEL__TASK": "regression"})
    b.next_port = args.metrics_base + 50
    for d in (a, b):
        rc, _out = d.cli("topics", "create")
        log(f"{d.prefix} topics create rc={rc}")
    for n in ("score1", "score2"):
        a.start(n, "score")
    a.start("join", "join")
    a.start("train1", "train")
    a.start("train2", "train")
    b.start("score1", "score")
    b.start("join", "join")
    b.start("train1", "train")
    wait_up(a, list(a.workers), 180)
    wait_up(b, list(b.workers), 180)
    pa, pb = Poller(a, 0.5), Poller(b, 1.0)
    pa.start()
    pb.start()
    seed = int(time.time())
    boot = a.env["DRIFTLINE_KAFKA_BOOTSTRAP"]
    fa = Feed(
        boot,
        a.prefix,
        {
            "bin": {"make": make_bin, "start": 0},
            "multi": {"make": make_multi, "start": 0},
            "acme": {"make": make_acme, "start": 0, "explicit": False},
            "late": {"make": make_late, "start": 0.5},
        },
        args.rate,
        args.seconds,
        2.0,
        seed,
    )
    fb = Feed(
        boot,
        b.prefix,
        {"reg": {"make": make_reg, "start": 0}, "bin": {"make": make_bin_reg, "start": 0}},
        args.rate / 2,
        args.seconds,
        2.0,
        seed + 1,
    )
    fa.start()
    fb.start()
    t0 = time.time()
    faults: list[tuple[float, str]] = []
    res_victim_pid = None
    empty_dir = tempfile.mkdtemp(prefix="scale39-empty-")

    def at(frac: float) -> None:
        time.sleep(max(0.0, t0 + frac * args.seconds - time.time()))

    at(0.2)
    a.start("score3", "score")
    faults.append((time.time() - t0, "start score3"))
    at(0.35)
    owners_before = owner_map(a, tries=10)
    victim = worker_of(a, owners_before.get("multi", ""))
    if victim:
        res_victim_pid = a.workers[victim][0].pid
        a.workers[victim][0].send_signal(signal.SIGKILL)
        faults.append((time.time() - t0, f"kill -9 {victim} (owner of multi)"))
    else:
        faults.append((time.time() - t0, f"no owner of multi found: {owners_before}"))
    a.env["DRIFTLINE_STATE_DIR"] = empty_dir
    a.start("train3", "train")
    faults.append((time.time() - t0, f"start train3 with state dir {empty_dir} (empty)"))
    at(0.55)
    a.workers["score1"][0].send_signal(signal.SIGKILL)
    faults.append((time.time() - t0, "kill -9 score1"))
    at(0.7)
    leaver = "train2" if a.workers["train2"][0].poll() is None else "train1"
    a.workers[leaver][0].send_signal(signal.SIGTERM)
    faults.append((time.time() - t0, f"SIGTERM {leaver}"))
    owners_mid = owner_map(a)
    # Control commands reach the model's owner after the failovers: pause then resume `multi` (labels held meanwhile
    # are learned on resume, so n_learned must still equal the labels sent).
    control = []
    for verb in ("pause", "resume"):
        rc, out = a.cli("--model", "multi", "models", verb, timeout=120)
        control.append((verb, rc, out.strip().splitlines()[-1][:200] if out.strip() else ""))
        faults.append((time.time() - t0, f"models {verb} multi: rc {rc}"))
        if verb == "pause":
            time.sleep(3)
    fa.join()
    fb.join()
    log(
        f"feeds done: A {len(fa.acked_events)} events {len(fa.acked_labels)} labels; B {len(fb.acked_events)}"
    )
    wait_learned([(a, fa), (b, fb)], args.drain)
    time.sleep(15)  # the scorers' session timeout: killed members leave the group
    _rc, status_a = a.cli("status", "--json", timeout=90)
    _rc, status_txt = a.cli("status", timeout=90)
    _rc, list_a = a.cli("models", "list", "--json", timeout=90)
    _rc, list_b = b.cli("models", "list", "--json", timeout=90)
    res: dict[str, Any] = {
        "prefix_a": a.prefix,
        "prefix_b": b.prefix,
        "seed": seed,
        "faults": [(round(t, 1), w) for t, w in faults],
        "owners_before": owners_before,
        "owners_mid": owners_mid,
        "owners_end": owner_map(a, tries=5),
        "victim_pid": res_victim_pid,
        "control": control,
    }
    res["A"] = account(a, fa, pa)
    res["B"] = account(b, fb, pb)
    res["A"]["n_learned_metrics"] = trainer_counts(a)
    res["B"]["n_learned_metrics"] = trainer_counts(b)
    res["A"]["served_metrics"] = scorer_served(a)
    res["B"]["served_metrics"] = scorer_served(b)
    res["A"]["models_list"] = [
        {k: r.get(k) for k in ("model", "version", "n_learned", "owner", "verified")}
        for r in _json_rows(list_a)
        if isinstance(r, dict)
    ]
    res["B"]["models_list"] = [
        {k: r.get(k) for k in ("model", "version", "n_learned", "owner", "verified")}
        for r in _json_rows(list_b)
        if isinstance(r, dict)
    ]
    try:
        st = json.loads(status_a[status_a.index("{") :])
    except ValueError:
        st = {"unparsed": status_a[-3000:]}
    res["A"]["status_assignments"] = {
        g["group"]: g.get("assignments") for g in st.get("workers", []) if isinstance(g, dict)
    }
    res["A"]["live_pids"] = {n: p.pid for n, (p, _port, _r) in a.workers.items() if p.poll() is None}
    res["A"]["per_model_metric_names"] = sorted(
        {
            k
            for n, (p, port, _r) in a.workers.items()
            if p.poll() is None
            for k, series in (scrape(port) or {}).items()
            if any("model" in lab for lab, _v in series)
        }
    )
    res["A"]["scored_total_live"] = {n: s["scored"] for n, s in latest(pa).items()}
    for d in (a, b):
        (d.out / "status.txt").write_text(status_txt if d is a else "")
        (d.out / "status.json").write_text(json.dumps(st, indent=1, default=str) if d is a else "")
    res["exit_codes"] = {f"A.{n}": p.poll() for n, (p, _port, _r) in a.workers.items()}
    pa.stop.set()
    pb.stop.set()
    a.stop_all()
    b.stop_all()
    res["exit_codes_after_stop"] = {f"A.{n}": p.poll() for n, (p, _port, _r) in a.workers.items()}
    res["exit_codes_after_stop"].update({f"B.{n}": p.poll() for n, (p, _port, _r) in b.workers.items()})
    return res


def mixed(args: argparse.Namespace) -> dict[str, Any]:
    """Two trainers of one group with different configurations (``model.task`` and ``guard.alpha``), more models
    than ``training`` partitions, the first trainer killed -9 halfway: which task does each model get, what moves
    with a failover, and what tells the operator."""
    tag = int(time.time()) % 100000
    c = Deployment(args, f"s39c{tag}.")
    c.next_port = args.metrics_base + 80
    c.cli("topics", "create")
    c.start("score1", "score")
    c.start("join", "join")
    c.start("train1", "train")
    base_env = dict(c.env)
    c.env.update({"DRIFTLINE__MODEL__TASK": "regression", "DRIFTLINE__GUARD__ALPHA": "0.01"})
    c.start("train2", "train")
    c.env = base_env
    wait_up(c, list(c.workers), 180)
    poller = Poller(c, 1.0)
    poller.start()

    def make_int(rng: random.Random, _frac: float) -> tuple[dict[str, Any], Any]:
        f = _x(rng, 2)
        return f, int(f["x0"] > 0)

    names = [f"m{i:02d}" for i in range(args.models)]
    feed = Feed(
        c.env["DRIFTLINE_KAFKA_BOOTSTRAP"],
        c.prefix,
        {n: {"make": make_int, "start": 0} for n in names},
        args.rate / 4,
        args.seconds,
        2.0,
        int(time.time()),
    )
    feed.start()
    t0 = time.time()
    time.sleep(max(0.0, t0 + args.seconds / 2 - time.time()))
    owners_before = owner_map(c, tries=5)
    _rc, st_before = c.cli("status", "--json", timeout=90)
    _rc, txt_before = c.cli("status", timeout=90)
    try:
        differences = json.loads(st_before[st_before.index("{") :]).get(
            "trainer_config_differences", "(no such key)"
        )
    except ValueError:
        differences = st_before[-500:]
    c.workers["train1"][0].send_signal(signal.SIGKILL)
    log("kill -9 train1")
    feed.join()
    wait_learned([(c, feed)], args.drain)
    _rc, status_txt = c.cli("status", timeout=90)
    _rc, doctor = c.cli("doctor", timeout=90)
    _rc, settings_txt = c.cli("--model", names[0], "models", "settings", timeout=90)
    rels = read_topic(c, "models", "ModelRelease")
    dls = read_topic(c, "deadletter", "DeadLetter")
    task: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for _p, _o, _ts, v in rels:
        if isinstance(v, dict):
            met = v.get("metrics") or {}
            kind = "regression" if "mae" in met else "classification" if "accuracy" in met else "?"
            task[v["model"]].append((v["version"], kind))
    res = {
        "prefix": c.prefix,
        "owners_before_kill": owners_before,
        "status_json_differences_before_kill": differences,
        "status_trainer_lines_before_kill": [ln for ln in txt_before.splitlines() if "trainer" in ln.lower()],
        "owners_end": owner_map(c, tries=3),
        "task_by_model": {m: sorted({k for _v, k in vs}) for m, vs in sorted(task.items())},
        "labels_acked": dict(Counter(feed.acked_labels.values())),
        "n_learned_metrics": trainer_counts(c),
        "deadletters": dict(
            Counter(str(v.get("error"))[:160] for _p, _o, _ts, v in dls if isinstance(v, dict))
        ),
        "status_tail": status_txt[-2500:],
        "doctor": doctor[-1500:],
        "models_settings": settings_txt[-1500:],
    }
    poller.stop.set()
    c.stop_all()
    logs = {n: (c.out / f"{n}.log").read_text(errors="replace") for n in c.workers}
    res["log_lines"] = {
        n: [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln][:15]
        for n, text in logs.items()
    }
    return res


def pausefail(args: argparse.Namespace) -> dict[str, Any]:
    """``models pause`` of a model, kill -9 of its owner while paused, ``resume`` answered by the new owner (started
    with an empty state directory): the labels held during the pause must live in the changelog state and be
    learned on resume, each once."""
    tag = int(time.time()) % 100000
    d = Deployment(args, f"s39d{tag}.")
    d.next_port = args.metrics_base + 120
    d.cli("topics", "create")
    for n, role in (("score1", "score"), ("join", "join"), ("train1", "train"), ("train2", "train")):
        d.start(n, role)
    wait_up(d, list(d.workers), 180)
    poller = Poller(d, 1.0)
    poller.start()
    streams = {m: {"make": make_bin, "start": 0} for m in ("p", "q")}
    feed = Feed(
        d.env["DRIFTLINE_KAFKA_BOOTSTRAP"], d.prefix, streams, args.rate, args.seconds, 2.0, int(time.time())
    )
    feed.start()
    t0 = time.time()
    steps: list[tuple[float, str]] = []

    def at(frac: float) -> None:
        time.sleep(max(0.0, t0 + frac * args.seconds - time.time()))

    at(0.3)
    rc, out = d.cli("--model", "p", "models", "pause", timeout=120)
    steps.append(
        (time.time() - t0, f"pause rc {rc}: {out.strip().splitlines()[-1][:160] if out.strip() else ''}")
    )
    at(0.5)
    owner = owner_map(d, tries=10).get("p", "")
    victim = worker_of(d, owner)
    if victim:
        d.workers[victim][0].send_signal(signal.SIGKILL)
    steps.append((time.time() - t0, f"kill -9 {victim} (owner of p: {owner})"))
    d.env["DRIFTLINE_STATE_DIR"] = tempfile.mkdtemp(prefix="scale39-empty-")
    d.start("train3", "train")
    at(0.75)
    _rc, show = d.cli("--model", "p", "models", "show", "--json", timeout=120)
    rc, out = d.cli("--model", "p", "models", "resume", timeout=180)
    steps.append(
        (time.time() - t0, f"resume rc {rc}: {out.strip().splitlines()[-1][:200] if out.strip() else ''}")
    )
    feed.join()
    wait_learned([(d, feed)], args.drain)
    res = {
        "prefix": d.prefix,
        "steps": [(round(t, 1), w) for t, w in steps],
        "labels_acked": dict(Counter(feed.acked_labels.values())),
        "n_learned_metrics": trainer_counts(d),
        "show_before_resume": show[-800:],
        "owners_end": owner_map(d, tries=3),
        "account": {k: v for k, v in account(d, feed, poller).items() if k != "propagation"},
    }
    poller.stop.set()
    d.stop_all()
    return res


def routing(args: argparse.Namespace) -> dict[str, Any]:
    """Two scorers of one deployment, one started with ``routing.feature=tenant``, the other without: which model
    answers an event with ``"tenant": "acme"``, and does anything say the scorers differ?"""
    tag = int(time.time()) % 100000
    d = Deployment(args, f"s39e{tag}.")
    d.next_port = args.metrics_base + 140
    d.cli("topics", "create")
    d.start("score1", "score")
    base_env = dict(d.env)
    d.env["DRIFTLINE__ROUTING__FEATURE"] = "tenant"
    d.start("score2", "score")
    d.env = base_env
    d.start("join", "join")
    d.start("train1", "train")
    wait_up(d, list(d.workers), 180)
    poller = Poller(d, 1.0)
    poller.start()
    feed = Feed(d.env["DRIFTLINE_KAFKA_BOOTSTRAP"], d.prefix, {"acme": {"make": make_acme, "start": 0,
                "explicit": False}}, args.rate, args.seconds, 2.0, int(time.time()))  # fmt: skip
    feed.start()
    feed.join()
    wait_learned([(d, feed)], 30)
    _rc, status_txt = d.cli("status", timeout=90)
    _rc, doctor = d.cli("doctor", timeout=90)
    preds = read_topic(d, "predictions", "Prediction")
    feats = read_topic(d, "features", "FeatureEvent")
    part = {v["id"]: p for p, _o, _ts, v in feats if isinstance(v, dict)}
    by_model = Counter(v["model"] for _p, _o, _ts, v in preds if isinstance(v, dict))
    by_part_model = Counter(
        (part.get(v["id"]), v["model"]) for _p, _o, _ts, v in preds if isinstance(v, dict)
    )
    res = {
        "prefix": d.prefix,
        "events_acked": len(feed.acked_events),
        "predictions_by_model": dict(by_model),
        "predictions_by_features_partition_and_model": {
            f"{p}:{m}": n for (p, m), n in sorted(by_part_model.items())
        },
        "n_learned_metrics": trainer_counts(d),
        "status_workers": [ln for ln in status_txt.splitlines() if "score" in ln or "DIFFERENT" in ln],
        "doctor_workers": [ln for ln in doctor.splitlines() if "workers" in ln or "routing" in ln],
    }
    poller.stop.set()
    d.stop_all()
    return res


def verdict(res: dict[str, Any]) -> list[tuple[str, bool, str]]:
    checks: list[tuple[str, bool, str]] = []
    for side in ("A", "B"):
        r = res[side]
        checks.append(
            (
                f"{side}: every acknowledged event has a prediction",
                r["missing_predictions"] == 0,
                f"{sum(r['events_acked'].values())} acked, {r['missing_predictions']} missing, "
                f"{r['duplicate_predictions']} duplicates, {r['deadletters']} dead letters",
            )
        )
        checks.append(
            (
                f"{side}: each event predicted by its own model",
                r["predicted_by_wrong_model"] == 0,
                f"{r['predicted_by_wrong_model']} by another model",
            )
        )
        live: dict[str, float] = {}
        for counts in r["n_learned_metrics"].values():
            for m, v in counts.items():
                live[m] = max(live.get(m, 0), v)
        current = {}
        for row in r["models_list"]:
            if row["version"] == r["releases"].get(row["model"], {}).get("last"):
                current[row["model"]] = row
        ok = all(
            live.get(m) == n and current.get(m, {}).get("n_learned") == n
            for m, n in r["labels_acked"].items()
        )
        checks.append(
            (
                f"{side}: n_learned = labels sent, per model (/metrics and models list)",
                ok,
                ", ".join(
                    f"{m}: sent {n}, /metrics {live.get(m)}, list {current.get(m, {}).get('n_learned')}"
                    for m, n in sorted(r["labels_acked"].items())
                ),
            )
        )
        rel = r["releases"]
        ok = all(x["strictly_increasing"] and not x["n_learned_drops"] for x in rel.values())
        checks.append(
            (
                f"{side}: versions strictly increasing, n_learned never drops",
                ok,
                ", ".join(f"{m}: {x['n']} releases {x['reasons']}" for m, x in sorted(rel.items())),
            )
        )
        served = r["served_metrics"]
        lagging = [
            (sc, m, v.get(m), x["last"])
            for sc, v in served.items()
            for m, x in rel.items()
            if v.get(m) != x["last"]
        ]
        pr = r["propagation"]
        checks.append(
            (
                f"{side}: every release reaches every scorer",
                not lagging and pr["n_missed"] == 0,
                f"{len(served)} live scorers serve each model's last version: {not lagging} {lagging[:3]}; "
                f"{pr['pairs']} (release, scorer) pairs, {pr['n_missed']} missed, seconds to serve "
                f"p50 {pr['p50_s'] and round(pr['p50_s'], 2)} p99 {pr['p99_s'] and round(pr['p99_s'], 2)} "
                f"max {pr['max_s'] and round(pr['max_s'], 2)} (scrape period 0.5-1 s)",
            )
        )
    a = res["A"]
    pids = a["live_pids"]
    members = {
        g: sorted(int(k.split("@")[0].rsplit("-", 1)[1]) for k in (v or {}))
        for g, v in (a.get("status_assignments") or {}).items()
    }
    want_score = sorted(p for n, p in pids.items() if n.startswith("score"))
    want_train = sorted(p for n, p in pids.items() if n.startswith("train"))
    got_score = next((v for g, v in members.items() if g.endswith("-score")), None)
    got_train = next((v for g, v in members.items() if g.endswith("trainers")), None)
    checks.append(
        (
            "A: `status --json` membership = the live workers",
            got_score == want_score and got_train == want_train,
            f"score group {got_score} (live {want_score}), trainers {got_train} (live {want_train})",
        )
    )
    victim_pid = res.get("victim_pid")
    ends = res.get("owners_end") or {}
    ok = victim_pid is not None and all(o and not o.endswith(f"-{victim_pid}") for o in ends.values())
    checks.append(
        (
            "A: the killed trainer's models went on elsewhere (empty state dir)",
            ok,
            f"before {res.get('owners_before')}; killed pid {victim_pid}; at the end {ends}",
        )
    )
    names = set(a["per_model_metric_names"])
    ok = {"driftline_n_learned", "driftline_served_model_version", "driftline_model_metric"} <= names
    checks.append(("A: per-model metrics carry `model`", ok, f"{len(names)} families with a model label"))
    control = res.get("control") or []
    checks.append(
        (
            "A: `models pause`/`resume` of `multi` answered by its owner after the failovers",
            len(control) == 2 and all(rc == 0 for _v, rc, _o in control),
            "; ".join(f"{v}: rc {rc} {o!r}" for v, rc, o in control),
        )
    )
    late = a["releases"].get("late", {})
    checks.append(
        (
            "A: a model added mid-stream (`late`) is served and learned",
            late.get("n", 0) > 1 and a["events_acked"].get("late", 0) > 0,
            f"{late.get('n')} releases",
        )
    )
    return checks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["multi", "mixed", "pausefail", "routing"])
    ap.add_argument("--models", type=int, default=12, help="mixed: how many models")
    ap.add_argument("--seconds", type=float, default=75)
    ap.add_argument("--rate", type=float, default=40, help="events/s per model of prefix A (B: half)")
    ap.add_argument("--drain", type=float, default=300)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--kafka-port", type=int, default=15092)
    ap.add_argument("--redis-port", type=int, default=15379)
    ap.add_argument("--state-dir", default="/tmp/scale39-state")
    ap.add_argument("--metrics-base", type=int, default=15500)
    ap.add_argument("--out", default="/tmp/scale39-runs")
    args = ap.parse_args()
    if args.what in ("mixed", "pausefail", "routing"):
        run = {"mixed": mixed, "pausefail": pausefail, "routing": routing}[args.what]
        print("SCALE39 " + json.dumps(run(args), default=str), flush=True)
        return
    res = multi(args)
    print("SCALE39 " + json.dumps(res, default=str), flush=True)
    for name, ok, detail in verdict(res):
        print(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |", flush=True)


if __name__ == "__main__":
    _ = os
    main()
