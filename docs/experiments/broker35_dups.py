"""Duplicate predictions of broker35 runs: per prefix, how many ids were predicted twice and how far apart (Kafka
timestamps of the two records, ms). ``python docs/experiments/broker35_dups.py broker35.43402. ...``"""

import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from schemas.codec import default_codec

codec = default_codec()
for prefix in sys.argv[1:]:
    topic = prefix + "predictions"
    c = Consumer(
        {
            "bootstrap.servers": os.environ.get("DRIFTLINE_KAFKA_BOOTSTRAP", "127.0.0.1:15092"),
            "group.id": f"dups-{time.time()}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in parts}
    c.assign([TopicPartition(topic, p, ends[p][0]) for p in parts])
    seen = defaultdict(list)
    n = 0
    total = sum(high - low for low, high in ends.values())
    deadline = time.time() + 120
    while n < total and time.time() < deadline:
        ms = c.consume(5000, 1.0)
        if not ms:
            break
        for m in ms:
            if m.error():
                continue
            n += 1
            v = codec.decode("Prediction", m.value(), topic=topic)
            seen[v["id"]].append(m.timestamp()[1])
    c.close()
    gaps = sorted(max(t) - min(t) for t in seen.values() if len(t) > 1)
    print(
        prefix,
        "records",
        n,
        "dup ids",
        len(gaps),
        "gap ms min/median/max",
        gaps[:1],
        gaps[len(gaps) // 2 : len(gaps) // 2 + 1],
        gaps[-1:],
    )
