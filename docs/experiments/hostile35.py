"""Session 35 (helper sec35): the hostile records docs/experiments/fuzz31.py does not send, against a running
pipeline, from outside.

fuzz31 mutates valid records (bit flips, truncation, blown-up varints, hostile JSON). This adds, by hand:
Avro single-object records with a valid header and lying lengths (a string or map block claiming 2**40 bytes or
entries, a negative length, a map whose block count is right but whose entries run out), Avro doubles NaN and
+-Infinity as feature values and as a regression-free label, 10,000 features in one event (JSON and Avro), huge
strings (900 KB id, 900 KB feature name), unicode keys (RTL override, NUL, lone surrogates in Avro, 4-byte
characters, combining marks, a 64 KB key), a label for an id never scored, labels of the wrong type (text,
a 10**30 long, a double) for a boolean model, and a label published twice.

Checks: every good event around them predicted and its label learned; every hostile record dead-lettered or
handled (a FeatureEvent that decodes is predicted); no worker died; no traceback in a worker log; the CLI answers.

Run (stack on 18092/18379 started with ``driftline stack up``)::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:18092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:18379/0 PYTHONPATH=$PWD \\
        /work/main/.venv/bin/python docs/experiments/hostile35.py --redis redis://127.0.0.1:18379/0

Prints a summary and one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from schemas.codec import default_codec
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import Pipeline

CODEC = default_codec()


def zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def avro_str(s: bytes) -> bytes:
    return zigzag(len(s)) + s


def header(record: str) -> bytes:
    """The single-object header of ``record``'s writer schema, taken from a valid encoding."""
    sample = {
        "FeatureEvent": {"id": "a", "ts": 1, "key": None, "features": {}, "model": None},
        "Label": {"id": "a", "ts": 1, "label": True},
    }[record]
    return CODEC.encode(record, sample)[:10]


def feature_body(fid: bytes, features: bytes, *, ts: int = 1_760_000_000_000) -> bytes:
    # id, ts, key (union index 0 = null), features (map, already encoded), model (null)
    return avro_str(fid) + zigzag(ts) + zigzag(0) + features + zigzag(0)


def fmap(items: list[tuple[bytes, bytes]]) -> bytes:
    """An Avro map of one block: count, then key and union-encoded value per item, then the end block."""
    return zigzag(len(items)) + b"".join(avro_str(k) + v for k, v in items) + zigzag(0)


def double(x: float) -> bytes:
    return zigzag(3) + struct.pack("<d", x)  # union index 3 = double


def long_(x: int) -> bytes:
    return zigzag(2) + zigzag(x)


def hostile_features(k: int) -> list[tuple[str, bytes]]:
    fe = header("FeatureEvent")
    ok = fmap([(b"x1", double(0.5)), (b"x2", double(0.25))])
    out: list[tuple[str, bytes]] = []

    def fid(tag: str) -> bytes:
        return f"h{k}-{tag}".encode()

    # lying lengths
    out.append(("avro_id_len_2^40", fe + zigzag(1 << 40) + b"abc"))
    out.append(("avro_id_len_negative", fe + zigzag(-5) + b"abc"))
    out.append(
        ("avro_map_count_2^40", fe + avro_str(fid("m40")) + zigzag(1) + zigzag(0) + zigzag(1 << 40) + b"x")
    )
    out.append(("avro_map_count_negative_size_lies", fe + avro_str(fid("mneg")) + zigzag(1) + zigzag(0)
                + zigzag(-3) + zigzag(1 << 40) + avro_str(b"x1") + double(1.0)))  # fmt: skip
    out.append(("avro_map_runs_out", fe + avro_str(fid("short")) + zigzag(1) + zigzag(0) + zigzag(5)
                + avro_str(b"x1") + double(1.0)))  # fmt: skip
    out.append(("avro_key_len_2^40", fe + avro_str(fid("k40")) + zigzag(1) + zigzag(0) + zigzag(1)
                + zigzag(1 << 40) + b"x"))  # fmt: skip
    out.append(("avro_union_index_99", fe + avro_str(fid("u99")) + zigzag(1) + zigzag(0)
                + fmap([(b"x1", zigzag(99) + b"\x00")])))  # fmt: skip
    out.append(("avro_trailing_bytes", fe + feature_body(fid("trail"), ok) + b"\x00" * 100))
    # non-finite doubles (JSON refuses NaN; Avro can carry it)
    for name, x in (("nan", float("nan")), ("inf", float("inf")), ("-inf", float("-inf"))):
        out.append(
            (
                f"avro_feature_{name}",
                fe + feature_body(fid(name), fmap([(b"x1", double(x)), (b"x2", double(0.1))])),
            )
        )
    # 10,000 features, Avro and JSON
    many = fmap([(f"f{i}".encode(), double(i / 7)) for i in range(10_000)])
    out.append(("avro_10000_features", fe + feature_body(fid("many"), many)))
    out.append(("json_10000_features", json.dumps({"id": fid("manyj").decode(), "ts": 1, "features":
                {f"f{i}": i / 7 for i in range(10_000)}}).encode()))  # fmt: skip
    # huge strings
    out.append(("avro_900KB_id", fe + feature_body(b"h" * 900_000, ok)))
    out.append(
        ("avro_900KB_feature_name", fe + feature_body(fid("bigname"), fmap([(b"n" * 900_000, double(1.0))])))
    )
    out.append(
        (
            "avro_900KB_string_value",
            fe + feature_body(fid("bigval"), fmap([(b"s", zigzag(4) + avro_str(b"v" * 900_000))])),
        )
    )
    # unicode keys
    weird = ["\u202eevil", "a\x00b", "\U0001f600", "e\u0301", "\ufeffbom", "k" * 65_536, ""]
    out.append(
        ("avro_unicode_keys", fe + feature_body(fid("uni"), fmap([(w.encode(), double(1.0)) for w in weird])))
    )
    out.append(
        ("avro_lone_surrogate_key", fe + feature_body(fid("surr"), fmap([(b"\xed\xa0\x80", double(1.0))])))
    )
    out.append(("avro_invalid_utf8_id", fe + feature_body(b"\xff\xfe", ok)))
    out.append(("json_unicode_keys", json.dumps({"id": fid("unij").decode(), "ts": 1,
                "features": {w: 1.0 for w in weird}}, ensure_ascii=False).encode()))  # fmt: skip
    return out


