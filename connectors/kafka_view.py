"""What the broker knows about a driftline deployment: worker consumer groups, their members and their lag.

Used by ``driftline status``, ``doctor`` and the demo's live view. Only reads (AdminClient list/describe calls); never
joins a group, so looking does not disturb the workers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.settings import Settings

__all__ = ["GroupInfo", "KafkaView", "app_group_prefix", "replication_health"]


def app_group_prefix(settings: Settings | None = None) -> str:
    """Consumer group ids of driftline workers start with this (Faust app id ``driftline-<prefix><model>-...``).

    >>> app_group_prefix()
    'driftline-'
    """
    return "driftline-" if settings is None else f"driftline-{settings.kafka.topic_prefix}"


@dataclass
class GroupInfo:
    """One consumer group: its state, members (``client_id@host``), the partitions each member is assigned and
    lag per topic."""

    group_id: str
    state: str
    members: list[str] = field(default_factory=list)
    lag: dict[str, int] = field(default_factory=dict)  # full topic name -> messages behind
    # member (as in ``members``) -> full topic name -> partitions assigned to it now (a member without any: {})
    assignments: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group_id,
            "state": self.state,
            "members": self.members,
            "assignments": self.assignments,
            "lag": self.lag,
            "total_lag": self.total_lag,
        }


def _assignments(members: Iterable[Any]) -> dict[str, dict[str, list[int]]]:
    """``{client_id@host: {topic: [partitions]}}`` of a group's members (as ``describe_consumer_groups`` says)."""
    out: dict[str, dict[str, list[int]]] = {}
    for m in members:
        topics = out.setdefault(f"{m.client_id}@{m.host.lstrip('/')}", {})
        for tp in m.assignment.topic_partitions if m.assignment is not None else []:
            topics.setdefault(tp.topic, []).append(tp.partition)
    for topics in out.values():
        for parts in topics.values():
            parts.sort()
    return out


def replication_health(metadata: Any, prefix: str) -> dict[str, Any]:
    """What the cluster metadata says about the replicas of the topics named ``prefix``...: the brokers that
    answer, brokers that replicas name but that are not in the cluster (dead or cut off), partitions whose in-sync
    replicas are fewer than their replicas (a broker down or behind: with ``acks=all``, writes stop once the ISR is
    under ``min.insync.replicas``) and partitions without a leader (neither readable nor writable).

    ``metadata``: what ``AdminClient.list_topics()`` returns (``brokers``, ``topics[t].partitions[p]`` with
    ``leader``, ``replicas``, ``isrs``)."""
    brokers = sorted(int(b) for b in metadata.brokers)
    named: set[int] = set()
    under: dict[str, list[int]] = {}
    offline: dict[str, list[int]] = {}
    for topic in sorted(metadata.topics):
        if not topic.startswith(prefix):
            continue
        for pid, part in sorted(metadata.topics[topic].partitions.items()):
            named.update(int(r) for r in part.replicas)
            if part.leader is None or part.leader < 0:
                offline.setdefault(topic, []).append(int(pid))
            elif len(part.isrs) < len(part.replicas):
                under.setdefault(topic, []).append(int(pid))
    return {
        "brokers": brokers,
        "missing_brokers": sorted(named - set(brokers)),
        "under_replicated": under,
        "offline": offline,
    }


def describe_replication(health: dict[str, Any]) -> list[str]:
    """One line per problem :func:`replication_health` found (none when the cluster is whole)."""
    lines = []
    if health["missing_brokers"]:
        missing = ", ".join(str(b) for b in health["missing_brokers"])
        lines.append(f"broker {missing} named by replicas does not answer ({len(health['brokers'])} do)")

    def parts(by_topic: dict[str, list[int]]) -> str:
        return "; ".join(f"{t} {','.join(map(str, ps))}" for t, ps in by_topic.items())

    if health["offline"]:
        n = sum(map(len, health["offline"].values()))
        lines.append(f"{n} partition(s) without a leader (no reads, no writes): {parts(health['offline'])}")
    if health["under_replicated"]:
        n = sum(map(len, health["under_replicated"].values()))
        # Every broker answers yet replicas are out of sync: a node that came back is copying what it missed
        # (fault40, session 40: status exited 0 in that window). Not over until the in-sync replicas are full.
        why = (
            "catching up: every broker answers, a returning replica copies what it missed"
            if not health["missing_brokers"] and not health["offline"]
            else "fewer in-sync replicas than replicas; writes stop below min.insync.replicas"
        )
        lines.append(f"{n} partition(s) under-replicated ({why}): {parts(health['under_replicated'])}")
    return lines


def replication_degraded(health: dict[str, Any] | None) -> bool:
    """Whether :func:`replication_health` found anything :func:`describe_replication` would name."""
    return health is not None and any(health[k] for k in ("missing_brokers", "under_replicated", "offline"))


