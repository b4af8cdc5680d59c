"""Following the compacted ``models`` topic: every scorer reads all of it (no consumer group: each process needs
every release of every model), verifies each release, loads it off the event loop and hands it over for an atomic
swap.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from connectors.consumer import read_to_end
from connectors.kafka_client import LIBRDKAFKA_LOG, client_config
from driftline.errors import ArtifactError, SchemaError, SecurityError
from driftline.settings import MODEL_NAME, Settings
from learners.artifacts import ArtifactStore, load_release, verify_release
from schemas.codec import Codec, default_codec
from streams.metrics import Metrics
from streams.security_log import ThrottledLog
from streams.serving import ServingReport

log = logging.getLogger(__name__)

#: Seconds between a models follower's attempts to follow again after Kafka did not answer.
FOLLOW_RETRY_S = 2.0
security_log = logging.getLogger("driftline.security")


def read_releases(
    settings: Settings, codec: Codec | None = None, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every release currently on the ``models`` topic (all models), read once to the end.

    Undecodable records (anyone who can write the topic can publish thousands) are skipped and summed up in one
    warning: count, offsets and the first error, not one line each on every command that reads the registry.
    """
    return [release for release, _ in read_releases_at(settings, codec, timeout)]


def read_releases_at(
    settings: Settings, codec: Codec | None = None, timeout: float = 10.0
) -> list[tuple[dict[str, Any], tuple[int, int]]]:
    """:func:`read_releases`, each with where it is on the topic: ``(release, (partition, offset))``."""
    codec = codec or default_codec()
    topic = settings.topic("models")
    out: list[tuple[dict[str, Any], tuple[int, int]]] = []
    bad: list[int] = []
    first: tuple[int, SchemaError] | None = None
    for msg in read_to_end(settings, topic, "driftline-models-reader", timeout=timeout):
        try:
            release = codec.decode("ModelRelease", msg.value() or b"", topic=topic)
            out.append((release, (msg.partition() or 0, msg.offset() or 0)))
        except SchemaError as exc:
            bad.append(msg.offset() or 0)
            first = first or (msg.offset() or 0, exc)
    if first is not None:
        where = f"offset {bad[0]}" if len(bad) == 1 else f"offsets {min(bad)}-{max(bad)}"
        log.warning(
            "models topic: skipped %d undecodable record(s) (%s); first at offset %d: %s",
            len(bad), where, first[0], first[1],
        )  # fmt: skip
    return out


def verify_problem(
    release: Mapping[str, Any], key: bytes, previous_key: bytes = b"", store: ArtifactStore | None = None
) -> tuple[str, str] | None:
    """Check a release without unpickling it: ``None`` if it verifies (current or previous key), else
    ``(reason, message)`` with ``reason`` a ``driftline_releases_rejected_total`` label. Never raises.

    A release whose ``model`` cannot name a model (:data:`driftline.settings.MODEL_NAME`: it goes into Redis keys,
    file names and metric labels) is refused as ``model`` even when signed with the key: only a key holder can
    make one, and nothing should load ``../x`` as a model."""
    name = release.get("model")
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        return "model", f"invalid model name {name!r:.80}"
    try:
        verify_release(release, key=key, store=store)
        return None
    except SecurityError as exc:
        if previous_key and previous_key != key and "signature" in str(exc):
            return verify_problem(release, previous_key, b"", store)
        return _reason(str(exc)), str(exc)
    except ArtifactError as exc:
        return "artifact", str(exc)
    except Exception as exc:  # a hostile record must never crash whoever reads the topic
        return "other", f"{type(exc).__name__}: {exc}"


@dataclass
class CheckedReleases:
    """The releases on ``models`` split by verification: only ``verified`` ones count for anything (newest
    version, next version to reserve, "current"). ``rejected`` holds ``(release, reason, message)``.
    ``checked`` is False when no signing key is configured: then nothing could be verified and every release
    is in ``unchecked``. ``rejected_at`` holds the ``(partition, offset)`` of each rejected record, in the same
    order, when known (read from the topic); else it is shorter than ``rejected``."""

    verified: list[dict[str, Any]]
    rejected: list[tuple[dict[str, Any], str, str]]
    unchecked: list[dict[str, Any]]
    checked: bool
    rejected_at: list[tuple[int, int]] = field(default_factory=list)

    def newest(self) -> int:
        """The newest verified version (0 if none)."""
        return max((int(r["version"]) for r in self.verified), default=0)

    def get(self, version: int) -> dict[str, Any] | None:
        """The verified release of ``version`` (a forged copy of the same version is never returned)."""
        return next((r for r in self.verified if int(r["version"]) == version), None)


