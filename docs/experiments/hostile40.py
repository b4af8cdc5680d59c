"""Session 40 (helper hostile40): issues 12 and 14 checked from outside again, with what hostile37/sec35 did not try.

Drives a running pipeline (separate ``score``, ``join`` and ``train`` workers this time, not ``--role all``) only
through Kafka, the CLI and ``/metrics``. New here: records whose key is too large to be dead-lettered whole (600 KB),
800 KB of headers, timestamps at the ends of a long (in the record and as the Kafka timestamp), an empty id,
model names that are paths or carry a newline, terminal escape sequences in ids and dead letters (what ``tail`` and
``status`` print), a JSON object padded with 900 KB of blanks, 60,000 features in one event, Avro maps written
in negative-count blocks (valid Avro), labels replayed after they were learned, a signed control command replayed
(in Avro and re-keyed), the previous release replayed after the newest, pickle gadgets signed with the real key
(functools/operator/builtins/numpy/scipy-free ones, a 100,000-deep nesting), and the trainer's own sealed states on
``changelog`` replayed (older state, another model's key, a tombstone) before a trainer restart. The committed lag
of every consumer group is read from the broker (not the workers' gauge). Then issue 14's extension points: a
learner and a detector of one's own through a launcher, and the bad plugins a user will write.

Run against any stack (env as the tests)::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:15092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:15379/15 PYTHONPATH=$PWD \\
        /work/main/.venv/bin/python docs/experiments/hostile40.py [--no-plugins] [--only-plugins]

Prints a pass/fail table and one JSON line; exit 1 when a row fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile37 as h37

from tests.fault_helpers import make_events, publish, retire, running_all
from tests.pipeline_helpers import KAFKA_BOOTSTRAP, SIGNING_KEY, Pipeline

Sent, send, js, fe, row, ROWS = h37.Sent, h37.send, h37.js, h37.fe, h37.row, h37.ROWS
CODEC = h37.CODEC
PY = sys.executable
PWNED = Path(tempfile.gettempdir()) / f"hostile40-pwned-{os.getpid()}"
ESC = "\x1b[31mRED\x1b]0;pwned-title\x07"
FORGED_LINE = "\n2026-12-07 00:00:00,000 ERROR FORGED-LOG-LINE from an input record"


def avro_fe_negative_blocks(fid: str) -> bytes:
    """A FeatureEvent whose ``features`` map is one block of count -2 followed by its byte size: the Avro spec's
    blocked encoding ("If a block's count is negative, its absolute value is used, and the count is followed
    immediately by a long block size"), which Java writers emit when asked to."""
    z = h37._zigzag

    def s(text: str) -> bytes:
        b = text.encode()
        return z(len(b)) + b

    entries = s("x1") + z(3) + struct.pack("<d", 0.5) + s("x2") + z(3) + struct.pack("<d", 0.25)
    body = s(fid) + z(1_760_000_000_000) + z(0) + z(-2) + z(len(entries)) + entries + z(0) + z(0)
    return CODEC.schema_header("FeatureEvent") + body


def hostile_inputs() -> list[Sent]:
    big_key = os.urandom(600_000)
    wide = {f"w{i}": float(i % 7) for i in range(60_000)}
    out = [
        Sent("features: junk + 600 KB key (dead letter would not fit)", "features", b"\x00junk", key=big_key),
        Sent("features: valid JSON + 600 KB key", "features", js(fe("h40-bigkey")), key=big_key,
             expect="served", fid="h40-bigkey"),
        Sent("features: valid JSON + 800 KB of headers", "features", js(fe("h40-headers")),
             headers=[(f"h{i}", os.urandom(4000)) for i in range(200)], expect="served", fid="h40-headers"),
        Sent("features: JSON ts -2**63", "features", js(fe("h40-tsmin", ts=-(2**63))), expect="dead_or_served",
             fid="h40-tsmin"),
        Sent("features: JSON ts 2**63-1", "features", js(fe("h40-tsmax", ts=2**63 - 1)), expect="dead_or_served",
             fid="h40-tsmax"),
        Sent("features: JSON no ts, empty id", "features", js({"id": "", "features": {"x1": 1.0}}),
             expect="dead_or_served", fid=""),
        Sent("features: JSON model ''", "features", js(fe("h40-m-empty", model="")), expect="dead_or_served",
             fid="h40-m-empty"),
        Sent("features: JSON model '../../etc'", "features", js(fe("h40-m-path", model="../../etc"))),
        Sent("features: JSON model with a newline + forged log line", "features",
             js(fe("h40-m-nl", model="default" + FORGED_LINE))),
        Sent("features: JSON id with terminal escapes", "features", js(fe("h40-esc" + ESC)), expect="served",
             fid="h40-esc" + ESC),
        Sent("features: JSON id over the limit with a forged log line", "features",
             js(fe("h40-longnl" + FORGED_LINE + "x" * 1100))),
        Sent("features: JSON object padded with 900 KB of blanks", "features",
             js(fe("h40-blanks"))[:-1] + b" " * 900_000 + b"}", expect="dead_or_served", fid="h40-blanks"),
        Sent("features: JSON 60,000 features in one event", "features", js(fe("h40-wide", features=wide)),
             expect="dead_or_served", fid="h40-wide"),
        Sent("features: JSON two objects back to back", "features", js(fe("h40-two1")) + js(fe("h40-two2"))),
        Sent("features: JSON float 1e400 (inf without the literal)", "features",
             b'{"id":"h40-1e400","ts":1,"features":{"x1":1e400}}'),
        Sent("features: Avro map in negative-count blocks (valid Avro)", "features",
             avro_fe_negative_blocks("h40-negblock"), expect="served", fid="h40-negblock"),
        Sent("features: Avro + 1 trailing byte", "features", CODEC.encode("FeatureEvent", fe("h40-trail")) + b"\x00"),
        Sent("features: Avro header + JSON body", "features",
             CODEC.schema_header("FeatureEvent") + js(fe("h40-hdrjson"))),
        # labels
        Sent("labels: junk + 600 KB key", "labels", b"\x00junk", key=big_key),
        Sent("labels: JSON float 1e400", "labels", b'{"id":"h40-x","ts":1,"label":1e400}'),
        Sent("labels: JSON ts 2**63-1 for h40-tsmin", "labels", js({"id": "h40-tsmin", "ts": 2**63 - 1,
             "label": True}), expect="not_silent"),
        Sent("labels: JSON ts -2**63 for h40-tsmax", "labels", js({"id": "h40-tsmax", "ts": -(2**63),
             "label": False}), expect="not_silent"),
        Sent("labels: JSON empty id", "labels", js({"id": "", "label": True}), expect="not_silent"),
        # control, training (internal, consumed)
        Sent("control: junk + 600 KB key", "control", b"\x00junk", key=big_key),
        Sent("training: junk + 600 KB key", "training", b"\x00junk", key=big_key),
        # outputs only the CLI reads
        Sent("deadletter: forged DeadLetter with terminal escapes", "deadletter", CODEC.encode("DeadLetter", {
            "source_topic": "x" + ESC, "partition": 0, "offset": 0, "key": ESC.encode(),
            "value": ESC.encode() * 1000, "error": "forged" + ESC + FORGED_LINE, "ts": int(time.time() * 1000)}),
            key=b"default", expect="not_silent"),
        Sent("drift: forged DriftEvent with terminal escapes", "drift", CODEC.encode("DriftEvent", {
            "model": "default", "version": 1, "detector": "adwin", "signal": "error" + ESC,
            "ts": int(time.time() * 1000), "details": {"k" + ESC: ESC}}), key=b"default", expect="not_silent"),
    ]  # fmt: skip
    return out


def nested_pickle(depth: int) -> bytes:
    # PROTO 5, then depth x (EMPTY_LIST, MARK), the innermost an int, then depth x (APPENDS)
    return b"\x80\x05" + b"](" * depth + b"K\x01" + b"e" * depth + b"."


class Reduce:
    def __init__(self, fn: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def gadgets() -> dict[str, bytes]:
    """Pickles that do harm when unpickled; each would be signed with the real key."""
    cmd = f"touch {PWNED}"
    out = {
        "functools.partial(os.system)": pickle.dumps(Reduce(functools.partial(os.system, cmd), ())),
        "operator.methodcaller('system') on os": b"coperator\nmethodcaller\n(Vsystem\nV"
        + cmd.encode()
        + b"\ntR(c__builtin__\n__import__\n(Vos\ntRtR.",
        "builtins.getattr(os, 'system')": b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V"
        + cmd.encode()
        + b"\ntR.",
        "builtins.eval (protocol 0)": f"c__builtin__\neval\n(V__import__('os').system('{cmd}')\ntR.".encode(),
        "numpy _reconstruct 10**12 elements": b"",
        "100,000 nested lists": nested_pickle(100_000),
        "operator.attrgetter chain to os.system": b"coperator\nattrgetter\n(Vpath.os.system\ntR"
        + b"(c__builtin__\n__import__\n(Vos\ntRtR(V"
        + cmd.encode()
        + b"\ntR.",
    }
    try:
        import numpy as np

        reconstruct, args = np.zeros(1).__reduce__()[:2]
        # ndarray's BUILD state claiming 10**12 float64s (8 TB) over 8 bytes of data
        state = (1, (10**12,), np.dtype("float64"), False, b"\x00" * 8)
        out["numpy _reconstruct 10**12 elements"] = pickle.dumps(Reduce(reconstruct, args, state), protocol=4)
    except Exception as exc:  # an experiment: say it, do not stop
        out.pop("numpy _reconstruct 10**12 elements")
        print(f"numpy gadget not built: {exc}", file=sys.stderr)
    return {k: zlib.compress(v) for k, v in out.items() if v}


def raw_records(topic: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(partition, offset, key, value) of every committed record of a full topic name."""
    c = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": f"h40-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "fetch.message.max.bytes": 16_000_000})  # fmt: skip
    meta = c.list_topics(topic, timeout=10).topics[topic]
    tps, ends = [], {}
    for p in meta.partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = hi
        if hi > lo:
            tps.append(TopicPartition(topic, p, lo))
    out: list[tuple[int, int, bytes | None, bytes | None]] = []
    if tps:
        c.assign(tps)
        done: set[int] = set()
        deadline = time.time() + 30
        while len(done) < len(tps) and time.time() < deadline:
            for m in c.consume(500, 1.0):
                if m.error():
                    continue
                out.append((m.partition(), m.offset(), m.key(), m.value()))
                if m.offset() + 1 >= ends[m.partition()] - 1:
                    done.add(m.partition())
            for tp in c.position(tps):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
    c.close()
    return out


def committed_lag(prefix: str) -> dict[str, int]:
    """Per consumer group of this prefix: messages between the group's committed offsets and the ends (from the
    broker, not from the workers' gauge)."""
    admin = AdminClient({"bootstrap.servers": KAFKA_BOOTSTRAP})
    groups = [g.group_id for g in admin.list_consumer_groups().result(10).valid]
    mine = [g for g in groups if prefix.rstrip(".") in g]
    c = Consumer({"bootstrap.servers": KAFKA_BOOTSTRAP, "group.id": f"h40-lag-{uuid.uuid4().hex}"})
    out: dict[str, int] = {}
    from confluent_kafka import ConsumerGroupTopicPartitions

    for g in mine:
        res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)])
        tps = res[g].result(10).topic_partitions
        lag = 0
        for tp in tps:
            _, hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            if tp.offset >= 0:
                lag += max(0, hi - tp.offset)
        out[g] = lag
    c.close()
    return out


