"""What a batch retried longer than ``max.poll.interval.ms`` leaves behind (session 41, helper arch41): the run of
``tests/test_faults_stack.py::test_a_batch_retried_longer_than_max_poll_interval[refusing]`` on one's own stack,
with the duplicates counted (the test checks only that nothing is lost or learned twice).

Separate score, join and train workers; 1,000 events at 300/s with labels; once a third are sent, Redis refuses
writes (``maxmemory 1``) for ``--seconds``; then every event must come through and pass the fault suite's oracle.
Run once with ``BROKER_MAX_POLL_INTERVAL`` 8 s (the retry outlasts it: the consumers leave their groups) and once
with 300 s (they stay), to tell the duplicates of the retries from those of leaving the group.

It changes ``maxmemory`` of the Redis it is given: run it on a stack of one's own only::

    DRIFTLINE_TEST_KAFKA=127.0.0.1:15092 DRIFTLINE_TEST_REDIS=redis://127.0.0.1:15379/15 PYTHONPATH=$PWD \\
        /work/main/.venv/bin/python docs/experiments/maxpoll41.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def one_run(interval: int, seconds: float, work: Path) -> dict[str, object]:
    import redis

    from tests.fault_helpers import (
        FAULT_ENV,
        Publisher,
        check_run,
        make_events,
        running_all,
        wait_complete,
    )
    from tests.pipeline_helpers import Pipeline

    redis_url = os.environ["DRIFTLINE_TEST_REDIS"]
    prefix = f"mp41-{interval}-{secrets.token_hex(3)}."
    env = {**FAULT_ENV, "BROKER_MAX_POLL_INTERVAL": str(interval), "DRIFTLINE__MODEL__RELEASE_EVERY": "300"}
    state = work / prefix.rstrip(".")
    state.mkdir()
    pipeline = Pipeline(prefix, state, redis_url, extra_env=env)
    n = 1000
    with running_all(pipeline) as p:
        p.start("score", "join", "train")
        events = make_events(n)
        ids = {e.id for e in events}
        publisher = Publisher(p, events, rate=300.0)
        publisher.start()
        publisher.wait_sent(n // 3)
        client = redis.Redis.from_url(redis_url)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        t0 = time.monotonic()
        try:
            time.sleep(seconds)
        finally:
            client.config_set("maxmemory", "0")
            client.close()
        publisher.finish()
        out = wait_complete(p, events, ids, timeout=180)
        check_run(p, out, events, ids)
        logs = "\n".join(w.log_tail(100000) for w in p.workers)
        result = {
            "max_poll_interval_s": interval,
            "refused_s": round(time.monotonic() - t0, 1),
            "events": n,
            "predictions": len(out.predictions),
            "duplicate_predictions": out.duplicate_predictions,
            "training_examples": len(out.training),
            "joined_twice": len(out.training) - len({t["id"] for t in out.training}),
            "retries": p.metric_sum("driftline_events_total", outcome="retry"),
            "left_group": logs.count("maximum poll interval"),
            "started_after_handled": logs.count("start after the batches handled"),
        }
        pipeline.cli("cleanup", "--prefix", prefix, "--force", check=False)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="how long Redis refuses writes")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maxpoll41-"))
    for interval in (8, 300):
        print(one_run(interval, args.seconds, work), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
