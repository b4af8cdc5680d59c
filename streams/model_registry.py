"""A model's releases as every view shows them (``driftline models``, the console, ``status``): the verified
ones in a registry, the records that failed verification apart and marked; and sending a ControlCommand exactly as
``driftline models ...`` does."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from connectors.producer import EventProducer
from connectors.redis_store import redis_client
from connectors.topics import ensure_topics, partition_for
from driftline.errors import DriftlineError
from driftline.settings import Settings
from learners.registry import ModelRegistry
from streams.control import new_command
from streams.decisions import decision_object
from streams.join import owners_key, trainer_group
from streams.releases import CheckedReleases, read_checked_releases


@dataclass
class Releases:
    """The model's releases as the commands show them: a registry of the verified ones (or, with no signing key
    configured, of every one, marked unchecked) and the records that failed verification."""

    registry: ModelRegistry
    rejected: list[dict[str, Any]]
    checked: bool


def read_registry(settings: Settings, checked: CheckedReleases | None = None) -> Releases:
    """``settings.model.name``'s releases (from ``checked``, all models' releases, if already read)."""
    name = settings.model.name
    if checked is None:
        checked = read_checked_releases(settings, model=name)
    registry = ModelRegistry(name)
    at: list[tuple[int, int] | None] = list(checked.rejected_at)
    at += [None] * (len(checked.rejected) - len(at))
    rejected = [
        unverified_row(r, reason, message, where)
        for (r, reason, message), where in zip(checked.rejected, at, strict=True)
        if r.get("model") == name
    ]
    for release in checked.verified + checked.unchecked:
        if release.get("model") != name:
            continue
        try:
            registry.add(release)
        except DriftlineError as exc:  # unchecked: two records claim one version (one of them is forged)
            rejected.append(unverified_row(release, "conflict", str(exc)))
    if not checked.checked:
        print(
            "driftline models: no signing key configured (DRIFTLINE_SIGNING_KEY): releases are shown "
            "UNVERIFIED, and a forged one would look genuine",
            file=sys.stderr,
        )
    return Releases(registry, rejected, checked.checked)


def unverified_row(
    release: dict[str, Any], reason: str, message: str, where: tuple[int, int] | None = None
) -> dict[str, Any]:
    """What a record that failed verification claims, marked as such; it is never current. ``models_partition``
    and ``offset`` say where it is on the ``models`` topic (None when not known). ``partition`` means one thing in
    every row, the model's *training* partition (the current row's, with its owner and lag): None here (until
    session 33 it was the ``models`` topic's partition on these rows)."""
    metrics = release.get("metrics")
    return {
        "partition": None,
        "models_partition": None if where is None else where[0],
        "offset": None if where is None else where[1],
        "model": release.get("model"),
        "version": release.get("version"),
        "parent": release.get("parent"),
        "created_at": release.get("created_at"),
        "reason": release.get("reason"),
        "decision": decision_object(release.get("decision")),
        "current": False,
        "verified": False,
        "rejected": reason,
        "error": message,
        "n_learned": None,
        "metrics": metrics if isinstance(metrics, dict) else {},
        "lineage": [],
    }


def describe(releases: Releases, version: int | None) -> dict[str, Any]:
    info = releases.registry.describe(version)
    info["decision"] = decision_object(info.get("decision"))
    info["verified"] = True if releases.checked else None
    return info


def release_list(releases: Releases) -> list[dict[str, Any]]:
    rows = [describe(releases, v) for v in releases.registry.versions()] + releases.rejected
    return sorted(rows, key=lambda r: (int(r["version"]), bool(r["verified"])), reverse=True)


def live_release_list(settings: Settings, releases: Releases) -> list[dict[str, Any]]:
    """The rows of ``driftline models list --model M --json`` (the console's ``/api/models`` too): the model's
    releases, newest first, the current one with its owner, partition, lag and the trainer's live counts; every
    one with what the scorers report of it (:func:`adopt_serving`)."""
    from streams.serving import read_serving

    owners, lags = model_owners(settings), trainer_lags(settings)
    name = settings.model.name
    rows = release_list(releases)
    serving = read_serving(settings, name)
    for row in rows:
        if row["current"]:
            row.update(ownership(settings, name, owners, lags))
            adopt_live_counts(row, owners.get(name))
        adopt_serving(row, serving)
    return rows


def adopt_serving(info: dict[str, Any], serving: dict[str, Any] | None) -> None:
    """A release described with what the scorers report of it (``streams.serving.read_serving``):
    ``served_by_scorers``, how many serve it now (None: Redis did not answer), and ``refused_by_scorers``,
    ``[{reason, scorers, message, at}]`` for each reason they gave for refusing it. ``current`` stays what it
    was (the newest verified release, the trainer's champion): a current release refused by the scorers is
    not served, and every view says so."""
    version = str(info.get("version"))
    if serving is None:
        info["served_by_scorers"], info["refused_by_scorers"] = None, []
        return
    info["served_by_scorers"] = int(serving["versions"].get(version, 0))
    info["refused_by_scorers"] = [
        {k: r[k] for k in ("reason", "scorers", "message", "at")}
        for r in serving["refused"]
        if str(r["version"]) == version
    ]


def adopt_live_counts(info: dict[str, Any], live: dict[str, Any] | None) -> None:
    """The champion described with the trainer's live counts when it reports them (``models show`` and ``models
    list`` alike): ``n_learned`` is the lineage's count now, ``n_learned_in_release`` the figure in the release,
    ``labels_learned`` every label learned."""
    if not live or live.get("n_learned") is None:
        return
    info["n_learned_in_release"] = info["n_learned"]
    info["n_learned"] = live["n_learned"]
    info["labels_learned"] = live.get("labels_learned", live["n_learned"])


def ownership(
    settings: Settings, name: str, owners: dict[str, dict[str, Any]], lags: dict[int, int]
) -> dict[str, Any]:
    """Who trains ``name`` (the trainer group member that owns its partition now: :func:`model_owners`), its
    partition and that partition's lag (labels not yet learned). The partition is the one the model's trainer
    reported, else computed from the topic's partition count (``lags`` has every partition; else, Kafka away,
    ``kafka.training_partitions``)."""
    partition = partition_for(name, len(lags) or settings.kafka.training_partitions)
    live = owners.get(name, {})
    return {
        "owner": live.get("owner"),
        "partition": live.get("partition", partition),
        "lag": lags.get(int(live.get("partition", partition))),
        "trainer_version": live.get("version"),
        "trainer_n_learned": live.get("n_learned"),
        "trainer_updated_at": live.get("updated_at"),
    }


def model_owners(settings: Settings) -> dict[str, dict[str, Any]]:
    """What each trainer last reported of its models (Redis, after every transaction): owner, partition,
    version, n_learned (the served lineage), labels_learned (every label), updated_at. ``owner`` is the member of
    the trainer group that owns the model's partition now (None: no trainer does), not the last one that reported
    it: a model without labels since its trainer left is restored by the new owner only on its next label."""
    try:
        client = redis_client(settings, 3)
        raw = client.hgetall(owners_key(settings))
    except redis.RedisError:
        return {}
    out = {}
    for key, value in raw.items():
        try:
            out[_text(key)] = json.loads(_text(value))
        except ValueError:
            continue
    current = trainer_assignment(settings) if out else None
    if current is not None:
        for name, entry in out.items():
            entry["owner"] = current_owner(settings, current, name)
    return out


def current_owner(settings: Settings, current: dict[int, str | None], name: str) -> str | None:
    """The member of :func:`trainer_assignment` ``current`` that owns ``name``'s partition (None: no member)."""
    return current.get(partition_for(name, len(current) or settings.kafka.training_partitions))


def trainer_assignment(settings: Settings) -> dict[int, str | None] | None:
    """``{training partition: trainer (member name) that owns it now, or None}`` for every partition of the
    topic (the trainers go by its count, whatever ``kafka.training_partitions`` this process was given); None
    when Kafka cannot say."""
    from connectors.kafka_view import KafkaView

    prefix = f"{settings.kafka.client_id}-trainer-"
    topic = settings.topic("training")
    try:
        view = KafkaView(settings, timeout=5.0)
        meta = view.topic_metadata(topic)
        owners = view.partition_owners(trainer_group(settings))
    except KafkaException:
        return None
    if meta is None:
        return None
    current: dict[int, str | None] = dict.fromkeys(range(len(meta.partitions)))
    current.update({p: client.removeprefix(prefix) for (t, p), client in owners.items() if t == topic})
    return current


def trainer_lags(settings: Settings) -> dict[int, int]:
    """``{training partition: records not yet committed by the trainer group}`` (empty if Kafka is away).

    A partition the group never committed, or committed below its low watermark (records deleted since), counts
    from that low watermark, where a trainer starts (``auto.offset.reset=earliest``), as ``status`` counts it: from
    offset 0 (or the stale commit) it also counted records deleted before (retention, expired group offsets)."""
    topic = settings.topic("training")
    consumer = Consumer(
        client_config(settings, logger=LIBRDKAFKA_LOG, **{"group.id": trainer_group(settings)})
    )
    try:
        meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
        if meta is None or meta.error is not None:
            return {}
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        lags = {}
        for tp in consumer.committed(parts, timeout=5):
            low, high = consumer.get_watermark_offsets(tp, timeout=5)
            lags[tp.partition] = max(0, high - max(tp.offset, low))  # no commit: a negative offset
        return lags
    except KafkaException:
        return {}
    finally:
        consumer.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def send_command(settings: Settings, command: str, args: dict[str, str]) -> dict[str, Any]:
    """Validate (the trainer's rules), sign and publish a ControlCommand for the configured model; returns it.

    Raises :class:`ConfigError` naming the command, argument or key when it is invalid: nothing is sent then.
    """
    from learners.lifecycle_control import validate_control  # imports River (seconds): only when sending

    validate_control(command, args, settings.guard, settings.drift)
    record = new_command(settings, command, args)
    ensure_topics(settings, names=("control",))
    with EventProducer(settings) as producer:
        producer.send("control", "ControlCommand", record, settings.model.name)
    return record
