"""The contract's topics: names, partitions, cleanup policies, and idempotent creation.

``models`` and ``control`` are compacted (the latest release / command per model is what matters);
``training``, ``models`` and ``control`` have one partition each because they have a single writer per model
and need a total order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.errors import StackError
from streams.settings import Settings

# Contract topic names, in the order the contract lists them.
TOPIC_NAMES: tuple[str, ...] = (
    "features",
    "labels",
    "predictions",
    "training",
    "models",
    "drift",
    "control",
    "deadletter",
)
COMPACTED = frozenset({"models", "control"})
SINGLE_PARTITION = frozenset({"training", "models", "control"})


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: full name, partition count, replication factor and topic configs."""

    name: str
    partitions: int
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)

    @property
    def cleanup_policy(self) -> str:
        return self.config.get("cleanup.policy", "delete")


def contract_topics(settings: Settings) -> dict[str, TopicSpec]:
    """``{contract name: TopicSpec}`` for the eight contract topics under the configured prefix.

    >>> from streams.settings import load_settings
    >>> specs = contract_topics(load_settings(environ={}))
    >>> specs["models"].name, specs["models"].partitions, specs["models"].cleanup_policy
    ('driftline.models', 1, 'compact')
    """
    specs: dict[str, TopicSpec] = {}
    for name in TOPIC_NAMES:
        config = {"cleanup.policy": "compact" if name in COMPACTED else "delete"}
        if name in COMPACTED:
            # Compact promptly so a restarted worker reads few superseded releases.
            config["min.cleanable.dirty.ratio"] = "0.1"
            config["segment.ms"] = str(3_600_000)
        specs[name] = TopicSpec(
            name=settings.topic(name),
            partitions=1 if name in SINGLE_PARTITION else settings.kafka.partitions,
            replication_factor=settings.kafka.replication_factor,
            config=config,
        )
    return specs


def ensure_topics(
    settings: Settings, names: tuple[str, ...] | None = None, timeout: float = 30.0
) -> dict[str, TopicSpec]:
    """Create the contract topics that do not exist yet (all of them, or ``names``) and wait until they are
    visible.

    Idempotent: existing topics are left as they are (an existing topic's partition count is not changed).
    Raises :class:`StackError` naming the topic when creation fails for another reason.
    """
    specs = contract_topics(settings)
    wanted = {n: specs[n] for n in (names or TOPIC_NAMES)}
    admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise StackError(f"cannot list topics on {settings.kafka.bootstrap}: {exc.args[0]}") from exc
    missing = [spec for spec in wanted.values() if spec.name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config)) for s in missing],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for topic, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                err = exc.args[0]
                # Another process may create the same topic at the same moment: that is success too.
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise StackError(f"cannot create topic {topic}: {err}") from exc
        _wait_visible(admin, [s.name for s in missing], timeout)
    return wanted


def _wait_visible(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """Block until every topic has leaders for all its partitions (create_topics returns before that)."""
    deadline = time.monotonic() + timeout
    pending = set(topics)
    while pending:
        metadata = admin.list_topics(timeout=max(deadline - time.monotonic(), 0.1))
        for name in list(pending):
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                continue
            if all(p.leader >= 0 for p in topic.partitions.values()):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StackError(f"topics not ready after {timeout:g} s: {', '.join(sorted(pending))}")
        time.sleep(0.05)
