"""How long a trainer's first audit append takes when it levels a chain of N entries between file and topic.

Session 40 (helper gov40): ``AuditLog._continuation`` verified each entry again with every good one before it
(quadratic). This builds an N-entry chain in a temp state dir, then opens it (1) with an empty topic (the file's
entries are published) and (2) with an empty file (the topic's entries are copied), and prints the time of each.

    PYTHONPATH=$PWD python docs/experiments/audit_level40.py 2000

No broker: the topic is a list, as in tests/test_audit_log.py.
"""

from __future__ import annotations

import sys
import tempfile
import time

from driftline.audit_chain import from_line
from driftline.settings import load_settings
from streams.audit import AuditLog, audit_paths


def main(n: int) -> None:
    cfg = load_settings(
        environ={},
        overrides={
            "model.signing_key": "k" * 32,
            "state_dir": tempfile.mkdtemp(),
            "kafka.topic_prefix": "p.",
        },
    )
    log = AuditLog(cfg, "default")
    for i in range(n):
        log.append("release", {"version": i, "outcome": "ok"})
    published: list[bytes] = []
    t = time.perf_counter()
    AuditLog(cfg, "default", publish=lambda data, m: published.append(data), topic_entries=lambda: []).append(
        "control", {"c": 1}
    )
    print(f"{n} entries, file -> empty topic: {time.perf_counter() - t:.2f} s ({len(published)} published)")
    topic = [from_line(x) for x in published]
    for path in audit_paths(cfg, "default"):
        path.unlink()
    t = time.perf_counter()
    AuditLog(cfg, "default", publish=lambda data, m: None, topic_entries=lambda: topic).append(
        "control", {"c": 2}
    )
    print(f"{n} entries, topic -> empty file: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
