"""What ``driftline status`` (and the console) show about a deployment, collected: stack, workers, lag, served
versions, releases, joins, drift and dead letters of the last hour.

Read-only: consumer groups and offsets through the AdminClient, releases from the compacted ``models`` topic,
the trainers' live state from Redis, and the last hour of the ``drift`` topic (found by timestamp, so an old
topic is not read from the beginning).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from connectors.redis_store import redis_client
from connectors.topics import ALL_TOPICS
from driftline.errors import DriftlineError, StackError
from driftline.settings import Settings, mask_secrets
from schemas.codec import default_codec
from streams.decisions import decision_object

log = logging.getLogger(__name__)

DRIFT_WINDOW_S = 3600


def _stack(settings: Settings) -> dict[str, Any]:
    from connectors.stack import stack_status

    try:
        local = stack_status(settings).to_dict()
        redis = local["redis"]
        # A Redis that answers NOAUTH/WRONGPASS counts as answering for the stack (it is running); for the workers,
        # which use these credentials, it is as good as down (sec35's F6: status said "up" and exited 0).
        problem = _redis_problem(settings) if redis["up"] else None
        if problem is not None:
            # A server that answered but not PONG: "error" when it is not about credentials (review35: a db index
            # out of range said "REFUSED ... check the password in the URL", of a URL with no password).
            state = problem[0] if problem[0] == "refused" else "error"
            redis.update(up=False, state=state, detail=problem[1])
            local["up"] = False
        return local
    except StackError:
        # Not a local stack (a remote cluster): just ask both services whether they answer.
        from connectors.kafka_client import check_reachable

        kafka_up = True
        try:
            check_reachable(settings, timeout=3)
        except StackError:
            kafka_up = False
        problem = _redis_problem(settings)  # remote: refused credentials said DOWN (review35)
        redis_up = problem is None
        return {
            "up": kafka_up and redis_up,
            "kafka": {
                "address": settings.kafka.bootstrap,
                "up": kafka_up,
                "state": "up" if kafka_up else "down",
            },
            "redis": {
                "address": _redis_address(settings),
                "up": redis_up,
                "state": "up" if problem is None else problem[0],
                **({} if problem is None else {"detail": problem[1]}),
            },
        }


def _redis_address(settings: Settings) -> str:
    from urllib.parse import urlsplit

    url = urlsplit(settings.redis.url.get())
    return f"{url.hostname}:{url.port or 6379}"


def _redis_problem(settings: Settings) -> tuple[str, str] | None:
    """None when Redis answers PING with these settings, else ``(state, detail)``: ``refused`` (it refused the
    credentials: NOAUTH, WRONGPASS), ``down`` (no answer) or ``error`` (another answer, such as a db index out of
    range); the detail is masked."""
    import redis

    try:
        if redis_client(settings, 2).ping():
            return None
        return "error", "did not answer PONG"
    except redis.AuthenticationError as exc:  # a ConnectionError: before it
        return "refused", mask_secrets(str(exc)) or "refused these credentials"
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        return "down", mask_secrets(str(exc))
    except redis.RedisError as exc:
        return "error", mask_secrets(str(exc)) or type(exc).__name__


def kafka_answers(service: dict[str, Any]) -> bool:
    """Whether the Kafka of ``status``'s stack answers clients: up, or a local cluster with some nodes down
    (``degraded``), which serves on while each partition keeps ``min.insync.replicas`` in sync. Until session 39
    ``status`` said "Kafka is down" there and showed no worker, lag or replication (helper brk39: one node of
    three killed -9 under a running pipeline, which went on)."""
    return bool(service.get("up")) or service.get("state") == "degraded"


def stack_state_text(name: str, service: dict[str, Any], degraded: bool = False) -> str:
    """A service's state as ``status`` and the console say it: ``up``, ``up, degraded``, ``REFUSED: ... (check the
    password in the URL)``, ``ERROR: ...`` or ``DOWN``."""
    if service.get("up"):
        return "up, degraded" if degraded else "up"
    if service.get("state") == "degraded":  # a local cluster with nodes down: "2/3 brokers answer, ..."
        return f"up, degraded ({service.get('detail') or 'some brokers do not answer'})"
    detail = service.get("detail")
    if service.get("state") == "refused":  # answers, but not to these credentials
        return f"REFUSED: {detail or 'wrong credentials'} (check the password in the URL)"
    if service.get("state") == "error":
        return f"ERROR: {detail or 'it did not answer PING'} (check the {name} URL)"
    if service.get("state") == "stopped":  # our process, frozen: no wait makes it answer
        return f"DOWN: {detail}"
    return "DOWN"


def _models(settings: Settings) -> list[dict[str, Any]]:
    """Latest release per model (with its guard decision) and the trainer's live state."""
    from streams.model_registry import current_owner, trainer_assignment
    from streams.releases import read_checked_releases
    from streams.serving import read_serving
    from streams.trainer_status import trainer_status

    # Verify, then choose: the newest *verified* release is the latest; the others are listed as unverified.
    checked = read_checked_releases(settings, timeout=5.0)
    latest: dict[str, dict[str, Any]] = {}
    counts: Counter[str] = Counter()
    for r in checked.verified + checked.unchecked:
        name = str(r.get("model"))
        counts[name] += 1
        if name not in latest or int(r["version"]) > int(latest[name]["version"]):
            latest[name] = r
    unverified: dict[str, list[dict[str, Any]]] = {}
    for r, reason, _message in checked.rejected:
        unverified.setdefault(str(r.get("model")), []).append({"version": r.get("version"), "reason": reason})
    out = []
    names = set(latest) | set(unverified) | {settings.model.name}
    # Who trains each model now (the last trainer that reported an idle model may be gone); None: Kafka cannot say.
    current = trainer_assignment(settings)
    for name in sorted(names):
        r = latest.get(name, {})
        decision = decision_object(r.get("decision"))
        live = trainer_status(
            dataclasses.replace(settings, model=dataclasses.replace(settings.model, name=name))
        )
        metrics = r.get("metrics") or {}
        # What the scorers report they serve wins over what the trainer released: a signed release the scorers
        # cannot load is refused by them, and the version before it is what answers events.
        scorers = read_serving(settings, name)
        released = live["served_version"] if live else (int(r["version"]) if r else None)
        # A scorer that reported serves what it says, nothing included (every release of the model refused).
        reported = bool(scorers and scorers["scorers"])
        by_scorers = scorers["served_version"] if scorers else None
        out.append(
            {
                "model": name,
                "releases": counts.get(name, 0),
                "releases_verified": checked.checked,
                "unverified_releases": unverified.get(name, []),
                "served_version": by_scorers if reported else released,
                # "scorers" (they report it), else "trainer" or "release" (no scorer reported: what was released)
                "served_version_from": "scorers"
                if reported
                else ("trainer" if live else ("release" if r else None)),
                "released_version": released,
                "scorers": scorers,
                "latest_release": None
                if not r
                else {
                    "version": int(r["version"]),
                    "reason": r.get("reason"),
                    "created_at": int(r.get("created_at", 0)),
                    "accuracy": metrics.get("rolling_accuracy", metrics.get("accuracy")),
                    "decision": {k: decision[k] for k in ("outcome", "reason", "text") if k in decision},
                },
                "trainer": None
                if live is None
                else {
                    **{k: live[k] for k in ("n_learned", "served_version", "paused", "updated_at", "owner")},
                    **({} if current is None else {"owner": current_owner(settings, current, name)}),
                    "held_examples": live.get("held_examples", 0),
                    "pause_discard": live.get("pause_discard", False),
                    "discarded": live.get(
                        "discarded", 0
                    ),  # labels `pause --discard` dropped (trainer lifetime)
                    # A candidate the guard held for operator approval (`driftline models promote held`).
                    "held_candidate": bool(live.get("metrics", {}).get("held")),
                    # The newest release withheld because the scorers' loader would refuse it (None: none).
                    "withheld": live.get("withheld"),
                    # Fields of the trainer's status hash that were junk, read as their defaults (None: none).
                    "damaged": live.get("damaged") or None,
                },
                # One join store per deployment, named by model.name and shared by every model (a Label names
                # no model): shown under model.name; no other model has a store of its own to read.
                "joins": _joins(settings) if name == settings.model.name else None,
            }
        )
    return out


