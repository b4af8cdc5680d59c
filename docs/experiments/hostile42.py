"""Session 42 (helper hostile42): issues 12 and 20 checked from outside again, with what hostile37/40 did not try.

Part 1, operators (no stack): YAML with aliases (billion laughs), nesting 20,000 deep, Python tags, booleans and
floats where text is expected (``name: no``), a config path that is a directory or never ends (/dev/zero), and
variables holding bytes that are not UTF-8, wrong types, unknown names, huge and negative numbers, each through the
CLI (``config validate``, ``config show``, ``tail``): a named error with exit 2, never a traceback or a hang.

Part 2, a running pipeline (separate ``score``, ``join`` and ``train`` workers): Avro with a union branch out of
range, a FeatureEvent header over another record's body, an Avro map naming a key twice, ids with NUL and a BOM
inside, -0.0 and +/-1.8e308 as feature values, a 900 KB feature name, a label for another model's prediction, a
record whose Kafka key names another model; signed control commands (with the real operator key, as a client that
skipped the CLI's checks) with every field wrong; ``models set`` of out-of-range values (must exit 2, send
nothing); and the ``/metrics`` names against the README's table.

Part 3, a regression pipeline (``--role all``): one label of 1e200 (finite, valid on the wire) between good ones.

Run against any stack (env as the tests)::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:16092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:16379/15 PYTHONPATH=$PWD \\
        /work/main/.venv/bin/python docs/experiments/hostile42.py [--only-config] [--no-regression]

Prints a pass/fail table and one JSON line; exit 1 when a row fails.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile37 as h37

from streams.control import _canonical, key_id
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import SIGNING_KEY, Pipeline

Sent, send, js, fe, row, ROWS = h37.Sent, h37.send, h37.js, h37.fe, h37.row, h37.ROWS
CODEC = h37.CODEC
PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


# -- part 1: settings from outside --------------------------------------------------------------------------------
def _laughs(indent: str, levels: int = 9) -> tuple[str, str]:
    text = f'{indent}a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, levels):
        text += f"{indent}a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n"
    return text, f"*a{levels - 1}"


def _cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "PYTHONPATH": str(ROOT)}
    try:
        r = subprocess.run([PY, "-m", "driftline", *args], capture_output=True, env=base | (env or {}),
                           timeout=timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        return -9, f"no answer in {timeout:.0f} s (killed)"
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def config_checks() -> None:
    d = Path(tempfile.mkdtemp(prefix="hostile42-cfg-"))
    anchors, alias = _laughs("      ")
    files = {
        "billion laughs in learner params": (
            f"model:\n  learner:\n    name: logistic_regression\n    params:\n{anchors}", "model.learner"),
        "billion laughs as a text setting": (
            f"model:\n  learner:\n    name: logistic_regression\n    params:\n{anchors}kafka:\n  client_id: {alias}\n",
            "kafka.client_id"),
        "billion laughs as a number setting": (
            f"model:\n  learner:\n    name: logistic_regression\n    params:\n{anchors}kafka:\n  partitions: {alias}\n",
            "kafka.partitions"),
        "billion laughs as routing.models": (
            f"model:\n  learner:\n    name: logistic_regression\n    params:\n{anchors}routing:\n  models: {alias}\n",
            "routing.models"),
        "YAML [ nested 20,000 deep": ("model: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply"),
        "YAML {a: nested 20,000 deep": ("model: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n", "nested too deeply"),
        "YAML python/object tag": ("model: !!python/object/apply:os.system ['true']\n", "constructor"),
        "YAML duplicate section": ("kafka:\n  partitions: 4\nkafka:\n  partitions: 8\n", "given twice"),
        "YAML two documents": ("kafka: {partitions: 4}\n---\nkafka: {partitions: 8}\n", "single document"),
        "YAML top level a list": ("- a\n- b\n", "top level must be a mapping"),
        "YAML model name: no (a boolean)": ("model:\n  name: no\n", "model.name"),
        "YAML topic_prefix: yes (a boolean)": ("kafka:\n  topic_prefix: yes\n", "kafka.topic_prefix"),
        "YAML model name: 1.10 (a float)": ("model:\n  name: 1.10\n", "model.name"),
        "YAML unknown key": ("guard:\n  alpah: 0.1\n", "guard.alpah"),
        "YAML partitions 10**23": ("kafka: {partitions: 99999999999999999999999}\n", "kafka.partitions"),
        "YAML partitions -3": ("kafka: {partitions: -3}\n", "kafka.partitions"),
        "YAML guard.alpha .inf": ("guard: {alpha: .inf}\n", "guard.alpha"),
        "YAML superiority_margin .nan": ("guard: {superiority_margin: .nan}\n", "guard.superiority_margin"),
        "YAML metrics.port 70000": ("metrics: {port: 70000}\n", "metrics.port"),
        "YAML pending_ttl_s 0": ("redis: {pending_ttl_s: 0}\n", "redis.pending_ttl_s"),
        "YAML session_timeout_s 1e9": ("kafka: {session_timeout_s: 1e9}\n", "kafka.session_timeout_s"),
        "YAML batch_size 0": ("serving: {batch_size: 0}\n", "serving.batch_size"),
        "YAML not UTF-8": (b"\xff\xfe\x00garbage", "not UTF-8"),
    }  # fmt: skip
    for name, (text, must) in files.items():
        f = d / f"{abs(hash(name))}.yaml"
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
        t0 = time.time()
        rc, out = _cli(["config", "validate", str(f)])
        last = out.strip().splitlines()[-1][:160] if out.strip() else ""
        ok = rc == 2 and must in out and "Traceback" not in out and len(out) < 4000
        row(
            f"config validate: {name}",
            f"rc 2 naming {must!r}",
            f"rc={rc} {time.time() - t0:.1f}s {last!r}",
            ok,
        )
    for name, path, must in (("a directory", str(d), "Is a directory"), ("/dev/zero", "/dev/zero", "larger than"),
                             ("a missing file", str(d / "nope.yaml"), "No such file")):  # fmt: skip
        rc, out = _cli(["config", "validate", path], timeout=30)
        row(f"config validate: config file is {name}", f"rc 2 naming {must!r}",
            f"rc={rc} {out.strip()[-150:]!r}", rc == 2 and must in out and "Traceback" not in out)  # fmt: skip
        rc, out = _cli(["config", "show"], {"DRIFTLINE_CONFIG": path}, timeout=30)
        row(f"config show: DRIFTLINE_CONFIG is {name}", f"rc 2 naming {must!r}",
            f"rc={rc} {out.strip()[-150:]!r}", rc == 2 and must in out and "Traceback" not in out)  # fmt: skip
    bad = os.fsdecode(b"\xff\xfe")
    envs = {
        "DRIFTLINE__GUARD__ALPHA=abc": ({"DRIFTLINE__GUARD__ALPHA": "abc"}, "DRIFTLINE__GUARD__ALPHA"),
        "DRIFTLINE__BOGUS__X=1": ({"DRIFTLINE__BOGUS__X": "1"}, "bogus"),
        "DRIFTLINE__GUARD=1 (a section as a value)": ({"DRIFTLINE__GUARD": "1"}, "guard"),
        "DRIFTLINE__GUARD__ALPHA__X=1 (below a number)": ({"DRIFTLINE__GUARD__ALPHA__X": "1"}, "guard.alpha"),
        "DRIFTLINE_METRICS_PORT=99999": ({"DRIFTLINE_METRICS_PORT": "99999"}, "metrics.port"),
        "DRIFTLINE_TOPIC_PREFIX='a b'": ({"DRIFTLINE_TOPIC_PREFIX": "a b"}, "kafka.topic_prefix"),
        "DRIFTLINE_MODEL=../x": ({"DRIFTLINE_MODEL": "../x"}, "model.name"),
        "DRIFTLINE_REDIS_URL=http://x": ({"DRIFTLINE_REDIS_URL": "http://x"}, "redis.url"),
        "DRIFTLINE_SIGNING_KEY of 5 bytes": ({"DRIFTLINE_SIGNING_KEY": "short"}, "openssl rand"),
        "DRIFTLINE_SIGNING_KEY with bytes not UTF-8": (
            {"DRIFTLINE_SIGNING_KEY": bad + "k" * 40},
            "not UTF-8",
        ),
        "DRIFTLINE_KAFKA_BOOTSTRAP with bytes not UTF-8": (
            {"DRIFTLINE_KAFKA_BOOTSTRAP": bad + ":1"},
            "not UTF-8",
        ),
        "DRIFTLINE_REDIS_URL with bytes not UTF-8": (
            {"DRIFTLINE_REDIS_URL": f"redis://{bad}:1/0"},
            "not UTF-8",
        ),
        "DRIFTLINE__KAFKA__CLIENT_ID with bytes not UTF-8": (
            {"DRIFTLINE__KAFKA__CLIENT_ID": bad},
            "not UTF-8",
        ),
        "DRIFTLINE_SIGNING_KEY_FILE=/dev/zero": ({"DRIFTLINE_SIGNING_KEY_FILE": "/dev/zero"}, "larger than"),
        "DRIFTLINE_SIGNING_KEY_FILE=a directory": ({"DRIFTLINE_SIGNING_KEY_FILE": str(d)}, "Is a directory"),
    }
    for name, (env, must) in envs.items():
        rc, out = _cli(["config", "show"], env, timeout=30)
        row(f"env: {name}", f"rc 2 naming {must!r}", f"rc={rc} {(out.strip().splitlines() or [''])[-1][:150]!r}",
            rc == 2 and must in out and "Traceback" not in out)  # fmt: skip
    # A command that would reach Kafka with the bad bytes: the error must come first, from the settings.
    rc, out = _cli(["tail", "features", "-n", "1"], {"DRIFTLINE_KAFKA_BOOTSTRAP": bad + ":16092"}, timeout=60)
    row("tail with DRIFTLINE_KAFKA_BOOTSTRAP not UTF-8", "rc 2, no traceback",
        f"rc={rc} {(out.strip().splitlines() or [''])[-1][:150]!r}", rc == 2 and "Traceback" not in out)  # fmt: skip


# -- part 2: the pipeline -----------------------------------------------------------------------------------------
def _z(n: int) -> bytes:
    return h37._zigzag(n)


def _s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return _z(len(b)) + b


def avro_fe(fid: str, features: bytes, n: int, key_branch: int = 0) -> bytes:
    """A FeatureEvent body written by hand: ``features`` are ``n`` encoded map entries."""
    return CODEC.schema_header("FeatureEvent") + _s(fid) + _z(1_760_000_000_000) + _z(key_branch) + (
        (_z(n) + features if n else b"") + _z(0)) + _z(0)  # fmt: skip


def _dbl(name: str, v: float) -> bytes:
    return _s(name) + _z(3) + struct.pack("<d", v)


def hostile_inputs() -> list[Sent]:
    label_body = CODEC.encode("Label", {"id": "h42-lb", "ts": 1, "label": True})[10:]
    return [
        Sent("features: Avro union branch 7 for key", "features", avro_fe("h42-u7", b"", 0, key_branch=7)),
        Sent("features: Avro union branch -1 for key", "features", avro_fe("h42-um1", b"", 0, key_branch=-1)),
        Sent("features: Avro feature value union branch 9", "features",
             avro_fe("h42-fu9", _s("x1") + _z(9) + b"\x00", 1)),
        Sent("features: Avro FeatureEvent header over a Label body", "features",
             CODEC.schema_header("FeatureEvent") + label_body),
        Sent("features: Avro boolean byte 2", "features", avro_fe("h42-b2", _s("x1") + _z(1) + b"\x02", 1)),
        Sent("features: Avro id not UTF-8 (CESU surrogate)", "features",
             CODEC.schema_header("FeatureEvent") + _s(b"\xed\xa0\x80") + _z(1) + _z(0) + _z(0) + _z(0)),
        Sent("features: Avro map naming x1 twice", "features",
             avro_fe("h42-dupmap", _dbl("x1", 0.1) + _dbl("x1", 0.9), 2), expect="dead_or_served", fid="h42-dupmap"),
        Sent("features: Avro feature -0.0", "features", avro_fe("h42-negzero", _dbl("x1", -0.0), 1),
             expect="served", fid="h42-negzero"),
        Sent("features: Avro feature 1.7976931348623157e308", "features",
             avro_fe("h42-max", _dbl("x1", 1.7976931348623157e308) + _dbl("x2", -1.7976931348623157e308), 2),
             expect="served", fid="h42-max"),
        Sent("features: Avro feature NaN", "features", avro_fe("h42-nan", _dbl("x1", float("nan")), 1)),
        Sent("features: JSON id with NUL", "features", b'{"id":"h42-nul\\u0000x","features":{"x1":0.5}}',
             expect="served", fid="h42-nul\x00x"),
        Sent("features: JSON id with a BOM inside", "features", js(fe("\ufeffh42-bom")), expect="served",
             fid="\ufeffh42-bom"),
        Sent("features: JSON lone surrogate \\ud800 in a feature name", "features",
             b'{"id":"h42-sur","features":{"\\ud800":1}}'),
        Sent("features: JSON lone surrogate \\udfff in the id", "features", b'{"id":"h42-\\udfff","features":{}}'),
        Sent("features: JSON ts as a string", "features", b'{"id":"h42-tss","ts":"1","features":{}}'),
        Sent("features: JSON features as a list", "features", b'{"id":"h42-fl","features":[]}'),
        Sent("features: JSON model as a number", "features", b'{"id":"h42-mn","features":{},"model":5}'),
        Sent("features: JSON 900 KB feature name", "features", js(fe("h42-bigname", features={"n" * 900_000: 1.0})),
             expect="dead_or_served", fid="h42-bigname"),
        Sent("features: JSON model 'other', Kafka key 'default'", "features", js(fe("h42-keyother", model="other")),
             key=b"default", expect="dead_or_served", fid="h42-keyother"),
        Sent("labels: JSON label -0.0 for h42-negzero", "labels", b'{"id":"h42-negzero","label":-0.0}',
             expect="not_silent"),
        Sent("labels: JSON label 1e308 (a new class) for h42-max", "labels", b'{"id":"h42-max","label":1e308}',
             expect="not_silent"),
        Sent("labels: label for another model's prediction (h42-keyother)", "labels",
             b'{"id":"h42-keyother","label":true}', expect="not_silent"),
        Sent("labels: JSON label a list", "labels", b'{"id":"h42-x","label":[1]}'),
        Sent("labels: JSON label an object", "labels", b'{"id":"h42-x","label":{}}'),
        Sent("labels: JSON label 10**30", "labels", b'{"id":"h42-x","label":1000000000000000000000000000000}'),
        Sent("labels: Avro label union branch 9", "labels",
             CODEC.schema_header("Label") + _s("h42-x") + _z(1) + _z(9) + b"\x00"),
        Sent("labels: Avro label NaN", "labels",
             CODEC.schema_header("Label") + _s("h42-x") + _z(1) + _z(2) + struct.pack("<d", float("nan"))),
    ]  # fmt: skip


def signed(fields: dict[str, Any], key: bytes) -> dict[str, Any]:
    rec = {"model": "default", "command": "set", "args": {}, "ts": int(time.time() * 1000),
           "id": uuid.uuid4().hex, "key_id": key_id(key)} | fields  # fmt: skip
    try:
        rec["signature"] = hmac.new(key, _canonical(rec), hashlib.sha256).hexdigest()
    except (TypeError, ValueError):  # a field of a type the trainer cannot canonicalise either
        rec["signature"] = "00" * 32
    return rec


def control_inputs() -> list[Sent]:
    """Signed with the real operator key, as a client that skipped the CLI's checks: each must be refused."""
    k = SIGNING_KEY.encode()
    cases = {
        "set guard.alpha=-1": {"args": {"guard.alpha": "-1"}},
        "set release_every=1e400": {"args": {"release_every": "1e400"}},
        "set release_every=2**64": {"args": {"release_every": str(2**64)}},
        "set drift.sentinel_every=0": {"args": {"drift.sentinel_every": "0"}},
        'set drift.error_detector_params={"delta": "abc"}': {
            "args": {"drift.error_detector_params": '{"delta": "abc"}'}
        },
        "set guard.max_examples below min_examples": {"args": {"guard.max_examples": "1"}},
        "set bogus.key": {"args": {"bogus.key": "1"}},
        "set with no args": {"args": {}},
        "command 'explode'": {"command": "explode"},
        "command ''": {"command": ""},
        "promote version 2**64": {"command": "promote", "args": {"version": str(2**64)}},
        "promote version -1": {"command": "promote", "args": {"version": "-1"}},
        "promote version 'abc'": {"command": "promote", "args": {"version": "abc"}},
        "pause discard=maybe": {"command": "pause_learning", "args": {"discard": "maybe"}},
        "model '' (empty)": {"model": ""},
        "model 'ghost' (unknown)": {"model": "ghost", "args": {"guard.alpha": "0.01"}},
        "ts in the future (2**62)": {"ts": 2**62, "args": {"guard.alpha": "0.01"}},
    }
    out = []
    for name, fields in cases.items():
        rec = signed(fields, k)
        out.append(Sent(f"control (signed): {name}", "control", js(rec), key=(rec["model"] or "x").encode(),
                        expect="dead_or_refused"))  # fmt: skip
    # wrong types in JSON, signed over what was sent (the codec must refuse before the signature matters)
    for name, fields in {
        "args values numbers": {"args": {"guard.alpha": 0.01}},
        "args a list": {"args": ["guard.alpha"]},
        "ts a string": {"ts": "now"},
        "id a number": {"id": 5},
        "model null": {"model": None},
        "command a list": {"command": ["set"]},
    }.items():
        rec = signed(fields, k)
        out.append(Sent(f"control (signed, JSON wrong type): {name}", "control", js(rec), key=b"default"))
    # Valid and fresh, under another Kafka key: the trainer checks the partition of the body's model, not the key
    # (this script's producer partitions by CRC32, so "ghost" lands on default's partition): it must be applied.
    rec = signed({"args": {"guard.alpha": "0.01"}}, k)
    out.append(Sent(f"control (signed): valid set, Kafka key 'ghost' [{rec['id']}]", "control", js(rec),
                    key=b"ghost", expect="applied"))  # fmt: skip
    return out