def hostile_labels(k: int, scored_id: str) -> list[tuple[str, bytes]]:
    la = header("Label")
    out: list[tuple[str, bytes]] = []
    out.append(("label_never_scored", json.dumps({"id": f"never-{k}", "ts": 1, "label": True}).encode()))
    out.append(
        ("label_text_for_bool_model", json.dumps({"id": f"{scored_id}", "ts": 1, "label": "yes"}).encode())
    )
    out.append(
        ("label_huge_long", la + avro_str(f"h{k}-l1".encode()) + zigzag(1) + zigzag(1) + zigzag(1 << 62))
    )
    out.append(
        (
            "label_nan_double",
            la + avro_str(f"h{k}-l2".encode()) + zigzag(1) + zigzag(2) + struct.pack("<d", float("nan")),
        )
    )
    out.append(("label_union_index_7", la + avro_str(f"h{k}-l3".encode()) + zigzag(1) + zigzag(7)))
    out.append(("label_id_len_2^40", la + zigzag(1 << 40) + b"x"))
    out.append(("label_list", json.dumps({"id": f"h{k}-l4", "ts": 1, "label": [True]}).encode()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:18379/0")
    ap.add_argument("--good", type=int, default=400)
    args = ap.parse_args()
    prefix = f"sec35.h{int(time.time()) % 100000}."
    state = Path(tempfile.mkdtemp(prefix="sec35-hostile-"))
    p = Pipeline(prefix, state, args.redis, extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "50"})
    summary: dict[str, Any] = {"prefix": prefix, "problems": []}
    problems: list[str] = summary["problems"]
    with running_all(p):
        p.start("score", "join", "train")
        events = make_events(args.good, seed=35)
        half = len(events) // 2
        publish(p, events[:half])
        feats = hostile_features(1)
        labels = hostile_labels(1, events[0].id)
        f_off = p.send_raw_at("features", [d for _, d in feats])
        l_off = p.send_raw_at("labels", [d for _, d in labels])
        # the good label of events[0] came already: publish it again (a duplicate)
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
        time.sleep(8)
        preds = collections.Counter(r.value["id"] for r in p.read("predictions") if r.ok and r.value)
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        dead_at = {(d["source_topic"], d["partition"], d["offset"]): d["error"] for d in dead}
        outcome: dict[str, str] = {}
        for topic, rows, offs in (("features", feats, f_off), ("labels", labels, l_off)):
            full = p.settings().topic(topic)
            for (kind, data), (part, off) in zip(rows, offs, strict=True):
                reason = dead_at.get((full, part, off))
                if reason is not None:
                    outcome[kind] = f"dead-lettered: {reason[:160]}"
                    continue
                fid = None
                with contextlib.suppress(Exception):  # undecodable here: it had to be dead-lettered
                    fid = CODEC.decode("FeatureEvent" if topic == "features" else "Label", data)["id"]
                if fid is None and data[:1] == b"{":  # JSON input (the codec above reads Avro)
                    with contextlib.suppress(Exception):
                        fid = json.loads(data)["id"]
                if topic == "features" and fid is not None and preds.get(fid):
                    outcome[kind] = "predicted"
                elif topic == "labels":
                    outcome[kind] = "not dead-lettered (counted or joined: see metrics)"
                else:
                    outcome[kind] = "SILENT: neither predicted nor dead-lettered"
                    problems.append(f"{kind} silent")
        summary["outcome"] = outcome
        summary["good_not_predicted"] = len(ids - set(preds))
        summary["labels_learned"] = p.labels_learned()
        summary["joins"] = {
            r: p.metric_sum("driftline_joins_total", outcome=r)
            for r in ("joined", "parked", "duplicate", "orphan", "expired")
        }
        summary["deadletters_total"] = p.metric_sum("driftline_deadletters_total")
        dead_workers = [w.role for w in p.workers if not w.alive()]
        if dead_workers:
            problems.append(f"workers died: {dead_workers}\n{p.logs(60)}")
        summary["worker_log_tracebacks"] = {
            w.role: w.log_path.read_text(errors="replace").count("Traceback") for w in p.workers
        }
        for cmd in (["status"], ["models", "show"], ["tail", "deadletter", "-n", "30"], ["audit", "verify"]):
            proc = p.cli(*cmd, check=False, timeout=120)
            if "Traceback" in proc.stderr + proc.stdout:
                problems.append(f"driftline {' '.join(cmd)}: traceback\n{proc.stderr[-2000:]}")
            summary.setdefault("cli", {})[" ".join(cmd)] = proc.returncode
    for k, v in summary.items():
        if k == "outcome":
            for kind, what in v.items():
                print(f"  {kind:36s} {what}")
        else:
            print(f"{k}: {v}")
    print(json.dumps(summary, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
