"""Session 45 (helper guard45): adv44's ``types`` burst through a train worker's ``Trainer`` offline, in the label
orders a trainer reads (docs/experiments/guard45.md).

A live trainer reads the training topic's six partitions in turn (records keyed by id), so its labels come in blocks of
one partition's ids, not in event order (``driftline replay``'s). Here the stream of ``adv44.events("types")`` is
shuffled within windows of ``--window`` events (seeded), fed to ``tests.trainer_helpers.offline_trainer`` in batches of
100 (``Trainer.process``, the live learning path), and the served model is scored on the clean stream's events from
2,000 on as they arrive (the model served when the batch 20 events before them was learned). No broker: a rollback's
release record is given no own statistics (``own_stats_and_range`` would read the models topic).

    PYTHONPATH=TREE python docs/experiments/slipped45.py [--events 6000] [--seeds 0-7] [--window 120]
        [--patch learners.policies.SLIPPED_ALPHA=0]

One JSON line per seed: served version at the end and at event 1,600, champion resets, the served accuracy over events
2,000 on, the final served and champion models' accuracy on them, the pairs of the running incremental comparison.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import adv44  # type: ignore[import-not-found]


def run(seed: int, window: int, n: int, batch: int = 100) -> dict[str, Any]:
    from connectors.batch_source import RawRecord
    from driftline.settings import load_settings
    from learners.features import clean_features
    from tests.trainer_helpers import offline_trainer

    adv44.N = n
    stream = adv44.events("types")
    clean = adv44.events("clean")
    order = list(range(n))
    rng = random.Random(seed)
    for k in range(0, n, window):
        block = order[k : k + window]
        rng.shuffle(block)
        order[k : k + window] = block
    settings = load_settings(
        environ={},
        overrides={
            "model.signing_key": "k" * 40,
            "state_dir": tempfile.mkdtemp(prefix="slipped45-"),
            "model.learner": {"name": "hoeffding_tree"},
            "kafka.bootstrap": "127.0.0.1:1",  # nothing reaches a broker
            "redis.url": "redis://127.0.0.1:1/0",
        },
    )
    trainer = offline_trainer(settings)
    trainer.start(None, 0)
    trainer.own_stats_and_range = lambda version: ({}, {})
    records = []
    for k, i in enumerate(order):
        e = stream[i]
        example = {"id": e["id"], "model": "default", "key": None, "features": e["features"], "label": e["label"],
                   "prediction": None, "proba": None, "version": None, "event_ts": e["ts"],
                   "label_ts": e["ts"] + 1}  # fmt: skip
        records.append((RawRecord("driftline.training", 0, k, b"default", b"", k), example))
    hits = scored = 0
    at_1600 = None
    lc = trainer.lifecycle
    for k in range(0, n, batch):
        if k + adv44.DELAY >= 2000:
            served = lc._served.model
            for e in clean[k + adv44.DELAY : k + batch + adv44.DELAY]:
                hits += served.predict_one(clean_features(e["features"])) == e["label"]
                scored += 1
        trainer.process(records[k : k + batch])
        if k + batch == 1600:
            at_1600 = lc.served_version
    tail = clean[2000:]

    def accuracy(model: Any) -> float:
        return round(
            sum(model.predict_one(clean_features(e["features"])) == e["label"] for e in tail) / len(tail), 3
        )

    ev = lc._increment.evidence
    return {
        "seed": seed,
        "served": lc.served_version,
        "served_at_1600": at_1600,
        "resets": lc.champion_resets,
        "served_accuracy_2000_on": round(hits / max(scored, 1), 4),
        "final_served": accuracy(lc._served.model),
        "final_champion": accuracy(lc._lineage.model),
        "incremental_pairs": ev.n,
        "champion_only_right": ev.cand_only,
        "snapshot_only_right": ev.base_only,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=6000)
    ap.add_argument("--seeds", default="0-7")
    ap.add_argument("--window", type=int, default=120)
    ap.add_argument("--patch", default="", help="module.NAME=VALUE,... (a float)")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # the burst's ~600 input warnings
    for item in filter(None, args.patch.split(",")):
        target, value = item.split("=")
        module, name = target.rsplit(".", 1)
        setattr(importlib.import_module(module), name, float(value))
    lo, _, hi = args.seeds.partition("-")
    for seed in range(int(lo), int(hi or lo) + 1):
        print(json.dumps(run(seed, args.window, args.events)), flush=True)


if __name__ == "__main__":
    main()