README_METRIC = re.compile(r"`(driftline_[a-z_]+)`")


def metric_names(p: Pipeline) -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    names: set[str] = set()
    for w in p.workers:
        for fam in text_string_to_metric_families(w.metrics_text(5.0)):
            if fam.name.startswith("driftline_"):
                names.add(fam.name + ("_total" if fam.type == "counter" else ""))
    return names


def pipeline_run(redis: str, good: int) -> dict[str, Any]:
    prefix = f"hostile42{uuid.uuid4().hex[:6]}."
    state = Path(tempfile.mkdtemp(prefix="hostile42-"))
    p = Pipeline(prefix, state, redis, extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "50"})
    settings = p.settings()
    summary: dict[str, Any] = {"prefix": prefix}
    with running_all(p):
        p.start("score", "join", "train")
        events = make_events(good, seed=42)
        half = len(events) // 2
        publish(p, events[:half])
        p.wait_learned(half - 30, 240)
        p.wait_releases(2, 120)
        # -- models set of values out of range: exit 2, nothing sent
        ctl_before = len(p.read("control"))
        for kv in ("release_every=-1", "release_every=1e400", f"release_every={2**64}", "guard.alpha=nan",
                   "guard.alpha=1", "guard.superiority_margin=inf", "drift.sentinel_every=0",
                   "drift.adwin_delta=-0.1", "guard.probation_examples=-5", "guard.max_predict_latency_ms=1e999",
                   "drift.error_detector_params={\"delta\":\"abc\"}", "guard.fairness_max_gap=2",
                   "drift.error_detector=nope", "release_every=", "guard.alpha"):  # fmt: skip
            r = p.cli("models", "set", kv, check=False, timeout=120)
            text = r.stdout + r.stderr
            row(f"cli: models set {kv}", "rc 2, names the key, no traceback",
                f"rc={r.returncode} {text.strip().splitlines()[-1][:120] if text.strip() else ''!r}",
                r.returncode == 2 and kv.split("=")[0] in text and "Traceback" not in text)  # fmt: skip
        sent = len(p.read("control")) - ctl_before
        row("cli: refused models set sent nothing", "0 control records", str(sent), sent == 0)
        items = hostile_inputs()
        ctl = control_inputs()
        send(p, items)
        send(p, ctl)
        publish(p, events[half:])
        ids = {e.id for e in events}
        t0 = time.time()
        try:
            p.wait_until(
                "every good event predicted",
                lambda: ids <= {r.value["id"] for r in p.read("predictions") if r.ok and r.value},
                300,
            )
            p.wait_learned(len(events), 300)
            row("good events predicted and learned after the hostile records", f"{len(ids)}",
                f"all, {time.time() - t0:.0f} s after", True)  # fmt: skip
        except AssertionError as exc:
            row("good events predicted and learned after the hostile records", f"{len(ids)}", str(exc)[:300],
                False)  # fmt: skip
        time.sleep(8)
        preds = {r.value["id"]: r.value for r in p.read("predictions") if r.ok and r.value}
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        dead_at = {(d["source_topic"], d["partition"], d["offset"]): d for d in dead}
        for it in items + ctl:
            d = dead_at.get((settings.topic(it.topic), *it.where))
            served = it.fid is not None and it.fid in preds
            got = f"dead-lettered: {d['error'][:150]!r}" if d else ("served" if served else "neither")
            ok = {
                "dead": d is not None,
                "served": served and d is None,
                "dead_or_served": (d is not None) != served,
                "not_silent": True,
                "dead_or_refused": d is not None,
                "applied": d is None,
            }[it.expect]
            row(it.kind, it.expect, got, ok)
        r = p.cli("models", "settings", "--json", check=False, timeout=120)
        live = {k: v for k, v in json.loads(r.stdout or "{}").get("settings", {}).items()
                if v.get("source") == "live set"}  # fmt: skip
        valid = next(it for it in ctl if it.expect == "applied").kind.split("[")[1].rstrip("]")
        row("live settings: only the valid command applied", f"guard.alpha 0.01 by {valid[:8]}",
            str({k: (v["value"], v.get("id", "")[:8]) for k, v in live.items()}),
            list(live) == ["guard.alpha"] and live["guard.alpha"]["value"] == 0.01
            and live["guard.alpha"].get("id") == valid)  # fmt: skip
        refused = {r: p.metric_sum("driftline_control_refused_total", reason=r)
                   for r in ("replay", "stale", "signature", "unsigned", "model", "invalid")}  # fmt: skip
        row("control refusals counted", ">= 1", str(refused), sum(refused.values()) >= 1)
        total = p.metric_sum("driftline_deadletters_total")
        n_dead = sum(1 for it in items + ctl if dead_at.get((settings.topic(it.topic), *it.where)))
        row("driftline_deadletters_total counts them", f">= {n_dead}", f"{total:g}", total >= n_dead)
        retries = p.metric_sum("driftline_events_total", outcome="retry")
        row("no batch retried", "0", f"{retries:g}", retries == 0)
        row("workers alive", "all", str([w.role for w in p.workers if not w.alive()] or "all"),
            all(w.alive() for w in p.workers))  # fmt: skip
        tb = {w.role: w.log_path.read_text(errors="replace").count("Traceback") for w in p.workers}
        row("worker log tracebacks", "0", str(tb), not any(tb.values()))
        # /metrics against the README's table
        exported = metric_names(p)
        readme = (ROOT / "README.md").read_text()
        table = readme[readme.index("## Metrics") : readme.index("## Operations")]
        documented = set(README_METRIC.findall(table))
        undocumented = sorted(n for n in exported if n not in documented)
        row("every exported metric family is in the README's table", "none missing", str(undocumented),
            not undocumented)  # fmt: skip
        summary["metrics_documented_not_exported"] = sorted(documented - exported)
        for cmd in (
            ["status"],
            ["tail", "deadletter", "-n", "80"],
            ["models", "settings"],
            ["models", "show"],
        ):
            r = p.cli(*cmd, check=False, timeout=120)
            text = r.stdout + r.stderr
            row(f"cli: {' '.join(cmd)}", "rc 0/1, no traceback, no raw NUL",
                f"rc={r.returncode} tb={'Traceback' in text} nul={chr(0) in text}",
                r.returncode in (0, 1) and "Traceback" not in text and "\x00" not in text)  # fmt: skip
    return summary