def check_releases(
    releases: list[dict[str, Any]],
    settings: Settings,
    model: str | None = None,
    positions: list[tuple[int, int]] | None = None,
) -> CheckedReleases:
    """Verify ``releases`` (of ``model``, or all models) with the configured signing key(s); ``positions``, if
    given, are where each release is on the topic (kept for the rejected ones)."""
    key = settings.model.signing_key.get().encode()
    previous = settings.model.previous_signing_key.get().encode()
    store = ArtifactStore(settings.model.artifact_store) if settings.model.artifact_store else None
    out = CheckedReleases([], [], [], checked=bool(key))
    for i, release in enumerate(releases):
        if model is not None and release.get("model") != model:
            continue
        if not key:
            out.unchecked.append(release)
            continue
        problem = verify_problem(release, key, previous, store)
        if problem is None:
            out.verified.append(release)
        else:
            out.rejected.append((release, *problem))
            if positions is not None:
                out.rejected_at.append(positions[i])
    return out


def read_checked_releases(
    settings: Settings, codec: Codec | None = None, timeout: float = 10.0, model: str | None = None
) -> CheckedReleases:
    """:func:`read_releases`, verified: what the trainer and every command use."""
    read = read_releases_at(settings, codec, timeout)
    return check_releases([r for r, _ in read], settings, model, [at for _, at in read])


def _consumer(settings: Settings, group: str) -> Consumer:
    # Through the rate-limited logger: without it librdkafka wrote each refused connection to stderr itself, ~20
    # lines a second per score worker while a broker was down (chaos32: 1,100 lines per scorer in seed 10).
    return Consumer(
        client_config(
            settings,
            logger=LIBRDKAFKA_LOG,
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
            },
        )
    )


def _read_to(consumer: Consumer, parts: list[TopicPartition], marks: dict[int, tuple[int, int]]) -> bool:
    """Whether ``consumer`` has read every partition up to the end it had at start (``marks``: partition ->
    (low, high) watermarks then); a partition empty at start counts as read. The position moves past transaction
    markers, so a backlog ending in a committed transaction is read once its last release is."""
    positions = {tp.partition: tp.offset for tp in consumer.position(parts)}
    return all(low >= high or positions.get(p, -1) >= high for p, (low, high) in marks.items())


@dataclass
class LoadedModel:
    version: int
    model: Any
    release: Mapping[str, Any]
    loaded_at: float

    @property
    def name(self) -> str | None:
        return self.release.get("model")


