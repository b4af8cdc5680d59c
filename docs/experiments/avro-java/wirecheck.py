"""The Python half of the Apache Avro (Java) wire check; see README.md in this folder.

    wirecheck.py cases OUT.jsonl                 the records Java encodes (control commands signed with the key)
    wirecheck.py offline CASES.jsonl BINDIR      driftline decodes Java's bytes; encodes the same bytes itself
    wirecheck.py publish CASES.jsonl BINDIR      Java's bytes onto features / labels / control (the configured prefix)
    wirecheck.py dump OUTDIR                     every contract topic's raw values, OUTDIR/<topic>/<p>-<offset>.bin
    wirecheck.py compare DUMPDIR JAVA.jsonl      Java's decoding of a dump equals driftline's, value by value
    wirecheck.py verify CASES.jsonl DUMPDIR      what the pipeline made of the published cases
    wirecheck.py pick DUMPDIR JAVA.jsonl OUTDIR  a few driftline-written records and Java's reading (golden files)

Settings come from the DRIFTLINE_* environment as for any driftline command. Exit 1 when a check fails.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.kafka_client import client_config
from connectors.producer import EventProducer
from driftline.errors import SchemaError
from driftline.settings import load_settings
from schemas.codec import TOPIC_RECORDS, default_codec

NEWER_FIELD = {"name": "source", "type": "string", "default": "", "doc": "A field a newer writer added."}


def newer(record: str) -> dict[str, Any]:
    """``record``'s current schema with one more field (with a default): a version driftline does not know."""
    raw = json.loads(json.dumps(default_codec().schema(record)))
    raw["fields"].append(NEWER_FIELD)
    return raw


GOLDEN_KEY = b"golden-test-operator-key-0123456789abcdef"


def _signed(settings: Any, command: str, args: dict[str, str], ts: int, id: str) -> dict[str, Any]:
    """A ControlCommand signed as :func:`streams.control.new_command` signs it, with a given ``ts`` and ``id``."""
    import hashlib
    import hmac

    from streams.control import _canonical, key_id, new_command, operator_key

    if settings is None:  # golden files: a fixed key, so the bytes never change
        key = GOLDEN_KEY
        record = {
            "model": "default",
            "command": command,
            "args": args,
            "ts": ts,
            "id": id,
            "key_id": key_id(key),
        }
    else:
        key = operator_key(settings)
        record = new_command(settings, command, args) | {"ts": ts, "id": id}
    record["signature"] = hmac.new(key, _canonical(record), hashlib.sha256).hexdigest()
    return record