# -- part 3: a regression model and one label of 1e200 -----------------------------------------------------------
def regression_run(redis: str, n: int = 200) -> None:
    prefix = f"hostile42r{uuid.uuid4().hex[:6]}."
    state = Path(tempfile.mkdtemp(prefix="hostile42r-"))
    p = Pipeline(prefix, state, redis, extra_env={"DRIFTLINE__MODEL__TASK": "regression"})
    with running_all(p):
        p.start("all")
        import random

        rng = random.Random(42)
        rows = [(f"r{i}", rng.uniform(-1, 1), rng.uniform(-1, 1)) for i in range(2 * n + 1)]
        feats = [Sent("f", "features", js(fe(i, features={"a": a, "b": b})), expect="x") for i, a, b in rows]
        send(p, feats)
        p.wait_until("every event predicted",
                     lambda: len({r.value["id"] for r in p.read("predictions") if r.ok and r.value}) >= len(rows),
                     240)  # fmt: skip
        labels = [Sent("l", "labels", js({"id": i, "label": 1e200 if k == n else 3 * a + b}), expect="x")
                  for k, (i, a, b) in enumerate(rows)]  # fmt: skip
        send(p, labels[: n + 1])
        time.sleep(5)
        send(p, labels[n + 1 :])
        ok = p.settle(lambda: p.labels_learned() >= 2 * n, 180)
        row(
            "regression: labels after a label of 1e200 are learned",
            f"{2 * n} learned",
            str(p.labels_learned()),
            ok,
        )
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        row("regression: only the 1e200 label dead-lettered, with the reason", "1 dead letter naming overflow",
            f"{len(dead)}: {dead[0]['error'][:120]!r}" if dead else "0",
            len(dead) == 1 and "overflow" in dead[0]["error"])  # fmt: skip