class ReleaseFollower:
    """A background thread tailing ``models`` for every model of the deployment (or only ``model``).

    Each release is verified (signature, sha256, strictly newer version for its model) and unpickled with the
    allow-list in this thread, never on the event loop; the result waits until the stage calls :meth:`take`
    between batches. Rejected releases are counted and logged as security events (the first few of each model
    and reason per minute in full, then one summary line: :class:`streams.security_log.ThrottledLog`); the served
    model stays. A release that verified but could not be loaded is also recorded in Redis with what this scorer
    serves (:class:`streams.serving.ServingReport`), so no view calls it current while the previous one is. The
    newest verified release of each model is kept (:meth:`latest`) so a scorer that unloaded a model for memory
    can load it again. Only committed records are read (``isolation.level=read_committed``, the client's
    default): a release of a trainer transaction that was aborted is never served.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        codec: Codec | None = None,
        model: str | None = None,
        report: ServingReport | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.codec = codec or default_codec()
        self.model_name = model  # None: every model
        self.key = settings.model.signing_key.get().encode()
        self.previous_key = settings.model.previous_signing_key.get().encode()
        self.store = ArtifactStore(settings.model.artifact_store) if settings.model.artifact_store else None
        self._pending: dict[str, LoadedModel] = {}
        self._newest_loaded: dict[str, int] = {}
        self._latest: dict[str, Mapping[str, Any]] = {}
        self._lock = threading.Lock()
        self.report = report if report is not None else ServingReport(settings)
        self._security = ThrottledLog(security_log)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"models-follower-{model or 'all'}", daemon=True
        )
        # Set once a verified release is loaded *and* the backlog up to the end at start is read: the scorer opens
        # its features on it, so its first events are answered by the newest release, not by the newest of the
        # first poll (``models`` is compacted only segment by segment: hundreds of releases may precede it).
        self.first_loaded = threading.Event()

    def start(self) -> None:
        self.report.start()  # writes to Redis from its own thread: this follower never waits on Redis
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._security.flush(force=True)

    def served(self, model: str, version: int) -> None:
        """The scorer adopted ``version`` of ``model``: noted, and reported as served by the serving report's own
        thread at the follower's next poll (:meth:`streams.serving.ServingReport.notify`)."""
        self.report.served(model, version)

    def take(self) -> LoadedModel | None:
        """A newly loaded model not yet taken (any model), or None; called between batches: swaps are atomic."""
        with self._lock:
            if not self._pending:
                return None
            return self._pending.pop(next(iter(self._pending)))

    def latest(self, model: str) -> Mapping[str, Any] | None:
        """The newest verified release of ``model`` seen so far (None if none)."""
        with self._lock:
            return self._latest.get(model)

    def models(self) -> list[str]:
        """Every model with a verified release."""
        with self._lock:
            return sorted(self._latest)

    def reload(self, model: str) -> LoadedModel | None:
        """Load ``model``'s newest verified release again (after it was unloaded for memory), in the caller's
        thread; None if it has none or it cannot be loaded (reported like any refused release)."""
        release = self.latest(model)
        if release is None:
            return None
        try:
            loaded = load_verified(release, self.key, self.previous_key, None, self.store)
        except Exception as exc:
            message = f"release {model} v{release['version']} could not be reloaded: {exc}"
            self._reject(model, "load", message)
            self.report.refused(model, int(release["version"]), "load", message)
            return None
        return LoadedModel(int(release["version"]), loaded, release, time.time())

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    self._follow()
                    return
                except KafkaException as exc:
                    # Kafka away (a broker or the controllers' majority down while this scorer started or read
                    # the topic's ends): follow again with a new consumer, keeping what was loaded. Until session
                    # 39 the follower stopped for good here, and a scorer restarted during an outage served null
                    # predictions (or its old model) until someone restarted it (helper brk39).
                    failures += 1
                    if failures == 1 or failures % 30 == 0:
                        log.warning(
                            "models follower for %s: %s; following again every %g s until Kafka answers "
                            "(%d attempt(s) so far)",
                            self.model_name or "every model", exc.args[0] if exc.args else exc,
                            FOLLOW_RETRY_S, failures,
                        )  # fmt: skip
                    self._stop.wait(FOLLOW_RETRY_S)
        except Exception:  # the follower must never die silently: log and let the worker's health show it
            log.exception("models follower for %s stopped", self.model_name or "every model")
            self.metrics.worker_up.labels(role="follower").set(0)
        finally:
            self.report.close()

    def _follow(self) -> None:
        topic = self.settings.topic("models")
        consumer = _consumer(self.settings, f"driftline-follower-{self.model_name or 'all'}")
        try:
            parts: list[TopicPartition] = []
            while not parts and not self._stop.is_set():
                meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
                if meta is not None and meta.error is None and meta.partitions:
                    parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
                else:
                    self._stop.wait(1.0)
            consumer.assign(parts)
            # Records from here on were published while this follower runs: an old version among them is a
            # replay (or a stale publisher), refused and reported; older versions in the backlog are history.
            marks = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in parts}
            live_from = {p: high for p, (_, high) in marks.items()}
            while not self._stop.is_set():
                candidates: dict[str, list[Mapping[str, Any]]] = {}
                # The first release to arrive returns at once: consume(100, 0.2) alone waited for 100 records or
                # the whole 0.2 s, which held every release back up to 0.2 s before it was loaded and swapped in.
                for msg in consumer.consume(1, 0.2) + consumer.consume(99, 0):
                    if msg.error():
                        continue
                    release = self._decode(msg.value() or b"", msg.offset() or 0)
                    if release is None:
                        continue
                    name = str(release.get("model"))
                    if self.model_name is not None and name != self.model_name:
                        continue
                    version = int(release["version"])
                    # Verify, then choose: an unverified record never counts, whatever version it claims (a
                    # forged 2^63-1 next to a real v5 must not hide v5).
                    problem = verify_problem(release, self.key, self.previous_key, self.store)
                    if problem is not None:
                        shown = name if len(name) <= 64 else f"{name[:64]}..."
                        self._reject(
                            self._claimed(name),
                            problem[0],
                            f"release {shown} v{version} refused: {problem[1]}",
                        )
                        continue
                    newest = self._newest_loaded.get(name, 0)
                    if (msg.offset() or 0) >= live_from.get(msg.partition() or 0, 0) and version <= newest:
                        self._reject(
                            name,
                            "replay",
                            f"release {name} v{version} refused: not newer than the loaded v{newest} "
                            "(a replayed or stale release)",
                        )
                        continue
                    candidates.setdefault(name, []).append(release)
                # Reading a backlog, only the newest release of each model is worth loading; if it cannot be
                # loaded (the allow-list refuses it), the next newest verified one is tried.
                for name, releases in candidates.items():
                    for candidate in sorted(releases, key=lambda r: int(r["version"]), reverse=True):
                        if int(candidate["version"]) <= self._newest_loaded.get(name, 0):
                            break
                        if self._load(name, candidate):
                            break
                ready = self.first_loaded.is_set()
                if not ready and self._newest_loaded and _read_to(consumer, parts, marks):
                    self.first_loaded.set()
                self._security.flush()
                self.report.notify()
        finally:
            consumer.close()

    def _decode(self, data: bytes, offset: int) -> dict[str, Any] | None:
        try:
            return self.codec.decode("ModelRelease", data, topic=self.settings.topic("models"))
        except SchemaError as exc:
            self._reject(self.model_name or "", "decode", f"undecodable release at offset {offset}: {exc}")
            return None

    def _load(self, name: str, release: Mapping[str, Any]) -> bool:
        version = int(release["version"])
        t0 = time.perf_counter()
        try:
            with collector_paused():
                model = load_verified(
                    release, self.key, self.previous_key, self._newest_loaded.get(name) or None, self.store
                )
        except SecurityError as exc:
            reason, message = _reason(str(exc)), f"release {name} v{version} refused: {exc}"
            self._reject(name, reason, message)
            self.report.refused(name, version, reason, message)
            return False
        except Exception as exc:
            message = f"release {name} v{version} could not be loaded: {exc}"
            self._reject(name, "load", message)
            self.report.refused(name, version, "load", message)
            return False
        self.metrics.model_swap_seconds.labels(model=name).observe(time.perf_counter() - t0)
        self.metrics.observe_release(
            name, str(release.get("reason")), release.get("created_at"), stage="score"
        )
        with self._lock:
            self._pending[name] = LoadedModel(version, model, release, time.time())
            self._newest_loaded[name] = version
            self._latest[name] = release
        log.info("loaded %s v%d (%s)", name, version, release.get("reason"))
        return True

    def _claimed(self, name: str) -> str:
        """The ``model`` label of a record that did not verify: the name it claims if this follower serves that
        model, has loaded a release of it or it is the configured ``model.name``, else ``UNVERIFIED_MODEL``.
        Why: the name is the forger's choice, and 3,000 forged records naming 3,000 models left 3,000 Prometheus
        series for good (review32)."""
        with self._lock:
            known = name in self._latest
        return name if known or name in (self.model_name, self.settings.model.name) else UNVERIFIED_MODEL

    def _reject(self, name: str, reason: str, message: str) -> None:
        self._security.warning(f"refused releases of model {name}", reason, "SECURITY: %s", message)
        self.metrics.releases_rejected.labels(model=name, reason=reason).inc()


