"""Session 37 (helper hostile37): issues 11 and 12 checked from outside again, against a running pipeline.

Sends, between two halves of good events, records that are not what the contract says, on every topic
(features, labels, predictions, training, models, control, changelog, drift, audit, deadletter): truncated Avro,
a wrong magic byte, an unknown fingerprint, valid Avro of another record, JSON with NaN/Infinity/huge ints/deep
nesting/duplicate keys/a BOM/UTF-16, ids of 1,023/1,024/1,025 UTF-8 bytes (a multi-byte character across the
boundary), empty values, tombstones (null value), keys that are not UTF-8, headers. Then forged releases on
``models``: unsigned, another key, the real signature over a tampered artifact, a replayed old release, version
2**63-1, a pickle gadget signed with another key and (separately) with the real key, ``artifact_ref`` outside the
store, a zlib bomb. Each row of the table says what was expected and what happened.

Checks: every good event predicted and its label learned; each hostile input record dead-lettered (or, where the
contract allows it, served); the consumer lag drains; no worker dies; no gadget side effect; the scorer serves the
newest verified release and the trainer still releases; the CLI reads every topic without a traceback.

``--first-hour`` adds the cold-path checks (a stack that is not running, an odd CSV, a 10-class replay).

Run against any stack (env as the tests)::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:17092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:17379/0 PYTHONPATH=$PWD \\
        /work/main/.venv/bin/python docs/experiments/hostile37.py [--first-hour]

Prints a pass/fail table and one JSON line; exit 1 when a row fails.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from learners.artifacts import (
    ArtifactHeader,
    ArtifactStore,
    build_release,
    load_release,
    sign,
    verify_release,
)
from schemas.codec import default_codec
from tests.fault_helpers import make_events, publish, retire, running_all
from tests.pipeline_helpers import KAFKA_BOOTSTRAP, SIGNING_KEY, Pipeline

CODEC = default_codec()
OTHER_KEY = b"hostile37-another-key-that-is-32-bytes-long"
PWNED = Path(tempfile.gettempdir()) / f"hostile37-pwned-{os.getpid()}"
PY = sys.executable

ROWS: list[tuple[str, str, str, bool]] = []  # (check, expected, got, ok)


def row(check: str, expected: str, got: str, ok: bool) -> None:
    ROWS.append((check, expected, got, ok))


@dataclasses.dataclass
class Sent:
    kind: str
    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] | None = None
    expect: str = "dead"  # dead | served | dead_or_served | not_silent (outputs nobody consumes)
    fid: str | None = None  # a FeatureEvent id that must be predicted when expect includes "served"
    where: tuple[int, int] = (-1, -1)


def send(p: Pipeline, items: list[Sent]) -> None:
    settings = p.settings()
    producer = Producer(
        {"bootstrap.servers": KAFKA_BOOTSTRAP, "linger.ms": 0, "message.max.bytes": 2_000_000}
    )
    errors: list[str] = []

    def report(item: Sent) -> Any:
        def cb(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(f"{item.kind}: {err}")
            else:
                item.where = (int(msg.partition()), int(msg.offset()))

        return cb

    for item in items:
        producer.produce(
            settings.topic(item.topic), item.value, item.key, headers=item.headers, on_delivery=report(item)
        )
    producer.flush(30)
    if errors:
        raise AssertionError(f"could not publish: {errors}")


def js(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def fe(fid: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": fid,
        "ts": 1_760_000_000_000,
        "key": None,
        "features": {"x1": 0.5, "x2": 0.25},
        "model": None,
    } | kw


def hostile_inputs(samples: dict[str, dict[str, Any]]) -> list[Sent]:
    out: list[Sent] = []
    good_fe = CODEC.encode("FeatureEvent", fe("h37-trunc"))
    label_avro = CODEC.encode("Label", {"id": "h37-la", "ts": 1, "label": True})
    # -- features
    out += [
        Sent("features: truncated Avro", "features", good_fe[: len(good_fe) // 2]),
        Sent("features: header only", "features", good_fe[:10]),
        Sent("features: wrong magic byte C3 02", "features", b"\xc3\x02" + good_fe[2:]),
        Sent("features: unknown fingerprint", "features", good_fe[:2] + b"\x00" * 8 + good_fe[10:]),
        Sent("features: valid Avro Label", "features", label_avro),
        Sent("features: JSON NaN", "features", b'{"id":"h37-nan","ts":1,"features":{"x1":NaN}}'),
        Sent("features: JSON Infinity", "features", b'{"id":"h37-inf","ts":1,"features":{"x1":-Infinity}}'),
        Sent(
            "features: JSON int 10**400",
            "features",
            b'{"id":"h37-bigint","ts":1,"features":{"x1":1' + b"0" * 400 + b"}}",
        ),
        Sent(
            "features: JSON ts 2**64",
            "features",
            js({"id": "h37-bigts", "ts": 2**64, "features": {"x1": 1.0}}),
        ),
        Sent("features: JSON 100k [", "features", b"[" * 100_000),
        Sent(
            "features: JSON 50k nested in features",
            "features",
            b'{"id":"h37-deep","ts":1,"features":{"x1":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001 + b"}",
        ),
        Sent(
            "features: JSON duplicate id",
            "features",
            b'{"id":"h37-dup1","id":"h37-dup2","ts":1,"features":{"x1":1.0}}',
        ),
        Sent(
            "features: JSON duplicate feature",
            "features",
            b'{"id":"h37-dup3","ts":1,"features":{"x1":1.0,"x1":2.0}}',
        ),
        Sent(
            "features: JSON with UTF-8 BOM",
            "features",
            b"\xef\xbb\xbf" + js(fe("h37-bom")),
            expect="dead_or_served",
            fid="h37-bom",
        ),
        Sent("features: JSON UTF-16", "features", json.dumps(fe("h37-u16")).encode("utf-16")),
        Sent("features: JSON UTF-16-LE no BOM", "features", json.dumps(fe("h37-u16le")).encode("utf-16-le")),
        Sent("features: JSON array", "features", b"[1,2,3]"),
        Sent("features: JSON null", "features", b"null"),
        Sent("features: JSON string", "features", b'"h37"'),
        Sent(
            "features: JSON nested feature value", "features", js(fe("h37-objval", features={"x1": {"a": 1}}))
        ),
        Sent("features: JSON bool id", "features", js(fe("h37-x") | {"id": True})),
        Sent("features: JSON invalid UTF-8", "features", b'{"id":"h37-\xff","ts":1,"features":{}}'),
        Sent("features: empty value", "features", b""),
        Sent("features: tombstone", "features", None, key=b"k"),
        Sent("features: tombstone no key", "features", None),
        Sent(
            "features: key not UTF-8 + headers",
            "features",
            js(fe("h37-badkey")),
            key=b"\xff\xfe\x00",
            headers=[("x", b"\xff" * 100), ("", b""), ("content-type", b"application/evil")],
            expect="served",
            fid="h37-badkey",
        ),
        Sent(
            "features: JSON model 'ghost' (unknown)",
            "features",
            js(fe("h37-ghost", model="ghost")),
            expect="dead_or_served",
            fid="h37-ghost",
        ),
        Sent(
            "features: JSON model of 2,000 bytes",
            "features",
            js(fe("h37-longmodel", model="m" * 2000)),
            expect="dead_or_served",
            fid="h37-longmodel",
        ),
        Sent(
            "features: JSON 900 KB string feature",
            "features",
            js(fe("h37-900k", features={"s": "v" * 900_000})),
            expect="dead_or_served",
            fid="h37-900k",
        ),
        Sent(
            "features: 100 KB key",
            "features",
            js(fe("h37-bigkey")),
            key=b"k" * 100_000,
            expect="served",
            fid="h37-bigkey",
        ),
    ]
    for n, tail in ((1023, ""), (1024, ""), (1025, ""), (1022, "é"), (1023, "é"), (1021, "€"), (1022, "€")):
        fid = "i" * n + tail
        size = len(fid.encode())
        ok = size <= 1024
        out.append(Sent(f"features: Avro id {size} B ({n}+{tail or 'ascii'})", "features",
                        CODEC.encode("FeatureEvent", fe(fid)) if ok else
                        good_fe[:10] + _avro_fe_body(fid.encode()),
                        expect="served" if ok else "dead", fid=fid if ok else None))  # fmt: skip
        out.append(Sent(f"features: JSON id {size} B ({n}+{tail or 'ascii'})", "features", js(fe("j" + fid[1:])),
                        expect="served" if ok else "dead", fid=("j" + fid[1:]) if ok else None))  # fmt: skip
    # -- labels
    out += [
        Sent("labels: truncated Avro", "labels", label_avro[:-3]),
        Sent("labels: valid Avro FeatureEvent", "labels", good_fe),
        Sent("labels: JSON NaN", "labels", b'{"id":"h37-ln","ts":1,"label":NaN}'),
        Sent("labels: JSON 100k {", "labels", b'{"a":' * 100_000),
        Sent(
            "labels: JSON UTF-16", "labels", json.dumps({"id": "x", "ts": 1, "label": True}).encode("utf-16")
        ),
        Sent("labels: JSON duplicate label", "labels", b'{"id":"h37-ld","ts":1,"label":true,"label":false}'),
        Sent("labels: JSON id 1025 B", "labels", js({"id": "l" * 1023 + "é", "ts": 1, "label": True})),
        Sent("labels: empty value", "labels", b""),
        Sent("labels: tombstone", "labels", None, key=b"k"),
    ]
    # -- control (operators' input)
    out += [
        Sent("control: junk", "control", b"\x00\x01junk", key=b"default"),
        Sent(
            "control: JSON unsigned rollback",
            "control",
            js({"model": "default", "command": "rollback", "args": {}, "ts": 1}),
            key=b"default",
        ),
        Sent("control: JSON 100k [", "control", b"[" * 100_000, key=b"default"),
        Sent("control: empty value", "control", b"", key=b"default"),
        Sent("control: tombstone", "control", None, key=b"default"),
        Sent("control: valid Avro Label", "control", label_avro, key=b"default"),
    ]
    # -- internal topics the workers consume
    # training: the trainer dead-letters; models: scorers and the trainer count it (releases_rejected{decode}),
    # as the README says, not dead-lettered; predictions: read only when the joiner rebuilds after a Redis loss
    expects = {"training": "dead", "models": "counted", "predictions": "not_silent"}
    for topic, rec in (
        ("predictions", "Prediction"),
        ("training", "TrainingExample"),
        ("models", "ModelRelease"),
    ):
        enc = CODEC.encode(rec, samples[topic])
        e = expects[topic]
        out += [
            Sent(f"{topic}: truncated Avro", topic, enc[: len(enc) // 2], key=b"default", expect=e),
            Sent(f"{topic}: wrong magic byte", topic, b"\xc4\x01" + enc[2:], key=b"default", expect=e),
            Sent(f"{topic}: valid Avro Label", topic, label_avro, key=b"default", expect=e),
            Sent(
                f"{topic}: JSON object",
                topic,
                js(samples[topic] | {"artifact": None})
                if topic != "models"
                else b'{"model":"default","version":9}',
                key=b"default",
                expect=e,
            ),
            Sent(f"{topic}: empty value", topic, b"", key=b"default", expect=e),
            Sent(f"{topic}: tombstone", topic, None, key=b"default", expect=e),
        ]
    out += [
        Sent("changelog: junk for default", "changelog", b"\x00junk", key=b"default", expect="not_silent"),
        Sent("changelog: tombstone for ghost", "changelog", None, key=b"ghost", expect="not_silent"),
    ]
    # -- outputs nobody consumes: only the CLI reads them
    for topic in ("drift", "audit", "deadletter"):
        out += [
            Sent(f"{topic}: junk", topic, b"\xc3\x01" + b"\xff" * 20, key=b"default", expect="not_silent"),
            Sent(f"{topic}: JSON 100k [", topic, b"[" * 100_000, key=b"default", expect="not_silent"),
            Sent(f"{topic}: tombstone", topic, None, key=b"default", expect="not_silent"),
        ]
    return out


def _zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        out.append(b | 0x80 if z else b)
        if not z:
            return bytes(out)


def _avro_fe_body(fid: bytes) -> bytes:
    """A FeatureEvent body with ``fid`` as it is (the codec refuses to encode an id over the limit)."""
    features = _zigzag(1) + _zigzag(2) + b"x1" + _zigzag(3) + struct.pack("<d", 0.5) + _zigzag(0)
    return _zigzag(len(fid)) + fid + _zigzag(1_760_000_000_000) + _zigzag(0) + features + _zigzag(0)


class Gadget:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {PWNED}",))


def resign(rel: dict[str, Any], payload: bytes, key: bytes, **header: Any) -> dict[str, Any]:
    """``rel`` with ``payload`` as its artifact and a header signed with ``key``."""
    sha = hashlib.sha256(payload).hexdigest()
    h = dataclasses.replace(ArtifactHeader.from_json(rel["header"]), **({"sha256": sha} | header))
    text = h.to_json()
    return rel | {"artifact": payload, "artifact_ref": None, "sha256": sha, "header": text,
                  "signature": sign(text, payload, key), "version": h.version}  # fmt: skip


def forged_releases(p: Pipeline, latest: dict[str, Any], first: dict[str, Any], store: Path) -> list[Sent]:
    model = p.load_model(latest)
    v = int(latest["version"])
    out: list[Sent] = []

    def add(kind: str, rel: dict[str, Any]) -> None:
        out.append(Sent(f"release: {kind}", "models", CODEC.encode("ModelRelease", rel), key=b"default",
                        expect="refused"))  # fmt: skip

    add("unsigned", latest | {"version": v + 50, "signature": "", "header": ""})
    add("another key", build_release(model, name="default", version=v + 100, parent=v, reason="manual",
                                     metrics={}, key=OTHER_KEY, n_learned=1))  # fmt: skip
    art = bytearray(latest["artifact"] or b"")
    if art:
        art[len(art) // 2] ^= 1
    add("real signature, tampered artifact", latest | {"artifact": bytes(art)})
    add("replayed first release", first)
    add("version 2**63-1, junk signature", latest | {"version": 2**63 - 1, "signature": "00" * 32})
    add("version 2**63-1, another key", resign(latest, latest["artifact"], OTHER_KEY, version=2**63 - 1))
    gadget = zlib.compress(pickle.dumps(Gadget(), protocol=5))
    add("pickle gadget, another key", resign(latest, gadget, OTHER_KEY, version=v + 200))
    add("pickle gadget, REAL key", resign(latest, gadget, SIGNING_KEY.encode(), version=v + 300))
    bomb = zlib.compress(b"\x80\x05" + b"\x00" * 200_000_000, 9)
    add(f"zlib bomb {len(bomb)} B -> 200 MB, another key", resign(latest, bomb, OTHER_KEY, version=v + 400))
    add(
        f"zlib bomb {len(bomb)} B -> 200 MB, REAL key",
        resign(latest, bomb, SIGNING_KEY.encode(), version=v + 500),
    )
    for ref in ("file:///etc/passwd", f"file://{store}/../../../../etc/passwd", "file:///dev/zero",
                f"file://{store}/{latest['sha256']}/../../{latest['sha256']}"):  # fmt: skip
        add(f"artifact_ref {ref[:60]}", latest | {"version": v + 600, "artifact": None, "artifact_ref": ref})
    add("artifact_ref /etc/passwd, REAL key, sha256=passwd",
        resign(latest, b"x", SIGNING_KEY.encode(), version=v + 700, sha256="passwd")
        | {"artifact": None, "artifact_ref": "file:///etc/passwd", "sha256": "passwd"})  # fmt: skip
    return out


def check_cli(p: Pipeline) -> None:
    ghost = p.cli("--model", "ghost", "models", "pause", check=False, timeout=120)
    text = ghost.stdout + ghost.stderr
    row(
        "cli: --model ghost models pause",
        "refused, rc != 0, no traceback",
        f"rc={ghost.returncode} {text.strip()[-160:]!r}",
        ghost.returncode != 0 and "Traceback" not in text,
    )
    for cmd in (["status"], ["status", "--json"], ["models", "list", "--json"], ["models", "show"],
                ["audit", "verify"], ["audit", "show", "--json"], ["explain", "h37-badkey"],
                *[["tail", t, "-n", "40", "--from-beginning"] for t in
                  ("features", "labels", "predictions", "training", "models", "drift", "control", "deadletter")],
                ["tail", "deadletter", "--json", "-n", "5"], ["--model", "ghost", "models", "show"]):  # fmt: skip
        proc = p.cli(*cmd, check=False, timeout=120)
        text = proc.stdout + proc.stderr
        tb = "Traceback" in text
        row(
            f"cli: driftline {' '.join(cmd)}",
            "answers, no traceback",
            f"rc={proc.returncode}{' TRACEBACK ' + text[-300:] if tb else ''}",
            not tb and proc.returncode in (0, 1),
        )


def pipeline_run(redis: str, good: int, restart: bool = True) -> dict[str, Any]:
    prefix = f"hostile37.h{int(time.time()) % 100000}."
    state = Path(tempfile.mkdtemp(prefix="hostile37-"))
    p = Pipeline(prefix, state, redis, extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "50"})
    summary: dict[str, Any] = {"prefix": prefix}
    with running_all(p):
        p.start("all")
        events = make_events(good, seed=37)
        half = len(events) // 2
        publish(p, events[:half])
        p.wait_learned(half - 30, 240)
        p.wait_releases(2, 120)
        samples = {
            "predictions": p.values("predictions")[0],
            "training": p.values("training")[0],
            "models": p.releases()[-1],
        }
        rels = p.releases()
        latest, first = rels[-1], rels[0]
        summary["latest_before"] = latest["version"]
        items = hostile_inputs(samples)
        send(p, items)
        forged = forged_releases(p, latest, first, state / "artifacts")
        send(p, forged)
        # labels for the ids at the limit: they must join and be learned
        limit_ids = [i.fid for i in items if i.fid and len(i.fid.encode()) >= 1023]
        publish(p, events[half:])
        lbl = [Sent("label", "labels", js({"id": f, "ts": 1, "label": True}), expect="x") for f in limit_ids]
        send(p, lbl)
        ids = {e.id for e in events}
        preds: set[str] = set()

        def all_predicted() -> bool:
            preds.update(r.value["id"] for r in p.read("predictions") if r.ok and r.value)
            return ids <= preds

        try:
            p.wait_until("every good event predicted", all_predicted, 300)
            p.wait_learned(len(events) + len(limit_ids), 300)
            row(
                "good events predicted and learned",
                f"{len(ids)} + {len(limit_ids)} limit labels",
                "all",
                True,
            )
        except AssertionError as exc:
            row("good events predicted and learned", f"{len(ids)}", str(exc)[:300], False)
        promote = p.cli("models", "promote", "champion", check=False, timeout=180)
        row("trainer releases after forgeries (models promote champion)", "rc 0", f"rc={promote.returncode} "
            + (promote.stdout + promote.stderr)[-200:].replace("\n", " "), promote.returncode == 0)  # fmt: skip
        time.sleep(10)
        preds = {r.value["id"] for r in p.read("predictions") if r.ok and r.value}
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        dead_at = {(d["source_topic"], d["partition"], d["offset"]): d["error"] for d in dead}
        settings = p.settings()
        for it in items:
            reason = dead_at.get((settings.topic(it.topic), *it.where))
            served = it.fid is not None and it.fid in preds
            got = f"dead-lettered: {reason[:110]}" if reason else ("served" if served else "neither")
            ok = {
                "dead": reason is not None,
                "served": served and reason is None,
                "dead_or_served": (reason is not None) != served,
                "not_silent": True,
                "counted": reason is None,  # checked as a whole below (releases_rejected{decode})
            }[it.expect]
            row(it.kind, it.expect, got, ok)
        # releases
        key = SIGNING_KEY.encode()
        store = ArtifactStore(settings.model.artifact_store)

        def verified(r: dict[str, Any]) -> bool:
            """Verifies AND loads with the restricted loader (a release signed with the real key that the
            loader refuses, the gadget and the bomb here, is not one a scorer can serve)."""
            try:
                verify_release(r, key=key, store=store)
                load_release(r, key=key, store=store)
            except Exception:
                return False
            return True

        in_order = [(r["model"], r["version"], verified(r)) for r in p.releases_in_order()]
        after = [v for m, v, ok in in_order if ok and m == "default" and v > latest["version"]]
        good_versions = [v for m, v, ok in in_order if ok and m == "default"]
        score = next(w for w in p.workers if w.alive())
        served = p.metric(score, "driftline_served_model_version", model="default")
        newest = max(good_versions) if good_versions else None
        row(
            "scorer serves the newest loadable verified release",
            f"v{newest}",
            f"v{served:g}",
            served == newest,
        )
        late = p.start("score")[
            0
        ]  # a scorer that starts now reads the whole models topic, forgeries included
        ok_late = p.settle(
            lambda: p.metric(late, "driftline_served_model_version", model="default") == newest, 90
        )
        row(
            "a scorer started after the forgeries serves it too",
            f"v{newest}",
            f"v{p.metric(late, 'driftline_served_model_version', model='default'):g}",
            ok_late,
        )
        n_models = sum(1 for i in items if i.expect == "counted")
        dec = p.metric(late, "driftline_releases_rejected_total", reason="decode")
        row(
            "junk on models counted by a scorer (releases_rejected{decode})",
            f">= {n_models}",
            f"{dec:g}",
            dec >= n_models,
        )
        row("a verified release after the forgeries", ">= 1", str(after), bool(after))
        rej = {r: p.metric_sum("driftline_releases_rejected_total", reason=r)
               for r in ("signature", "sha256", "replay", "model", "decode", "allow_list", "load", "size")}  # fmt: skip
        summary["releases_rejected"] = rej
        row(
            "forged releases counted as rejected",
            f">= {len(forged)}",
            f"{sum(rej.values()):g} {rej}",
            sum(rej.values()) >= len(forged),
        )
        row(
            "gadget side effect",
            f"no {PWNED}",
            "file exists!" if PWNED.exists() else "none",
            not PWNED.exists(),
        )
        fdead = [d["error"][:110] for d in dead if d["source_topic"] == settings.topic("models")]
        summary["models_deadletters"] = fdead
        for f in forged:
            reason = dead_at.get((settings.topic("models"), *f.where))
            row(f.kind, "refused (dead-letter or counted)", f"dead-lettered: {reason[:110]}" if reason
                else "counted (releases_rejected), not dead-lettered", True)  # fmt: skip

        # lag drains
        def lag() -> float:
            return p.metric_sum("driftline_consumer_lag")

        drained = p.settle(lambda: lag() == 0, timeout=60)
        row("consumer lag drains", "0", f"{lag():g}", drained)
        summary["deadletters_total"] = p.metric_sum("driftline_deadletters_total")
        n_dead_expected = sum(1 for i in items if i.expect == "dead") + len(fdead)
        row("driftline_deadletters_total counts them", f">= {n_dead_expected}", f"{summary['deadletters_total']:g}",
            summary["deadletters_total"] >= n_dead_expected)  # fmt: skip
        dead_workers = [w.role for w in p.workers if not w.alive()]
        row("workers alive", "all", str(dead_workers or "all"), not dead_workers)
        tb = {w.role: w.log_path.read_text(errors="replace").count("Traceback") for w in p.workers}
        row("worker log tracebacks", "0", str(tb), not any(tb.values()))
        check_cli(p)
        if restart:
            # every worker stopped and started again: start-up reads the whole hostile backlog of models, control,
            # changelog (the trainer's restore) and audit, unlike the steady state above
            for w in list(p.workers):
                retire(p, w)
            p.start("all")
            more = make_events(60, seed=38, tag="r")
            publish(p, more)
            more_ids = {e.id for e in more}
            try:
                p.wait_until(
                    "events after the restart predicted",
                    lambda: more_ids <= {r.value["id"] for r in p.read("predictions") if r.ok and r.value},
                    240,
                )
                p.wait_until(
                    "their labels joined",
                    lambda: more_ids <= {r.value["id"] for r in p.read("training") if r.ok and r.value},
                    240,
                )
                if not p.settle(lambda: p.metric_sum("driftline_consumer_lag") == 0, timeout=90):
                    raise AssertionError(f"lag after the restart: {p.metric_sum('driftline_consumer_lag'):g}")
                row("after a restart of every worker: new events predicted, joined, lag 0", "60", "all", True)
            except AssertionError as exc:
                row(
                    "after a restart of every worker: new events predicted, joined, lag 0",
                    "60",
                    str(exc)[:300],
                    False,
                )
            w = p.workers[-1]
            served = p.metric(w, "driftline_served_model_version", model="default")
            row(
                "after the restart the scorer serves",
                f">= v{newest}",
                f"v{served:g}",
                newest is not None and served >= newest,
            )
            tb = w.log_path.read_text(errors="replace").count("Traceback")
            row("after the restart: worker alive, no traceback", "alive, 0", f"alive={w.alive()} tracebacks={tb}",
                w.alive() and tb == 0)  # fmt: skip
    return summary


def first_hour(port: int) -> None:
    """Cold path: a stack that is not running, then CSV and replay oddities (no Kafka needed for replay)."""
    d = Path(tempfile.mkdtemp(prefix="hostile37-fh-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env |= {"DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{port + 2}/0",
            "DRIFTLINE_STATE_DIR": str(d / "state"), "DRIFTLINE_SIGNING_KEY": SIGNING_KEY,
            "DRIFTLINE_TOPIC_PREFIX": "hostile37fh."}  # fmt: skip

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PY, "-m", "driftline", *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=d)  # fmt: skip

    def check(
        name: str, proc: subprocess.CompletedProcess[str], want_rc: set[int], must: tuple[str, ...]
    ) -> None:
        text = proc.stdout + proc.stderr
        missing = [m for m in must if m.lower() not in text.lower()]
        ok = proc.returncode in want_rc and not missing and "Traceback" not in text
        got = f"rc={proc.returncode} {text.strip()[-220:]!r}" + (f" missing {missing}" if missing else "")
        row(f"first hour: {name}", f"rc in {sorted(want_rc)}, names {list(must)}", got, ok)

    check("driftline --help", run("--help"), {0}, ("stack", "worker", "replay"))
    for sub in ("stack", "produce", "replay", "tail", "models"):
        check(f"driftline {sub} --help", run(sub, "--help"), {0}, ())
    check("stack status (stopped)", run("stack", "status"), {0, 1, 3},
          (f"127.0.0.1:{port}",))  # fmt: skip
    odd = {
        "semicolons": ("id;x\n1;2\n", {2}, ("';'",)),
        "empty file": ("", {2}, ("empty",)),
        "header only": ("id,x\n", {0, 2}, ()),
        "row longer than header": ("id,x,y\n1,2,3,4\n", {2}, ("line 2",)),
        "duplicate column": ("id,x,x\n1,2,3\n", {2}, ("'x'",)),
        "no id column, --id-col given": ("a,b\n1,2\n", {2}, ("'nope'",)),
    }
    for name, (text, rc, must) in odd.items():
        f = d / f"odd-{len(name)}.csv"
        f.write_text(text, encoding="utf-8")
        extra = ("--id-col", "nope") if "id-col" in name else ()
        check(f"produce features, CSV {name}", run("produce", "features", "--file", str(f), *extra), rc, must)
    good = d / "good.csv"
    good.write_text("\ufeffid, x ,colour\n1,0.5,red\n2,,blue\n", encoding="utf-8")
    check("produce features, BOM + spaces in header, broker down", run("produce", "features", "--file", str(good)),
          {1, 2, 3}, (f"127.0.0.1:{port}",))  # fmt: skip
    rng = random.Random(37)
    ten = d / "ten.csv"
    lines = ["a,b,c,label"] + [
        f"{x:.3f},{y:.3f},{rng.random():.3f},{int(x * 5) * 2 + (y > 0.5)}"
        for x, y in ((rng.random(), rng.random()) for _ in range(3000))
    ]
    ten.write_text("\n".join(lines) + "\n")
    proc = run("replay", "--file", str(ten), "--label-col", "label", "--json", timeout=300)
    acc = None
    with contextlib.suppress(Exception):
        acc = json.loads(proc.stdout)["accuracy"]
    row("first hour: replay 10-class file, defaults", "rc 0, accuracy > 0.5",
        f"rc={proc.returncode} accuracy={acc} {proc.stderr.strip()[-200:]!r}",
        proc.returncode == 0 and acc is not None and acc > 0.5)  # fmt: skip
    check("replay: label column missing", run("replay", "--file", str(ten), "--label-col", "nope"), {2},
          ("nope",))  # fmt: skip
    odd = d / "odd2.csv"
    odd.write_text("a,a,,label\n1,2,3,x\n4,5\n")
    check("replay: duplicate/empty header, ragged row", run("replay", "--file", str(odd), "--label-col", "label"),
          {0, 2}, ())  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default=os.environ.get("DRIFTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0"))
    ap.add_argument("--good", type=int, default=400)
    ap.add_argument("--first-hour", action="store_true", help="also the cold-path checks")
    ap.add_argument("--no-restart", action="store_true", help="skip the restart of every worker at the end")
    ap.add_argument("--only-first-hour", action="store_true")
    ap.add_argument("--cold-port", type=int, default=17192, help="a port where no broker runs")
    args = ap.parse_args()
    summary: dict[str, Any] = {}
    if args.first_hour or args.only_first_hour:
        first_hour(args.cold_port)
    if not args.only_first_hour:
        summary = pipeline_run(args.redis, args.good, restart=not args.no_restart)
    width = max(len(r[0]) for r in ROWS)
    for check, expected, got, ok in ROWS:
        print(f"{'PASS' if ok else 'FAIL'}  {check:{width}s}  expected: {expected:28s}  got: {got}")
    failed = [r[0] for r in ROWS if not r[3]]
    summary |= {"rows": len(ROWS), "failed": failed}
    print(json.dumps(summary, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
