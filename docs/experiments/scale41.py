"""Issues 15 and 17 driven again from outside where scale35, scale39, broker35, brk39 and fault40 did not look
(helper scale41, session 41).

Everything the system does is driven through the ``driftline`` command line in separate processes (topics, workers,
status, models list); the input is scale39's confluent-kafka producer writing JSON records with a fresh seed; the
accounting reads the topics with a read_committed consumer and scrapes every worker's /metrics (scale35/scale39's
harness, imported).

    PYTHONPATH=. python docs/experiments/scale41.py groups --seconds 90 --rate 4 --models 24 \
        --kafka-port 16092 --redis-port 16379 --state-dir /tmp/scale41-state

``groups``: before any worker, the user creates ``features`` and ``labels`` with 12 partitions (AdminClient); the
by-model topics get 12 too (``kafka.training_partitions``); ``driftline topics create`` makes the rest. Three
scorers, a joiner, two trainers; ``--models`` models (explicit ``model`` field), ``--rate`` events/s each, each
label ~2 s after its event. At 20 % scorer 2 is frozen (SIGSTOP) for ``--freeze`` s (longer than the 10 s session
timeout), then continued; at 55 % trainer 1 is killed -9; at 62 % trainer 3 starts with an empty state directory.
Meanwhile every ~4 s the consumer lag that each worker's /metrics says (``driftline_consumer_lag``) is compared
with the truth computed here (the group's committed offset from ``Consumer.committed`` and the partition's end from
``get_watermark_offsets``, as ``kafka-consumer-groups`` does), and ``driftline status --json`` membership is
compared with the workers alive and not frozen. Prints one ``SCALE41 {json}`` line and a table of checks.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale35 import PY, TREE, Deployment, Poller, log, read_topic, scrape
from scale39 import Feed, _json_rows, _x, account, wait_up


class Workers(Deployment):
    """scale35's deployment, each worker in a session of its own: a SIGSTOPped worker in the script's process group
    is killed by the kernel's SIGHUP when that group becomes orphaned (the shell that started the script exits),
    which is what ended scorer 2 in this script's first run, not driftline."""

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
            start_new_session=True,
        )
        self.workers[name] = (p, port, role)
        log(f"started {name} ({role}) pid {p.pid} metrics :{port}")
        return p.pid


def make_model(k: int) -> Any:
    def make(rng: Any, frac: float) -> tuple[dict[str, Any], Any]:
        f = _x(rng, 3)
        s = f["x0"] * (1 + k % 3) - 0.5 * f["x1"] + 0.2 * f["x2"]
        flip = k % 4 == 0 and frac >= 0.5  # every 4th model's concept flips halfway
        return f, bool((s > 0) != flip)

    return make