class KafkaView:
    """Read-only AdminClient queries about groups, offsets and topic ends for one settings object."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
        # What the last :meth:`group_ids` could not list (a broker that did not answer in time): the groups it
        # returned may then be incomplete, and "no worker" would be a guess.
        self.group_errors: list[str] = []

    def replication(self) -> dict[str, Any]:
        """:func:`replication_health` of this deployment's topics, from one metadata request."""
        metadata = self._admin.list_topics(timeout=self.timeout)
        return replication_health(metadata, self.settings.kafka.topic_prefix)

    def group_ids(self, prefix: str | None = None) -> list[str]:
        """Ids of the consumer groups starting with ``prefix`` (default: this deployment's worker groups)."""
        start = app_group_prefix(self.settings) if prefix is None else prefix
        result = self._admin.list_consumer_groups(request_timeout=self.timeout).result()
        self.group_errors = [str(e) for e in result.errors]
        return sorted(g.group_id for g in result.valid if g.group_id.startswith(start))

    def topic_metadata(self, topic: str) -> Any:
        """The cluster's metadata of ``topic`` (``.partitions``), or None when it does not exist."""
        meta = self._admin.list_topics(topic, timeout=self.timeout).topics.get(topic)
        return None if meta is None or meta.error is not None else meta

    def partition_owners(self, group_id: str) -> dict[tuple[str, int], str]:
        """``{(topic, partition): client id of the member assigned it}`` in ``group_id`` now (empty when the group
        has no member). Raises KafkaException when the broker cannot say."""
        desc = self._admin.describe_consumer_groups([group_id], request_timeout=self.timeout)[
            group_id
        ].result()
        return {
            (tp.topic, tp.partition): m.client_id
            for m in desc.members
            if m.assignment is not None
            for tp in m.assignment.topic_partitions
        }

    def describe(self, group_ids: Iterable[str], with_lag: bool = True) -> list[GroupInfo]:
        """State, members and (with ``with_lag``) per-topic lag of each group."""
        ids = list(group_ids)
        if not ids:
            return []
        infos: list[GroupInfo] = []
        assigned: dict[str, set[tuple[str, int]]] = {}
        futures = self._admin.describe_consumer_groups(ids, request_timeout=self.timeout)
        for gid in ids:
            try:
                desc = futures[gid].result()
            except KafkaException as exc:
                infos.append(GroupInfo(gid, f"error: {exc.args[0]}"))
                continue
            state = getattr(desc.state, "name", str(desc.state)).lower()
            members = sorted(f"{m.client_id}@{m.host.lstrip('/')}" for m in desc.members)
            infos.append(GroupInfo(gid, state, members, assignments=_assignments(desc.members)))
            assigned[gid] = {
                (tp.topic, tp.partition)
                for m in desc.members
                if m.assignment is not None
                for tp in m.assignment.topic_partitions
            }
        if with_lag:
            self._add_lag(infos, assigned)
        return infos

    def _add_lag(self, infos: list[GroupInfo], assigned: dict[str, set[tuple[str, int]]]) -> None:
        prefix = self.settings.kafka.topic_prefix
        committed = {info.group_id: self.committed(info.group_id) for info in infos}
        wanted: set[tuple[str, int]] = set()
        for info in infos:
            # Assigned partitions with nothing committed yet count from the start (auto.offset.reset=earliest):
            # a consumer that never commits must not look idle.
            for tp in assigned.get(info.group_id, set()):
                committed[info.group_id].setdefault(tp, -1)
            wanted |= set(committed[info.group_id])
        # Only contract topics: Faust's internal leader topic is not work waiting to be done.
        wanted = {tp for tp in wanted if tp[0].startswith(prefix)}
        ends = self.end_offsets(wanted)
        starts = self.end_offsets(wanted, OffsetSpec.earliest())
        for info in infos:
            for tp, offset in committed[info.group_id].items():
                if tp not in wanted or tp not in ends:
                    continue
                # A commit below the low watermark (records deleted since) is out of range: the consumer resets to
                # the earliest record, as it does with no commit.
                position = max(offset, starts.get(tp, 0))
                info.lag[tp[0]] = info.lag.get(tp[0], 0) + max(0, ends[tp] - position)

    def committed(self, group_id: str) -> dict[tuple[str, int], int]:
        """``{(topic, partition): committed offset}`` of one group."""
        futures = self._admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id)], request_timeout=self.timeout
        )
        try:
            result = futures[group_id].result()
        except KafkaException:
            return {}
        return {
            (tp.topic, tp.partition): tp.offset for tp in result.topic_partitions or [] if tp.error is None
        }

    def end_offsets(
        self, partitions: Iterable[tuple[str, int]], spec: OffsetSpec | None = None
    ) -> dict[tuple[str, int], int]:
        """High watermark (or the offset ``spec`` asks for) of each ``(topic, partition)``."""
        spec = spec or OffsetSpec.latest()
        wanted = {TopicPartition(t, p): spec for t, p in partitions}
        if not wanted:
            return {}
        out: dict[tuple[str, int], int] = {}
        for tp, future in self._admin.list_offsets(wanted, request_timeout=self.timeout).items():
            try:
                out[(tp.topic, tp.partition)] = int(future.result().offset)
            except KafkaException:
                continue
        return out

    def topic_partitions(self, topic: str) -> list[int]:
        """Partition ids of ``topic`` (empty when it does not exist)."""
        meta = self._admin.list_topics(topic, timeout=self.timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)