def _read_since(
    settings: Settings, name: str, record: str, since_ms: int, *, strict: bool = False
) -> list[dict[str, Any]]:
    """Decoded records of topic ``name`` with ``ts >= since_ms`` (read from the first offset by time to the end).

    The end is the read position, not the last offset: ``drift`` and ``deadletter`` are written in transactions,
    whose commit marker is never delivered, and waiting for it made every call wait out the deadline (10 s a
    topic). A read cut short (a slow broker) returns what it read, logged; ``strict`` raises instead."""
    from connectors.consumer import IncompleteRead, read_to_end

    topic = settings.topic(name)
    codec = default_codec()
    out: list[dict[str, Any]] = []
    try:
        for msg in read_to_end(
            settings, topic, "driftline-status", since_ms=since_ms, timeout=10.0, strict=True
        ):
            try:
                value = codec.decode(record, msg.value() or b"", topic=topic, allow_json=True)
            except DriftlineError:
                continue
            if int(value.get("ts", 0)) >= since_ms:
                out.append(value)
    except IncompleteRead as exc:
        if strict:
            raise
        log.warning("status: %s (counted what was read)", exc)
    return out


def _recent_drift(settings: Settings, since_ms: int) -> dict[str, Any]:
    """Drift events with ``ts >= since_ms``: count per model and signal."""
    counts: Counter[str] = Counter()
    for value in _read_since(settings, "drift", "DriftEvent", since_ms):
        counts[f"{value['model']} {value['detector']}/{value['signal']}"] += 1
    return {"since": since_ms, "total": sum(counts.values()), "by_signal": dict(sorted(counts.items()))}