def pipeline_run(redis: str, good: int) -> dict[str, Any]:
    prefix = f"hostile40{uuid.uuid4().hex[:6]}."
    state = Path(tempfile.mkdtemp(prefix="hostile40-"))
    p = Pipeline(prefix, state, redis, extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "50"})
    summary: dict[str, Any] = {"prefix": prefix}
    settings = p.settings()
    with running_all(p):
        p.start("score", "join", "train")
        events = make_events(good, seed=40)
        half = len(events) // 2
        publish(p, events[:half])
        p.wait_learned(half - 30, 240)
        rels = p.wait_releases(3, 120)
        learned_before = p.labels_learned()
        # -- control: a real signed pause/resume, then the pause replayed (as it was, and under another key)
        for cmd in (("models", "pause"), ("models", "resume")):
            p.cli(*cmd, timeout=180)
        ctl = [r for r in raw_records(settings.topic("control")) if r[3]]
        pause_bytes = next(v for _, _, _, v in ctl if v and b"pause_learning" in v)
        items = hostile_inputs()
        items += [
            Sent("control: signed pause replayed", "control", pause_bytes, key=b"default"),
            Sent("control: signed pause replayed under key 'ghost'", "control", pause_bytes, key=b"ghost"),
        ]
        # -- labels of the first half replayed after they were learned
        replay = [Sent("labels: replay", "labels", js({"id": e.id, "label": e.label}), expect="x")
                  for e in events[: half // 2]]  # fmt: skip
        # -- models: the previous release replayed after the newest; gadgets signed with the real key
        prev = rels[-2]
        forged = [Sent("release: previous release replayed after the newest", "models",
                       CODEC.encode("ModelRelease", prev), key=b"default", expect="refused")]  # fmt: skip
        newest = int(rels[-1]["version"])
        for n, (name, payload) in enumerate(gadgets().items()):
            rel = h37.resign(rels[-1], payload, SIGNING_KEY.encode(), version=newest + 1000 + n)
            forged.append(Sent(f"release: REAL key, {name}", "models", CODEC.encode("ModelRelease", rel),
                               key=b"default", expect="refused"))  # fmt: skip
        # -- changelog: the trainer's own sealed states replayed
        cl = [r for r in raw_records(settings.topic("changelog")) if r[2] == b"default" and r[3]]
        if len(cl) >= 2:
            items += [
                Sent("changelog: an older sealed state of default replayed", "changelog", cl[0][3], key=b"default",
                     expect="not_silent"),
                Sent("changelog: default's newest sealed state under key 'ghost'", "changelog", cl[-1][3],
                     key=b"ghost", expect="not_silent"),
                Sent("changelog: tombstone for default", "changelog", None, key=b"default", expect="not_silent"),
            ]  # fmt: skip
        t0 = time.time()
        send(p, items)
        send(p, forged)
        send(p, replay)
        publish(p, events[half:])
        ids = {e.id for e in events}
        try:
            p.wait_until(
                "every good event predicted",
                lambda: ids <= {r.value["id"] for r in p.read("predictions") if r.ok and r.value},
                300,
            )
            p.wait_learned(len(events) + 2, 300)
            row("good events predicted and learned after the hostile records", f"{len(ids)}",
                f"all, {time.time() - t0:.0f} s after the first hostile record", True)  # fmt: skip
        except AssertionError as exc:
            row(
                "good events predicted and learned after the hostile records",
                f"{len(ids)}",
                str(exc)[:300],
                False,
            )
        time.sleep(8)
        learned = p.labels_learned()
        row(
            "replayed labels not learned twice",
            f"{len(events) + 2} learned (the good, and the labels of h40-tsmin, h40-tsmax)",
            f"{learned}",
            learned == len(events) + 2,
        )
        summary["learned_before_replay"] = learned_before
        preds = {r.value["id"]: r.value for r in p.read("predictions") if r.ok and r.value}
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        dead_at = {(d["source_topic"], d["partition"], d["offset"]): d for d in dead}
        for it in items:
            d = dead_at.get((settings.topic(it.topic), *it.where))
            served = it.fid is not None and it.fid in preds
            got = f"dead-lettered: {d['error'][:150]!r}" if d else ("served" if served else "neither")
            ok = {
                "dead": d is not None,
                "served": served and d is None,
                "dead_or_served": (d is not None) != served,
                "not_silent": True,
            }[it.expect]
            row(it.kind, it.expect, got, ok)
        for it in items:  # a dead letter with a cut key says so, and fits
            d = dead_at.get((settings.topic(it.topic), *it.where))
            if d is not None and it.key is not None and len(it.key) > 65536:
                cut = len(d["key"] or b"")
                row(f"{it.kind}: dead letter cut", "key 65536 B, reason says so", f"key {cut} B",
                    cut == 65536 and "cut to 64 KiB" in d["error"])  # fmt: skip
        for fid in ("h40-tsmin", "h40-tsmax", "h40-esc" + ESC):
            v = preds.get(fid)
            row(f"prediction of {fid[:10]!r}", "a prediction", "ts=" + str(v and v["ts"]), v is not None)
        # control replay refused, learning not paused
        refused = {r: p.metric_sum("driftline_control_refused_total", reason=r) for r in ("replay", "stale",
                   "signature", "unsigned", "model")}  # fmt: skip
        row("replayed signed pause refused", ">= 1 refused", str(refused), sum(refused.values()) >= 1)
        trainer = p.trainer()
        paused = {k: trainer.get(k) for k in ("paused", "learning_paused") if k in trainer}
        row("learning not paused by the replay", "paused false", str(paused), not any(paused.values()))
        # releases
        rej = {r: p.metric_sum("driftline_releases_rejected_total", reason=r)
               for r in ("signature", "sha256", "replay", "model", "decode", "allow_list", "load", "size")}  # fmt: skip
        summary["releases_rejected"] = rej
        row("forged releases counted", f">= {len(forged)} (x scorer+trainer)", str(rej),
            sum(rej.values()) >= len(forged))  # fmt: skip
        row(
            "gadget side effect",
            f"no {PWNED}",
            "file exists!" if PWNED.exists() else "none",
            not PWNED.exists(),
        )
        promote = p.cli("models", "promote", "champion", check=False, timeout=180)
        row(
            "trainer releases after the forgeries",
            "rc 0",
            f"rc={promote.returncode}",
            promote.returncode == 0,
        )
        time.sleep(5)
        good_versions = [int(r["version"]) for r in p.releases_in_order() if r["model"] == "default"
                         and int(r["version"]) < newest + 1000]  # fmt: skip
        want = max(good_versions)
        score = next(w for w in p.workers if w.role == "score")
        ok = p.settle(lambda: p.metric(score, "driftline_served_model_version", model="default") == want, 60)
        row("scorer serves the newest good release", f"v{want}",
            f"v{p.metric(score, 'driftline_served_model_version', model='default'):g}", ok)  # fmt: skip
        # lag, from the broker
        drained = p.settle(lambda: not any(committed_lag(prefix).values()), timeout=90)
        row("committed lag of every group drains (broker)", "0", str(committed_lag(prefix)), drained)
        n_dead = sum(1 for i in items if i.expect == "dead") + sum(
            1
            for i in items
            if i.expect == "dead_or_served" and dead_at.get((settings.topic(i.topic), *i.where))
        )
        total = p.metric_sum("driftline_deadletters_total")
        row("driftline_deadletters_total counts them", f">= {n_dead}", f"{total:g}", total >= n_dead)
        retries = p.metric_sum("driftline_events_total", outcome="retry")
        row("no batch retried", "0", f"{retries:g}", retries == 0)
        row("workers alive", "all", str([w.role for w in p.workers if not w.alive()] or "all"),
            all(w.alive() for w in p.workers))  # fmt: skip
        logs = {w.role: w.log_path.read_text(errors="replace") for w in p.workers}
        tb = {r: t.count("Traceback") for r, t in logs.items()}
        row("worker log tracebacks", "0", str(tb), not any(tb.values()))
        forged_lines = [
            ln for t in logs.values() for ln in t.splitlines() if ln.startswith("2026-12-07 00:00:00")
        ]
        row("no log line forged by an input record", "0", str(len(forged_lines)), not forged_lines)
        esc_logs = {r: t.count("\x1b") for r, t in logs.items()}
        row("no raw ESC from input in worker logs", "0", str(esc_logs), not any(esc_logs.values()))
        # what operators' terminals get
        for cmd in (["tail", "predictions", "-n", "400"], ["tail", "deadletter", "-n", "60"], ["status"],
                    ["tail", "drift", "-n", "20"], ["explain", "h40-esc" + ESC],
                    ["tail", "deadletter", "-n", "60", "--json"]):  # fmt: skip
            proc = p.cli(*cmd, check=False, timeout=120)
            text = proc.stdout + proc.stderr
            row(f"cli: {' '.join(c.replace(ESC, '<ESC>') for c in cmd)}", "rc 0/1, no raw ESC, no traceback",
                f"rc={proc.returncode} ESC={text.count(chr(27))} tb={'Traceback' in text}",
                proc.returncode in (0, 1) and "\x1b" not in text and "Traceback" not in text)  # fmt: skip
        # restart the trainer: it restores through the replayed/forged changelog records
        n_before = p.trainer().get("n_learned")
        train = next(w for w in p.workers if w.role == "train")
        retire(p, train)
        p.start("train")
        more = make_events(60, seed=41, tag="r")
        publish(p, more)
        try:
            p.wait_learned(len(events) + 2 + len(more), 240)
            after = p.trainer().get("n_learned")
            row("after a trainer restart over replayed states: lineage goes on", f"n_learned > {n_before}",
                f"{after}", isinstance(after, (int, float)) and after > (n_before or 0))  # fmt: skip
        except AssertionError as exc:
            row("after a trainer restart over replayed states: lineage goes on", "60 more learned", str(exc)[:300],
                False)  # fmt: skip
        cl_rej = p.metric_sum("driftline_changelog_rejected_total")
        row("changelog replays counted at restore", ">= 2", f"{cl_rej:g}", cl_rej >= 2)
    return summary


MINE = """
from river import linear_model, preprocessing

class Good:
    def __init__(self):
        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    def learn_one(self, x, y): self.model.learn_one(x, y)
    def predict_one(self, x): return self.model.predict_one(x)
    def predict_proba_one(self, x): return self.model.predict_proba_one(x)

class NoProba:
    def learn_one(self, x, y): pass
    def predict_one(self, x): return True

class NoUpdate:
    drift_detected = False

class Unlisted(Good):
    pass

def b_good(p, t, s): return Good()
def b_unlisted(p, t, s): return Unlisted()
def b_noproba(p, t, s): return NoProba()
def b_raises(p, t, s): raise RuntimeError("plugin bug in build")
def b_none(p, t, s): return None
"""
LAUNCH = """
import sys
import mine
from learners.detectors import register_detector
from learners.pickle_allow import ALLOWED
from learners.specs import KINDS
for n in ("good", "noproba", "raises", "none", "unlisted"):
    KINDS["my_" + n] = (getattr(mine, "b_" + n), ("classification",))
register_detector("no_update", mine.NoUpdate)
ALLOWED[("mine", "Good")] = "plain attributes"
from streams.cli import main
sys.exit(main(sys.argv[1:]))
"""


def plugins() -> None:
    """Issue 14's extension points as the README says (a launcher that registers, then the CLI): a good learner,
    and the bad plugins a user will write, each of which must be a clear error naming what to fix."""
    d = Path(tempfile.mkdtemp(prefix="hostile40-ext-"))
    (d / "mine.py").write_text(MINE)
    (d / "launch.py").write_text(LAUNCH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env["PYTHONPATH"] = os.pathsep.join([str(d), str(Path(__file__).resolve().parents[2])])
    cases = {
        "good learner": ("model:\n  learner: {name: my_good}\n", 0, ""),
        "learner without predict_proba_one": (
            "model:\n  learner: {name: my_noproba}\n",
            2,
            "predict_proba_one",
        ),
        "learner builder that raises": ("model:\n  learner: {name: my_raises}\n", 2, "my_raises"),
        "learner builder returning None": ("model:\n  learner: {name: my_none}\n", 2, "my_none"),
        "detector without update": ("drift:\n  error_detector: no_update\n", 2, "drift.error_detector"),
        "unknown learner (typo)": ("model:\n  learner: {name: my_god}\n", 2, "my_god"),
        # replay publishes no release, so only what a worker checks at start (config validate) can tell
        "learner class not in ALLOWED": ("model:\n  learner: {name: my_unlisted}\n", 2, "ALLOWED"),
    }
    for name, (yaml, rc, must) in cases.items():
        cfg = d / f"{abs(hash(name))}.yaml"
        cfg.write_text(yaml)
        v = subprocess.run([PY, str(d / "launch.py"), "config", "validate", str(cfg)], capture_output=True,
                           text=True, env=env, timeout=120)  # fmt: skip
        if "ALLOWED" in must:
            vt = v.stdout + v.stderr
            ok = v.returncode == rc and must in vt and "Traceback" not in vt
            row(f"plugin: {name}: config validate", f"rc {rc}, names {must!r}",
                f"rc={v.returncode} {vt.strip().splitlines()[-1][:150] if vt.strip() else ''!r}", ok)  # fmt: skip
            continue
        r = subprocess.run([PY, str(d / "launch.py"), "--config", str(cfg), "replay", "--stream", "sea-stationary",
                            "--n", "600", "--json"], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        vt, rt = v.stdout + v.stderr, r.stdout + r.stderr
        ok_v = v.returncode == rc and must in vt and "Traceback" not in vt
        ok_r = (
            (r.returncode == 0) if rc == 0 else (r.returncode != 0 and must in rt and "Traceback" not in rt)
        )
        row(f"plugin: {name}: config validate", f"rc {rc}, names {must!r}",
            f"rc={v.returncode} {vt.strip().splitlines()[-1][:150] if vt.strip() else ''!r}", ok_v)  # fmt: skip
        row(f"plugin: {name}: replay", "runs" if rc == 0 else f"error naming {must!r}, no traceback",
            f"rc={r.returncode} {rt.strip().splitlines()[-1][:150] if rt.strip() else ''!r}", ok_r)  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=os.environ.get("DRIFTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--good", type=int, default=300)
    ap.add_argument("--no-plugins", action="store_true")
    ap.add_argument("--only-plugins", action="store_true")
    args = ap.parse_args()
    summary: dict[str, Any] = {}
    if not args.no_plugins:
        plugins()
    if not args.only_plugins:
        summary = pipeline_run(args.redis, args.good)
    width = max(len(r[0]) for r in ROWS)
    for check, expected, got, ok in ROWS:
        print(f"{'PASS' if ok else 'FAIL'}  {check:{width}s}  expected: {expected:28s}  got: {got}")
    failed = [r[0] for r in ROWS if not r[3]]
    summary |= {"rows": len(ROWS), "failed": failed}
    print(json.dumps(summary, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
