"""Publish features and labels to driftline as plain JSON, the way your own service would.

No driftline import: only confluent-kafka. Each event is a FeatureEvent (``id``, ``ts``, ``key``, ``features``)
on ``<prefix>features``; its label (``id``, ``ts``, ``label``) goes to ``<prefix>labels`` a few events later,
as labels arrive late in real life. driftline accepts UTF-8 JSON objects on its input topics.

    python examples/produce_json.py --bootstrap 127.0.0.1:9092 --prefix driftline. --events 200

The topics must exist: ``driftline stack up`` creates them locally, ``driftline topics create`` on any cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    # The same environment variables driftline reads, so an exported deployment needs no flags.
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP") or "127.0.0.1:9092",
        help="Kafka bootstrap servers (default %(default)s: $DRIFTLINE_KAFKA_BOOTSTRAP, else 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("DRIFTLINE_TOPIC_PREFIX") or "driftline.",
        help="driftline's topic prefix (default %(default)s: $DRIFTLINE_TOPIC_PREFIX, else driftline.)",
    )
    parser.add_argument("--events", type=int, default=200, help="events to publish")
    parser.add_argument("--label-delay", type=int, default=20, help="publish each label N events later")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from confluent_kafka import Producer

    rng = random.Random(args.seed)
    # acks=all + idempotence: on a replicated cluster an acknowledged event is on the in-sync replicas, and the
    # client's retries after a leader change neither duplicate nor reorder it.
    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "linger.ms": 5, "acks": "all", "enable.idempotence": True}
    )
    failures: list[str] = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    owed: list[tuple[str, bool]] = []  # (event id, label) waiting to be published

    def send_label(event_id: str, label: bool) -> None:
        value = {"id": event_id, "ts": int(time.time() * 1000), "label": label}
        producer.produce(f"{args.prefix}labels", key=event_id, value=json.dumps(value), on_delivery=delivered)

    for i in range(args.events):
        x, y = rng.uniform(0, 10), rng.uniform(0, 10)
        user = f"user-{rng.randrange(20)}"
        event_id = f"ex-{args.seed}-{i}"
        event = {
            "id": event_id,
            "ts": int(time.time() * 1000),
            "key": user,
            "features": {"x": x, "y": y, "country": rng.choice(["fr", "de", "us"]), "returning": i % 3 == 0},
        }
        # Keyed by entity, so every event of one user lands on the same partition, in order.
        producer.produce(f"{args.prefix}features", key=user, value=json.dumps(event), on_delivery=delivered)
        owed.append((event_id, x + y > 10))
        if len(owed) > args.label_delay:
            send_label(*owed.pop(0))
        producer.poll(0)
    for event_id, label in owed:
        send_label(event_id, label)
    remaining = producer.flush(30)
    if failures or remaining:
        print(f"not delivered: {remaining} pending, errors: {failures[:3]}", file=sys.stderr)
        return 1
    print(json.dumps({"features": args.events, "labels": args.events, "prefix": args.prefix}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
