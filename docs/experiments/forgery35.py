"""Session 35 (helper sec35): forged and replayed records against a running pipeline, from outside, and a check
that the scorer keeps serving (and adopting new releases) and the trainer keeps learning afterwards.

Sent after the first half of the good events: a release signed with another key (a newer version), the first
release replayed (an older version, same model), a valid release of model ``default`` re-keyed as model ``other``,
an unsigned control command, one signed with another key under the real key's id, a real signed ``pause``
replayed after ``resume`` (learning must not pause), a copy of a real audit entry with one field changed, and junk
on ``audit``. Then the second half of the good events.

Run (stack on 18092/18379)::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:18092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:18379/0 PYTHONPATH=$PWD \\
        /work/main/.venv/bin/python docs/experiments/forgery35.py --redis redis://127.0.0.1:18379/0
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from learners.artifacts import ArtifactStore, build_release, verify_release
from schemas.codec import default_codec
from streams.control import _canonical, key_id
from tests.fault_helpers import make_events, publish, running_all
from tests.pipeline_helpers import KAFKA_BOOTSTRAP, Pipeline

CODEC = default_codec()
OTHER_KEY = b"another-key-that-is-32-bytes-long-at-least"


def raw_records(topic: str) -> list[tuple[bytes | None, bytes]]:
    c = Consumer(
        {
            "bootstrap.servers": KAFKA_BOOTSTRAP,
            "group.id": f"sec35-{time.time()}",
            "enable.auto.commit": False,
        }
    )
    md = c.list_topics(topic, timeout=10).topics[topic]
    tps = [TopicPartition(topic, p, 0) for p in md.partitions]
    c.assign(tps)
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in md.partitions}
    out: list[tuple[bytes | None, bytes]] = []
    done = {p for p, e in ends.items() if e == 0}
    deadline = time.monotonic() + 30
    while len(done) < len(ends) and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        out.append((m.key(), m.value()))
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    c.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis", default="redis://127.0.0.1:18379/0")
    ap.add_argument("--good", type=int, default=600)
    ap.add_argument(
        "--send",
        default="pause,releases,control,audit",
        help="what to do between the halves (comma-separated): pause (a real pause and resume), releases, control "
        "(needs pause for the replay), audit",
    )
    args = ap.parse_args()
    prefix = f"sec35.f{int(time.time()) % 100000}."
    state = Path(tempfile.mkdtemp(prefix="sec35-forgery-"))
    p = Pipeline(prefix, state, args.redis, extra_env={"DRIFTLINE__MODEL__RELEASE_EVERY": "25"})
    summary: dict[str, Any] = {"prefix": prefix, "problems": []}
    problems: list[str] = summary["problems"]
    with running_all(p):
        p.start("score", "join", "train")
        settings = p.settings()
        events = make_events(args.good, seed=36)
        half = len(events) // 2
        publish(p, events[:half])
        p.wait_learned(half, 180)
        releases = p.releases()
        latest = releases[-1]
        summary["before"] = {"releases": len(releases), "latest_version": latest["version"]}
        send = set(args.send.split(","))
        summary["sent"] = sorted(send)
        pause: list[dict[str, Any]] = []
        if "pause" in send:  # a real pause and resume: the pause's bytes are replayed later
            p.cli("models", "pause", check=False, timeout=60)
            p.cli("models", "resume", check=False, timeout=60)
            pause = [v for v in p.values("control") if v.get("command") == "pause_learning"]
        if "releases" in send:
            model = p.load_model(latest)
            forged = build_release(model, name="default", version=int(latest["version"]) + 100,
                                   parent=latest["version"], reason="manual", metrics={}, key=OTHER_KEY,
                                   n_learned=1)  # fmt: skip
            p.send_raw("models", [CODEC.encode("ModelRelease", forged)], key=b"default")
            p.send_raw("models", [CODEC.encode("ModelRelease", releases[0])], key=b"default")  # replay, older
            p.send_raw("models", [CODEC.encode("ModelRelease", latest)], key=b"other")  # another model's key
        # -- forged control commands
        now = int(time.time() * 1000)
        base = {"model": "default", "command": "rollback", "args": {}, "ts": now}
        unsigned = {**base, "id": "f1", "key_id": "", "signature": ""}
        wrong = {**base, "id": "f2", "key_id": key_id(settings.model.signing_key.get().encode())}
        wrong["signature"] = hmac.new(OTHER_KEY, _canonical(wrong), hashlib.sha256).hexdigest()
        cmds = [unsigned, wrong, *pause[:1]]
        if "control" in send:
            p.send_raw("control", [CODEC.encode("ControlCommand", c) for c in cmds], key=b"default")
        # -- forged audit entries
        audit = raw_records(settings.topic("audit"))
        forged_audit = [b"not an audit entry", b"{}"]
        if audit:
            k, v = audit[-1]
            try:
                entry = json.loads(v)
                text = json.dumps(entry)
                forged_audit.append(
                    text.replace('"promote"', '"rollback"', 1).replace('"v', '"w', 1).encode()
                )
            except ValueError:
                forged_audit.append(v[:-1] + bytes([v[-1] ^ 1]))
        if "audit" in send:
            p.send_raw("audit", forged_audit, key=b"default")
        # -- then good events again
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
            problems.append(str(exc)[:2000])
        # a release the trainer must publish now (incremental releases thin out as the model settles: 4 in the
        # second 300 labels without any forgery), which the scorer must adopt
        promote = p.cli("models", "promote", "champion", check=False, timeout=120)
        summary["promote_champion_rc"] = promote.returncode
        time.sleep(8)
        key = settings.model.signing_key.get().encode()

        def verified(r: dict[str, Any]) -> bool:
            try:
                verify_release(r, key=key, store=ArtifactStore(settings.model.artifact_store))
            except Exception:
                return False
            return True

        in_order = [(r["model"], r["version"], verified(r)) for r in p.releases_in_order()]
        summary["releases_in_topic_order"] = in_order
        legit_after = [v for m, v, ok in in_order if ok and m == "default" and v > latest["version"]]
        summary["verified_releases_after_forgeries"] = legit_after
        if not legit_after:
            problems.append("no verified release after the forgeries")
        scorer = next(w for w in p.workers if w.role == "score")
        served = p.metric(scorer, "driftline_served_model_version", model="default")
        summary["scorer_serves"] = served
        if legit_after and served != max(legit_after):
            problems.append(f"scorer serves v{served}, the newest verified release is v{max(legit_after)}")
        summary["labels_learned"] = p.labels_learned()
        summary["paused_after_replay"] = p.trainer().get("paused")
        for reason in ("signature", "sha256", "replay", "model", "decode", "allow_list", "load"):
            summary[f"releases_rejected_{reason}"] = p.metric_sum(
                "driftline_releases_rejected_total", reason=reason
            )
        summary["control_refused"] = {
            r: p.metric_sum("driftline_control_refused_total", reason=r)
            for r in ("unsigned", "signature", "stale", "replay")
        }
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        summary["deadletter_reasons"] = sorted({d["error"][:140] for d in dead})
        verify = p.cli("audit", "verify", "--json", check=False, timeout=120)
        summary["audit_verify_rc"] = verify.returncode
        summary["audit_verify"] = verify.stdout[-1500:]
        dead_workers = [w.role for w in p.workers if not w.alive()]
        if dead_workers:
            problems.append(f"workers died: {dead_workers}\n{p.logs(60)}")
        summary["worker_log_tracebacks"] = {
            w.role: w.log_path.read_text(errors="replace").count("Traceback") for w in p.workers
        }
    for k, v in summary.items():
        print(f"{k}: {v}")
    print(json.dumps(summary, default=str))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
