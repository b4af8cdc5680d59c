"""Session 39 (helper new39): the first hour and the operator's day, from outside, on a stream nobody has seen.

Drives driftline only through its contract: its own producer and consumer (confluent-kafka and fastavro, the
`.avsc` files, the CRC-64-AVRO fingerprint computed here from the Avro spec), the command line, and /metrics.

- A: a 3-class stream with string labels, string features, missing values and a feature that appears half way,
  published half as JSON and half as Avro single-object encoding (features and labels); every event predicted once,
  every label learned, nothing dead-lettered; predictions decoded here without driftline.
- B: every live control command with valid and invalid values (wrong types, out of range, unknown model, unknown
  setting, a setting that is not live, malformed KEY=VALUE): refused before sending (nothing on `control`) and
  naming what is wrong, or applied and answered.
- C: pause/resume under load: records counted end to end.
- D: trouble: Redis frozen (SIGSTOP) for 20 s while events flow: status, doctor and /metrics during it, and nothing
  lost after; a score worker killed (SIGKILL): status names it, a new scorer takes over, nothing lost.

    DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:17092 DRIFTLINE_REDIS_URL=redis://127.0.0.1:17379/0 \\
        python docs/experiments/new39.py --redis-pid PID [--out results.json] [--skip-redis]

`--redis-pid` is the pid of the Redis server of *your own* stack (`driftline stack status`); it is frozen for 20 s
with SIGSTOP and resumed with SIGCONT. A fresh topic prefix per run, removed at the end (`--keep` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from outside36 import (
    RESULTS,
    ROOT,
    Env,
    Stack,
    metric,
    print_table,
    record,
    wait_for,
)

# ---------------------------------------------------------------------------------------------------------------
# the wire format from the Avro spec, no driftline import

_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def crc64_avro(data: bytes) -> int:
    fp = _EMPTY
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp


def load_schemas() -> dict[bytes, tuple[str, Any]]:
    """fingerprint (8 bytes, little-endian as in the header) -> (record name, parsed schema)."""
    from fastavro import parse_schema
    from fastavro.schema import to_parsing_canonical_form

    out = {}
    for path in sorted((ROOT / "schemas").glob("*.avsc")):
        parsed = parse_schema(json.loads(path.read_text()))
        fp = crc64_avro(to_parsing_canonical_form(parsed).encode())
        out[struct.pack("<Q", fp)] = (path.stem, parsed)
    return out


SCHEMAS: dict[bytes, tuple[str, Any]] = {}


def avro_encode(name: str, record_: dict[str, Any]) -> bytes:
    import io

    from fastavro import schemaless_writer

    fp, parsed = next((fp, s) for fp, (n, s) in SCHEMAS.items() if n == name)
    buf = io.BytesIO()
    schemaless_writer(buf, parsed, record_)
    return b"\xc3\x01" + fp + buf.getvalue()


def avro_decode(value: bytes) -> tuple[str, dict[str, Any]]:
    import io

    from fastavro import schemaless_reader

    if value[:2] != b"\xc3\x01":
        raise ValueError(f"not single-object encoding: {value[:2]!r}")
    name, parsed = SCHEMAS[value[2:10]]
    return name, schemaless_reader(io.BytesIO(value[10:]), parsed)  # type: ignore[call-arg]


def read_topic(bootstrap: str, topic: str, timeout: float = 20) -> list[tuple[bytes | None, bytes]]:
    """Every record of a topic, from the beginning, with a consumer of our own (no group commits)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"n39-reader-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    md = c.list_topics(topic, timeout=10).topics[topic]
    ends = {}
    tps = []
    for p in md.partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = hi
        if hi > lo:
            tps.append(TopicPartition(topic, p, lo))
    out: list[tuple[bytes | None, bytes]] = []
    if not tps:
        c.close()
        return out
    c.assign(tps)
    done: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(tps) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append((m.key(), m.value()))
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    c.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# the stream: 3 classes, string features, missing values, a feature that appears half way


