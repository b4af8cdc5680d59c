"""Label -> served staleness of the live pipeline, per stage, and the demo's guard tax (BENCHMARKS.md, session 12).

A label reaches the served model through: ``labels`` -> join -> ``training`` -> trainer (learns it, builds a release
once the guard allows) -> the transaction commits -> scorers (read_committed) swap the release in. Every second of
that path costs ``rate`` events of staleness that a plain learner (the demo's baseline) does not pay.

This script runs ``driftline demo --no-live --json`` as a child process on a topic prefix of its own, with a
read_committed watcher on ``models`` (the moment each release becomes visible to a scorer), then reads the run's
topics and times, per label (p50/p95):

- ``join``: label produced -> its TrainingExample produced by the join (Kafka CreateTimes);
- ``learn``: TrainingExample -> the first release that learned it was built (its ``created_at``). For all labels
  this includes the guard's cadence (labels wait for the next release); ``learn_trigger`` is the same for the
  label that completed each release only: the pipeline's own part (the trainer's gather window, learning);
- ``commit``: release built -> visible to a read_committed reader (the trainer's transaction ending);
- ``swap``: visible -> the first Prediction served by that version (or a newer one; its ``scored_at``);
- ``total``: label produced -> first Prediction of a version that learned it.

Several code trees can be compared on the same machine, interleaved round by round (``--tree A=/path``): each
demo runs with ``PYTHONPATH`` set to its tree. The stack comes from DRIFTLINE_KAFKA_BOOTSTRAP / DRIFTLINE_REDIS_URL
(use your own, never the default ports another run may share).

    python -m bench.staleness --tree base=/tmp/lag-base --tree new=. --rates 100,400,1000 --events 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from connectors.consumer import read_to_end
from connectors.kafka_client import client_config
from driftline.settings import Settings, load_settings
from driftline.util import percentile
from schemas.codec import default_codec

STAGES = ("join", "learn", "learn_trigger", "commit", "swap", "total")


class ReleaseWatch:
    """A read_committed reader of ``<prefix>models``: the wall time (ms) each release version became visible."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings, self.topic = settings, topic
        self.seen: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="release-watch", daemon=True)

    def start(self) -> ReleaseWatch:
        self._thread.start()
        return self

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.seen

    def _run(self) -> None:
        codec = default_codec()
        consumer = Consumer(
            client_config(
                self.settings,
                **{
                    "group.id": f"staleness-{secrets.token_hex(4)}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "fetch.wait.max.ms": 10,
                },
            )
        )
        try:
            while not self._stop.is_set():
                meta = consumer.list_topics(self.topic, timeout=5).topics.get(self.topic)
                if meta is not None and meta.error is None and meta.partitions:
                    break
                self._stop.wait(0.1)
            else:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in meta.partitions])
            while not self._stop.is_set():
                # consume(1, t): returns at the first record (consume(n, t) waits for n or the whole t).
                for msg in consumer.consume(1, 0.05) + consumer.consume(100, 0):
                    if msg.error():
                        continue
                    now = int(time.time() * 1000)
                    release = codec.decode("ModelRelease", msg.value() or b"", topic=self.topic)
                    self.seen.setdefault(int(release["version"]), now)
        finally:
            consumer.close()


def _read(settings: Settings, topic: str, record: str) -> list[tuple[Any, int, int, int]]:
    """(decoded value, partition, offset, Kafka timestamp ms) of every record of ``topic``."""
    codec = default_codec()
    out = []
    for msg in read_to_end(settings, topic, f"staleness-read-{secrets.token_hex(4)}", timeout=30):
        try:
            value = codec.decode(record, msg.value() or b"", topic=topic, allow_json=True)
        except Exception:
            continue
        out.append((value, msg.partition() or 0, msg.offset() or 0, msg.timestamp()[1]))
    return out


def breakdown(settings: Settings, prefix: str, visible: dict[int, int]) -> dict[str, Any]:
    """The per-stage times (ms, p50/p95) of one run's topics; ``visible``: version -> first seen committed."""
    labels = {v["id"]: ts for v, _, _, ts in _read(settings, prefix + "labels", "Label")}
    training = [
        (v["id"], ts)
        for v, _, _, ts in sorted(
            _read(settings, prefix + "training", "TrainingExample"), key=lambda r: (r[1], r[2])
        )
    ]
    releases = [v for v, *_ in _read(settings, prefix + "models", "ModelRelease")]
    predictions = [
        (int(v.get("version") or 0), int(v.get("scored_at") or 0))
        for v, *_ in _read(settings, prefix + "predictions", "Prediction")
    ]
    return stage_times(labels, training, releases, predictions, visible)