def group_ids(dep: Deployment) -> list[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": dep.env["DRIFTLINE_KAFKA_BOOTSTRAP"]})
    res = admin.list_consumer_groups(request_timeout=10).result()
    return sorted(g.group_id for g in res.valid if g.group_id.startswith(f"driftline-{dep.prefix}"))


class LagTruth(threading.Thread):
    """Every ``period`` s: each worker group's lag per partition from the broker (committed offset and end), next to
    what the live workers' /metrics say at the same moment."""

    def __init__(self, dep: Deployment, topics: dict[str, list[str]], period: float = 4.0) -> None:
        super().__init__(daemon=True)
        self.dep, self.topics, self.period = dep, topics, period
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.frozen: set[str] = set()  # worker names whose /metrics cannot answer (SIGSTOPped)

    def truth(self) -> dict[str, dict[str, int]]:
        from confluent_kafka import Consumer, TopicPartition

        out: dict[str, dict[str, int]] = {}
        for gid in group_ids(self.dep):
            kind = "trainers" if gid.endswith("trainers") else gid.rsplit("-", 1)[-1]
            topics = self.topics.get(kind)
            if not topics:
                continue
            c = Consumer(
                {
                    "bootstrap.servers": self.dep.env["DRIFTLINE_KAFKA_BOOTSTRAP"],
                    "group.id": gid,
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                }
            )
            try:
                tps = []
                for t in topics:
                    md = c.list_topics(self.dep.prefix + t, timeout=10).topics[self.dep.prefix + t]
                    tps += [TopicPartition(self.dep.prefix + t, p) for p in md.partitions]
                lags = {}
                for tp in c.committed(tps, timeout=10):
                    _low, high = c.get_watermark_offsets(tp, timeout=10, cached=False)
                    if tp.offset >= 0:  # as kafka-consumer-groups: partitions the group has committed
                        lags[f"{tp.topic}:{tp.partition}"] = max(0, high - tp.offset)
                out[gid] = lags
            finally:
                c.close()
        return out

    def metrics(self) -> dict[str, dict[str, tuple[str, float]]]:
        out: dict[str, dict[str, tuple[str, float]]] = defaultdict(dict)
        for name, (p, port, _role) in list(self.dep.workers.items()):
            if p.poll() is not None or name in self.frozen:
                continue
            ms = scrape(port) or {}
            for lab, v in ms.get("driftline_consumer_lag", []):
                key = f"{lab.get('topic')}:{lab.get('partition')}"
                out[lab.get("group", "?")][key] = (name, v)
        return out

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.time()
            try:
                metric = self.metrics()
                truth = self.truth()
                metric2 = self.metrics()  # the truth's own round trips take time: bracket it
            except Exception as exc:  # a sample lost, not the run
                log(f"lag sample failed: {exc}")
                self.stop.wait(self.period)
                continue
            self.samples.append({"t": t, "truth": truth, "metric": metric, "metric_after": metric2})
            self.stop.wait(self.period)


class StatusSampler(threading.Thread):
    """``driftline status --json`` every ``period`` s: each group's members, with the workers alive and not frozen
    at the call's start and end."""

    def __init__(self, dep: Deployment, frozen: set[str], period: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.dep, self.frozen, self.period = dep, frozen, period
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def live(self) -> dict[str, int]:
        return {
            n: p.pid
            for n, (p, _port, _r) in self.dep.workers.items()
            if p.poll() is None and n not in self.frozen
        }

    def run(self) -> None:
        while not self.stop.is_set():
            before, t0 = self.live(), time.time()
            rc, out = self.dep.cli("status", "--json", timeout=90)
            after, t1 = self.live(), time.time()
            try:
                st = json.loads(out[out.index("{") :])
                groups = {
                    g["group"]: {"state": g.get("state"), "members": g.get("members"), "lag": g.get("lag")}
                    for g in st.get("workers", [])
                    if isinstance(g, dict) and "group" in g
                }
            except ValueError:
                groups = {"unparsed": out[-300:]}
            self.samples.append(
                {"t0": t0, "t1": t1, "rc": rc, "live_before": before, "live_after": after, "groups": groups}
            )
            self.stop.wait(self.period)


def member_pids(members: list[str] | None) -> set[int]:
    out = set()
    for m in members or []:
        head = str(m).split("@")[0]
        tail = head.rsplit("-", 1)[-1]
        if tail.isdigit():
            out.add(int(tail))
    return out


def create_user_topics(dep: Deployment, partitions: int) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": dep.env["DRIFTLINE_KAFKA_BOOTSTRAP"]})
    fs = admin.create_topics([NewTopic(dep.prefix + t, partitions, 1) for t in ("features", "labels")])
    for _t, f in fs.items():
        f.result()
    return f"{', '.join(fs)} created with {partitions} partitions"


def groups_run(args: argparse.Namespace) -> dict[str, Any]:
    tag = int(time.time()) % 100000
    dep = Deployment(
        args, f"s41g{tag}.", {"DRIFTLINE__KAFKA__TRAINING_PARTITIONS": str(args.train_partitions)}
    )
    res: dict[str, Any] = {"prefix": dep.prefix}
    res["user_topics"] = create_user_topics(dep, args.user_partitions)
    rc, out = dep.cli("topics", "create")
    res["topics_create"] = (rc, out.strip()[-600:])
    rc, out = dep.cli("topics", "describe")
    res["topics_describe"] = (rc, out.strip()[-1500:])
    for n in ("score1", "score2", "score3"):
        dep.start(n, "score")
    dep.start("join", "join")
    dep.start("train1", "train")
    dep.start("train2", "train")
    wait_up(dep, list(dep.workers), 240)
    poller = Poller(dep, 1.0)
    poller.start()
    lag = LagTruth(dep, {"score": ["features"], "join": ["labels"], "trainers": ["training", "control"]})
    lag.start()
    status = StatusSampler(dep, lag.frozen)
    status.start()
    names = [f"m{i:02d}" for i in range(args.models)]
    feed = Feed(
        dep.env["DRIFTLINE_KAFKA_BOOTSTRAP"],
        dep.prefix,
        {n: {"make": make_model(i), "start": 0} for i, n in enumerate(names)},
        args.rate,
        args.seconds,
        2.0,
        int(time.time()),
    )
    feed.start()
    t0 = res["t0"] = time.time()
    faults: list[tuple[float, str]] = []

    def at(frac: float) -> None:
        time.sleep(max(0.0, t0 + frac * args.seconds - time.time()))

    frozen_pid = dep.workers["score2"][0].pid
    at(0.2)
    scored_before_freeze = (poller_latest(poller, "score2") or {}).get("scored", 0.0)
    lag.frozen.add("score2")
    dep.workers["score2"][0].send_signal(signal.SIGSTOP)
    faults.append((time.time() - t0, "SIGSTOP score2"))
    time.sleep(args.freeze)
    dep.workers["score2"][0].send_signal(signal.SIGCONT)
    lag.frozen.discard("score2")
    t_cont = time.time()
    faults.append((t_cont - t0, "SIGCONT score2"))
    at(0.55)
    killed = dep.workers["train1"][0].pid
    dep.workers["train1"][0].send_signal(signal.SIGKILL)
    faults.append((time.time() - t0, f"kill -9 train1 (pid {killed})"))
    at(0.62)
    dep.env["DRIFTLINE_STATE_DIR"] = tempfile.mkdtemp(prefix="scale41-empty-")
    dep.start("train3", "train")
    faults.append((time.time() - t0, "start train3 (empty state dir)"))
    feed.join()
    log(
        f"feed done: {len(feed.acked_events)} events, {len(feed.acked_labels)} labels acked, {feed.failed} failed"
    )
    wait_learned(dep, feed, args.drain)
    time.sleep(20)  # two lag refreshes and the session timeout: the killed trainer has left its group
    rest = {"metric": lag.metrics(), "truth": lag.truth()}
    lag.stop.set()
    status.stop.set()
    poller.stop.set()
    _rc, status_end = dep.cli("status", "--json", timeout=90)
    _rc, models_list = dep.cli("models", "list", "--json", timeout=120)
    res.update(account(dep, feed, poller))
    res["faults"] = [(round(t, 1), w) for t, w in faults]
    res["frozen_pid"] = frozen_pid
    res["scored_score2"] = {
        "before_freeze": scored_before_freeze,
        "end": (poller_latest(poller, "score2") or {}).get("scored"),
        "first_rise_after_cont_s": first_rise(poller, "score2", t_cont),
    }
    preds = read_topic(dep, "predictions", "Prediction")
    feats = read_topic(dep, "features", "FeatureEvent")
    part_of = {v["id"]: p for p, _o, _ts, v in feats if isinstance(v, dict)}
    predicted = {v["id"] for _p, _o, _ts, v in preds if isinstance(v, dict)}
    res["features_partitions_predicted"] = sorted({part_of[i] for i in predicted if i in part_of})
    res["features_partitions_written"] = sorted(set(part_of.values()))
    rows = [r for r in _json_rows(models_list) if isinstance(r, dict) and r.get("current")]
    res["models_list"] = {
        r["model"]: {
            k: r.get(k) for k in ("version", "n_learned", "trainer_n_learned", "owner", "partition", "lag")
        }
        for r in rows
    }
    res["labels_by_model"] = dict(Counter(feed.acked_labels.values()))
    res["n_learned_metrics"] = trainer_counts(dep)
    try:
        st = json.loads(status_end[status_end.index("{") :])
        res["status_end"] = {
            g["group"]: {
                "members": g.get("members"),
                "assignments": g.get("assignments"),
                "lag": g.get("lag"),
            }
            for g in st.get("workers", [])
            if isinstance(g, dict) and "group" in g
        }
    except ValueError:
        res["status_end"] = {"unparsed": status_end[-500:]}
    res["live_end"] = {n: p.pid for n, (p, _port, _r) in dep.workers.items() if p.poll() is None}
    res["lag_samples"] = lag.samples
    res["lag_rest"] = rest
    res["status_samples"] = status.samples
    res["exit_codes"] = {n: p.poll() for n, (p, _port, _r) in dep.workers.items()}
    dep.stop_all()
    (dep.out / "result.json").write_text(json.dumps(res, default=str, indent=1))
    return res


def poller_latest(poller: Poller, name: str) -> dict[str, Any] | None:
    for s in reversed(poller.samples):
        if s["name"] == name:
            return s
    return None


def first_rise(poller: Poller, name: str, since: float) -> float | None:
    before = None
    for s in poller.samples:
        if s["name"] != name:
            continue
        if s["t"] < since:
            before = s["scored"]
        elif before is not None and s["scored"] > before:
            return round(s["t"] - since, 1)
    return None


def trainer_counts(dep: Deployment) -> dict[str, dict[str, float]]:
    out = {}
    for name, (p, port, role) in dep.workers.items():
        if role == "train" and p.poll() is None:
            ms = scrape(port) or {}
            out[name] = {lab.get("model", "?"): v for lab, v in ms.get("driftline_n_learned", [])}
    return out


def wait_learned(dep: Deployment, feed: Feed, timeout: float) -> None:
    deadline = time.time() + timeout
    want = Counter(feed.acked_labels.values())
    while time.time() < deadline:
        have: dict[str, float] = {}
        for counts in trainer_counts(dep).values():
            for m, v in counts.items():
                have[m] = max(have.get(m, 0), v)
        if all(have.get(m, 0) >= n for m, n in want.items()):
            return
        time.sleep(3)
    log("wait_learned: timed out")


def verdict(res: dict[str, Any]) -> list[tuple[str, bool, str]]:
    checks: list[tuple[str, bool, str]] = []
    written, predicted = res["features_partitions_written"], res["features_partitions_predicted"]
    checks.append(
        (
            "a user-created 12-partition `features`: every partition served",
            written == predicted and len(written) == 12,
            f"written {written}, predicted {predicted}",
        )
    )
    checks.append(
        (
            "every acknowledged event predicted, by its own model",
            res["missing_predictions"] == 0 and res["predicted_by_wrong_model"] == 0,
            f"{sum(res['events_acked'].values())} acked, {res['missing_predictions']} missing, "
            f"{res['predicted_by_wrong_model']} by another model, {res['duplicate_predictions']} duplicates, "
            f"{res['deadletters']} dead letters",
        )
    )
    sc = res["scored_score2"]
    checks.append(
        ("the frozen scorer scores again after SIGCONT", sc["first_rise_after_cont_s"] is not None, f"{sc}")
    )
    sg = {g: v for g, v in (res.get("status_end") or {}).items() if g.endswith("-score")}
    members = set().union(*(member_pids(v.get("members")) for v in sg.values())) if sg else set()
    checks.append(
        (
            "the frozen scorer is a member again at the end",
            res["frozen_pid"] in members,
            f"score group members {sorted(members)}, frozen pid {res['frozen_pid']}",
        )
    )
    bad = {}
    for m, n in res["labels_by_model"].items():
        got = max((c.get(m, 0) for c in res["n_learned_metrics"].values()), default=0)
        row = res["models_list"].get(m, {})
        if got != n or row.get("trainer_n_learned") not in (n, None):
            bad[m] = (n, got, row.get("trainer_n_learned"))
    checks.append(
        (
            "n_learned = labels sent, every model (trainer /metrics and `models list`)",
            not bad,
            f"{len(res['labels_by_model'])} models; differing: {bad}",
        )
    )
    checks.append(
        (
            "TrainingExamples: one per label",
            res["training_distinct"] == sum(res["labels_by_model"].values()),
            f"{res['training_examples']} records, {res['training_distinct']} distinct, "
            f"{sum(res['labels_by_model'].values())} labels",
        )
    )
    nonmono = [m for m, r in res["releases"].items() if not r["strictly_increasing"] or r["n_learned_drops"]]
    checks.append(
        (
            "versions strictly increasing, n_learned never drops",
            not nonmono,
            f"{sum(r['n'] for r in res['releases'].values())} releases; bad {nonmono}",
        )
    )
    # Lag at rest: truth and metric must both be 0 for every partition.
    rest = res["lag_rest"]
    wrong = []
    for gid, lags in rest["truth"].items():
        for tp, v in lags.items():
            mv = rest["metric"].get(gid, {}).get(tp)
            if v != 0 or (mv is not None and mv[1] != 0):
                wrong.append((gid, tp, v, mv))
    checks.append(("lag at rest: 0 by the broker and by /metrics", not wrong, f"{wrong[:6]}"))
    # Lag while streaming: the metric bracketed by two scrapes around the truth; an owned partition whose truth is
    # far beyond both scrapes (or whose series is missing while its truth grows) is a miss.
    diffs, misses = [], []
    for s in res["lag_samples"]:
        for gid, lags in s["truth"].items():
            for tp, v in lags.items():
                a, b = s["metric"].get(gid, {}).get(tp), s["metric_after"].get(gid, {}).get(tp)
                if a is None or b is None:
                    if v > 200:
                        misses.append((round(s["t"] - res.get("t0", s["t"]), 1), gid[-12:], tp, v))
                    continue
                lo, hi = min(a[1], b[1]), max(a[1], b[1])
                d = 0 if lo - 100 <= v <= hi + 100 else v - hi if v > hi else v - lo
                diffs.append(d)
    far = [d for d in diffs if d]
    checks.append(
        (
            "lag while streaming: /metrics agrees with the broker (within 100 of the scrapes around it)",
            not far,
            f"{len(diffs)} (sample, partition) pairs, {len(far)} off (worst {sorted(far, key=abs)[-3:]}); "
            f"{len(misses)} partitions with lag > 200 and no series: {misses[:4]}",
        )
    )
    # Membership: each status sample against the workers alive (and not frozen) across the call, after a grace of
    # 15 s around each fault (the session timeout).
    fault_ts = [t for t, _w in res["faults"]]
    wrong_members, skipped, settled = [], 0, False
    for s in res["status_samples"]:
        members_now = set()
        for g in s["groups"].values():
            if isinstance(g, dict):
                members_now |= member_pids(g.get("members"))
        if (
            not settled
        ):  # start-up: a worker is up (its /metrics) a few seconds before it has joined its group
            settled = members_now == set(s["live_before"].values())
            skipped += 1
            continue
        near = any(s["t0"] - 20 <= res["t0"] + t <= s["t1"] for t in fault_ts)
        if near or s["live_before"] != s["live_after"]:
            skipped += 1
            continue
        live = set(s["live_before"].values())
        got = set()
        for g in s["groups"].values():
            if isinstance(g, dict):
                got |= member_pids(g.get("members"))
        if got != live:
            wrong_members.append((round(s["t0"] - res["t0"], 1), sorted(live - got), sorted(got - live)))
    checks.append(
        (
            "`status --json` members = workers alive and not frozen (per sample)",
            not wrong_members,
            f"{len(res['status_samples'])} samples ({skipped} at start-up or within 20 s of a fault); "
            f"differing (t, missing, extra): {wrong_members[:8]}; faults at {fault_ts}",
        )
    )
    return checks


def stack_cli(dep: Deployment, args: argparse.Namespace, *argv: str) -> tuple[int, str]:
    flags = ["--kafka-port", str(args.kafka_port), "--controller-port", str(args.kafka_port + 1)]
    flags += ["--redis-port", str(args.redis_port), "--state-dir", args.state_dir, "--brokers", "3"]
    return dep.cli("stack", *argv, *flags, timeout=300)


def bigrel_run(args: argparse.Namespace) -> dict[str, Any]:
    """A model whose releases and trainer state are large (an adaptive random forest over 16 features) on the
    three-node cluster; the leader of ``models`` is killed -9 the moment a release shows on it read uncommitted (the
    release transaction open), and started again after 10 s."""
    import os

    from confluent_kafka.admin import AdminClient
    from fault40 import ReleaseWatch

    tag = int(time.time()) % 100000
    boot = ",".join(f"127.0.0.1:{args.kafka_port + 2 * i}" for i in range(3))
    cfg = Path(args.out) / f"bigrel{tag}.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("model:\n  learner: {name: adaptive_random_forest, params: {n_models: 10}}\n")
    dep = Workers(
        args,
        f"s41b{tag}.",
        {
            "DRIFTLINE_KAFKA_BOOTSTRAP": boot,
            "DRIFTLINE__KAFKA__REPLICATION_FACTOR": "3",
            "DRIFTLINE_CONFIG": str(cfg),
        },
    )
    res: dict[str, Any] = {"prefix": dep.prefix, "bootstrap": boot}
    res["topics_create"] = dep.cli("topics", "create")
    for n in ("score1", "score2"):
        dep.start(n, "score")
    dep.start("join", "join")
    dep.start("train1", "train")
    wait_up(dep, list(dep.workers), 240)
    poller = Poller(dep, 1.0)
    poller.start()

    def make(rng: Any, frac: float) -> tuple[dict[str, Any], Any]:
        f: dict[str, Any] = _x(rng, 16)
        f["colour"] = rng.choice(["red", "green", "blue", "grey"])
        s = f["x0"] + f["x1"] * f["x2"] - abs(f["x3"]) + (0.8 if f["colour"] == "red" else 0.0)
        return f, bool((s > 0) != (frac >= 0.5))

    lag = LagTruth(dep, {"trainers": ["training"]}, period=3.0)
    lag.start()
    listed: list[
        tuple[float, Any, Any, float]
    ] = []  # (t, `models list --json` lag of big, truth after it, t end)
    stop_listing = threading.Event()

    def list_lag() -> None:
        while not stop_listing.is_set():
            t = time.time()
            _rc, out = dep.cli("models", "list", "--json", timeout=90)
            rows = [r for r in _json_rows(out) if isinstance(r, dict) and r.get("current")]
            row = next((r for r in rows if r.get("model") == "big"), {})
            try:
                truth: Any = {g: v for g, v in lag.truth().items() if g.endswith("trainers")}
            except Exception as exc:
                truth = {"error": str(exc)}
            listed.append((t, row.get("lag"), truth, time.time()))
            stop_listing.wait(3.0)

    lister = threading.Thread(target=list_lag, daemon=True)
    lister.start()
    feed = Feed(
        boot, dep.prefix, {"big": {"make": make, "start": 0}}, args.rate, args.seconds, 2.0, int(time.time())
    )
    feed.start()
    t0 = res["t0"] = time.time()
    time.sleep(args.seconds * 0.4)
    # models: its leader, the moment a release shows; coordinator: the trainer's transaction coordinator, the moment
    # a changelog record shows (written last in a transaction, just before its commit)
    watched = "models" if args.victim == "models" else "changelog"
    watch = ReleaseWatch(boot, dep.prefix + watched)
    hit = watch.wait_release(60)
    killed = None
    if hit is not None:
        if args.victim == "models":
            md = AdminClient({"bootstrap.servers": boot}).list_topics(dep.prefix + "models", timeout=20)
            leader = md.topics[dep.prefix + "models"].partitions[0].leader
        else:
            from types import SimpleNamespace

            from fault40 import coordinator_node

            run = SimpleNamespace(prefix=dep.prefix, state_dir=Path(args.state_dir))
            leader, _where = coordinator_node(run, boot)  # type: ignore[arg-type]
        _rc, out = stack_cli(dep, args, "status", "--json")
        try:
            nodes = json.loads(out[out.index("{") :]).get("kafka_nodes") or []
        except ValueError:
            nodes = []
        pids = {int(n["name"].split("-")[1]): int(n["pid"]) for n in nodes if n.get("pid")}
        if leader in pids:
            os.kill(pids[leader], signal.SIGKILL)
            killed = (round(time.time() - t0, 1), leader, pids[leader], hit)
            log(f"killed node {leader} (pid {pids[leader]}), {args.victim}; {watched} record at {hit} open")
    watch.close()
    res["killed"] = killed
    time.sleep(10)
    rc, out = stack_cli(dep, args, "up")
    res["stack_up"] = (rc, round(time.time() - t0, 1), out.strip()[-300:])
    feed.join()
    log(
        f"feed done: {len(feed.acked_events)} events, {len(feed.acked_labels)} labels acked, {feed.failed} failed"
    )
    wait_learned(dep, feed, args.drain)
    time.sleep(10)
    poller.stop.set()
    lag.stop.set()
    stop_listing.set()
    res["lag_samples"] = lag.samples
    res["models_list_lag"] = listed
    res.update(account(dep, feed, poller))
    rels = read_topic(dep, "models", None)
    chl = read_topic(dep, "changelog", None)
    res["release_bytes_max"] = max((len(v or b"") for _p, _o, _ts, v in rels), default=0)
    res["changelog_bytes_max"] = max((len(v or b"") for _p, _o, _ts, v in chl), default=0)
    _rc, models_list = dep.cli("models", "list", "--json", timeout=120)
    rows = [r for r in _json_rows(models_list) if isinstance(r, dict)]
    res["unverified"] = [(r.get("model"), r.get("version")) for r in rows if r.get("verified") is False]
    res["current"] = {
        r["model"]: (r.get("version"), r.get("trainer_n_learned")) for r in rows if r.get("current")
    }
    res["labels_by_model"] = dict(Counter(feed.acked_labels.values()))
    res["n_learned_metrics"] = trainer_counts(dep)
    res["served_end"] = {
        n: (poller_latest(poller, n) or {}).get("served")
        for n, (_p, _port, r) in dep.workers.items()
        if r == "score"
    }
    rc, out = dep.cli("audit", "verify")
    res["audit_verify"] = (rc, out.strip()[-200:])
    res["log_lines"] = [
        f"{f.name}: {line[:240]}"
        for f in sorted(dep.out.glob("*.log"))
        for line in f.read_text(errors="replace").splitlines()
        if any(k in line for k in ("fenced", "past the committed", "cannot rewind", "Traceback", "ERROR"))
    ][:40]
    res["exit_codes"] = {n: p.poll() for n, (p, _port, _r) in dep.workers.items()}
    dep.stop_all()
    (dep.out / "result.json").write_text(json.dumps(res, default=str, indent=1))
    return res


def bigrel_verdict(res: dict[str, Any]) -> list[tuple[str, bool, str]]:
    labels = sum(res["labels_by_model"].values())
    learned = max((c.get("big", 0) for c in res["n_learned_metrics"].values()), default=0)
    rel = res["releases"].get("big", {})
    last = rel.get("last")
    served = {n: (v or {}).get("big") for n, v in res["served_end"].items()}
    return [
        (
            "the leader of `models` killed -9 inside a release transaction",
            res["killed"] is not None,
            f"{res['killed']}",
        ),
        (
            "every acknowledged event predicted",
            res["missing_predictions"] == 0,
            f"{sum(res['events_acked'].values())} acked, {res['missing_predictions']} missing, "
            f"{res['duplicate_predictions']} duplicates, {res['deadletters']} dead letters",
        ),
        (
            "n_learned = labels sent",
            learned == labels,
            f"{learned} of {labels}; models list {res['current']}",
        ),
        ("one TrainingExample per label", res["training_distinct"] == labels, f"{res['training_distinct']}"),
        (
            "versions strictly increasing, all verified",
            bool(rel.get("strictly_increasing")) and not rel.get("n_learned_drops") and not res["unverified"],
            f"{rel.get('n')} releases, last v{last}, unverified {res['unverified']}",
        ),
        ("every scorer serves the last release", all(v == last for v in served.values()), f"{served}"),
        (
            "large records",
            True,
            f"release up to {res['release_bytes_max']:,} bytes, changelog state up to {res['changelog_bytes_max']:,}",
        ),
        ("`audit verify` exit 0", res["audit_verify"][0] == 0, f"{res['audit_verify']}"),
    ]


def bigrel_lag_rows(res: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """`models list --json`'s lag of ``big`` and the trainer's /metrics lag against the broker's, while the trainer
    is behind (the labels waiting on its partition)."""
    if "models_list_lag" not in res:
        return []
    pairs = []
    for t, listed, truth, t_end in res["models_list_lag"]:
        lags = (
            [v for g in truth.values() if isinstance(g, dict) for v in g.values()]
            if isinstance(truth, dict)
            else []
        )
        if listed is None or not lags:
            continue
        pairs.append((round(t - res["t0"], 1), listed, max(lags), round(t_end - t, 1)))
    # a listing takes seconds; labels arrive at --rate per second meanwhile, and the trainer takes them in batches
    off = [p for p in pairs if abs(p[1] - p[2]) > 40 * (p[3] + 1) + 100]
    diffs, far = 0, []
    for s in res.get("lag_samples", []):
        for gid, lags in s["truth"].items():
            for tp, v in lags.items():
                a, b = s["metric"].get(gid, {}).get(tp), s["metric_after"].get(gid, {}).get(tp)
                if a is None or b is None:
                    continue
                diffs += 1
                if not min(a[1], b[1]) - 100 <= v <= max(a[1], b[1]) + 100:
                    far.append((round(s["t"] - res["t0"], 1), tp, v, a[1], b[1]))
    most = max((p[2] for p in pairs), default=0)
    return [
        (
            "`models list --json` lag of the model agrees with the broker's",
            bool(pairs) and not off,
            f"{len(pairs)} listings, largest truth lag {most}; off: {off[:5]}; (t, listed, truth, listing s): "
            f"{pairs[:: max(1, len(pairs) // 6)]}",
        ),
        (
            "the trainer's /metrics lag agrees with the broker's",
            diffs > 0 and not far,
            f"{diffs} (sample, partition) pairs; off (t, partition, truth, scrape before, after): {far[:5]}",
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["groups", "bigrel"])
    ap.add_argument("--models", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--rate", type=float, default=4, help="events/s per model")
    ap.add_argument(
        "--victim", choices=["models", "coordinator"], default="models", help="bigrel: which node"
    )
    ap.add_argument("--freeze", type=float, default=25, help="seconds scorer 2 stays SIGSTOPped")
    ap.add_argument("--drain", type=float, default=240)
    ap.add_argument(
        "--partitions", type=int, default=4, help="kafka.partitions (what topics create would make)"
    )
    ap.add_argument(
        "--user-partitions", type=int, default=12, help="features and labels, created by the user"
    )
    ap.add_argument("--train-partitions", type=int, default=12, help="kafka.training_partitions")
    ap.add_argument("--kafka-port", type=int, default=16092)
    ap.add_argument("--redis-port", type=int, default=16379)
    ap.add_argument("--state-dir", default="/tmp/scale41-state")
    ap.add_argument("--metrics-base", type=int, default=16500)
    ap.add_argument("--out", default="/tmp/scale41-runs")
    args = ap.parse_args()
    res = groups_run(args) if args.what == "groups" else bigrel_run(args)
    slim = {k: v for k, v in res.items() if k not in ("lag_samples", "status_samples")}
    print("SCALE41 " + json.dumps(slim, default=str), flush=True)
    rows = verdict(res) if args.what == "groups" else bigrel_verdict(res) + bigrel_lag_rows(res)
    for name, ok, detail in rows:
        print(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |", flush=True)


if __name__ == "__main__":
    main()