def cases(out: str, mode: str = "live") -> None:
    """The cases; ``mode`` "golden": fixed ids, times and key (tests/golden/avro-java), else a fresh run."""
    golden = mode == "golden"
    settings = None if golden else load_settings()
    run = "golden" if golden else uuid.uuid4().hex[:8]
    now = 1_764_000_000_000 if golden else int(time.time() * 1000)
    every = {"n": None, "yes": True, "no": False, "count": 3, "big": -(2**62), "x": 0.25, "neg0": -0.0}
    every |= {"min": -(2**63), "max": 2**63 - 1, "tiny": 5e-324, "huge": 1.5e300, "city": "Zürich"}
    every |= {"温度": 21.5, "emoji😀": "👍", "": 1.0, "text": ""}
    rows: list[dict[str, Any]] = []

    def add(
        name: str, record: str, value: dict[str, Any], schema: Any = None, expect: str = "ok", **kw: Any
    ) -> None:
        schema = schema if schema is not None else f"{record}.avsc"
        rows.append({"name": name, "record": record, "schema": schema, "value": value, "expect": expect} | kw)

    feats = [
        ("every-type", {"features": every, "key": None, "model": None}),
        ("defaults", {"features": {"x": 1.0, "y": 2.0}}),  # key and model left to their defaults
        ("doubles", {"features": {f"f{i}": i / 7 for i in range(12)}, "key": "entity-ü"}),
        ("empty", {"features": {}}),
    ]
    for i, (name, extra) in enumerate(feats):
        add(f"features-{name}", "FeatureEvent", {"id": f"{run}-{i}", "ts": now + i} | extra)
    wide = {f"feature_{i:02d}": (i / 3 if i % 2 else f"v{i}") for i in range(40)}
    add("features-blocks", "FeatureEvent", {"id": f"{run}-b", "ts": now, "features": wide}, blocking=True)
    older = {"id": f"{run}-old", "ts": now, "features": {"x": 0.5}}
    add("features-older", "FeatureEvent", older, "history/FeatureEvent.avsc")
    newer_value = {"id": f"{run}-new", "ts": now, "features": {"x": 0.5}, "source": "java"}
    add("features-newer", "FeatureEvent", newer_value, newer("FeatureEvent"), "unknown")
    nan = {"id": f"{run}-nan", "ts": now, "features": {"x": float("nan")}}
    add("features-nan", "FeatureEvent", nan, expect="invalid")
    for i, label in enumerate([True, False, True, False]):
        add(f"labels-{i}", "Label", {"id": f"{run}-{i}", "ts": now + 10 + i, "label": label})
    add("labels-old", "Label", {"id": f"{run}-old", "ts": now + 20, "label": True})
    label_newer = {"id": f"{run}-new", "ts": now, "label": True, "source": "j"}
    add("labels-newer", "Label", label_newer, newer("Label"), "unknown")
    for i, label in enumerate(
        [7, 2.5, "cat"]
    ):  # the other branches: decode-only (the model's target is boolean)
        add(f"labeltypes-{i}", "Label", {"id": f"{run}-t{i}", "ts": now, "label": label}, expect="offline")
    add("control-set", "ControlCommand", _signed(settings, "set", {"release_every": "37"}, now, f"{run}-c1"))
    unsigned = {
        "model": "default",
        "command": "pause_learning",
        "ts": now,
    }  # args, id, key_id, signature: defaults
    add("control-defaults", "ControlCommand", unsigned, expect="offline")
    many = {
        f"arg_{i:02d}": f"value-{i}" for i in range(30)
    }  # no such settings: the trainer answers "refused"
    blocks = _signed(settings, "set", many, now, f"{run}-c3")
    add("control-blocks", "ControlCommand", blocks, expect="answered", blocking=True)
    later = _signed(settings, "set", {"release_every": "38"}, now, f"{run}-c2") | {"source": "java"}
    add("control-newer", "ControlCommand", later, newer("ControlCommand"), "unknown")
    Path(out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} cases (run {run}) in {out}")


