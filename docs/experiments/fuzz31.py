"""Session 31 (helper outside13): a seeded mutation-fuzz campaign against a running pipeline, from outside.

Valid records as driftline encodes them (Avro single-object and JSON) are mutated (bit flips, truncation at every
length, byte insertion, blown-up length varints, duplicated and spliced records, valid Avro of the other record
types, hostile JSON) and published by the thousand to ``features``, ``labels``, ``control`` and ``training``,
interleaved with good events and their labels, then to the internal topics (``models``, ``changelog``, ``audit``,
``drift``, ``predictions``); optionally the join store in Redis is overwritten with junk or flushed mid-stream.

Checks, from outside (topics, metrics, CLI): every good event predicted and its label learned; every mutant
either dead-lettered (by source offset) or handled (decodable: its id predicted; control: refused); nothing
dead-lettered twice; no worker died; lag 0; ``driftline_deadletters_total`` equals the dead letters on the topic;
``status``, ``models list``, ``audit verify``, ``tail`` answer without a traceback.

Run (stack on 15092/15379 started with ``driftline stack up``)::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:15092 PYTHONPATH=$PWD /work/main/.venv/bin/python docs/experiments/fuzz31.py \
        --seed 31 --redis redis://127.0.0.1:15379/0 [--per-topic 1000] [--internal] [--redis-junk]

Prints a summary and one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from schemas.codec import MAGIC, default_codec
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import KAFKA_BOOTSTRAP as KAFKA
from tests.pipeline_helpers import Pipeline

CODEC = default_codec()
RECORD = {
    "features": "FeatureEvent",
    "labels": "Label",
    "control": "ControlCommand",
    "training": "TrainingExample",
    "models": "ModelRelease",
    "changelog": None,
    "audit": None,
    "drift": "DriftEvent",
    "predictions": "Prediction",
}


def base_values(record: str, k: int, rng: random.Random) -> dict[str, Any]:
    """A valid value of ``record`` with a unique id ``m<k>``."""
    ts = 1_760_000_000_000 + k
    feats = {"x1": rng.random(), "x2": rng.random(), "colour": rng.choice(["red", "blue"]), "n": k, "b": True}
    if record == "FeatureEvent":
        return {"id": f"m{k:06d}", "ts": ts, "key": f"m{k:06d}", "features": feats}
    if record == "Label":
        return {"id": f"m{k:06d}", "ts": ts, "label": rng.choice([True, False])}
    if record == "ControlCommand":
        return {"model": "default", "command": rng.choice(["pause_learning", "rollback", "set"]),
                "args": {"guard.min_gain": "0.01"}, "ts": ts}  # fmt: skip
    if record == "TrainingExample":
        return {"id": f"m{k:06d}", "model": "default", "key": None, "features": feats, "label": True,
                "prediction": False, "proba": {"True": 0.4, "False": 0.6}, "version": 1, "event_ts": ts,
                "label_ts": ts + 5}  # fmt: skip
    if record == "DriftEvent":
        return {
            "model": "default",
            "version": 1,
            "detector": "adwin",
            "signal": "error",
            "ts": ts,
            "details": {},
        }
    if record == "ModelRelease":
        return {"id": f"m{k:06d}"}  # only reached without seeds: plain JSON
    if record == "Prediction":
        return {"id": f"m{k:06d}", "ts": ts, "model": "default", "version": 1, "prediction": True,
                "proba": {"True": 0.9, "False": 0.1}}  # fmt: skip
    raise ValueError(record)


def encoded(record: str, value: dict[str, Any], as_json: bool) -> bytes:
    try:
        return CODEC.encode_json(record, value) if as_json else CODEC.encode(record, value)
    except Exception:  # a record whose schema needs more fields than base_values gives: JSON of the dict
        return json.dumps(value).encode()


def other_types(record: str, k: int, rng: random.Random) -> list[bytes]:
    out = []
    for other in ("FeatureEvent", "Label", "ControlCommand", "TrainingExample", "Prediction"):
        if other != record:
            with contextlib.suppress(Exception):
                out.append(CODEC.encode(other, base_values(other, k, rng)))
    return out


def hostile_json(record: str, k: int, rng: random.Random) -> list[bytes]:
    v = base_values(record, k, rng)
    text = json.dumps(v)
    out = [
        text.replace('"ts": ', '"ts": 9' + "9" * rng.randrange(19, 400) + "0+0*"[:0], 1).encode(),  # huge ts
        text.replace('"ts": ', '"ts": -', 1).encode(),  # negative ts (valid)
        text.replace('"ts": ', '"ts": NaN, "x_": ', 1).encode(),  # NaN ts
        text.replace('"ts": ', '"ts": 1e400, "x_": ', 1).encode(),  # Infinity ts
        ("{" + '"a": {' * 33 + "1" + "}" * 33 + ", " + text[1:]).encode(),  # 33 deep: over the 32 limit
        ("{" + '"a": {' * 30 + "1" + "}" * 30 + ", " + text[1:]).encode(),  # 31 deep: under it
        (text[:-1] + ', "id": "dup"}').encode() if "id" in v else (text[:-1] + ', "model": "dup"}').encode(),
        text.replace('"m', '"\\u006d\\u0000\\ud83d\\ude00', 1).encode(),  # escapes, NUL, a pair
        text.replace('"m', '"\\udc00', 1).encode(),  # lone low surrogate
        (text[:-1] + ', "blob": "' + "z" * (1 << 20) + '"}').encode(),  # 1 MB string
        text.replace('"ts": ', '"ts": 1.5, "y_": ', 1).encode(),
        text.replace(
            '"ts": ' + str(v.get("ts")), '"ts": "' + str(v.get("ts")) + '"', 1
        ).encode(),  # ts as text
        text.encode("utf-16"),
        b"\xef\xbb\xbf" + text.encode(),  # BOM
    ]
    if record == "FeatureEvent":
        out.append(json.dumps({**v, "features": {"x": 10**400 if False else 1e308 * 10}}).encode())
        out.append(json.dumps({**v, "features": {str(i): i for i in range(5000)}}).encode())
        out.append(json.dumps({**v, "features": {"": 1, " ": None, "\u0000": "x"}}).encode())
        out.append(json.dumps({**v, "model": "../../etc"}).encode())
        out.append(json.dumps({**v, "model": "x" * 10_000}).encode())
        out.append(json.dumps({**v, "key": 12}).encode())
    if record == "Label":
        out.append(json.dumps({**v, "label": "x" * 5000}).encode())
        out.append(json.dumps({**v, "label": 10**30}).encode())
        out.append(json.dumps({**v, "label": None}).encode())
        out.append(json.dumps({**v, "label": [1]}).encode())
    return out


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> tuple[str, bytes]:
    kind = rng.choice(["bitflip", "bitflip", "truncate", "insert", "varint", "dup", "splice", "delete"])
    b = bytearray(data)
    if kind == "bitflip":
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        b = b[: rng.randrange(len(b))]
    elif kind == "insert":
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes([rng.randrange(256)])
    elif kind == "delete":
        i = rng.randrange(len(b))
        del b[i]
    elif kind == "varint":  # a blown-up length/count varint somewhere after the header
        i = rng.randrange(10, len(b)) if len(b) > 10 and b[:2] == MAGIC else rng.randrange(len(b))
        b[i:i] = rng.choice(
            [b"\xfe\xff\xff\xff\x0f", b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x81\x80\x80\x80\x10"]
        )
    elif kind == "dup":
        b = b + b
    elif kind == "splice":
        o = rng.choice(others)
        b = b[: rng.randrange(len(b))] + o[rng.randrange(len(o)) :]
    return kind, bytes(b)


def raw_values(bootstrap: str, topic: str, limit: int = 50) -> list[bytes]:
    """Up to ``limit`` committed record values of ``topic`` (raw bytes), from the start."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "outside13-fuzz-raw", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})  # fmt: skip
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        parts = []
        for pid in meta.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, pid), timeout=10)
            if hi > lo:
                parts.append(TopicPartition(topic, pid, lo))
        if not parts:
            return []
        c.assign(parts)
        out: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(out) < limit and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                if m.error() is None and m.value():
                    out.append(m.value())
        return out[:limit]
    finally:
        c.close()


