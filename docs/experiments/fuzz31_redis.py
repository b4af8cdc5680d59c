"""Session 31 (helper outside13): the join store and trainer keys in Redis gone wrong, on a running pipeline.

Events are scored (their join contexts go to Redis), then their contexts, parked labels and the trainer's status
keys are overwritten with junk (a hash or list where a string is expected, text that is not a record, a 10 MB value,
a key with its TTL removed), labels follow; then a FLUSHALL between events and their labels. Checks: workers alive,
the join's lag goes to 0, untouched labels are learned, ``status`` answers without a traceback.

    DRIFTLINE_TEST_KAFKA=127.0.0.1:15092 PYTHONPATH=$PWD /work/main/.venv/bin/python docs/experiments/fuzz31_redis.py \\
        --redis redis://127.0.0.1:15379/0 [--flushall]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import Pipeline


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:15379/0")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--mode", choices=["junk", "flushall", "trainer", "index"], default="junk")
    args = ap.parse_args()
    prefix = f"outside13.rz{int(time.time()) % 100000}."
    state = Path(tempfile.mkdtemp(prefix="outside13-redis-"))
    p = Pipeline(prefix, state, args.redis, extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "100"})
    r = redis.Redis.from_url(args.redis)
    ns = prefix.rstrip(".")
    out: dict[str, Any] = {"prefix": prefix, "mode": args.mode, "problems": []}
    problems: list[str] = out["problems"]
    with running_all(p):
        p.start("score", "join", "train")
        warm = make_events(args.n, seed=5, tag="w")
        publish(p, warm)
        p.wait_learned(len(warm), 120)
        events = make_events(args.n, seed=6, tag="x")
        publish(p, events, labels=False)
        ids = {e.id for e in events}
        p.wait_until(
            "contexts stored",
            lambda: len(list(r.scan_iter(match=f"{ns}:*:ctx:x-*", count=1000))) >= len(ids),
            60,
        )
        ctx = sorted(k.decode() for k in r.scan_iter(match=f"{ns}:*:ctx:x-*", count=1000))
        touched: dict[str, str] = {}
        if args.mode == "junk":
            for i, key in enumerate(ctx[: len(ctx) // 2]):
                kind = ["hash", "text", "big", "nottl", "list", "empty"][i % 6]
                if kind != "nottl":
                    r.delete(key)
                if kind == "hash":
                    r.hset(key, "x", "1")
                elif kind == "text":
                    r.set(key, "not a record {")
                elif kind == "big":
                    r.set(key, b"\xc3\x01" + b"\xff" * (10 << 20))
                elif kind == "nottl":
                    r.persist(key)
                elif kind == "list":
                    r.rpush(key, "a")
                elif kind == "empty":
                    r.set(key, b"")
                touched[key.rsplit(":", 1)[1]] = kind
            # a parked-labels hash and the pending index as the wrong types
            for suffix in ("parked", "pending"):
                for key in r.scan_iter(match=f"{ns}:*:{suffix}", count=100):
                    out.setdefault("wrong_type", []).append((key.decode(), r.type(key).decode()))
        elif (
            args.mode == "index"
        ):  # the pending index (a sorted set) and the parked-labels hash as other types
            for suffix, kind in (("pending", "string"), ("parked", "list")):
                for key in list(r.scan_iter(match=f"{ns}:*:{suffix}", count=100)):
                    r.delete(key)
                    r.set(key, "junk") if kind == "string" else r.rpush(key, "junk")
                    out.setdefault("index_touched", []).append((key.decode(), kind))
        elif args.mode == "flushall":
            r.flushall()
        elif args.mode == "trainer":
            for key in r.scan_iter(match=f"{ns}:*:trainer", count=100):
                r.delete(key)
                r.rpush(key, "junk")
                touched[key.decode()] = "list"
            for key in r.scan_iter(match=f"{ns}:*:alive", count=100):
                r.delete(key)
                r.hset(key, "x", "y")
                touched[key.decode()] = "hash"
            for key in r.scan_iter(match=f"{ns}:*:models", count=100):
                r.delete(key)
                r.set(key, "junk")
                touched[key.decode()] = "string"
        out["touched"] = dict(__import__("collections").Counter(touched.values()))
        with p.producer() as producer:  # the labels only
            for e in events:
                producer.send_label(e.id, e.label)
            producer.flush(30)
        more = make_events(args.n, seed=7, tag="y")
        publish(p, more)
        want = len(warm) + len(more) + len(ids) - len(touched if args.mode == "junk" else {})
        try:
            p.wait_learned(want, 180)
        except AssertionError as exc:
            problems.append(f"not learned {want}: {str(exc)[-3000:]}")
        time.sleep(5)
        out["labels_learned"] = p.labels_learned()
        out["expected_at_least"] = want
        out["lag"] = p.metric_sum("driftline_consumer_lag")
        out["joins"] = {
            k: p.metric_sum("driftline_joins_total", outcome=k)
            for k in ("joined", "expired", "orphan", "lost", "duplicate", "parked", "corrupt", "skipped")
        }
        out["events_retry"] = p.metric_sum("driftline_events_total", outcome="retry")
        dead = [w.role for w in p.workers if not w.alive()]
        if dead:
            problems.append(f"workers died: {dead}")
        for cmd in (["status"], ["status", "--json"], ["models", "show"], ["models", "list", "--json"]):
            proc = p.cli(*cmd, check=False)
            if "Traceback" in proc.stderr + proc.stdout or proc.returncode != 0:
                problems.append(f"{' '.join(cmd)} rc {proc.returncode}: {proc.stderr[-1500:]}")
        for w in p.workers:
            text = w.log_path.read_text(errors="replace")
            out.setdefault("log_tracebacks", {})[w.role] = text.count("Traceback")
            lines = [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln]
            out.setdefault("log_warnings", {})[w.role] = [*lines[:5], f"... {len(lines)} in all"]
        out["logs"] = str(state / "logs")
    for k, v in out.items():
        print(f"{k}: {v}")
    print(json.dumps(out, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
