"""Session 33 (contract33): CONTRACT.md checked from outside, against a running stack and CLI-started workers.

    PYTHONPATH=$PWD DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:17092 DRIFTLINE_REDIS_URL=redis://127.0.0.1:17379/0 \
      DRIFTLINE_SIGNING_KEY=<64 hex> /work/main/.venv/bin/python docs/experiments/contract33.py \
      --prefix c33a. --metrics-url http://127.0.0.1:17108/metrics [--task classification|regression] [--encoding avro]

Assumes a `driftline worker --role all` (or separate roles: then name every worker's metrics URL, comma-separated)
runs with the same environment, prefix and `--metrics-port`. Uses only confluent-kafka, fastavro (for the Avro
bodies) and the `.avsc` files: the CRC-64-AVRO fingerprint and the single-object framing are computed here from the
Avro spec, not with driftline's codec. Data nobody has seen: new feature names, string categories, missing values,
multi-class string labels (or a regression target), JSON and Avro inputs, an older writer schema, labels before
their events, duplicate ids, a feature shift, junk. Prints one line per check: PASS/FAIL, the promise and what
happened; exit 1 when any check fails. Results and findings: docs/experiments/contract33.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import io
import json
import random
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
RESULTS: list[tuple[bool, str, str]] = []


def check(ok: bool, promise: str, detail: str = "") -> bool:
    RESULTS.append((bool(ok), promise, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {promise}" + (f"  [{detail}]" if detail else ""), flush=True)
    return bool(ok)


# --- Avro single-object encoding, from the spec ---------------------------------------------------------------
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


def load_schema(name: str, folder: Path = SCHEMAS) -> tuple[Any, bytes]:
    raw = json.loads((folder / f"{name}.avsc").read_text())
    parsed = fastavro.parse_schema(raw)
    canonical = fastavro.schema.to_parsing_canonical_form(raw)
    fp = struct.pack("<Q", crc64_avro(canonical.encode()))
    return parsed, fp


RECORDS = [
    "FeatureEvent",
    "Label",
    "Prediction",
    "TrainingExample",
    "ModelRelease",
    "DriftEvent",
    "DeadLetter",
    "ControlCommand",
]
SCHEMA = {n: load_schema(n) for n in RECORDS}
BY_FP = {fp: (n, parsed) for n, (parsed, fp) in SCHEMA.items()}


OLD = {n: load_schema(n, SCHEMAS / "history") for n in ("FeatureEvent", "Label")}


def soe_encode(name: str, record: dict[str, Any], *, old: bool = False) -> bytes:
    parsed, fp = (OLD if old else SCHEMA)[name]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record)
    return b"\xc3\x01" + fp + buf.getvalue()


def soe_decode(value: bytes) -> tuple[str, dict[str, Any]]:
    """(record name, record) of a single-object encoded value, resolving the writer schema by fingerprint."""
    if value[:2] != b"\xc3\x01":
        raise ValueError(f"not single-object encoded: starts {value[:2]!r}")
    fp = value[2:10]
    if fp not in BY_FP:
        raise ValueError(f"unknown fingerprint {fp.hex()}")
    name, parsed = BY_FP[fp]
    return name, fastavro.schemaless_reader(io.BytesIO(value[10:]), parsed)  # type: ignore[return-value]


# --- Kafka -----------------------------------------------------------------------------------------------------
def read_all(bootstrap: str, topic: str, *, settle: float = 3.0) -> list[Any]:
    """Every committed record of ``topic`` (read_committed), from the beginning to its current end."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"c33-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    md = c.list_topics(topic, timeout=10)
    parts = list(md.topics[topic].partitions)
    ends = {}
    for p in parts:
        _lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = hi
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out = []
    done = {p for p in parts if ends[p] == 0}
    deadline = time.time() + 30
    idle_since = time.time()
    while len(done) < len(parts) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            if time.time() - idle_since > settle:
                break  # transaction markers: the last offsets hold no record
            continue
        idle_since = time.time()
        if m.error():
            continue
        out.append(m)
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    c.close()
    return out


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = _scrape(url)
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, val = line.rpartition(" ")
        if "{" in head:
            name, _, rest = head.partition("{")
            labels = {}
            for part in rest.rstrip("}").split('",'):
                if not part:
                    continue
                k, _, v = part.partition("=")
                labels[k] = v.strip('"')
            key = (name, frozenset(labels.items()))
        else:
            key = (head, frozenset())
        out[key] = out.get(key, 0.0) + float(val)  # summed over the workers scraped
    return out