def same(a: Any, b: Any, path: str = "") -> list[str]:
    """Where ``a`` and ``b`` differ, with types (1 != 1.0 != True) and the sign of zero compared."""
    if type(a) is not type(b):
        return [f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})"]
    if isinstance(a, dict):
        if list(a) != list(b) and set(a) != set(b):
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in same(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, float):
        if a != b or math.copysign(1, a) != math.copysign(1, b):
            return [f"{path}: {a!r} != {b!r}"]
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def load_cases(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def offline(cases_file: str, bindir: str) -> int:
    codec = default_codec()
    bad = 0
    for case in load_cases(cases_file):
        data = (Path(bindir) / f"{case['name']}.bin").read_bytes()
        record, expect = case["record"], case["expect"]
        problems: list[str] = []
        try:
            got = codec.decode(record, data)
        except SchemaError as exc:
            got, error = None, str(exc)
        if expect == "unknown":
            fp = data[2:10].hex()
            if got is not None or fp not in error:
                problems.append(f"expected an unknown-fingerprint error naming {fp}, got {got or error}")
        elif (
            expect == "invalid"
        ):  # e.g. a NaN double: Java writes it, driftline refuses it (doubles must be finite)
            if got is not None or "must be finite" not in error:
                problems.append(f"expected a refusal of a non-finite double, got {got or error}")
        elif got is None:
            problems.append(f"driftline cannot decode Java's bytes: {error}")
        else:
            value = {
                k: v
                for k, v in case["value"].items()
                if k in {f["name"] for f in codec.schema(record)["fields"]}
            }
            problems += same(got, codec.validate(record, value))
            if case["schema"] == f"{record}.avsc" and not case.get("blocking"):
                mine = codec.encode(record, case["value"])
                if mine != data:
                    problems.append(
                        f"driftline encodes other bytes:\n  java     {data.hex()}\n  driftline {mine.hex()}"
                    )
        bad += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {case['name']}" + "".join(f"\n    {p}" for p in problems))
    return bad


def publish(cases_file: str, bindir: str) -> int:
    settings = load_settings()
    with EventProducer(settings) as producer:
        for case in load_cases(cases_file):
            if case["expect"] == "offline":
                continue
            topic = case["name"].split("-", 1)[0]
            value = case["value"]
            key = settings.model.name if topic == "control" else (value.get("key") or value["id"])
            data = (Path(bindir) / f"{case['name']}.bin").read_bytes()
            producer.produce_bytes(settings.topic(topic), data, key)
        producer.flush()
        print(f"published {producer.sent} records, {producer.failed} failed")
        return int(producer.failed > 0)


def dump(outdir: str) -> None:
    settings = load_settings()
    conf = client_config(
        settings, **{"group.id": f"wirecheck-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
    )
    consumer = Consumer(conf | {"isolation.level": "read_committed"})
    try:
        for name in TOPIC_RECORDS:
            topic = settings.topic(name)
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            folder = Path(outdir) / name
            folder.mkdir(parents=True, exist_ok=True)
            count = 0
            for p in meta.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high <= low:
                    continue
                consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    msg = consumer.poll(1.0)
                    if msg is None or msg.error():
                        if consumer.position([TopicPartition(topic, p)])[0].offset >= high:
                            break
                        continue
                    (folder / f"{p}-{msg.offset():09d}.bin").write_bytes(msg.value() or b"")
                    count += 1
                    if msg.offset() >= high - 1:
                        break
            print(f"{name}: {count} records")
    finally:
        consumer.close()


def compare(dumpdir: str, java_jsonl: str) -> int:
    codec = default_codec()
    bad = total = 0
    for line in Path(java_jsonl).read_text(encoding="utf-8").splitlines():
        j = json.loads(line)
        data = (Path(dumpdir) / j["topic"] / j["file"]).read_bytes()
        record = TOPIC_RECORDS[j["topic"]]
        total += 1
        try:
            mine: Any = codec.to_jsonable(record, codec.decode(record, data, allow_json=True))
        except SchemaError as exc:
            mine = exc
        if data[:2] != b"\xc3\x01":
            continue  # JSON on an input topic: not Avro, nothing for Java to read
        if isinstance(mine, SchemaError) and "must be finite" in str(mine) and j["ok"]:
            print(
                f"note {j['topic']}/{j['file']}: Java reads a non-finite double that driftline refuses (contract)"
            )
            continue
        if isinstance(mine, SchemaError) or not j["ok"]:
            both = isinstance(mine, SchemaError) and not j["ok"]
            if not both:
                bad += 1
                print(f"FAIL {j['topic']}/{j['file']}: driftline {mine!r} java {j.get('error') or 'ok'}")
            continue
        problems = same(mine, j["value"])
        if problems:
            bad += 1
            print(f"FAIL {j['topic']}/{j['file']}: " + "; ".join(problems[:5]))
    print(f"compared {total} records: {bad} differ")
    return bad


def verify(cases_file: str, dumpdir: str) -> int:
    codec = default_codec()

    def read(topic: str) -> list[dict[str, Any]]:
        out = []
        for f in sorted((Path(dumpdir) / topic).glob("*.bin")):
            with contextlib.suppress(SchemaError):  # undecodable records are the dead letters' business
                out.append(codec.decode(TOPIC_RECORDS[topic], f.read_bytes(), allow_json=True))
        return out

    predicted = {p["id"] for p in read("predictions")}
    trained = {t["id"] for t in read("training")}
    dead = read("deadletter")
    bad = 0
    for case in load_cases(cases_file):
        topic, value, expect = case["name"].split("-", 1)[0], case["value"], case["expect"]
        if expect == "offline":
            continue
        if topic == "features":
            ok = (value["id"] in predicted) == (expect == "ok")
            what = f"predicted={value['id'] in predicted}"
        elif topic == "labels":
            ok = (value["id"] in trained) == (expect == "ok")
            what = f"trained={value['id'] in trained}"
        else:
            from streams.control import wait_reply

            reply = wait_reply(load_settings(), value["id"], 5) if expect in ("ok", "answered") else None
            outcome = (reply or {}).get("outcome")
            ok = outcome == "ok" if expect == "ok" else (reply is not None) == (expect == "answered")
            what = f"trainer's answer: {outcome} {(reply or {}).get('message', '')}"
        if expect in ("unknown", "invalid"):
            why = "unknown writer" if expect == "unknown" else "must be finite"
            named = [d["error"] for d in dead if d["source_topic"].endswith(topic) and why in d["error"]]
            ok = ok and bool(named)
            what += f"; dead letters: {named[:1]}"
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {case['name']}: {what}")
    return bad


def pick(dumpdir: str, java_jsonl: str, outdir: str) -> None:
    """Golden files of the other direction: per topic a few Avro records of a dump (the first, the largest and one
        holding the "every-type" features; models: the two smallest), copied to OUTDIR/<topic>-<file>.bin, with
        Java's decoding of each in OUTDIR/java-decoded.jsonl. Control: the last record only (run ``driftline models
    set ...`` after the Java records, so that one is driftline's)."""
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for line in Path(java_jsonl).read_text(encoding="utf-8").splitlines():
        j = json.loads(line)
        data = (Path(dumpdir) / j["topic"] / j["file"]).read_bytes()
        if j["ok"] and data[:2] == b"\xc3\x01":
            by_topic.setdefault(j["topic"], []).append(j | {"size": len(data), "data": data})
    Path(outdir).mkdir(parents=True, exist_ok=True)
    lines = []
    for topic, rows in sorted(by_topic.items()):
        if topic == "models":
            chosen = sorted(rows, key=lambda r: r["size"])[:2]
        elif (
            topic == "control"
        ):  # the Java records went there first: the last one is `driftline models set`'s
            chosen = rows[-1:]
        elif topic in (
            "features",
            "labels",
        ):  # the first: `driftline produce synthetic` (the cases are Java's)
            chosen = rows[:1]
        else:
            # Not the blocked case's records: the scorer copies a FeatureEvent's map bytes as written into its
            # Prediction (valid Avro, which Java reads, but not the bytes driftline's encoder would write).
            rows = [r for r in rows if not str(r["value"].get("id", "")).endswith("-b")]
            chosen = [rows[0], max(rows, key=lambda r: r["size"])]
            chosen += [r for r in rows if "emoji" in json.dumps(r["value"], ensure_ascii=False)][:1]
        seen = set()
        for row in chosen:
            if row["file"] in seen:
                continue
            seen.add(row["file"])
            name = f"{topic}-{Path(row['file']).stem}.bin"
            (Path(outdir) / name).write_bytes(row["data"])
            lines.append(
                json.dumps({"topic": topic, "file": name, "value": row["value"]}, ensure_ascii=False)
            )
    (Path(outdir) / "java-decoded.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} records in {outdir}")


def main(argv: list[str]) -> int:
    cmd, *args = argv
    if cmd == "cases":
        cases(*args)
        return 0
    if cmd == "pick":
        pick(*args)
        return 0
    if cmd == "dump":
        dump(*args)
        return 0
    return int(
        bool({"offline": offline, "publish": publish, "compare": compare, "verify": verify}[cmd](*args))
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