def deadletter_reason(error: str) -> str:
    """A dead letter's reason, short enough to group by: the text before the first ':' without quoted parts."""
    head = error.split(":", 1)[0]
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", head).strip()[:80] or "?"


def _recent_deadletters(settings: Settings, since_ms: int) -> dict[str, Any]:
    """Dead letters with ``ts >= since_ms``, counted per source topic and reason, with the newest."""
    counts: Counter[str] = Counter()
    newest: dict[str, Any] | None = None
    for value in _read_since(settings, "deadletter", "DeadLetter", since_ms):
        source = str(value["source_topic"]).removeprefix(settings.kafka.topic_prefix)
        counts[f"{source}: {deadletter_reason(str(value['error']))}"] += 1
        if newest is None or int(value["ts"]) >= int(newest["ts"]):
            newest = {k: value[k] for k in ("source_topic", "partition", "offset", "error", "ts")}
    return {
        "since": since_ms,
        "total": sum(counts.values()),
        "by_reason": dict(sorted(counts.items())),
        "newest": newest,
    }


def _joins(settings: Settings) -> dict[str, Any] | None:
    """Pending predictions (waiting for a label), parked labels (waiting for a prediction), and the age of the
    oldest prediction still unanswered by a label; ``None`` when Redis does not answer.

    A key holding junk of the wrong type (someone's SET over ``<ns>:pending``) is named in ``damaged`` and its
    figure is None; the rest is shown (one WRONGTYPE dropped the whole section until the next scorer batch
    replaced the key)."""
    import redis

    from streams.join import join_namespace

    ns = join_namespace(settings)
    damaged: list[dict[str, str]] = []

    def read(key: str, expected: str, call: Any) -> Any:
        try:
            return call(key)
        except redis.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            damaged.append({"key": key, "type": _s(client.type(key)), "expected": expected})
            return None

    try:
        client = redis_client(settings, 3)
        pending = read(f"{ns}:pending", "zset", client.zcard)
        parked = read(f"{ns}:parked", "zset", client.zcard)
        oldest = client.zrange(f"{ns}:pending", 0, 0, withscores=True) if pending else None
        ttl_ms = read(f"{ns}:ttl_ms", "string", client.get) if oldest else None
    except redis.RedisError:
        return None
    age = None
    if oldest:
        # Scored by expiry: stored at expiry - ttl, the TTL the scorers store with (JoinStore.put_predictions),
        # not this command's redis.pending_ttl_s, which may differ from the workers' (their environment).
        if ttl_ms is not None and not ttl_ms.isdigit():
            damaged.append({"key": f"{ns}:ttl_ms", "type": "string", "expected": "string of digits"})
        ttl = int(ttl_ms) if ttl_ms and ttl_ms.isdigit() else settings.redis.pending_ttl_s * 1000
        age = max(0.0, time.time() - (float(oldest[0][1]) - ttl) / 1000)
    return {
        "pending": None if pending is None else int(pending),
        "parked": None if parked is None else int(parked),
        "oldest_pending_age_s": age,
        "damaged": damaged,
    }


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def withheld_text(withheld: dict[str, Any], serving: int, when: Callable[[int], str]) -> str:
    """The trainer's newest withheld release as ``status`` and the console's overview say it (``when`` formats
    its time in ms). Its champion then may not be the one served now: the model shrank back under the caps, or an
    operator rolled back, and a later release was published (the trainer keeps the newest withheld one until it
    restarts)."""
    try:
        count, at = int(withheld.get("count", 1)), int(withheld.get("at", 0))
        shown = when(at)
    except (TypeError, ValueError, OverflowError, OSError):  # a field no trainer wrote: not worth a traceback
        count, shown = 1, when(0)
    kept = withheld.get("served_version")
    after = (
        f"v{kept} stays the champion"
        if kept == serving
        else f"v{kept} stayed the champion then; v{serving} was released since"
    )
    problem = withheld.get("problem")
    too_large = problem == "too_large"
    why = (
        "too large to publish inline and no artifact store"
        if too_large
        else "the scorers' loader would refuse them"
    )
    fix = "; fix: set model.artifact_store or raise model.max_inline_bytes" if too_large else ""
    refused = withheld.get("refused_class")
    if refused and not too_large:  # a class the trained model holds, outside the allow-list (session 40)
        fix = (
            f'; fix: add {refused} to learners.pickle_allow.ALLOWED (README, "Extending") or use a learner '
            "whose classes are listed"
        )
    return (
        f"{count:,} release(s) WITHHELD by the trainer ({why}, {problem}), newest {shown}: "
        f"{str(withheld.get('message', ''))[:120]}; {after}{fix}"
    )