# -- part 4: Redis stopped while hostile input arrives ------------------------------------------------------------
def redis_outage_run(redis: str, n: int = 200, outage_s: float = 25.0) -> None:
    """Stops the stack's Redis (by the pid listening on its port: this script's own stack only), sends poison and
    good events during the outage, starts Redis again with ``driftline stack up`` on the same ports."""
    port = int(redis.rsplit(":", 1)[1].split("/")[0])
    ss = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    pid = int(re.search(r"pid=(\d+)", ss).group(1))  # type: ignore[union-attr]
    prefix = f"hostile42o{uuid.uuid4().hex[:6]}."
    state = Path(tempfile.mkdtemp(prefix="hostile42o-"))
    p = Pipeline(prefix, state, redis)
    with running_all(p):
        p.start("score", "join", "train")
        events = make_events(n, seed=43, tag="o")
        publish(p, events[: n // 2])
        p.wait_learned(n // 2 - 30, 240)
        os.kill(pid, 15)
        t0 = time.time()
        poison = [
            Sent("outage: features junk", "features", b"\x00junk"),
            Sent("outage: features [ x 100,000", "features", b"[" * 100_000),
            Sent("outage: features lone surrogate", "features", b'{"id":"o-sur","features":{"\\ud800":1}}'),
            Sent("outage: labels label a list", "labels", b'{"id":"o-x","label":[1]}'),
            Sent("outage: control junk", "control", b"\x00junk", key=b"default"),
        ]
        send(p, poison)
        publish(p, events[n // 2 :])
        time.sleep(max(0.0, outage_s - (time.time() - t0)))
        kafka = os.environ.get("DRIFTLINE_TEST_KAFKA", "127.0.0.1:9092")
        kport = int(kafka.rsplit(":", 1)[1])
        up = subprocess.run([PY, "-m", "driftline", "stack", "up", "--kafka-port", str(kport), "--controller-port",
                             str(kport + 1), "--redis-port", str(port), "--state-dir",
                             os.environ.get("DRIFTLINE_STATE_DIR", "")], capture_output=True, text=True,
                            timeout=180, env=os.environ | {"PYTHONPATH": str(ROOT)})  # fmt: skip
        row("outage: Redis started again", "rc 0", f"rc={up.returncode} after {time.time() - t0:.0f} s",
            up.returncode == 0)  # fmt: skip
        ids = {e.id for e in events}
        try:
            p.wait_until(
                "every good event predicted",
                lambda: ids <= {r.value["id"] for r in p.read("predictions") if r.ok and r.value},
                300,
            )
            p.wait_learned(n - 30, 300)
            row("outage: good events predicted (and learned, but those whose join Redis lost)", f"{n}",
                f"all predicted, {p.labels_learned()} learned", True)  # fmt: skip
        except AssertionError as exc:
            row("outage: good events predicted", f"{n}", str(exc)[:300], False)
        time.sleep(5)
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        dead_at = {(d["source_topic"], d["partition"], d["offset"]) for d in dead}
        settings = p.settings()
        for it in poison:
            row(it.kind, "dead", "dead-lettered" if (settings.topic(it.topic), *it.where) in dead_at else "no",
                (settings.topic(it.topic), *it.where) in dead_at)  # fmt: skip
        row("outage: workers alive", "all", str([w.role for w in p.workers if not w.alive()] or "all"),
            all(w.alive() for w in p.workers))  # fmt: skip
        from hostile40 import committed_lag

        drained = p.settle(lambda: not any(committed_lag(prefix).values()), timeout=120)
        row("outage: committed lag of every group drains (broker)", "0", str(committed_lag(prefix)), drained)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=os.environ.get("DRIFTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--good", type=int, default=300)
    ap.add_argument("--only-config", action="store_true")
    ap.add_argument("--no-regression", action="store_true")
    ap.add_argument("--no-config", action="store_true")
    ap.add_argument("--only-regression", action="store_true", help="part 3 only")
    ap.add_argument("--outage", action="store_true", help="stop and restart the stack's Redis (part 4 only)")
    args = ap.parse_args()
    summary: dict[str, Any] = {"start": time.strftime("%H:%M:%S", time.gmtime()), "load": os.getloadavg()[0]}
    if args.outage:
        redis_outage_run(args.redis)
    elif args.only_regression:
        regression_run(args.redis)
    elif not args.no_config:
        config_checks()
    if not (args.only_config or args.outage or args.only_regression):
        summary |= pipeline_run(args.redis, args.good)
        if not args.no_regression:
            regression_run(args.redis)
    width = max(len(r[0]) for r in ROWS)
    for check, expected, got, ok in ROWS:
        print(f"{'PASS' if ok else 'FAIL'}  {check:{width}s}  expected: {expected:28s}  got: {got}")
    failed = [r[0] for r in ROWS if not r[3]]
    summary |= {"rows": len(ROWS), "failed": failed, "end": time.strftime("%H:%M:%S", time.gmtime()),
                "load_end": os.getloadavg()[0]}  # fmt: skip
    print(json.dumps(summary, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