def gen_stream(n: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        color = rng.choice(["red", "green", "blue", None])  # None: missing (null)
        size = None if rng.random() < 0.1 else round(rng.uniform(0, 10), 3)
        shape = rng.choice(["circle", "square"])
        feats: dict[str, Any] = {"color": color, "size": size, "shape": shape}
        if rng.random() < 0.1:
            del feats["shape"]  # absent, not null
        weight = round(rng.uniform(0, 1), 3)
        if i >= n // 2:
            feats["weight"] = weight  # appears half way
        s = size if size is not None else 5.0
        score = s / 10 + (0.3 if color == "red" else 0) + (0.4 * weight if i >= n // 2 else 0)
        label = "low" if score < 0.45 else ("mid" if score < 0.8 else "high")
        rows.append({"id": f"{prefix}{i}", "features": feats, "label": label})
    return rows


def publish(
    bootstrap: str, topics: dict[str, str], rows: list[dict[str, Any]], delay: int, rate: float
) -> None:
    """Each event, then its label `delay` events later; even events as JSON, odd ones as Avro (labels alike)."""
    from confluent_kafka import Producer

    prod = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    now = int(time.time() * 1000)

    def label(j: int) -> None:
        r = rows[j]
        rec = {"id": r["id"], "ts": now + j, "label": r["label"]}
        value = json.dumps(rec).encode() if j % 2 == 0 else avro_encode("Label", rec)
        prod.produce(topics["labels"], key=r["id"].encode(), value=value)

    for i, r in enumerate(rows):
        ev = {"id": r["id"], "ts": now + i, "key": f"user{i % 7}", "features": r["features"], "model": None}
        value = json.dumps(ev).encode() if i % 2 == 0 else avro_encode("FeatureEvent", ev)
        prod.produce(topics["features"], key=ev["key"].encode(), value=value)
        if i >= delay:
            label(i - delay)
        prod.poll(0)
        if rate:
            time.sleep(1 / rate)
    for j in range(max(0, len(rows) - delay), len(rows)):
        label(j)
    left = prod.flush(30)
    if left:
        raise RuntimeError(f"{left} records not acknowledged")


# ---------------------------------------------------------------------------------------------------------------


def main() -> int:
    global SCHEMAS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--events", type=int, default=1200)
    ap.add_argument("--redis-pid", type=int, help="pid of your own stack's Redis (frozen 20 s)")
    ap.add_argument("--skip-redis", action="store_true")
    args = ap.parse_args()
    bootstrap = os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP")
    if not bootstrap or not os.environ.get("DRIFTLINE_REDIS_URL"):
        print("set DRIFTLINE_KAFKA_BOOTSTRAP and DRIFTLINE_REDIS_URL to your own stack", file=sys.stderr)
        return 2
    SCHEMAS = load_schemas()
    run_id = uuid.uuid4().hex[:8]
    prefix = f"n39-{run_id}."
    work = Path(tempfile.mkdtemp(prefix=f"new39-{run_id}-"))
    cfg = work / "cfg.yaml"
    cfg.write_text("model:\n  release_every: 25\n")  # the default learner (auto): a newcomer's 3-class stream
    env = Env(prefix, work / "state", cfg, secrets.token_hex(32))
    stack = Stack(env, work)
    print(f"prefix {prefix}  work {work}  bootstrap {bootstrap}", flush=True)
    try:
        return scenario(env, stack, work, bootstrap, args, prefix)
    finally:
        stack.stop()
        if not args.keep:
            p = env.run("cleanup", "--prefix", prefix, "--json", timeout=180)
            print(f"cleanup --prefix {prefix}: exit {p.returncode}", flush=True)
            shutil.rmtree(work, ignore_errors=True)
        print_table()
        if args.out:
            Path(args.out).write_text(json.dumps(RESULTS, indent=1))


def scenario(
    env: Env, stack: Stack, work: Path, bootstrap: str, args: argparse.Namespace, prefix: str
) -> int:
    topics = {
        t: f"{prefix}{t}" for t in ("features", "labels", "predictions", "training", "control", "deadletter")
    }
    p = env.run("topics", "create", "--json")
    record("A0", "topics create on a fresh prefix", p.returncode == 0, p.stderr[-200:])
    for role in ("score", "join", "train"):
        stack.start(role)

    def predictions() -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for _, value in read_topic(bootstrap, topics["predictions"]):
            name, rec = avro_decode(value)
            assert name == "Prediction", name
            out.setdefault(rec["id"], []).append(rec)
        return out

    def count(topic: str) -> int:
        return len(read_topic(bootstrap, topic))

    def learned() -> int:
        s = env.json("models", "show", "--json")
        return int(s.get("labels_learned", 0))

    # ---- A: the stream of our own
    rows = gen_stream(args.events, 39, f"{prefix}e")
    t0 = time.monotonic()
    publish(bootstrap, topics, rows, delay=50, rate=0)
    record(
        "A1",
        f"{len(rows)} events + labels published (half JSON, half Avro)",
        True,
        f"{time.monotonic() - t0:.1f} s",
    )
    got = wait_for(lambda: len(predictions()) >= len(rows), 240, 3)
    preds = predictions()
    dupes = [k for k, v in preds.items() if len(v) > 1]
    record(
        "A2",
        "every event predicted once (own Avro consumer)",
        len(preds) == len(rows) and not dupes,
        f"{len(preds)} ids, {len(dupes)} with >1 prediction, waited ok={bool(got)}",
    )
    wait_for(lambda: learned() >= len(rows), 240, 3)
    n = learned()
    record("A3", "every label learned (models show labels_learned)", n == len(rows), f"labels_learned={n}")
    dl = read_topic(bootstrap, topics["deadletter"])
    record(
        "A4", "nothing dead-lettered", not dl, "; ".join(avro_decode(v)[1]["error"][:120] for _, v in dl[:3])
    )
    last = [v[-1] for v in preds.values()]
    late = [
        p
        for p in last
        if p["id"].endswith(tuple(str(i) for i in range(10)))
        and int(p["id"].rsplit("e", 1)[1]) >= len(rows) // 2
    ]
    has_weight = sum("weight" in (p.get("features") or {}) for p in late)
    record(
        "A6",
        "a feature that appears half way is carried (Prediction.features)",
        has_weight == len(late),
        f"{has_weight}/{len(late)} late predictions carry 'weight'",
    )
    truth = {r["id"]: r["label"] for r in rows}
    majority = max(sum(r["label"] == c for r in rows) for c in ("low", "mid", "high")) / len(rows)

    # ---- B: live control, valid and invalid
    def ctl_count() -> int:
        return count(topics["control"])

    before = ctl_count()
    bad = [
        ("set", "release_every=abc"),
        ("set", "release_every=0"),
        ("set", "release_every=1.5"),
        ("set", "release_every=-5"),
        ("set", "release_every=99999999999999999999"),
        ("set", "guard.alpha=-1"),
        ("set", "guard.alpha=nan"),
        ("set", "guard.alpha=inf"),
        ("set", "guard.alpha="),
        ("set", "guard.alpha"),
        ("set", "=5"),
        ("set", "guard.nosuch=1"),
        ("set", "drift.adwin_delta=2"),
        ("set", "drift.error_detector=nosuch"),
        ("set", 'drift.error_detector_params={"bogus": 1}'),
        ("set", "drift.error_detector_params=[1]"),
        ("set", "model.learner=hoeffding_tree"),
        ("set", "kafka.partitions=3"),
        ("set", "model.name=x"),
        ("set", "serving.batch_size=10"),
        ("set", "RELEASE_EVERY=40"),
        ("set", "guard.max_disagreement=1.5"),
        ("promote", "abc"),
        ("promote", "-1"),
        ("promote", "0"),
        ("promote", "1.5"),
    ]
    for i, (cmd, arg) in enumerate(bad):
        p = env.run("models", cmd, arg, "--timeout", "20")
        key = arg.split("=", 1)[0] or arg
        msg = (p.stderr + p.stdout).strip().splitlines()[-1:] or [""]
        named = (key.lower() in msg[0].lower()) or (arg in msg[0])
        record(
            f"B{i + 1}",
            f"models {cmd} {arg}: non-zero exit naming it",
            p.returncode != 0 and named and "Traceback" not in p.stderr,
            f"exit {p.returncode}: {msg[0][:230]}",
        )
    after = ctl_count()
    record(
        "B30",
        "refused-before-sending commands put nothing on control",
        after == before,
        f"{before} -> {after}",
    )
    p = env.run("--model", "ghost", "models", "set", "release_every=40", "--timeout", "20")
    record(
        "B31",
        "set for an unknown model: exit non-zero naming the models there are",
        p.returncode != 0 and "default" in p.stderr + p.stdout,
        f"exit {p.returncode}: {(p.stderr + p.stdout).strip()[-230:]}",
    )
    p = env.run("models", "set", "release_every=40", "--timeout", "30")
    s = env.json("models", "settings", "--json")
    flat = json.dumps(s)
    record(
        "B32",
        "a valid set is applied, answered and shown as a live set",
        p.returncode == 0 and "live set" in flat,
        f"exit {p.returncode}: {p.stdout.strip()[-150:]}",
    )
    p = env.run("models", "set", "guard.alpha=0.01", "release_every=30", "--timeout", "30")
    record(
        "B33",
        "two settings in one set (info: the help says KEY=VALUE)",
        None,
        f"exit {p.returncode}: {(p.stderr + p.stdout).strip()[-200:]}",
    )
    p = env.run("models", "settings", "--model", "ghost", "--json")
    record(
        "B34",
        "settings for an unknown model: non-zero, names the models there are",
        p.returncode != 0
        and "ghost" in p.stderr
        and "default" in p.stderr
        and "train worker" not in p.stderr,
        f"exit {p.returncode}: {(p.stderr + p.stdout).strip()[-200:]}",
    )
    p = env.run("models", "resume", "--timeout", "30")
    record(
        "B35",
        "resume when not paused (info: applied or refused, and says so)",
        None,
        f"exit {p.returncode}: {(p.stderr + p.stdout).strip()[-200:]}",
    )

    # ---- C: pause / resume under load, counted end to end
    rows2 = gen_stream(1000, 40, f"{prefix}p")
    l0, f0, t0_ = learned(), len(predictions()), count(topics["training"])
    pub = threading.Thread(target=publish, args=(bootstrap, topics, rows2, 20, 40), daemon=True)  # ~25 s
    pub.start()
    time.sleep(1)
    p = env.run("models", "pause", "--timeout", "30")
    record("C1", "pause under load: applied", p.returncode == 0, p.stdout.strip()[-200:])
    time.sleep(3)
    l_paused = learned()
    pub.join(120)
    time.sleep(5)
    l_paused2 = learned()
    record(
        "C2",
        "nothing learned while paused (labels_learned still)",
        l_paused2 == l_paused,
        f"{l_paused} -> {l_paused2} during the pause",
    )
    held = metric(stack.ports["train"], "driftline_held_examples")
    p = env.run("models", "resume", "--timeout", "60")
    record(
        "C3", "resume: applied", p.returncode == 0, f"held before resume {held}; {p.stdout.strip()[-160:]}"
    )
    wait_for(lambda: learned() >= l0 + len(rows2), 240, 3)
    l1 = learned()
    preds = predictions()
    t1 = count(topics["training"])
    ok = l1 - l0 == len(rows2) and len(preds) - f0 == len(rows2) and t1 - t0_ == len(rows2)
    record(
        "C4",
        "records in = records out across pause/resume",
        ok,
        f"events {len(rows2)}: predictions +{len(preds) - f0}, training +{t1 - t0_}, learned +{l1 - l0}",
    )

    # ---- D1: Redis frozen for 20 s
    if args.redis_pid and not args.skip_redis:
        rows3 = gen_stream(600, 41, f"{prefix}r")
        l0, f0 = learned(), len(predictions())
        pub = threading.Thread(target=publish, args=(bootstrap, topics, rows3, 20, 60), daemon=True)
        pub.start()
        time.sleep(2)
        retries = metric(stack.ports["score"], "driftline_events_total", stage="score", outcome="retry")
        os.kill(args.redis_pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            time.sleep(15)  # a Redis call of the workers gives up after 10 s (socket_timeout), then retries
            t = time.monotonic()
            try:
                up = {r: metric(stack.ports[r], "driftline_worker_up") for r in ("score", "join", "train")}
                more = metric(stack.ports["score"], "driftline_events_total", stage="score", outcome="retry")
                record(
                    "D3",
                    "/metrics answer with Redis frozen; the scorer's retries show it (events_total{outcome=retry})",
                    more > retries,
                    f"{time.monotonic() - t:.1f} s: worker_up {up}; score retries {retries} -> {more} in 15 s",
                )
            except Exception as exc:
                record("D3", "/metrics answer with Redis frozen", False, f"{type(exc).__name__}: {exc}")
            t = time.monotonic()
            p = env.run("status", "--json", timeout=60)
            took = time.monotonic() - t
            redis = json.loads(p.stdout).get("stack", {}).get("redis", {}) if p.stdout.startswith("{") else {}
            record(
                "D1",
                "status --json with Redis frozen: answers within 15 s, exit 1, stack.redis.up false",
                took < 15 and p.returncode == 1 and redis.get("up") is False,
                f"{took:.1f} s, exit {p.returncode}: stack.redis {redis}",
            )
            t = time.monotonic()
            p = env.run("doctor", "--json", timeout=60)
            took = time.monotonic() - t
            record(
                "D2",
                "doctor with Redis frozen: answers, exit non-zero, names Redis",
                took < 20 and p.returncode != 0 and "redis" in p.stdout.lower(),
                f"{took:.1f} s, exit {p.returncode}: "
                + "; ".join(
                    c.get("name", "") + " " + c.get("status", "")
                    for c in (
                        json.loads(p.stdout).get("checks", []) if p.stdout.strip().startswith("{") else []
                    )
                )[:250],
            )
            sleep_left = 20 - (time.monotonic() - frozen_at)
            if sleep_left > 0:
                time.sleep(sleep_left)
        finally:
            os.kill(args.redis_pid, signal.SIGCONT)
        pub.join(120)
        wait_for(lambda: learned() >= l0 + len(rows3), 300, 3)
        l1, preds = learned(), predictions()
        alive = {r: stack.procs[r].poll() is None for r in stack.procs}
        record(
            "D4",
            "after Redis is back: every event predicted and learned, no worker down",
            l1 - l0 == len(rows3) and len(preds) - f0 == len(rows3) and all(alive.values()),
            f"{len(rows3)} events: predictions +{len(preds) - f0}, learned +{l1 - l0}; alive {alive}",
        )

    # ---- D2: a score worker killed
    rows4 = gen_stream(400, 42, f"{prefix}k")
    l0, f0 = learned(), len(predictions())
    stack.procs["score"].send_signal(signal.SIGKILL)
    stack.procs["score"].wait()
    killed_at = time.monotonic()
    pub = threading.Thread(target=publish, args=(bootstrap, topics, rows4, 20, 100), daemon=True)
    pub.start()
    seen = wait_for(lambda: "STOPPED" in env.run("status").stdout, 90, 3)
    record(
        "D5",
        "status names the killed scorer (STOPPED reporting) within ~40 s",
        bool(seen),
        f"after {time.monotonic() - killed_at:.0f} s",
    )
    p = env.run("doctor", "--json")
    record(
        "D6",
        "doctor with no scorer: says so (info)",
        None,
        f"exit {p.returncode}: "
        + "; ".join(
            f"{c.get('name')} {c.get('status')}: {c.get('detail', c.get('message', ''))[:80]}"
            for c in json.loads(p.stdout).get("checks", [])
            if c.get("status") != "ok"
        )[:300],
    )
    stack.start("score")
    pub.join(120)
    wait_for(lambda: learned() >= l0 + len(rows4), 300, 3)
    l1, preds = learned(), predictions()
    record(
        "D7",
        "events sent while no scorer ran: all predicted and learned after a new one starts",
        l1 - l0 == len(rows4) and len(preds) - f0 == len(rows4),
        f"predictions +{len(preds) - f0}, learned +{l1 - l0}",
    )
    # A5 at the end: the first burst was scored before any label (version 1, untrained: null answers)
    last = [v[-1] for v in predictions().values()]
    classes = {tuple(sorted(p["proba"] or {})) for p in last if p["version"] and p["version"] > 1}
    answers = {p["prediction"] for p in last if p["version"] and p["version"] > 1}
    record(
        "A5",
        "3-class string labels: every trained answer among the classes, proba over all 3",
        classes == {("high", "low", "mid")} and answers <= {"high", "low", "mid"},
        f"proba keys {classes}, answers {answers}",
    )
    # A7 at the end too: the served answers of every phase after the first burst (versions > 1)
    for more in (
        gen_stream(1000, 40, f"{prefix}p"),
        gen_stream(600, 41, f"{prefix}r"),
        gen_stream(400, 42, f"{prefix}k"),
    ):
        truth.update({r["id"]: r["label"] for r in more})
    trained = [p for p in last if p["version"] and p["version"] > 1 and p["id"] in truth]
    acc = sum(p["prediction"] == truth[p["id"]] for p in trained) / max(1, len(trained))
    record(
        "A7",
        "served accuracy of trained versions (info)",
        None,
        f"{acc:.3f} over {len(trained)} events (3 classes; majority class {majority:.3f} of the first stream)",
    )
    return 0 if all(r["status"] != "FAIL" for r in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