# The ``model`` label of refused records that name a model with no verified release (``ReleaseFollower._claimed``).
UNVERIFIED_MODEL = "_unverified"


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Load a large model without the cyclic garbage collector traversing it, then or later.

    Unpickling a multi-MB tree ensemble creates ~500k container objects, which triggers several full
    collections; each walks the whole heap in one C call (400-670 ms for a 40-tree ARF) and holds the
    interpreter lock, so the event loop stalls however the load itself is split up. Collection is paused
    for the load, and on success everything alive is moved to the permanent generation (``gc.freeze``):
    the new model is never walked by the collector (nor are later full collections slowed by it).
    Frozen objects are still freed by reference counting when the next swap drops them; only reference
    cycles among them would never be collected, and no learner kind has any (tests/test_safe_pickle_steps.py).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def load_verified(
    release: Mapping[str, Any],
    key: bytes,
    previous_key: bytes,
    current_version: int | None,
    store: ArtifactStore | None,
) -> Any:
    """Verify (current key, or the previous one during a rotation) and only then unpickle."""
    try:
        return load_release(release, key=key, current_version=current_version, store=store)[1]
    except SecurityError as exc:
        if not previous_key or previous_key == key or "signature" not in str(exc):
            raise
        model = load_release(release, key=previous_key, current_version=current_version, store=store)[1]
        security_log.warning(
            "release %s v%s is signed with the previous key: finish the key rotation",
            release.get("model"),
            release.get("version"),
        )
        return model


def _reason(message: str) -> str:
    text = message.lower()
    if "signature" in text or "unsigned" in text or "key" in text:
        return "signature"
    if "sha256" in text:
        return "sha256"
    if "header" in text:
        return "header"
    if "not newer" in text:
        return "replay"
    if "not allowed" in text or "allow" in text:
        return "allow_list"
    return "other"