def _scrape(urls: str) -> str:
    """The metrics text of every worker in ``urls`` (comma-separated: one per process when roles run apart)."""
    return "\n".join(urllib.request.urlopen(u, timeout=10).read().decode() for u in urls.split(","))


def msum(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in m.items() if n == name and all((k, w) in ls for k, w in labels.items()))


def cli(
    *args: str, env_extra: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from streams.cli import main; sys.exit(main(sys.argv[1:]))",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


# --- the scenario ------------------------------------------------------------------------------------------------
CLASSES = ("sunny", "cloudy", "rainy")
WIND = ("N", "E", "S", "W")


def make_events(run: str, n: int, task: str, seed: int) -> list[dict[str, Any]]:
    """FeatureEvents with new names, a string category, booleans, longs, missing values; their labels in ``_label``."""
    rng = random.Random(seed)
    base = 1_700_000_000_000
    events = []
    for i in range(n):
        hum = rng.uniform(0, 100) + (
            150 if i >= n * 0.6 else 0
        )  # a feature drift (data drift, no labels needed)
        wind = rng.choice(WIND)
        feats: dict[str, Any] = {
            "humidity_pct": round(hum, 3),
            "wind_dir": wind,
            "is_weekend": rng.random() < 0.3,
            "visitors": rng.randint(0, 500),
        }
        if i % 10 == 3:
            feats["humidity_pct"] = None  # a missing value written as null
        if i % 10 == 7:
            del feats["visitors"]  # a missing value written as an absent key
        if task == "regression":
            label: Any = round(0.3 * hum + (5.0 if wind == "S" else 0.0) + rng.gauss(0, 1), 4)
        else:
            label = CLASSES[0] if hum < 35 else CLASSES[1] if hum < 70 or wind == "N" else CLASSES[2]
        events.append(
            {
                "id": f"{run}-{i}",
                "ts": base + i * 1000,
                "key": f"station-{i % 7}",
                "features": feats,
                "_label": label,
            }
        )
    return events


class Sent:
    """What was produced, with the partition and offset Kafka gave each record."""

    def __init__(self) -> None:
        self.delivered: dict[str, tuple[str, int, int]] = {}

    def cb(self, tag: str):
        def _cb(err: Any, msg: Any) -> None:
            if err is None:
                self.delivered[tag] = (msg.topic(), msg.partition(), msg.offset())

        return _cb


def run(args: argparse.Namespace) -> int:
    import os

    bootstrap = os.environ["DRIFTLINE_KAFKA_BOOTSTRAP"]
    prefix = args.prefix
    os.environ["DRIFTLINE_TOPIC_PREFIX"] = prefix  # for the CLI calls
    t = {
        name: prefix + name
        for name in (
            "features",
            "labels",
            "predictions",
            "training",
            "models",
            "drift",
            "control",
            "deadletter",
            "changelog",
            "audit",
        )
    }
    runid = f"c33{uuid.uuid4().hex[:6]}"
    task = args.task
    events = make_events(runid, args.events, task, args.seed)
    other_model = f"{runid}-other"
    for e in events[-40:]:
        e["model"] = other_model  # routed by the record's own `model` field
    m0 = metrics(args.metrics_url)

    # -- topics, from outside (admin client) --
    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(timeout=10)
    for name, full in t.items():
        check(full in md.topics, f"topic {name} exists as {full}")
    res = [ConfigResource(ConfigResource.Type.TOPIC, full) for full in t.values() if full in md.topics]
    conf = {r.name: f.result() for r, f in admin.describe_configs(res).items()}
    want = {"models": "compact", "control": "compact", "changelog": "compact"}
    for name, full in t.items():
        if full not in conf:
            continue
        policy = conf[full]["cleanup.policy"].value
        check(
            policy == want.get(name, "delete"),
            f"topic {name} cleanup.policy {want.get(name, 'delete')}",
            policy,
        )

    prod = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    sent = Sent()
    labelled = [e for i, e in enumerate(events) if i % 5 != 4]  # every fifth event never gets a label
    early = labelled[:30]  # labels published before their events

    def send_label(e: dict[str, Any], j: int, tag: str) -> None:
        lab = {"id": e["id"], "ts": e["ts"] + 5000, "label": e["_label"]}
        if j % 2 == 0:
            prod.produce(t["labels"], key=e["id"], value=json.dumps(lab).encode(), on_delivery=sent.cb(tag))
        else:
            prod.produce(t["labels"], key=e["id"], value=soe_encode("Label", lab), on_delivery=sent.cb(tag))

    for j, e in enumerate(early):
        send_label(e, j, f"label:{e['id']}")
    prod.flush(10)
    time.sleep(2.0)
    for i, e in enumerate(events):
        rec = {k: v for k, v in e.items() if k != "_label"}
        if i % 2 == 0:
            if i % 50 == 0:
                del rec["ts"]  # JSON input without an event time
            value = json.dumps(rec).encode()
        elif i % 25 == 5 and "model" not in rec:  # an older writer schema (schemas/history: no `model`)
            value = soe_encode("FeatureEvent", rec, old=True)
        else:
            rec.setdefault("model", None)
            value = soe_encode("FeatureEvent", rec)
        prod.produce(t["features"], key=e["key"], value=value, on_delivery=sent.cb(f"event:{e['id']}"))
        if i in (10, 1001):  # a duplicate event id (labelled before / after it), sent again at once
            prod.produce(t["features"], key=e["key"], value=value, on_delivery=sent.cb(f"dup:{e['id']}"))
    prod.flush(10)

    # junk on every input topic, each record's partition and offset recorded
    junk = {
        "features:notjson": (t["features"], b"k-notjson", b"{not json"),
        "features:list": (
            t["features"],
            b"k-list",
            json.dumps({"id": f"{runid}-j1", "features": [1, 2]}).encode(),
        ),
        "features:noid": (t["features"], None, json.dumps({"features": {"humidity_pct": 1.0}}).encode()),
        "features:nested": (
            t["features"],
            b"k-nested",
            json.dumps({"id": f"{runid}-j2", "features": {"a": {"b": 1}}}).encode(),
        ),
        "features:badfp": (t["features"], b"k-badfp", b"\xc3\x01" + b"\x00" * 8 + b"\x02"),
        "features:emptyid": (
            t["features"],
            b"k-emptyid",
            json.dumps({"id": "", "features": {"x": 1}}).encode(),
        ),
        "labels:nolabel": (t["labels"], b"k-nolabel", json.dumps({"id": f"{runid}-0", "ts": 1}).encode()),
        "labels:noid": (t["labels"], None, json.dumps({"label": CLASSES[0]}).encode()),
        "labels:utf8": (t["labels"], b"k-utf8", b"\xff\xfe\x00garbage"),
    }
    for tag, (topic, key, value) in junk.items():
        prod.produce(topic, key=key, value=value, on_delivery=sent.cb(tag))
    prod.flush(10)
    time.sleep(3.0)

    # a label the model cannot learn: text for a regression target, a number where string classes came
    odd = [e for i, e in enumerate(events) if i % 5 == 4 and "model" not in e][:1]
    odd_label = "abc" if task == "regression" else 7
    for e in odd:
        prod.produce(t["labels"], key=e["id"], value=json.dumps({"id": e["id"], "label": odd_label}).encode())
    rest = labelled[30:]
    for j, e in enumerate(rest):
        send_label(e, j, f"label:{e['id']}")
        if j == 5:  # a duplicate label
            send_label(e, j, f"duplabel:{e['id']}")
    prod.flush(10)

    # -- wait for the pipeline to answer --
    want_ids = {e["id"] for e in events}
    labelled_ids = {e["id"] for e in labelled}
    deadline = time.time() + args.wait
    preds: list[Any] = []
    training: list[Any] = []
    while time.time() < deadline:
        preds = read_all(bootstrap, t["predictions"], settle=1.5)
        training = read_all(bootstrap, t["training"], settle=1.5)
        pid = {p.key().decode() for p in preds if p.key()}
        tid = set()
        for m in training:
            with contextlib.suppress(Exception):  # training is Avro whatever the output encoding
                tid.add(_decode(m.value(), "avro")[1]["id"])
        if want_ids <= pid and labelled_ids <= tid:
            break
        time.sleep(3)
    m1 = metrics(args.metrics_url)

    # -- predictions --
    by_id: dict[str, list[dict[str, Any]]] = {}
    enc_ok, key_ok, undecodable = 0, 0, []
    for m in preds:
        try:
            name, rec = _decode(m.value(), args.encoding)
        except Exception as exc:
            undecodable.append(str(exc))
            continue
        if name in ("Prediction", "json"):
            enc_ok += 1
        if m.key() is not None and m.key().decode() == rec.get("id"):
            key_ok += 1
        by_id.setdefault(rec["id"], []).append(rec)
    mine = {i: v for i, v in by_id.items() if i.startswith(runid)}
    check(
        not undecodable,
        f"predictions decode as {args.encoding} (single-object Prediction when avro)",
        f"{len(undecodable)} undecodable, e.g. {undecodable[:1]}",
    )
    check(key_ok == len(preds), "predictions keyed by event id", f"{key_ok}/{len(preds)}")
    check(
        want_ids <= set(mine),
        "one Prediction per event (JSON and Avro inputs)",
        f"missing {len(want_ids - set(mine))} of {len(want_ids)}",
    )
    ev = {e["id"]: e for e in events}
    bad_fields, bad_ts, bad_model, bad_pred, bad_proba = [], [], [], [], []
    no_ts = {events[k]["id"] for k in range(0, len(events), 50)}  # sent as JSON without `ts`
    for i, recs in mine.items():
        e = ev.get(i)
        for r in recs:
            if not (
                isinstance(r.get("version"), int)
                and isinstance(r.get("model"), str)
                and isinstance(r.get("ts"), int)
            ):
                bad_fields.append(i)
            if e is not None and i not in no_ts and r.get("ts") != e["ts"]:
                bad_ts.append((i, r.get("ts"), e["ts"]))
            expect_model = e.get("model") or "default" if e else None
            if e is not None and r.get("model") != expect_model:
                bad_model.append((i, r.get("model"), expect_model))
            p = r.get("prediction")
            if r.get("version", 0) <= 1 and p is None:
                continue  # no release yet, or the initial one that has learned nothing
            if r.get("version", 0) == 0:
                if p is not None:
                    bad_pred.append((i, "v0 but prediction", p))
            elif task == "classification":
                if p not in CLASSES:
                    bad_pred.append((i, p))
                proba = r.get("proba")
                if proba is not None and (
                    not set(proba) <= set(CLASSES)
                    or abs(sum(proba.values()) - 1) > 1e-6
                    or any(not isinstance(v, float) for v in proba.values())
                ):
                    bad_proba.append((i, proba))
            elif not isinstance(p, float):
                bad_pred.append((i, type(p).__name__, p))
    check(not bad_fields, "Prediction: id string, ts long, model string, version long", str(bad_fields[:3]))
    check(not bad_ts, "Prediction ts = the event's time", str(bad_ts[:3]))
    check(
        not bad_model,
        "Prediction names its model (the event's `model` field, else default)",
        str(bad_model[:3]),
    )
    check(not bad_pred, f"Prediction.prediction fits the task ({task}; null at version 0)", str(bad_pred[:3]))
    check(
        not bad_proba,
        "Prediction.proba: a map of double over the classes, summing to 1, or null",
        str(bad_proba[:2]),
    )
    served = [r for recs in mine.values() for r in recs if r.get("version", 0) > 0]
    check(
        len(served) > len(mine) // 3,
        "a model is served (version > 0) for a good share of events",
        f"{len(served)} of {sum(len(v) for v in mine.values())}",
    )
    notime = [events[k]["id"] for k in range(0, len(events), 50)]
    nt_ok = all(abs(r["ts"] - time.time() * 1000) < 3_600_000 for i in notime for r in mine.get(i, []))
    check(
        nt_ok,
        "JSON FeatureEvent without ts: Prediction ts is the time of sending (not 0)",
        str([mine.get(i, [{}])[0].get("ts") for i in notime[:3]]),
    )

    # -- training examples --
    tex: dict[str, list[dict[str, Any]]] = {}
    t_undec, t_key_bad = [], []
    for m in training:
        try:
            name, rec = _decode(m.value(), "avro")
        except Exception as exc:
            t_undec.append(str(exc))
            continue
        if name != "TrainingExample":
            t_undec.append(name)
            continue
        if not rec["id"].startswith(runid):
            continue
        if m.key() is None or m.key().decode() != rec.get("model"):
            t_key_bad.append((rec["id"], m.key(), rec.get("model")))
        tex.setdefault(rec["id"], []).append(rec)
    check(not t_undec, "training: single-object TrainingExample", str(t_undec[:2]))
    check(not t_key_bad, "training keyed by model name", str(t_key_bad[:3]))
    check(
        labelled_ids <= set(tex),
        "every labelled event becomes a TrainingExample (labels before events too)",
        f"missing {len(labelled_ids - set(tex))}; early missing "
        f"{len({e['id'] for e in early} - set(tex))} of {len(early)}",
    )
    dups = {i: len(v) for i, v in tex.items() if len(v) > 1}
    check(not dups, "a duplicate label (or event id) yields one TrainingExample", str(list(dups.items())[:3]))
    unl = {e["id"] for e in events} - labelled_ids - {e["id"] for e in odd}
    check(
        not (unl & set(tex)),
        "no TrainingExample for an event never labelled",
        str(sorted(unl & set(tex))[:3]),
    )
    t_bad = []
    odd_ids = {e["id"] for e in odd}
    for i, recs in tex.items():
        if i in odd_ids:  # its label is the unlearnable one, checked below
            continue
        e, r = ev[i], recs[0]
        if r["label"] != e["_label"]:
            t_bad.append((i, "label", r["label"], e["_label"]))
        if "ts" in e and i not in notime and r["event_ts"] != e["ts"]:
            t_bad.append((i, "event_ts", r["event_ts"], e["ts"]))
        if r["label_ts"] != e["ts"] + 5000:
            t_bad.append((i, "label_ts", r["label_ts"], e["ts"] + 5000))
        want_feats = {k: v for k, v in e["features"].items()}
        got = {k: v for k, v in r["features"].items()}
        if {k: v for k, v in got.items() if v is not None} != {
            k: v for k, v in want_feats.items() if v is not None
        }:
            t_bad.append((i, "features", got, want_feats))
        served_by = [p for p in mine.get(i, [])]
        if served_by and not any(
            p["version"] == r["version"] and p["prediction"] == r["prediction"] for p in served_by
        ):
            t_bad.append(
                (
                    i,
                    "prediction/version",
                    (r["prediction"], r["version"]),
                    [(p["prediction"], p["version"]) for p in served_by],
                )
            )
        if r.get("model") != (e.get("model") or "default"):
            t_bad.append((i, "model", r.get("model")))
    check(
        not t_bad,
        "TrainingExample: features, label, the served prediction and version, event_ts, label_ts",
        f"{len(t_bad)} bad, e.g. {t_bad[:3]}",
    )

    # -- dead letters --
    dls = read_all(bootstrap, t["deadletter"], settle=1.5)
    dl_recs = []
    for m in dls:
        try:
            name, rec = _decode(m.value(), "avro")
        except Exception as exc:
            check(False, "deadletter record decodes as single-object DeadLetter", str(exc))
            continue
        dl_recs.append((m, rec))
    for tag, (_topic, key, value) in junk.items():
        where = sent.delivered.get(tag)
        if where is None:
            check(False, f"junk {tag} was delivered", "no delivery report")
            continue
        hit = [
            (m, r)
            for m, r in dl_recs
            if r["source_topic"] == where[0] and r["partition"] == where[1] and r["offset"] == where[2]
        ]
        if not check(
            bool(hit),
            f"bad input {tag} -> deadletter with source topic, partition, offset",
            f"{where}; deadletter has {len(dl_recs)} records",
        ):
            continue
        m, r = hit[0]
        problems = []
        if r["value"] != value:
            problems.append("value differs")
        if r["key"] != key:
            problems.append(f"key {r['key']!r} != {key!r}")
        if m.key() != key:
            problems.append(f"record key {m.key()!r} != original {key!r}")
        if not (isinstance(r["error"], str) and r["error"]):
            problems.append("no error")
        if not isinstance(r["ts"], int):
            problems.append("ts")
        check(
            not problems,
            f"DeadLetter of {tag}: key, value, error, ts (error: {r['error'][:70]!r})",
            "; ".join(problems),
        )
    refused = [
        r for _m, r in dl_recs if r["source_topic"] == t["training"] and odd[0]["id"].encode() in r["value"]
    ]
    check(
        bool(refused) and "refused label" in refused[0]["error"],
        f"a label the model cannot learn ({odd_label!r} for {task}) is dead-lettered by the trainer with the reason",
        refused[0]["error"][:100] if refused else "no dead letter from training",
    )
    by_src: dict[str, float] = {}
    for topic in (t["features"], t["labels"]):
        by_src[topic] = msum(m1, "driftline_deadletters_total", source_topic=topic) - msum(
            m0, "driftline_deadletters_total", source_topic=topic
        )
    n_f = sum(1 for k in junk if k.startswith("features"))
    n_l = sum(1 for k in junk if k.startswith("labels"))
    check(
        by_src[t["features"]] >= n_f and by_src[t["labels"]] >= n_l,
        "driftline_deadletters_total rises by source_topic",
        str(by_src),
    )
    return _rest(args, bootstrap, t, runid, other_model, m0, preds, tex)


def _decode(value: bytes, encoding: str) -> tuple[str, dict[str, Any]]:
    if encoding == "json":
        return "json", json.loads(value)
    return soe_decode(value)


REASONS = {"initial", "incremental", "challenger", "manual", "rollback"}


def _rest(
    args: argparse.Namespace,
    bootstrap: str,
    t: dict[str, str],
    runid: str,
    other_model: str,
    m0: Any,
    preds: list[Any],
    tex: dict[str, Any],
) -> int:
    import os

    # -- models --
    rels: dict[str, list[dict[str, Any]]] = {}
    problems = []
    for m in read_all(bootstrap, t["models"], settle=1.5):
        if m.value() is None:
            continue  # a tombstone
        name, r = soe_decode(m.value())
        if name != "ModelRelease":
            problems.append(f"record {name}")
            continue
        if m.key() is None or m.key().decode() != r["model"]:
            problems.append(f"key {m.key()!r} for model {r['model']}")
        rels.setdefault(r["model"], []).append(r)
    check(not problems, "models: single-object ModelRelease keyed by model name", str(problems[:3]))
    check(
        "default" in rels and other_model in rels,
        "a release for the default model and the routed one",
        str(sorted(rels)),
    )
    key = os.environ.get("DRIFTLINE_SIGNING_KEY", "").encode()
    for model in ("default", other_model):
        rs = rels.get(model, [])
        versions = [r["version"] for r in rs]
        check(
            versions == sorted(set(versions)) and all(v >= 1 for v in versions),
            f"{model[:14]}: ModelRelease versions strictly increasing",
            str(versions[:20]),
        )
        bad = []
        for r in rs:
            if r["reason"] not in REASONS:
                bad.append(("reason", r["reason"]))
            if r["parent"] is not None and r["parent"] >= r["version"]:
                bad.append(("parent", r["parent"], r["version"]))
            if "n_learned" not in r["metrics"] or any(
                not isinstance(v, float) for v in r["metrics"].values()
            ):
                bad.append(("metrics", sorted(r["metrics"])[:5]))
            if (r["artifact"] is None) == (r["artifact_ref"] is None):
                bad.append(("artifact xor artifact_ref", r["artifact"] is None, r["artifact_ref"]))
            if r["artifact"] is not None and hashlib.sha256(r["artifact"]).hexdigest() != r["sha256"]:
                bad.append(("sha256", r["version"]))
            if len(r["signature"]) != 64 or any(c not in "0123456789abcdef" for c in r["signature"]):
                bad.append(("signature hex", r["signature"][:10]))
            if not isinstance(r["created_at"], int) or not isinstance(r["format"], str):
                bad.append(("created_at/format",))
            if key and r["artifact"] is not None and r.get("header"):
                macs = {
                    hmac.new(key, r["header"].encode() + r["artifact"], hashlib.sha256).hexdigest(),
                    hmac.new(key, r["header"].encode() + b"\n" + r["artifact"], hashlib.sha256).hexdigest(),
                }
                if r["signature"] not in macs:
                    bad.append(("hmac not over header+artifact as guessed", r["version"]))
        check(
            not bad,
            f"{model[:14]}: ModelRelease reason/parent/metrics(n_learned)/artifact/sha256/signature",
            str(bad[:3]),
        )
        if rs:
            last = rs[-1]
            check(
                last["metrics"].get("n_learned", 0) > 0,
                f"{model[:14]}: n_learned > 0 in the last release",
                str(last["metrics"].get("n_learned")),
            )

    # -- drift --
    drift = read_all(bootstrap, t["drift"], settle=1.5)
    signals = set()
    for m in drift:
        with contextlib.suppress(Exception):
            signals.add(_decode(m.value(), args.encoding)[1].get("signal"))
    check(
        "feature:humidity_pct" in signals,
        f"a DriftEvent for the shifted feature ({args.encoding})",
        str(sorted(signals)),
    )
    for m in drift:
        name, r = _decode(m.value(), args.encoding)
        ok = (
            m.key() is not None
            and m.key().decode() == r["model"]
            and isinstance(r["version"], int)
            and isinstance(r["detector"], str)
            and isinstance(r["ts"], int)
            and isinstance(r["details"], dict)
            and (
                r["signal"] in ("error", "loss")
                or r["signal"].startswith(("feature:", "feature_type:", "label:"))
            )
        )
        check(ok, f"DriftEvent keyed by model, fields typed ({r['detector']} {r['signal']})", str(r)[:160])

    # -- control, unauthenticated --
    m_before = metrics(args.metrics_url)
    prod = Producer({"bootstrap.servers": bootstrap})
    cmd = {"model": "default", "command": "pause_learning", "args": {}, "ts": int(time.time() * 1000)}
    prod.produce(
        t["control"],
        key=b"default",
        value=json.dumps(cmd).encode(),
        partition=_murmur2_partition(b"default", _partitions(bootstrap, t["control"])),
    )
    prod.flush(10)
    time.sleep(6)
    m_after = metrics(args.metrics_url)
    refused = msum(m_after, "driftline_control_refused_total", model="default") - msum(
        m_before, "driftline_control_refused_total", model="default"
    )
    check(refused >= 1, "an unauthenticated ControlCommand (JSON) is refused and counted", f"+{refused}")
    paused = msum(m_after, "driftline_learning_paused", model="default")
    check(paused == 0, "... and not applied (learning not paused)", str(paused))

    # -- control, signed here as the README says (no driftline helper) --
    key = os.environ.get("DRIFTLINE_OPERATOR_KEY") or os.environ.get("DRIFTLINE_SIGNING_KEY", "")
    part = _murmur2_partition(b"default", _partitions(bootstrap, t["control"]))
    for command, want_paused in (("pause_learning", 1.0), ("resume_learning", 0.0)):
        cmd = {
            "model": "default",
            "command": command,
            "args": {},
            "ts": int(time.time() * 1000),
            "id": uuid.uuid4().hex,
            "key_id": "k-" + hashlib.sha256(b"driftline-operator-key:" + key.encode()).hexdigest()[:12],
        }
        canonical = json.dumps(cmd, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        cmd["signature"] = hmac.new(key.encode(), canonical, hashlib.sha256).hexdigest()
        prod.produce(t["control"], key=b"default", value=json.dumps(cmd).encode(), partition=part)
        prod.flush(10)
        deadline = time.time() + 20
        paused = -1.0
        while time.time() < deadline:
            paused = msum(metrics(args.metrics_url), "driftline_learning_paused", model="default")
            if paused == want_paused:
                break
            time.sleep(1)
        check(
            paused == want_paused,
            f"a JSON {command} signed by an outside client is applied",
            f"paused={paused}",
        )

    # -- metrics naming --
    names = {n for (n, _ls) in m_after}
    text = _scrape(args.metrics_url)
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, n, kind = line.split(" ", 3)
            types[n] = kind
    bad = [n for n in names if not n.startswith("driftline_")]
    check(not bad, "every metric name starts with driftline_", str(bad[:5]))
    bad = [n for n, k in types.items() if k == "counter" and not n.endswith("_total")]
    check(not bad, "counters end in _total", str(bad))
    readme = (ROOT / "README.md").read_text()
    undocumented = sorted(n for n in types if f"`{n}`" not in readme)
    check(not undocumented, "every metric family served is in the README's table", str(undocumented))
    label_sets: dict[str, set[str]] = {}
    for n, ls in m_after:
        base = n
        for suf in ("_bucket", "_count", "_sum", "_created"):
            if n.endswith(suf) and n[: -len(suf)] in types:
                base = n[: -len(suf)]
        label_sets.setdefault(base, set()).update(k for k, _ in ls if k != "le")
    args.label_sets = label_sets
    print("label sets:", json.dumps({k: sorted(v) for k, v in sorted(label_sets.items())}), flush=True)
    bad = [n for n, k in types.items() if k == "histogram" and not n.endswith(("_seconds", "_size"))]
    check(not bad, "histograms are _seconds (or a documented unitless size)", str(bad))

    # -- tail CLI over every contract topic --
    for name in ("features", "labels", "predictions", "training", "models", "drift", "control", "deadletter"):
        p = cli("tail", name, "-n", "3", "--from-beginning", "--json")
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
        ok = p.returncode == 0 and all(isinstance(json.loads(ln), dict) for ln in lines)
        check(
            ok,
            f"driftline tail {name} -n 3 --from-beginning --json: JSON objects, exit 0",
            f"rc {p.returncode}, {len(lines)} lines, {p.stderr.strip()[-160:]}",
        )
        if name in ("predictions", "deadletter", "features") and ok:
            check(len(lines) == 3, f"tail {name} -n 3 prints 3 records", str(len(lines)))
    p = cli("tail", "predictions", "--json")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    check(p.returncode == 0 and len(lines) == 10, "tail without -n prints the last 10", f"{len(lines)}")
    p = cli("tail", "nosuchtopic")
    check(
        p.returncode != 0 and "features" in (p.stderr + p.stdout),
        "tail of a non-contract topic: error naming the topics",
        f"rc {p.returncode}: {(p.stderr + p.stdout).strip()[-120:]}",
    )
    return 0


def _partitions(bootstrap: str, topic: str) -> int:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    return len(md.topics[topic].partitions)


def _murmur2_partition(key: bytes, n: int) -> int:
    """Java's murmur2 partitioner (what the README asks writers of control to use)."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    length = len(key)
    h = (seed ^ length) & 0xFFFFFFFF
    i = 0
    while length - i >= 4:
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
        i += 4
    rem = length - i
    if rem >= 3:
        h ^= key[i + 2] << 16
    if rem >= 2:
        h ^= key[i + 1] << 8
    if rem >= 1:
        h ^= key[i]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--metrics-url", required=True)
    ap.add_argument("--task", default="classification", choices=("classification", "regression"))
    ap.add_argument("--encoding", default="avro", choices=("avro", "json"))
    ap.add_argument("--events", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=33)
    ap.add_argument("--wait", type=float, default=180)
    args = ap.parse_args()
    run(args)
    failed = [r for r in RESULTS if not r[0]]
    print(f"\n{len(RESULTS) - len(failed)} pass, {len(failed)} fail", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
