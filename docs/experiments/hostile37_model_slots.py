"""Session 37 (hostile37): new-model slots exhausted from `features` (no key needed).

A scorer remembers every model name an event names (``routing.max_models`` bounds how many) and never forgets one
until it restarts. Events naming ``max_models`` made-up models fill the slots; afterwards the events of a *new*
real model (not in ``routing.models``, no release yet) are dead-lettered by that scorer, so the model never gets a
prediction, a join, a label learned or a first release. Models that already have a release are not affected.

    DRIFTLINE_TEST_KAFKA=127.0.0.1:17092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:17379/0 PYTHONPATH=$PWD \\
        /work/main/.venv/bin/python docs/experiments/hostile37_model_slots.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.fault_helpers import running_all
from tests.pipeline_helpers import Pipeline

MAX = 5


def ev(i: int, model: str) -> bytes:
    return json.dumps({"id": f"s-{model}-{i}", "ts": 1, "features": {"x": 1.0}, "model": model}).encode()


def main() -> int:
    prefix = f"hostile37.s{int(time.time()) % 100000}."
    redis = os.environ.get("DRIFTLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")
    p = Pipeline(prefix, Path(tempfile.mkdtemp(prefix="hostile37-slots-")), redis,
                 extra_env={"DRIFTLINE__ROUTING__MAX_MODELS": str(MAX)})  # fmt: skip
    with running_all(p):
        p.start("score")
        # the scorer has its partitions once this is answered (events before that may be skipped)
        p.send_raw_at("features", [ev(0, "default")])
        p.wait_until("a first prediction", lambda: p.read("predictions"), 120)
        p.send_raw_at("features", [ev(i, f"ghost{i}") for i in range(MAX)])
        time.sleep(5)
        where = p.send_raw_at("features", [ev(0, "tenant-b")])
        time.sleep(10)
        dead = [r.value for r in p.read("deadletter") if r.ok and r.value]
        topic = p.settings().topic("features")
        hit = [
            d["error"] for d in dead if (d["source_topic"], d["partition"], d["offset"]) == (topic, *where[0])
        ]
        preds = [r.value["id"] for r in p.read("predictions") if r.ok and r.value]
    print("ghost events predicted:", sum(1 for x in preds if x.startswith("s-ghost")))
    print("tenant-b predicted:", "s-tenant-b-0" in preds)
    print("tenant-b dead-lettered:", hit[:1])
    return 1 if hit else 0


if __name__ == "__main__":
    sys.exit(main())