def worker_config_differences(
    settings: Settings, workers: list[dict[str, Any]], role: str
) -> dict[str, dict[str, str]]:
    """setting -> {member: value} where the live members of the trainer group (``role`` ``trainer``: learning
    settings) or the score group (``scorer``: routing) run with different settings (streams.trainer_status);
    members are matched with the group's by host-pid, so the entry of a worker killed without stopping counts only
    until it leaves the group."""
    from streams.join import trainer_group
    from streams.trainer_status import config_differences, worker_configs

    configs = worker_configs(settings, role)
    if role == "trainer":
        group_id, tag = trainer_group(settings), "-trainer-"
    else:  # streams.app.stage_group, without importing Faust
        group_id, tag = f"driftline-{settings.kafka.topic_prefix}{settings.model.name}-score", "-score-"
    group = next((g for g in workers if g.get("group") == group_id), None)
    if group is not None:
        live = {str(m).split("@")[0].rsplit(tag, 1)[-1] for m in group.get("members") or []}
        configs = {member: config for member, config in configs.items() if member in live}
    return config_differences(configs)


def trainer_config_differences(
    settings: Settings, workers: list[dict[str, Any]]
) -> dict[str, dict[str, str]]:
    return worker_config_differences(settings, workers, "trainer")


def collect_status(settings: Settings, all_prefixes: bool = False) -> dict[str, Any]:
    """Everything ``driftline status`` shows, as a JSON-ready dict."""
    from connectors.kafka_view import KafkaView, app_group_prefix

    out: dict[str, Any] = {
        "topic_prefix": settings.kafka.topic_prefix,
        "default_model": settings.default_model,
        "stack": _stack(settings),
    }
    if not kafka_answers(out["stack"]["kafka"]):
        return out
    view = KafkaView(settings, timeout=5.0)
    try:
        out["kafka_replication"] = view.replication()
    except KafkaException:
        out["kafka_replication"] = None
    groups = view.describe(view.group_ids(app_group_prefix(None if all_prefixes else settings)))
    if not all_prefixes:
        # Group ids are matched by prefix, so 'driftline-P' also matches the groups of prefix 'P' + 'ext.': keep a
        # group whose offsets are on this prefix's topics (or that has none yet, which cannot be told apart).
        own = {settings.topic(name) for name in ALL_TOPICS}
        groups = [g for g in groups if not g.lag or own & g.lag.keys()]
    out["workers"] = [g.to_dict() for g in groups]
    out["workers_errors"] = view.group_errors
    redis_up = out["stack"]["redis"]["up"]
    out["trainer_config_differences"] = (
        trainer_config_differences(settings, out["workers"]) if redis_up else {}
    )
    out["scorer_routing_differences"] = (
        worker_config_differences(settings, out["workers"], "scorer") if redis_up else {}
    )
    out["models"] = _models(settings)
    since = int((time.time() - DRIFT_WINDOW_S) * 1000)
    out["drift_last_hour"] = _recent_drift(settings, since)
    out["deadletters_last_hour"] = _recent_deadletters(settings, since)
    return out