def mutants(
    topic: str, n: int, rng: random.Random, start: int, seeds: list[bytes] | None = None
) -> list[tuple[str, bytes]]:
    record = RECORD[topic]
    out: list[tuple[str, bytes]] = []
    if seeds:  # mutate real records of the topic (releases, trainer states, audit entries)
        out += [
            ("truncate_every", seeds[0][:cut])
            for cut in range(0, len(seeds[0]), max(1, len(seeds[0]) // 300))
        ]
        while len(out) < n:
            kind, data = mutate(rng.choice(seeds), rng, seeds)
            out.append((kind, data))
        rng.shuffle(out)
        return out[:n]
    if record is None:  # changelog/audit: no schema here, mutate JSON-ish and random bytes
        for k in range(n):
            seed = json.dumps({"model": "default", "seq": k, "sig": "0" * 64}).encode()
            out.append(mutate(seed, rng, [seed])) if k % 2 else out.append(
                ("random", rng.randbytes(rng.randrange(1, 300)))
            )
        return out
    # truncation at every length of one Avro and one JSON record
    for as_json in (False, True):
        whole = encoded(record, base_values(record, start, rng), as_json)
        start += 1
        for cut in range(len(whole)):
            out.append((f"truncate_every{'_json' if as_json else ''}", whole[:cut]))
    for k in range(start, start + 4):
        out += [("hostile_json", x) for x in hostile_json(record, k, rng)]
        out += [("other_type", x) for x in other_types(record, k, rng)]
    start += 4
    k = start
    while len(out) < n:
        as_json = rng.random() < 0.3
        good = encoded(record, base_values(record, k, rng), as_json)
        others = [encoded(record, base_values(record, k + 1_000_000, rng), rng.random() < 0.5)]
        kind, data = mutate(good, rng, others)
        out.append((kind + ("_json" if as_json else ""), data))
        k += 1
    rng.shuffle(out)
    return out[:n] if len(out) > n else out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def offline_id(record: str, data: bytes) -> str | None:
    """The id the codec reads from ``data`` (None when it refuses it)."""
    try:
        value = CODEC.decode(record, data, allow_json=True)
    except Exception:
        return None
    return value.get("id") if isinstance(value, dict) else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--redis", default="redis://127.0.0.1:15379/0")
    ap.add_argument("--prefix", default=None)
    ap.add_argument("--per-topic", type=int, default=1000)
    ap.add_argument("--good", type=int, default=1000)
    ap.add_argument(
        "--internal", action="store_true", help="also fuzz models/changelog/audit/drift/predictions"
    )
    ap.add_argument("--redis-junk", action="store_true", help="overwrite the join store with junk mid-stream")
    ap.add_argument("--flushall", action="store_true", help="FLUSHALL Redis mid-stream")
    ap.add_argument("--topics", default="", help="comma-separated topics to fuzz (default: the input ones)")
    ap.add_argument("--keep", action="store_true", help="leave the workers running (prints their pids)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    prefix = args.prefix or f"outside13.fz{args.seed}{int(time.time()) % 100000}."
    state = Path(tempfile.mkdtemp(prefix="outside13-fuzz-"))
    env = {"DRIFTLINE__MODEL__RELEASE_EVERY": "100"}
    p = Pipeline(prefix, state, args.redis, extra_env=env)
    summary: dict[str, Any] = {"seed": args.seed, "prefix": prefix, "problems": []}
    problems: list[str] = summary["problems"]
    sent: dict[str, collections.Counter[str]] = {}
    where: dict[str, list[tuple[str, bytes, tuple[int, int]]]] = {}
    with running_all(p):
        p.start("score", "join", "train")
        rss0 = {w.role: rss_kb(w.proc.pid) for w in p.workers if w.proc}
        summary["pids"] = {w.role: w.proc.pid for w in p.workers if w.proc}
        events = make_events(args.good, seed=args.seed)
        half = len(events) // 2
        publish(p, events[:half])
        topics = ["features", "labels", "control", "training"]
        if args.internal:
            topics += ["models", "changelog", "audit", "drift", "predictions"]
        if args.topics:
            topics = args.topics.split(",")
        for t, topic in enumerate(topics):
            seeds = None
            if topic in ("models", "changelog", "audit"):
                deadline = time.monotonic() + 90
                while (
                    not (seeds := raw_values(KAFKA, p.settings().topic(topic)))
                    and time.monotonic() < deadline
                ):
                    time.sleep(2)
                summary.setdefault("seeds", {})[topic] = len(seeds)
            muts = mutants(topic, args.per_topic, rng, start=(t + 1) * 100_000, seeds=seeds)
            sent[topic] = collections.Counter(kind for kind, _ in muts)
            big = [m for m in muts if len(m[1]) > 900_000]
            small = [m for m in muts if len(m[1]) <= 900_000]
            key = (
                b"default"
                if topic in ("control", "training", "models", "changelog", "audit", "drift")
                else None
            )
            offs = p.send_raw_at(topic, [d for _, d in small], key=key) if small else []
            where[topic] = [(kind, d, o) for (kind, d), o in zip(small, offs, strict=True)]
            if big:
                sent[topic]["over_kafka_limit_skipped"] = len(big)
        if args.redis_junk or args.flushall:
            r = redis.Redis.from_url(args.redis)
            keys = [k for k in r.scan_iter(match=prefix.rstrip(".") + "*", count=1000)]
            summary["redis_keys_before"] = len(keys)
            if args.flushall:
                r.flushall()
            else:
                for i, k in enumerate(keys[:: max(1, len(keys) // 50)]):
                    choice = i % 5
                    if choice == 0:
                        r.delete(k)
                        r.hset(k, "junk", "x")
                    elif choice == 1:
                        r.delete(k)
                        r.set(k, b"\xff" * (10 << 20))
                    elif choice == 2:
                        r.persist(k)
                    elif choice == 3:
                        r.delete(k)
                        r.rpush(k, "a", "b")
                    else:
                        r.delete(k)
                        r.set(k, "not json {")
        publish(p, events[half:])
        ids = {e.id for e in events}
        try:
            p.wait_until(
                "every good event predicted",
                lambda: ids <= {r.value["id"] for r in p.read("predictions") if r.ok and r.value},
                240,
            )
            p.wait_learned(len(events), 240)
        except AssertionError as exc:
            problems.append(str(exc)[:3000])
        time.sleep(5)
        # -- the oracle
        preds = [r for r in p.read("predictions")]
        pred_ids = collections.Counter(r.value["id"] for r in preds if r.ok and r.value)
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        dead_at = collections.Counter((d["source_topic"], d["partition"], d["offset"]) for d in dead)
        twice = [k for k, c in dead_at.items() if c > 1]
        if twice:
            problems.append(f"{len(twice)} records dead-lettered twice, e.g. {twice[:3]}")
        summary["deadletters_by_topic"] = dict(collections.Counter(d["source_topic"] for d in dead))
        good_offsets_dead = 0
        outcome: dict[str, collections.Counter[str]] = {}
        for topic, rows in where.items():
            full = p.settings().topic(topic)
            c: collections.Counter[str] = collections.Counter()
            for kind, data, (part, off) in rows:
                if (full, part, off) in dead_at:
                    c["deadlettered"] += 1
                elif topic == "features":
                    mid = offline_id("FeatureEvent", data)
                    if mid is not None and pred_ids.get(mid):
                        c["predicted"] += 1
                    else:
                        c["SILENT"] += 1
                        if c["SILENT"] <= 5:
                            problems.append(
                                f"features mutant {kind} at {part}/{off} neither predicted nor dead: {data[:120]!r}"
                            )
                else:
                    c["not_deadlettered"] += 1
            outcome[topic] = c
        summary["outcome"] = {t: dict(c) for t, c in outcome.items()}
        summary["sent"] = {t: dict(c) for t, c in sent.items()}
        dup_good = [i for i in ids if pred_ids.get(i, 0) > 1]
        summary["good_predicted_twice"] = len(dup_good)
        missing = ids - set(pred_ids)
        if missing:
            problems.append(f"{len(missing)} good events not predicted")
        summary["labels_learned"] = p.labels_learned()
        m_dead = p.metric_sum("driftline_deadletters_total")
        summary["metric_deadletters_total"] = m_dead
        if int(m_dead) != len(dead):
            problems.append(f"driftline_deadletters_total {m_dead} != {len(dead)} dead letters on the topic")
        summary["control_refused_total"] = p.metric_sum("driftline_control_refused_total")
        summary["releases_rejected_total"] = p.metric_sum("driftline_releases_rejected_total")
        summary["changelog_rejected_total"] = p.metric_sum("driftline_changelog_rejected_total")
        summary["lag"] = p.metric_sum("driftline_consumer_lag")
        summary["rss_kb"] = {
            w.role: (rss0.get(w.role), rss_kb(w.proc.pid)) for w in p.workers if w.proc and w.alive()
        }
        dead_workers = [w.role for w in p.workers if not w.alive()]
        if dead_workers:
            problems.append(f"workers died: {dead_workers}\n{p.logs(60)}")
        summary["good_offsets_dead"] = good_offsets_dead
        # -- the CLI from outside
        cli: dict[str, Any] = {}
        cmds = [["status"], ["status", "--json"], ["models", "list"], ["models", "list", "--json"],
                ["models", "show"], ["audit", "verify"], ["audit", "show", "--json"],
                ["tail", "deadletter", "-n", "3"], ["tail", "models", "-n", "3"], ["tail", "control", "-n", "3"],
                ["tail", "training", "-n", "3"], ["explain", events[0].id]]  # fmt: skip
        for cmd in cmds:
            proc = p.cli(*cmd, check=False, timeout=120)
            tb = "Traceback" in proc.stderr or "Traceback" in proc.stdout
            cli[" ".join(cmd)] = {
                "rc": proc.returncode,
                "traceback": tb,
                "stderr_lines": len(proc.stderr.splitlines()),
                "stdout_lines": len(proc.stdout.splitlines()),
                "err": proc.stderr.strip()[-300:],
            }
            if tb:
                problems.append(f"driftline {' '.join(cmd)}: traceback\n{proc.stderr[-2000:]}")
        summary["cli"] = cli
        tracebacks = []
        for w in p.workers:
            text = w.log_path.read_text(errors="replace")
            if "Traceback" in text:
                tracebacks.append(f"{w.role}: {text.count('Traceback')} tracebacks")
        summary["worker_log_tracebacks"] = tracebacks
        summary["logs_dir"] = str(state / "logs")
        if args.keep:
            print("keeping workers", summary["pids"])
            p.workers.clear()
    for k, v in summary.items():
        if k != "cli":
            print(f"{k}: {v}")
    for cmd, r in summary.get("cli", {}).items():
        print(f"cli {cmd!r}: rc {r['rc']}, traceback {r['traceback']}, stdout {r['stdout_lines']} / stderr "
              f"{r['stderr_lines']} lines")  # fmt: skip
    print(json.dumps(summary, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
