"""The contract's topics: names, partitions, cleanup policies, idempotent creation, and checks against a cluster.

``models`` and ``control`` are compacted (the latest release / command per model is what matters). ``training``,
``control`` and ``changelog`` are keyed by model and have ``kafka.training_partitions`` partitions each, the same
count, so a model's examples, commands and trainer state share one partition number (and one trainer: see
streams/trainers.py); ``models`` and ``audit`` have one partition (every scorer reads every release). Two topics
of the contract's additions are created with the others by ``driftline topics create`` and ``driftline stack
up``: ``changelog`` (compacted, each model's trainer state) and ``audit`` (never compacted, never expired: a hash
chain must keep every link).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.errors import StackError
from driftline.settings import Settings

log = logging.getLogger(__name__)

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
# Topics of the contract's additions (2026-12-01); created by `driftline topics create` and `stack up`.
EXTRA_TOPICS: tuple[str, ...] = ("changelog", "audit")
ALL_TOPICS: tuple[str, ...] = TOPIC_NAMES + EXTRA_TOPICS
COMPACTED = frozenset({"models", "control", "changelog"})
SINGLE_PARTITION = frozenset({"models", "audit"})
BY_MODEL = frozenset({"training", "control", "changelog"})  # keyed by model, kafka.training_partitions each
CHANGELOG_MAX_BYTES = 64 * 1024 * 1024  # a trainer state (a large tree ensemble) may be tens of MB
KEEP_FOREVER = frozenset({"audit"})


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
    """``{contract name: TopicSpec}`` for the contract topics (:data:`ALL_TOPICS`) under the configured prefix.

    >>> from driftline.settings import load_settings
    >>> specs = contract_topics(load_settings(environ={}))
    >>> specs["models"].name, specs["models"].partitions, specs["models"].cleanup_policy
    ('driftline.models', 1, 'compact')
    """
    specs: dict[str, TopicSpec] = {}
    for name in ALL_TOPICS:
        config = {"cleanup.policy": "compact" if name in COMPACTED else "delete"}
        if name == "changelog":
            config["max.message.bytes"] = str(CHANGELOG_MAX_BYTES)
        if name in COMPACTED:
            # Compact promptly so a restarted worker reads few superseded releases.
            config["min.cleanable.dirty.ratio"] = "0.1"
            config["segment.ms"] = str(3_600_000)
        elif name in KEEP_FOREVER:
            config["retention.ms"] = "-1"
            config["retention.bytes"] = "-1"
        elif settings.kafka.retention_ms is not None:
            config["retention.ms"] = str(settings.kafka.retention_ms)
        if settings.kafka.replication_factor > 1:
            # With acks=all a write is acknowledged once this many replicas have it: one node may fail (or
            # lag) without stopping writes, and an acknowledged record is never only on one disk.
            config["min.insync.replicas"] = str(min(2, settings.kafka.replication_factor - 1))
        specs[name] = TopicSpec(
            name=settings.topic(name),
            partitions=1
            if name in SINGLE_PARTITION
            else settings.kafka.training_partitions
            if name in BY_MODEL
            else settings.kafka.partitions,
            replication_factor=settings.kafka.replication_factor,
            config=config,
        )
    return specs


def ensure_topics(
    settings: Settings, names: tuple[str, ...] | None = None, timeout: float = 30.0
) -> dict[str, TopicSpec]:
    """Create the contract topics that do not exist yet (all of them, or ``names``) and wait until they are
    visible.

    Idempotent: existing topics are left as they are (an existing topic's partition count is not changed;
    :func:`check_topics` says how it differs). Raises :class:`StackError` naming the topic and the broker
    address when creation fails for another reason.
    """
    specs = contract_topics(settings)
    wanted = {n: specs[n] for n in (names or TOPIC_NAMES)}
    admin = _admin(settings)
    existing = set(_metadata(admin, settings, timeout))
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
                raise StackError(f"cannot create topic {topic} on {settings.kafka.bootstrap}: {err}") from exc
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


# ---------------------------------------------------------------- checking what a cluster has


@dataclass(frozen=True)
class Difference:
    """One way an existing topic differs from the contract. ``severity`` is ``error`` when it breaks a
    guarantee (a compacted topic that deletes, several partitions where order matters, an audit topic that
    expires) and ``warning`` otherwise (another partition count or retention than the settings say)."""

    field: str
    expected: str
    actual: str
    severity: str = "warning"

    def describe(self) -> str:
        return f"{self.field} is {self.actual}, the contract says {self.expected} ({self.severity})"


@dataclass(frozen=True)
class TopicCheck:
    """What the cluster has for one contract topic, next to what the contract and settings say."""

    topic: str  # contract name, e.g. ``models``
    spec: TopicSpec
    exists: bool
    partitions: int = 0
    replication_factor: int = 0
    config: dict[str, str] = field(default_factory=dict)  # actual values of the keys in spec.config
    differences: tuple[Difference, ...] = ()

    @property
    def status(self) -> str:
        """``ok``, ``missing``, ``differs`` (an error-level difference) or ``warning``."""
        if not self.exists:
            return "missing"
        if any(d.severity == "error" for d in self.differences):
            return "differs"
        return "warning" if self.differences else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "name": self.spec.name,
            "status": self.status,
            "exists": self.exists,
            "expected": {
                "partitions": self.spec.partitions,
                "replication_factor": self.spec.replication_factor,
                "config": dict(self.spec.config),
            },
            "actual": None
            if not self.exists
            else {
                "partitions": self.partitions,
                "replication_factor": self.replication_factor,
                "config": dict(self.config),
            },
            "differences": [
                {"field": d.field, "expected": d.expected, "actual": d.actual, "severity": d.severity}
                for d in self.differences
            ],
        }


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (the Java client's default partitioner, librdkafka's ``murmur2_random``).

    >>> murmur2(b"21"), murmur2(b"foobar")
    (-973932308, -790332482)
    """
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(key: str, partitions: int) -> int:
    """The partition our producers (and Java's) put a record keyed ``key`` on, of ``partitions``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))


def _differences(
    name: str, spec: TopicSpec, partitions: int, rf: int, config: dict[str, str]
) -> list[Difference]:
    out = []
    if partitions != spec.partitions:
        # Several partitions where a single writer relies on a total order breaks the contract; a different
        # count of a data topic only changes how far scoring scales out.
        severity = "error" if name in SINGLE_PARTITION or name in BY_MODEL else "warning"
        out.append(Difference("partitions", str(spec.partitions), str(partitions), severity))
    if rf < spec.replication_factor:
        out.append(Difference("replication_factor", str(spec.replication_factor), str(rf)))
    if rf > 1 and "min.insync.replicas" not in spec.config:
        # Replicated although the settings did not ask for it (e.g. `stack up --brokers 3` with
        # kafka.replication_factor left at 1): acks=all keeps a write on a second replica only when
        # min.insync.replicas says so, which is what topics created with replication get.
        least, insync = min(2, rf - 1), config.get("min.insync.replicas", "")
        if not insync.isdigit() or int(insync) < least:
            out.append(Difference("min.insync.replicas", str(least), insync or "(not set)"))
    for key, want in spec.config.items():
        have = config.get(key, "")
        if key == "cleanup.policy":
            same = set(have.split(",")) == set(want.split(","))
        else:
            same = have == want
        if not same:
            severity = "error" if key == "cleanup.policy" or name in KEEP_FOREVER else "warning"
            out.append(Difference(key, want, have or "(not set)", severity))
    return out


def _metadata(admin: AdminClient, settings: Settings, timeout: float) -> dict[str, Any]:
    """``{topic name: TopicMetadata}`` of the cluster; a StackError naming the broker address otherwise."""
    try:
        return dict(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise StackError(
            f"cannot list topics on {settings.kafka.bootstrap}: {exc.args[0]} (is the broker up? "
            "`driftline doctor` checks)"
        ) from exc


def prefixed_topics(settings: Settings, timeout: float = 10.0) -> list[str]:
    """Every topic of the cluster that starts with the configured prefix (contract or not), sorted."""
    prefix = settings.kafka.topic_prefix
    return sorted(n for n in _metadata(_admin(settings), settings, timeout) if n.startswith(prefix))


def check_topics(
    settings: Settings, names: tuple[str, ...] = ALL_TOPICS, timeout: float = 10.0
) -> list[TopicCheck]:
    """Compare the cluster's topics with the contract (partitions, replication, cleanup and retention configs).

    Read-only. Raises :class:`StackError` naming the broker address when the cluster does not answer.
    """
    specs = contract_topics(settings)
    admin = _admin(settings)
    metadata = _metadata(admin, settings, timeout)
    present = [n for n in names if specs[n].name in metadata]
    configs: dict[str, dict[str, str]] = {}
    if present:
        futures = admin.describe_configs(
            [ConfigResource(ResourceType.TOPIC, specs[n].name) for n in present], request_timeout=timeout
        )
        for resource, future in futures.items():
            try:
                entries = future.result()
            except KafkaException as exc:
                raise StackError(
                    f"cannot read the config of topic {resource.name} on {settings.kafka.bootstrap}: "
                    f"{exc.args[0]}"
                ) from exc
            configs[resource.name] = {k: str(v.value) for k, v in entries.items() if v.value is not None}
    out = []
    for name in names:
        spec = specs[name]
        meta = metadata.get(spec.name)
        if meta is None:
            out.append(TopicCheck(name, spec, exists=False))
            continue
        partitions = len(meta.partitions)
        rf = min((len(p.replicas) for p in meta.partitions.values()), default=0)
        full = configs.get(spec.name, {})
        config = {key: full.get(key, "") for key in spec.config}
        diffs = _differences(name, spec, partitions, rf, full)
        out.append(TopicCheck(name, spec, True, partitions, rf, config, tuple(diffs)))
    return out


def max_message_bytes(settings: Settings, name: str, timeout: float = 5.0) -> int | None:
    """Topic ``name``'s ``max.message.bytes`` (the largest record batch its broker accepts: the topic's own
    setting, else the broker's ``message.max.bytes``); None when it cannot be read (the broker away, no
    DescribeConfigs permission, a value that is not a number)."""
    full = settings.topic(name)
    admin = _admin(settings)  # held until the answer came: a client dropped meanwhile fails the request
    try:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, full)], request_timeout=timeout)
        entries = next(iter(futures.values())).result(timeout)
        return int(entries["max.message.bytes"].value)
    except (KafkaException, KeyError, ValueError, TypeError, TimeoutError) as exc:
        log.warning("cannot read max.message.bytes of topic %s: %s", full, exc)
        return None