def stage_times(
    labels: dict[str, int],
    training: list[tuple[str, int]],
    releases: list[dict[str, Any]],
    predictions: list[tuple[int, int]],
    visible: dict[int, int],
) -> dict[str, Any]:
    """Per-stage times (ms, p50/p95) from what the topics hold (every time in ms since the epoch).

    ``labels``: label id -> produced; ``training``: (id, produced) in the order the trainer learns them (one model);
    ``releases``: ModelRelease records; ``predictions``: (version, scored_at); ``visible``: version -> the time a
    read_committed reader first saw it.

    >>> r = stage_times({"a": 0, "b": 10}, [("a", 5), ("b", 15)],
    ...                 [{"version": 2, "reason": "incremental", "created_at": 40, "metrics": {"n_learned": 2}}],
    ...                 [(1, 30), (2, 70)], {2: 50})
    >>> r["total_p50_ms"], r["join_p50_ms"], r["commit_p50_ms"], r["swap_p50_ms"], r["learn_trigger_p50_ms"]
    (60.0, 5.0, 10.0, 20.0, 25.0)
    """
    releases = sorted(releases, key=lambda r: int(r["version"]))
    first_served: dict[int, int] = {}
    for version, at in predictions:
        if at and (version not in first_served or at < first_served[version]):
            first_served[version] = at
    # A version that learned a label counts as served from the first prediction of it *or any newer version*.
    versions = {int(r["version"]) for r in releases} | set(first_served)
    served_from: dict[int, int] = {}
    newest: int | None = None
    for version in sorted(versions, reverse=True):
        first = first_served.get(version)
        if first is not None:
            newest = first if newest is None else min(newest, first)
        if newest is not None:
            served_from[version] = newest
    # Release k learned the first n_learned labels of the lineage (training is one partition for one model,
    # learned in offset order; duplicates are dropped by the trainer, as here).
    incremental = [r for r in releases if r.get("reason") != "initial"]
    learned = [int((r.get("metrics") or {}).get("n_learned", 0)) for r in incremental]
    for k in range(1, len(learned)):  # a challenger's own count can be lower: the lineage's never falls
        learned[k] = max(learned[k], learned[k - 1])
    stages: dict[str, list[float]] = {s: [] for s in STAGES}
    seen_ids: set[str] = set()
    rank = 0
    triggers = {n - 1 for n in learned}
    for id_, ts in training:
        if id_ in seen_ids:
            continue
        seen_ids.add(id_)
        k = bisect_left(learned, rank + 1)
        label_ts = labels.get(id_)
        rank += 1
        if k >= len(incremental) or label_ts is None:
            continue
        version, built = int(incremental[k]["version"]), int(incremental[k]["created_at"])
        if version not in visible or version not in served_from:
            continue  # learned by a release never served (the run's last ones): no staleness to measure
        stages["join"].append(ts - label_ts)
        stages["learn"].append(built - ts)
        if rank - 1 in triggers:
            stages["learn_trigger"].append(built - ts)
        stages["commit"].append(visible[version] - built)
        stages["swap"].append(served_from[version] - visible[version])
        stages["total"].append(served_from[version] - label_ts)
    out: dict[str, Any] = {"labels": rank, "measured": len(stages["total"]), "releases": len(incremental)}
    for name, values in stages.items():
        for q in (50, 95):
            value = percentile(values, q)
            out[f"{name}_p{q}_ms"] = None if value is None else round(value, 1)
    return out


def run_once(tree: str, rate: float, events: int, workdir: Path) -> dict[str, Any]:
    """One demo with the code of ``tree``; its summary, the staleness breakdown and the guard tax."""
    settings = load_settings()
    prefix = f"stale-{secrets.token_hex(3)}."
    watch = ReleaseWatch(settings, prefix + "models").start()
    report = workdir / prefix.rstrip(".")
    cmd = [sys.executable, "-m", "streams.cli", "--topic-prefix", prefix, "demo", "--events", str(events),
           "--rate", str(rate), "--no-live", "--no-console", "--json", "--report", str(report)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    try:
        done = subprocess.run(
            cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        visible = watch.stop()
    if done.returncode != 0:
        raise RuntimeError(f"demo failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    row = {
        "rate": rate,
        "events": events,
        "accuracy": summary.get("accuracy"),
        "plain_accuracy": summary.get("plain_accuracy"),
        "guard_tax": summary.get("guard_tax"),
        "versions": summary.get("versions_released"),
    }
    row.update(breakdown(settings, prefix, visible))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--tree", action="append", default=[], metavar="NAME=PATH", help="a code tree (repeatable)"
    )
    p.add_argument("--rates", default="100,400,1000")
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workdir", default="/tmp/staleness-runs")
    p.add_argument("--out", help="append one JSON line per run here")
    args = p.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree) or {"here": "."}
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for round_ in range(args.rounds):
        for rate in [float(r) for r in args.rates.split(",")]:
            for name, tree in trees.items():  # interleaved: every tree once per rate and round
                row = {"tree": name, "round": round_, **run_once(tree, rate, args.events, workdir)}
                line = json.dumps(row, sort_keys=True)
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
