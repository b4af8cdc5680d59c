"""The score stage's own CPU per event at small batches, in process (no Kafka, no Redis), per source tree.

    python -m bench.score_process TREE [TREE ...] [--events 6000] [--batches 2,16,64] [--rounds 3]

Each tree's ``Scorer.process`` (decode, predict, encode, the feature-drift monitors, metrics) runs over the same
20-feature events in batches of each size, a logistic regression served; best process CPU of ``--rounds`` per
tree and size, trees interleaved round by round. At low rates a worker's batches are a few events each, so the
per-batch costs are what this shows (BENCHMARKS.md, "Issue 16, the p99 on a quiet machine").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run inside one tree (its code first on sys.path): prints {batch: best us per event}.
_CHILD = r"""
import json, random, sys, time
from contextlib import contextmanager
from types import SimpleNamespace
sys.path.insert(0, sys.argv[1])
from driftline.config import LearnerSpec
from driftline.settings import load_settings
from learners.specs import build_learner
from schemas.codec import default_codec
from streams.metrics import build_metrics
from streams.releases import LoadedModel
from streams.runtime import RawRecord, WorkerContext
from streams.score import Scorer

events, batches, rounds = int(sys.argv[2]), [int(b) for b in sys.argv[3].split(",")], int(sys.argv[4])
codec = default_codec()

class Producer:
    def produce_bytes(self, topic, data, key=None): pass
    def produce_many(self, topic, records): return [None] * len(records)
    @contextmanager
    def tracking(self): yield SimpleNamespace(pending=0, done=True, failed=0)
    def wait(self, deliveries, timeout=0): pass
    def flush(self, timeout=0): pass
    def close(self, timeout=0): pass

class Follower:
    def __init__(self, model): self.loaded = LoadedModel(1, model, {}, 0.0)
    def take(self):
        loaded, self.loaded = self.loaded, None
        return loaded
    def served(self, name, version): pass

rng = random.Random(1)
model = build_learner(LearnerSpec("logistic_regression"))
for _ in range(400):
    x = {f"f{j}": rng.gauss(0, 1) for j in range(20)}
    model.learn_one(x, x["f0"] + 0.3 * x["f1"] > 0)
values = [codec.encode("FeatureEvent", {"id": f"e{i}", "ts": i, "key": None,
                                        "features": {f"f{j}": rng.gauss(0, 1) for j in range(20)}})
          for i in range(events)]
out = {}
for size in batches:
    best = float("inf")
    for _ in range(rounds):
        settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "b."})
        scorer = Scorer(WorkerContext(settings, codec, build_metrics(), Producer()), Follower(model), store=None)
        start = time.process_time()
        for s in range(0, events, size):
            scorer.process([RawRecord("b.features", 0, i, None, v) for i, v in enumerate(values[s:s + size], s)])
        best = min(best, time.process_time() - start)
    out[size] = round(best / events * 1e6, 1)
print(json.dumps(out))
"""


def measure(tree: str, events: int, batches: str, rounds: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, tree, str(events), batches, str(rounds)],
        capture_output=True, text=True, check=True, cwd="/",
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("trees", nargs="*", default=[str(ROOT)], help="source trees (default: this one)")
    p.add_argument("--events", type=int, default=6000)
    p.add_argument("--batches", default="2,16,64", help="comma-separated batch sizes")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each keeps its best CPU")
    args = p.parse_args(argv)
    best: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for tree in args.trees:
            got = measure(tree, args.events, args.batches, 1)
            mine = best.setdefault(tree, {})
            for size, us in got.items():
                mine[size] = min(us, mine.get(size, us))
    for tree, row in best.items():
        print(
            f"{tree}: " + ", ".join(f"batch {size}: {us:.1f} us/event" for size, us in row.items()),
            file=sys.stderr,
        )
    print(json.dumps({"events": args.events, "us_per_event": best}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
