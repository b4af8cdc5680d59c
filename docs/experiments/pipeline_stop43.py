"""How long a test pipeline (score, join and train workers) takes to stop: one worker after the other (what
``tests.pipeline_helpers.Pipeline.stop`` did before session 43) or every worker SIGTERMed at once, then each waited
for (what it does since, helper tspeed43). Alternates the two ``--rounds`` times on the tests' stack.

    DRIFTLINE_TEST_KAFKA=127.0.0.1:K DRIFTLINE_TEST_REDIS=redis://127.0.0.1:R/15 \\
        PYTHONPATH=$PWD python docs/experiments/pipeline_stop43.py --rounds 3

Prints one JSON line per stop: {"mode", "stop_s", "codes"}; every exit code must be 0 (a graceful drain).
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import tempfile
import time
from pathlib import Path

from tests.conftest import REDIS_URL
from tests.pipeline_helpers import Pipeline


def one(mode: str) -> dict[str, object]:
    pipeline = Pipeline(f"t-{secrets.token_hex(4)}.", Path(tempfile.mkdtemp(prefix="stop43-")), REDIS_URL)
    pipeline.start("score", "join", "train")
    time.sleep(3)  # joined their groups, idle
    t0 = time.monotonic()
    if mode == "together":
        for worker in pipeline.workers:
            worker.signal(signal.SIGTERM)
    codes = [worker.stop(timeout=20) for worker in pipeline.workers]
    return {"mode": mode, "stop_s": round(time.monotonic() - t0, 2), "codes": codes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.rounds):
        for mode in ("one-by-one", "together"):
            print(json.dumps(one(mode)), flush=True)


if __name__ == "__main__":
    main()
