"""Session 31 (outside16): tamper with a copy of a real audit chain on the audit topic, one prefix per case, and print
what ``driftline audit verify`` says (``--source topic`` and ``both``, with the untouched file as the state dir's).

    DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:16092 DRIFTLINE_SIGNING_KEY=... DRIFTLINE=driftline \\
    python docs/experiments/audit_tamper31.py /tmp/state/audit/p.default.jsonl p.t /tmp/tamper [case ...]

Cases: clean, altered, reordered, duplicated, removed, truncated (the topic lacks the last 10), garbage (a record
that is no JSON). Each writes ``<prefix><case>.audit`` (created here) and ``<dir>/<case>/audit/...jsonl``; a console
on ``DRIFTLINE_TOPIC_PREFIX=<prefix><case>.`` with an empty state dir shows the topic copy (console31.py's
TAMPERED_URL row).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

SOURCE, PREFIX, DIR = sys.argv[1], sys.argv[2], sys.argv[3]
BOOTSTRAP = os.environ["DRIFTLINE_KAFKA_BOOTSTRAP"]
with open(SOURCE) as source_file:
    lines = [line for line in source_file.read().splitlines() if line.strip()][:40]
ents = [json.loads(line) for line in lines]
CASES: dict[str, list[object]] = {
    "clean": list(ents),
    "altered": [*ents[:10], dict(ents[10], ts=ents[10]["ts"] + 1), *ents[11:]],
    "reordered": [*ents[:10], ents[11], ents[10], *ents[12:]],
    "duplicated": [*ents[:10], ents[10], *ents[10:]],
    "removed": [*ents[:10], *ents[11:]],
    "truncated": ents[:30],
    "garbage": [*ents[:10], "not json {", *ents[10:]],
}
chosen = sys.argv[4:] or list(CASES)
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
for future in admin.create_topics([NewTopic(f"{PREFIX}{n}.audit", 1, 1) for n in chosen]).values():
    try:
        future.result()
    except Exception as exc:  # already there from an earlier run
        print("create:", exc)
producer = Producer({"bootstrap.servers": BOOTSTRAP})
for name in chosen:
    prefix = f"{PREFIX}{name}."
    for entry in CASES[name]:
        value = entry if isinstance(entry, str) else json.dumps(entry, sort_keys=True)
        producer.produce(f"{prefix}audit", value.encode(), b"default")
    producer.flush()
    state = f"{DIR}/{name}"
    os.makedirs(f"{state}/audit", exist_ok=True)
    with open(f"{state}/audit/{prefix}default.jsonl", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    env = dict(os.environ, DRIFTLINE_TOPIC_PREFIX=prefix, DRIFTLINE_STATE_DIR=state)
    for source in ("topic", "both"):
        cmd = [os.environ.get("DRIFTLINE", "driftline"), "audit", "verify", "--source", source]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        print(f"== {name} --source {source}: exit {out.returncode}\n{out.stdout.strip()}")
