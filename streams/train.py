"""The ``train`` stage for one model: the single writer of its lineage.

:class:`Trainer` learns one model's TrainingExamples (``training`` is keyed by model, so each model's examples are
in one partition, in order); the learning core's :class:`~learners.lifecycle.ModelLifecycle` does everything else
(learning, drift detectors, challengers, the guard, probation); this module publishes what it decides. Its state
(:meth:`Trainer.state`) goes to the compacted ``changelog`` topic, sealed with the signing key (:func:`seal`),
in the same Kafka transaction as its releases and the input offsets it covers (:mod:`streams.trainers` runs the
consumer group, :mod:`streams.trainer_transactions` the transactions). So every labelled example is learned once
in the model's lineage, and ``n_learned`` counts it once, whichever trainer process owns the model.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import hmac
import json
import logging
import pickle
import time
from typing import Any

import redis

from connectors.redis_store import hset_if_newer, redis_client
from connectors.sources import open_source
from driftline.audit_chain import canonical_text
from driftline.errors import ArtifactError, ConfigError, SecurityError
from driftline.settings import Settings
from driftline.util import now_ms
from learners import kernels, safe_pickle
from learners.artifacts import ArtifactStore, build_release, header_metrics
from learners.drift import DriftSignal
from learners.explain import release_explanation
from learners.fairness import FairnessMonitor
from learners.guard import Decision
from learners.lifecycle import Labelled, ModelLifecycle, Release, Withheld
from streams.join import join_namespace
from streams.runtime import RawRecord, WorkerContext
from streams.train_control import TrainerControl
from streams.watch import InputWatch

log = logging.getLogger(__name__)
security_log = logging.getLogger("driftline.security")

SEEN_IDS = 200_000  # recent learned ids kept to drop duplicate joins (bounded memory)
CONTROL_SEEN = 10_000  # recent control command ids kept to refuse replays (older ones are refused as stale)
# The served-fairness window goes into the trainer state after every batch while it holds at most this many
# labels (~0.1 ms per 2,000), else at most every FAIRNESS_SAVE_S (50 full segments: ~20 ms, session 42).
FAIRNESS_SAVE_EVERY_BATCH = 10_000
FAIRNESS_SAVE_S = 5.0


class RecentIds:
    """The last ``size`` ids learned, as 64-bit digests: a duplicate join is recognised by its id.

    It goes into the checkpoint after every batch, so it pickles as one flat array (200,000 ids: 1.6 MB in about
    a millisecond, where an ``OrderedDict`` of the strings took 56 ms per checkpoint). Two ids sharing a digest
    (about 1 in 10^9 at this size) would make the second one look like a duplicate.
    """

    def __init__(self, size: int = SEEN_IDS) -> None:
        self.size = size
        self._set: set[int] = set()
        self._ring = array.array("q")  # digests in arrival order, a ring once full (``_next`` is the oldest)
        self._next = 0

    @staticmethod
    def digest(event_id: str) -> int:
        """The id's 64-bit digest: the trainer computes it once per example, for the duplicate check and for the
        add after learning (:meth:`has`, :meth:`add_digest`)."""
        # Stable across processes (Python's own str hash is salted per process).
        return int.from_bytes(
            hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little", signed=True
        )

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.digest(event_id) in self._set

    def has(self, digest: int) -> bool:
        """``id in self`` for an id whose :meth:`digest` is known."""
        return digest in self._set

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, event_id: str) -> None:
        self.add_digest(self.digest(event_id))

    def add_digest(self, digest: int) -> None:
        """:meth:`add` for an id whose :meth:`digest` is known."""
        if digest in self._set:
            return
        self._set.add(digest)
        if len(self._ring) < self.size:
            self._ring.append(digest)
            return
        self._set.discard(self._ring[self._next])
        self._ring[self._next] = digest
        self._next = (self._next + 1) % self.size

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "next": self._next, "ring": self._ring.tobytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size, self._next = state["size"], state["next"]
        self._ring = array.array("q")
        self._ring.frombytes(state["ring"])
        self._set = set(self._ring)


def load_reference(settings: Settings) -> list[tuple[dict[str, Any], Any]]:
    path = settings.model.reference_file
    if not path:
        return []
    return [
        (e.features, e.label)
        for e in open_source(path, label_col=settings.model.label_col)
        if e.label is not None
    ]


def new_lifecycle(settings: Settings) -> ModelLifecycle:
    m = settings.model
    return ModelLifecycle(
        m.name,
        m.task,
        m.learner,
        m.challenger,
        # Data drift on features is the scorers' job (they see every event, labelled or not); the trainer watching
        # them too would publish every feature alarm twice.
        dataclasses.replace(settings.drift, feature_drift=False),
        settings.guard,
        segment_feature=m.segment_feature,
        reference=load_reference(settings),
        release_every=m.release_every,
    )


def seal(state: dict[str, Any], key: bytes) -> bytes:
    """A trainer state as bytes for the ``changelog`` topic: HMAC-SHA256 (hex) of what follows, a newline, a JSON
    header line (the model and its commit count) and the pickle. The header lets a restore order a model's
    sealed records without unpickling them (:func:`seal_header`). Only :func:`unseal` with the same key (or the
    previous one during a rotation) reads the state back."""
    header = json.dumps(
        {"model": state.get("model"), "commits": int(state.get("commits", 0))}, separators=(",", ":")
    )
    payload = header.encode() + b"\n" + pickle.dumps(state, protocol=5)
    return hmac.new(key, payload, hashlib.sha256).hexdigest().encode() + b"\n" + payload


def sealed_by(data: bytes, keys: list[bytes]) -> bool:
    """True when one of ``keys`` sealed ``data`` (:func:`seal`); nothing is unpickled."""
    mac, _, payload = data.partition(b"\n")
    return any(
        k and hmac.compare_digest(mac, hmac.new(k, payload, hashlib.sha256).hexdigest().encode())
        for k in keys
    )


def seal_header(data: bytes) -> dict[str, Any] | None:
    """The header of a record :func:`sealed_by` a key: ``{"model", "commits"}``; None for a record sealed before
    headers were written (a bare pickle, which starts with ``\\x80``)."""
    _, _, payload = data.partition(b"\n")
    if not payload.startswith(b"{"):
        return None
    header: dict[str, Any] = json.loads(payload.partition(b"\n")[0])
    return header


class StateRefused(SecurityError):
    """A record sealed with the key whose state the restricted loader refuses (:func:`unseal`): ``reason`` is
    ``allow_list`` (a class outside the state's allow-list, over a cap: what a leaked key could carry) or ``load``
    (it does not unpickle, or is not a state)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def unseal(data: bytes, keys: list[bytes], where: str) -> dict[str, Any]:
    """The state :func:`seal` wrote, verified before it is unpickled; SecurityError naming ``where`` if no key
    signed it (a forged or tampered record).

    Then read by the restricted loader (:func:`learners.safe_pickle.loads_state`: the allow-list
    :data:`learners.pickle_allow.STATE_ALLOWED`, the caps and scans of a model artifact's loader), so a record
    sealed with a leaked key runs nothing: :class:`StateRefused` names ``where`` and what was refused. The
    served-fairness window pickled inside it is read the same way."""
    _, _, payload = data.partition(b"\n")
    if not sealed_by(data, keys):
        raise SecurityError(f"{where}: signature mismatch (wrong signing key or a forged record)")
    if payload.startswith(b"{"):  # the header line (records sealed before it start with the pickle)
        payload = payload.partition(b"\n")[2]
    try:
        state = safe_pickle.loads_state(payload)
        if not isinstance(state, dict):
            raise ArtifactError(f"trainer state is a {type(state).__name__}, not a dict")
        fairness = state.get("served_fairness")
        if isinstance(fairness, bytes):
            state["served_fairness"] = safe_pickle.loads_state(fairness)
    except SecurityError as exc:
        raise StateRefused(f"{where}: {exc}", "allow_list") from exc
    except ArtifactError as exc:
        raise StateRefused(f"{where}: {exc}", "load") from exc
    return state


class Trainer(TrainerControl):
    """One model's trainer; ``ctx.model`` names the model (``WorkerContext.for_model``)."""

    def __init__(self, ctx: WorkerContext, redis_conn: redis.Redis | None = None) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.key = s.model.signing_key.get().encode()
        self.store = ArtifactStore(s.model.artifact_store) if s.model.artifact_store else None
        self.lifecycle: ModelLifecycle = new_lifecycle(s)
        self._check_artifacts()
        # The newest release withheld since the last one published (``status`` says it), and how many were; in
        # the state, so a restart or a move to another trainer does not hide it. A release published clears it:
        # every release makes the released lineage the champion, so the champion is loadable again.
        self.withheld: dict[str, Any] | None = None
        self.withheld_count = 0
        # The served-fairness window (the gaps' last 1,000 labels per segment) as last pickled for the state.
        self._fairness_saved: tuple[float, bytes] | None = None
        self.offsets: dict[str, int] = {}  # "topic:partition" -> last offset handled
        self.seen = RecentIds()
        self.index = 0
        # Control: ids of commands applied (replay protection), live `set`s (for `models settings`), and the
        # labelled examples held while learning is paused (learned in order on resume).
        self.control_seen = RecentIds(CONTROL_SEEN)
        self.live_sets: dict[str, dict[str, Any]] = {}
        # Held as the raw record (plain tuples pickle ~10x faster than decoded dicts: the state is written after
        # every batch) and decoded again on resume.
        self.held: list[tuple[str, int, int, bytes | None, bytes, int]] = []
        self.watch = InputWatch(s.model.task)
        # Transactions committed with this model's state: its status in Redis is written only over an older one,
        # so a trainer frozen past its session (its models moved on) never overwrites the new owner's status.
        self.commits = 0
        self.pause_discard = False
        self.discarded = 0  # labels dropped by `pause --discard` (evaluated as served, never learned)
        self.replies: list[dict[str, Any]] = []
        # Releases published since this trainer started (not state): the transaction that holds one ends early,
        # so scorers see it without waiting for the gather window (streams.trainer_gather, ``_more``).
        self.released = 0
        self.owner = ""  # the trainer process (member of the trainer group) that owns this model now
        self._redis = redis_conn or redis_client(s)
        self._status_key = f"{join_namespace(s)}:trainer"
        self._topic = s.topic("training")
        self._models_topic = s.topic("models")
        # The served (version, model) as of the event being handled: taken before a batch is learned and moved on
        # by each release published, so a release is explained against the model it replaced (learn_batch's
        # releases are published after the batch, when the lifecycle's replaced_model is the one its last
        # release replaced).
        self._served_at: tuple[int, Any] | None = None

    # -- start-up ------------------------------------------------------------------------------------------------
    def start(self, state: dict[str, Any] | None, latest: int) -> None:
        """Restore ``state`` (from the changelog, if any), align versions with ``latest`` (the newest verified
        release of this model on ``models``) and publish v1 for a new model."""
        if state is not None:
            self.restore_state(state)
            log.info(
                "trainer restored %s: v%d, n_learned=%d",
                self.ctx.model,
                self.lifecycle.served_version,
                self.lifecycle.n_learned,
            )
        # The compiled LR kernel's import and load now, not inside the first batch (no-op for other learners).
        kernels.warm_for(self.ctx.settings.model.learner, self.ctx.settings.model.challenger)
        # Verify, then choose: only a verified release moves the next version to reserve (a forged 2^63-1
        # must not leave the trainer unable to publish).
        self.lifecycle.reserve_versions(latest)
        if state is None:
            # A new lineage (no state, or one that failed verification) continues the status's order: its
            # writes must not be refused as older than the lost lineage's last one.
            self.commits = self._status_commits() + 1
        if state is None and latest == 0:
            self.handle(self.lifecycle.initial_release())
        elif state is None:
            log.warning(
                "trainer for %s has no state on %s but the models topic holds v%d: starting a new lineage "
                "(n_learned restarts at 0)",
                self.ctx.model,
                self.ctx.settings.topic("changelog"),
                latest,
            )

    def _check_artifacts(self) -> None:
        """Never publish what the scorers' loader would refuse, nor an artifact no record can carry (too large
        to travel inline, no store to put it in): learners.lifecycle.Withheld, decided before the release."""
        self.lifecycle.check_artifacts = True
        self.lifecycle.max_payload = None if self.store else self.ctx.settings.model.max_inline_bytes

    def _status_commits(self) -> int:
        try:
            raw = self._redis.hget(self._status_key, "commits")
            return int(raw) if raw else 0
        except (redis.RedisError, ValueError):
            return 0

    def state(self) -> dict[str, Any]:
        """Everything needed to go on elsewhere: the lifecycle, the offsets it covers, recent ids, control."""
        return {
            "model": self.ctx.model,
            "lifecycle": self.lifecycle,
            "offsets": self.offsets,
            "seen": self.seen,
            "index": self.index,
            "control_seen": self.control_seen,
            "live_sets": self.live_sets,
            "held": self.held,
            "pause_discard": self.pause_discard,
            "discarded": self.discarded,
            "watch": self.watch,
            "commits": self.commits,
            "withheld": self.withheld,
            "withheld_count": self.withheld_count,
            "served_fairness": self._served_fairness(),
        }

    def _served_fairness(self) -> bytes | None:
        """The served-fairness window for the state: pickled every batch while small, else at most every
        FAIRNESS_SAVE_S (only the metrics read it, not the guard: a restart goes on with a window a few seconds
        old rather than with none)."""
        monitor = self.ctx.served_fairness()
        if monitor is None:
            return None
        now = time.monotonic()
        small = len(monitor) <= FAIRNESS_SAVE_EVERY_BATCH
        if small or self._fairness_saved is None or now - self._fairness_saved[0] >= FAIRNESS_SAVE_S:
            self._fairness_saved = (now, pickle.dumps(monitor, protocol=5))
        return self._fairness_saved[1]

    def restore_state(self, state: dict[str, Any]) -> None:
        configured = self.lifecycle  # built from this process's settings (file, environment, defaults)
        self.lifecycle = state["lifecycle"]
        self._check_artifacts()
        self._reapply_configured(configured, state["live_sets"])
        self.offsets = state["offsets"]
        self.seen = state["seen"]
        self.index = state["index"]
        self.control_seen = state["control_seen"]
        self.live_sets = state["live_sets"]
        self.held = state["held"]
        self.pause_discard = bool(state["pause_discard"])
        self.discarded = int(state.get("discarded", 0))  # absent from states saved before it was counted
        self.watch = state["watch"]
        self.commits = int(state.get("commits", 0))
        # Absent from states saved before session 33's fixes33b.
        self.withheld = state.get("withheld")
        self.withheld_count = int(state.get("withheld_count", 0))
        saved = state.get("served_fairness")  # absent before session 42
        # unseal() read it (restricted); bytes only in a state handed over in process (Trainer.state()).
        if isinstance(saved, bytes):
            saved = safe_pickle.loads_state(saved)
        self.ctx.restore_served_fairness(saved if isinstance(saved, FairnessMonitor) else None)
        self._served_at = None

    def _reapply_configured(self, configured: ModelLifecycle, live_sets: dict[str, Any]) -> None:
        """The restored lifecycle carries the settings of the process that saved it: apply this process's
        configuration (a file or environment changed across the restart) to every setting not set live, which
        wins as before. Applied as a live ``set`` would be, so the policies and monitors follow."""
        restored = self.lifecycle
        changed: dict[str, str] = {}
        if "release_every" not in live_sets and restored.release_every != configured.release_every:
            changed["release_every"] = str(configured.release_every)
        for section in ("guard", "drift"):
            old, new = getattr(restored, section), getattr(configured, section)
            for f in dataclasses.fields(new):
                key, value = f"{section}.{f.name}", getattr(new, f.name)
                if key in live_sets or getattr(old, f.name) == value:
                    continue
                if value is None:
                    changed[key] = "null"
                elif isinstance(value, bool):
                    changed[key] = str(value).lower()
                elif isinstance(value, dict):
                    changed[key] = json.dumps(value)
                else:
                    changed[key] = str(value)
        if changed:
            log.warning(
                "trainer %s: configuration changed since its state was saved: %s", self.ctx.model, changed
            )
        for key, value in changed.items():
            try:
                restored.apply_control("set", {key: value})
            except ConfigError as exc:  # outside the live rules: the restored value stays, said once
                log.warning("trainer %s: %s kept at its saved value: %s", self.ctx.model, key, exc)

    # -- per batch -----------------------------------------------------------------------------------------------
    def process(self, examples: list[tuple[RawRecord, dict[str, Any]]]) -> int:
        """Learn this model's decoded TrainingExamples of one batch, in order; returns how many were learned.

        Each id's digest is computed once, for the duplicate check here and the add once it is learned (it was
        hashed twice per label). A partition's last offset is kept in a local while its records run (a batch's
        records are almost always of one partition) and written back when the partition changes and at the end,
        before anything is learned."""
        m = self.ctx.metrics
        pending: list[tuple[RawRecord, dict[str, Any]]] = []
        digests: list[int] = []
        ids: set[str] = set()
        offsets, seen, digest = self.offsets, self.seen, self.seen.digest
        paused, discard = self.lifecycle.paused, self.pause_discard
        where, topic, part, last = "", None, -1, -1
        for raw, example in examples:
            if raw.partition != part or raw.topic != topic:
                if last != -1:  # -1: nothing of that partition handled yet (no entry to write)
                    offsets[where] = last
                topic, part = raw.topic, raw.partition
                where = f"{topic}:{part}"
                last = offsets.get(where, -1)
            offset = raw.offset
            if offset <= last:
                m.events.labels(stage="train", outcome="skipped").inc()
                continue
            last = offset
            event_id = example["id"]
            known = digest(event_id)  # a string (the schema's); hashed once for the check and the add
            if seen.has(known) or event_id in ids:
                m.events.labels(stage="train", outcome="duplicate").inc()
                continue
            if paused and not discard:
                self.hold(raw, example)
                continue
            if paused:
                # pause --discard: scored and monitored as before, never learned; counted.
                m.paused_examples.labels(model=self.ctx.model, outcome="discarded").inc()
                self.discarded += 1
            ids.add(event_id)
            pending.append((raw, example))
            digests.append(known)
        if last != -1:
            offsets[where] = last
        return self.learn_many(pending, digests)

    def learn_many(
        self, pending: list[tuple[RawRecord, dict[str, Any]]], digests: list[int] | None = None
    ) -> int:
        """Learn a batch with :meth:`ModelLifecycle.learn_batch` (the same decisions as one by one, the frozen
        models' predictions per batch); a record the learner cannot take is dead-lettered. Returns how many were
        learned. ``digests``: the examples' ids as :meth:`RecentIds.digest` (computed here if not given).

        The input watch checks the whole batch at once (:meth:`InputWatch.check_many`: the same warnings, in the
        same order, before anything is learned, as one by one)."""
        index = self.index
        examples = [example for _, example in pending]
        # A label of the other kind (text where numbers came) is refused before the watch and the learner see it
        # (InputWatch.admit); it keeps its index, like any record the learner cannot take.
        admit = self._admit
        refused = {k: why for k, e in enumerate(examples) if (why := admit(e)) is not None}
        kept = [(k, e) for k, e in enumerate(examples) if k not in refused]
        start = 0  # the watch checks each run of kept examples at its own indices
        for stop in [*sorted(refused), len(examples)]:
            run = [(e["features"], e["label"]) for e in examples[start:stop]]
            for warning in self.watch.check_many(run, index + start) if run else ():
                self._warn(warning)
            start = stop + 1
        labelled = [
            Labelled(
                e["features"],
                e["label"],
                e.get("prediction"),
                e.get("version"),
                e.get("proba"),
                index + k,
                e.get("event_ts"),
            )
            for k, e in kept
        ]
        lifecycle = self.lifecycle
        self._served_at = (lifecycle.served_version, lifecycle.served_model)
        learned_results = lifecycle.learn_batch(labelled)
        results: list[Any]
        if refused:
            it = iter(learned_results)
            results = [ValueError(refused[k]) if k in refused else next(it) for k in range(len(examples))]
        else:
            results = learned_results
        if digests is None:
            digests = [self.seen.digest(e["id"]) for e in examples]
        learned = 0
        add, handle = self.seen.add_digest, self.handle
        observe = self.ctx.observe_served if self.ctx.observes_served() else None
        for k, ((raw, example), result, known) in enumerate(zip(pending, results, digests, strict=True)):
            # A record the learner cannot take keeps the index it was offered with, as in :meth:`learn`: the next
            # label's index is the same whatever the batch's size.
            self.index = index + k + 1
            if isinstance(
                result, Exception
            ):  # a record the learner cannot take: dead-letter it, keep learning
                self.ctx.deadletter("train", raw, result)
                continue
            add(known)
            if observe is not None:
                observe(example)  # per-segment fairness of the served model (fairness_metrics.py)
            if result:
                for event in result:
                    handle(event)
            learned += 0 if lifecycle.paused else 1
        return learned

    def _admit(self, example: dict[str, Any]) -> str | None:
        """Why ``example``'s label is refused (dead-lettered) before anything learns it, or None: the input watch's
        checks (:meth:`InputWatch.admit`, which may repair the label), then what the learner needs of it
        (:meth:`ModelLifecycle.refuse_label`: a Poisson loss and a negative label)."""
        why = self.watch.admit(example)
        if why is None and self.lifecycle.task == "regression":
            why = self.lifecycle.refuse_label(example["label"])
        return why

    def _check_input(self, example: dict[str, Any], index: int) -> None:
        for warning in self.watch.check(example["features"], example["label"], index):
            self._warn(warning)

    def _warn(self, warning: DriftSignal) -> None:
        """An input warning: counted, logged and published as a drift-style event."""
        kind = warning.signal.partition(":")[0] if warning.signal.startswith("feature") else "new_class"
        self.ctx.metrics.input_warnings.labels(model=self.ctx.model, kind=kind).inc()
        log.warning("input warning for %s: %s %s", self.ctx.model, warning.signal, warning.details)
        self.emit_drift(warning)

    def learn(self, raw: RawRecord, example: dict[str, Any]) -> int:
        """Learn one TrainingExample (1), or dead-letter it if the learner cannot take it (0)."""
        why = self._admit(example)
        if why is not None:  # a label of the other kind, or one the learner cannot take: see _admit
            self.index += 1
            self.ctx.deadletter("train", raw, ValueError(why))
            return 0
        self._check_input(example, self.index)
        try:
            events = self.lifecycle.learn_one(
                example["features"],
                example["label"],
                served_prediction=example.get("prediction"),
                served_version=example.get("version"),
                served_proba=example.get("proba"),
                index=self.index,
                ts=example.get("event_ts"),
            )
        except Exception as exc:  # a record the learner cannot take: dead-letter it, keep learning
            self.index += 1  # its index is taken, as in a batch (:meth:`learn_many`)
            self.ctx.deadletter("train", raw, exc)
            return 0
        self.index += 1
        self.seen.add(example["id"])
        self.ctx.observe_served(example)  # per-segment fairness of the served model (fairness_metrics.py)
        for event in events:
            self.handle(event)
        return 0 if self.lifecycle.paused else 1

    def handle(self, event: Any) -> None:
        if isinstance(event, Release):
            self.publish(event)
        elif isinstance(event, DriftSignal):
            self.emit_drift(event)
        elif isinstance(event, Decision):
            if event.outcome == "reset":
                log.warning("%s: %s", self.ctx.model, event.text)
            self.record_decision(event)
        elif isinstance(event, Withheld):
            self.withhold(event)

    def withhold(self, event: Withheld) -> None:
        """A release the scorers could not load was not made: counted, logged (throttled) and kept for ``status``."""
        if not event.fresh:
            return
        model = self.ctx.model
        self.ctx.metrics.releases_withheld.labels(model=model, reason=event.problem).inc()
        self.withheld_count += 1
        self.withheld = {
            "reason": event.reason,
            "problem": event.problem,
            "message": event.message[:300],
            "n_learned": event.n_learned,
            "served_version": self.lifecycle.served_version,
            "count": self.withheld_count,
            "at": now_ms(),
        }
        if event.refused_class:
            self.withheld["refused_class"] = event.refused_class
        if event.problem == "too_large":
            why, fix = (
                "no record can carry its artifact",
                "Set model.artifact_store (a directory the trainer and the scorers share) or raise "
                "model.max_inline_bytes, or use a smaller learner (model.learner)",
            )
        elif event.refused_class:
            # Not a size: the trained model holds a class the loader does not list (hostile40 names the untrained
            # learner's at config validate; this one appeared only once it learned). A smaller learner is no fix.
            why, fix = (
                f"the trained model holds {event.refused_class}, which is not in the scorers' allow-list",
                f'Add {event.refused_class} to learners.pickle_allow.ALLOWED (README, "Extending") if its pickle '
                "holds only plain state, or use a learner (model.learner) whose classes are listed",
            )
        else:
            why, fix = (
                "the scorers' loader would refuse it",
                "A model that grew past the loader's caps needs a smaller learner (model.learner) or a "
                "rollback/promote of an older version",
            )
        self.security_log().warning(
            f"withheld releases of model {model}",
            event.problem,
            f"release of %s withheld (%s, n_learned=%d): {why} (%s); v%d stays the champion. {fix}",
            model,
            event.reason,
            event.n_learned,
            event.message[:300],
            self.lifecycle.served_version,
        )

    def publish(self, release: Release) -> None:
        ctx, s = self.ctx, self.ctx.settings
        if release.reason == "rollback" or (
            release.decision is not None
            and release.decision.reason == "manual"
            and str(release.decision.candidate).startswith("version ")
        ):
            # A restore serves an older model: its release carries that model's own statistics (the evaluator
            # measured the model being replaced), plus the operator's or the guard's decision.
            own, span = (
                self.own_stats_and_range(int(release.parent)) if release.parent is not None else ({}, {})
            )
            if own:
                guard = {k: v for k, v in release.metrics.items() if k.startswith("guard.")}
                release = dataclasses.replace(release, metrics={**own, **guard})
            if span and not release.data_range:
                # It learned nothing itself: it carries the data range of the model it restores (models diff and
                # explain show what the served model learned from, not "nothing yet").
                release = dataclasses.replace(release, data_range=span)
        served_at, self._served_at = self._served_at, (release.version, release.model)
        # The decision's JSON once for the release and its decision entry (~400 LR releases per 20,000 labels), and
        # the canonical texts written twice once (session 38): the decision's (its entry, and the release's entry)
        # and the metrics' (the signed header, and the release's entry).
        decision = release.decision.to_json() if release.decision is not None else ""
        parsed = json.loads(decision) if decision else None
        decision_text = canonical_text(parsed) if parsed is not None else None
        n_learned = int(release.metrics.get("n_learned", self.lifecycle.n_learned))
        metrics = header_metrics(release.metrics, n_learned)
        metrics_text = canonical_text(metrics)
        record = build_release(
            release.model,
            name=ctx.model,
            version=release.version,
            parent=release.parent,
            reason=release.reason,
            metrics=release.metrics,
            key=self.key,
            n_learned=n_learned,
            data_range=release.data_range,
            decision=decision,
            max_inline_bytes=s.model.max_inline_bytes,
            store=self.store,
            metrics_json=metrics_text,
            made_metrics=metrics,
        )
        # Every field of the record is built here with its schema type (learners.artifacts.build_release), so it
        # is encoded directly (``complete=True``: the same bytes as after validation, which runs only if direct
        # encoding fails); validating the metrics map and the artifact was about half of the encoding.
        ctx.out.produce_bytes(
            self._models_topic,
            ctx.codec.encode("ModelRelease", record, topic="models", complete=True),
            ctx.model,
        )
        self.released += 1
        self.withheld, self.withheld_count = None, 0  # the champion is the released (loadable) model now
        ctx.metrics.observe_release(ctx.model, release.reason, record["created_at"])
        if release.decision is not None:
            self.record_decision(release.decision, parsed, decision_text)
        explained = release_explanation(
            release,
            self.lifecycle,
            decision_json=parsed,
            # Known only if the release replaced the version served as of its event (not a restore of an older
            # one, nor a release after a restart): else the lifecycle's, right between batches.
            **({"replaced_model": served_at[1]} if served_at and served_at[0] == release.parent else {}),
        )
        texts = {}
        if explained.get("decision") is parsed and decision_text is not None:
            texts["decision"] = decision_text
        # The header's metrics are the release's as floats: the same text where they already were (else encoded).
        written = explained.get("metrics")
        if written == metrics and all(type(v) is float for v in written.values()):
            texts["metrics"] = metrics_text
        ctx.audit("release", explained, texts=texts)
        log.info("released %s v%d (%s)", ctx.model, release.version, release.reason)

    def record_decision(
        self, decision: Decision, parsed: dict[str, Any] | None = None, text: str | None = None
    ) -> None:
        """Count ``decision`` and audit it; ``parsed``: its ``to_json()`` already parsed (the audit copies it), and
        ``text`` its canonical JSON (``driftline.audit_chain.canonical_text``)."""
        self.ctx.metrics.child("guard_decisions", self.ctx.model, decision.outcome, decision.reason).inc()
        if parsed is None:
            self.ctx.audit("decision", json.loads(decision.to_json()))
        else:
            self.ctx.audit("decision", parsed, record_text=text)

    def emit_drift(self, signal: DriftSignal) -> None:
        self.ctx.emit_drift(signal, self.lifecycle.served_version)

    # -- after each batch ----------------------------------------------------------------------------------------
    def publish_status(self) -> None:
        """Live trainer state for ``driftline models show`` and the metrics."""
        self.security_log().flush()  # the count of SECURITY lines held back in a minute that is over
        lc, m, model = self.lifecycle, self.ctx.metrics, self.ctx.model
        snap = lc.snapshot_metrics()
        # Each series looked up once (Metrics.child): labels() per series per transaction was most of this.
        m.set_served_version(
            model, lc.served_version
        )  # "serves (scorer) or trains (trainer)": docs/metrics.md
        m.child("n_learned", model).set(lc.n_learned)
        learned, refused = lc.vocabulary()
        m.child("vocabulary_keys", model, "learned").set(learned)
        m.child("vocabulary_keys", model, "refused").set(refused)
        m.child("learning_paused", model).set(float(lc.paused))
        m.child("held_examples", model).set(len(self.held))
        m.set_model_metrics(
            model,
            lc.served_version,
            {k: v for k, v in snap.items() if not k.startswith(("segment.", "overall.segment."))},
        )
        status = {
            "n_learned": lc.n_learned,
            "served_version": lc.served_version,
            "paused": int(lc.paused),
            "updated_at": now_ms(),
            "metrics": json.dumps(snap),
            "settings": json.dumps(self.live_settings(), default=str),
            "held_examples": len(self.held),
            "pause_discard": int(self.pause_discard),
            "discarded": self.discarded,
            "unlearned": lc.unlearned,  # labels evaluated, then dead-lettered: learning them raised
            "owner": self.owner,
            "commits": self.commits,
            "withheld": json.dumps(self.withheld) if self.withheld else "",
        }
        try:
            hset_if_newer(self._redis, self._status_key, status)
        except redis.RedisError as exc:
            log.warning("cannot publish trainer status to Redis: %s", exc)
