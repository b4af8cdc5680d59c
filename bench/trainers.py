"""Learning scale-out: labels/s learned by 1 and by 2 train processes over many models, side by side.

Each measurement starts ``k`` train workers (one consumer group, on a topic prefix of its own), waits until the
group is stable with all ``k`` members, then writes ``n`` TrainingExamples spread over ``models`` models (keyed by
model) and times from the first label learned to the last, by the trainers' own reports (the Redis ownership
hash), with their CPU seconds.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import redis
from confluent_kafka.admin import AdminClient

from bench.env import BenchEnv, cpu_seconds, progress
from connectors.kafka_client import client_config
from connectors.producer import EventProducer
from connectors.redis_store import redis_client
from driftline.settings import Settings
from streams.join import owners_key, trainer_group


def _wait_stable(settings: Settings, members: int, timeout: float = 120.0) -> None:
    """Until the trainer group is Stable with ``members`` members (so no rebalance falls inside the timing)."""
    admin = AdminClient(client_config(settings))
    group = trainer_group(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            (described,) = admin.describe_consumer_groups([group], request_timeout=10).values()
            info = described.result()
            if str(info.state).endswith("STABLE") and len(info.members) == members:
                return
        except Exception:  # not there yet
            pass
        time.sleep(0.5)
    raise RuntimeError(
        f"trainer group {group} did not become stable with {members} member(s) in {timeout:g} s"
    )


def _fill(env: BenchEnv, model: str, n: int, models: int) -> None:
    settings = env.settings(model, "logistic_regression")
    rng = random.Random(5)
    with EventProducer(settings) as producer:
        for i in range(n):
            name = f"m{i % models:03d}"
            x = {f"f{j}": rng.random() for j in range(8)}
            label = sum(x.values()) > 4.0
            example = {
                "id": f"{name}-{i}",
                "model": name,
                "key": None,
                "features": x,
                "label": label,
                "prediction": None,
                "proba": None,
                "version": 0,
                "event_ts": i,
                "label_ts": i,
            }
            producer.send("training", "TrainingExample", example, name)
        producer.flush(120)


def _learned(client: redis.Redis, key: str) -> int:
    total = 0
    for value in client.hgetall(key).values():
        try:
            entry = json.loads(value)
            # labels_learned: every label learned (a probation rollback takes n_learned back for good, and a wait
            # for n_learned then never ends); n_learned from an owner that predates the field.
            total += int(entry.get("labels_learned", entry["n_learned"]))
        except (ValueError, KeyError, TypeError):
            continue
    return total


def learn_scaling(
    env: BenchEnv, n: int, models: int, trainers: int, timeout: float = 900.0
) -> dict[str, Any]:
    """labels/s of ``trainers`` train processes over ``n`` pre-filled examples of ``models`` models."""
    model = f"scale{trainers}"
    settings = env.settings(model, "logistic_regression")
    env.ensure_topics(settings)
    client = redis_client(settings)
    key = owners_key(settings)
    workers = [env.start_worker("train", model, "logistic_regression", tag=f"x{k}") for k in range(trainers)]
    _wait_stable(settings, trainers)
    _fill(env, model, n, models)
    first: tuple[float, int] | None = None
    cpu0 = 0.0
    deadline = time.monotonic() + timeout
    learned = 0
    while time.monotonic() < deadline:
        learned = _learned(client, key)
        now = time.monotonic()
        if first is None and learned > 0:
            first, cpu0 = (now, learned), sum(cpu_seconds(w.pid) for w in workers)
        if learned >= n:
            break
        time.sleep(0.1)
    cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu0
    for w in workers:
        env.stop_worker(w)
    if first is None or learned < n:
        raise RuntimeError(f"{trainers} trainer(s) learned {learned} of {n} labels within {timeout:g} s")
    span = time.monotonic() - first[0]
    done = learned - first[1]
    progress(f"learning over {models} models with {trainers} trainer(s): {done / span:,.0f} labels/s")
    return {
        f"learn_{trainers}_trainers_lps": done / span,
        f"learn_{trainers}_trainers_cpu_us": cpu / max(1, done) * 1e6,
    }


def trainer_scaling(env: BenchEnv, n: int, models: int) -> dict[str, Any]:
    """1 and 2 trainers on the same kind of backlog, one after the other in the same run: the ratio is the
    figure to read (absolute labels/s depend on the machine and its load)."""
    out: dict[str, Any] = {"learn_scaling_models": models, "learn_scaling_labels": n}
    for k in (1, 2):
        out.update(learn_scaling(env, n, models, k))
    out["learn_2_vs_1_trainers"] = out["learn_2_trainers_lps"] / out["learn_1_trainers_lps"]
    return out
