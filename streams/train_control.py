"""The trainer's control side: ControlCommands authenticated, validated, applied, audited and answered, and the
verified releases it restores from (``promote VERSION``, a rollback past probation). Mixed into
:class:`streams.train.Trainer`, which owns the state used here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import redis

from driftline.errors import ConfigError, LearnerError, SchemaError
from driftline.settings import ModelSettings
from driftline.util import now_ms
from learners.artifacts import ArtifactStore
from learners.lifecycle import ModelLifecycle, Withheld
from learners.lifecycle_control import validate_control
from streams.control import operator_key, refusal, reply_key, write_reply
from streams.releases import CheckedReleases, load_verified, read_checked_releases
from streams.runtime import RawRecord, WorkerContext
from streams.security_log import ThrottledLog

log = logging.getLogger(__name__)
security_log = logging.getLogger("driftline.security")

# Labelled examples held while learning is paused (they go into the checkpoint); past this, the next ones are
# dead-lettered with the reason rather than dropped silently or grown without bound.
HELD_MAX = 100_000


class TrainerControl:
    """Control commands and restores; see the module docstring."""

    ctx: WorkerContext
    lifecycle: ModelLifecycle
    offsets: dict[str, int]
    control_seen: Any
    live_sets: dict[str, dict[str, Any]]
    pause_discard: bool
    held: list[tuple[str, int, int, bytes | None, bytes, int]]
    seen: Any
    replies: list[dict[str, Any]]
    _topic: str
    key: bytes
    store: ArtifactStore | None
    _redis: redis.Redis

    def handle(self, event: Any) -> None:  # pragma: no cover - provided by Trainer
        raise NotImplementedError

    def learn(self, raw: RawRecord, example: dict[str, Any]) -> int:  # pragma: no cover - provided by Trainer
        raise NotImplementedError

    # -- pause without loss --------------------------------------------------------------------------------------
    def hold(self, raw: RawRecord, example: dict[str, Any]) -> None:
        """Keep a labelled example that arrived while learning is paused, to learn it in order on resume."""
        m = self.ctx.metrics
        if len(self.held) >= HELD_MAX:
            self.ctx.deadletter(
                "train", raw, f"learning paused and {HELD_MAX} examples already held: resume learning"
            )
            return
        self.held.append((raw.topic, raw.partition, raw.offset, raw.key, raw.value, raw.timestamp_ms))
        self.seen.add(example["id"])
        m.paused_examples.labels(model=self.ctx.model, outcome="held").inc()
        m.held_examples.labels(model=self.ctx.model).set(len(self.held))

    def learn_held(self) -> int:
        """After a resume: learn the examples held during the pause, in arrival order."""
        held = [RawRecord(*h) for h in self.held]
        self.held = []
        decoded = self.ctx.codec.decode_many("TrainingExample", [r.value for r in held], topic=self._topic)
        learned = 0
        for raw, example in zip(held, decoded, strict=True):
            if isinstance(example, SchemaError):  # it decoded when held: only a schema change gets here
                self.ctx.deadletter("train", raw, example)
                continue
            learned += self.learn(raw, example)
        self.ctx.metrics.paused_examples.labels(model=self.ctx.model, outcome="learned").inc(learned)
        self.ctx.metrics.held_examples.labels(model=self.ctx.model).set(0)
        self.ctx.metrics.events.labels(stage="train", outcome="ok").inc(learned)
        return learned

    def security_log(self) -> ThrottledLog:
        """This model's SECURITY lines: anyone who can write ``control`` or ``models`` can send thousands of
        forgeries; the first few of each kind per minute are logged in full, then one line with the count
        (written at the next :meth:`Trainer.publish_status` once the minute is over)."""
        throttled: ThrottledLog = self.__dict__.setdefault("_security", ThrottledLog(security_log))
        return throttled

    # -- control -------------------------------------------------------------------------------------------------

    def _answered_unknown(self, cmd: dict[str, Any]) -> tuple[str, str] | None:
        """A replay of a command first answered ``unknown`` (sent before this model existed: nothing was applied and
        no trainer recorded its id), found by the answer filed under its id. Without this check the same signed
        record sent again once the model existed, within ``model.control_max_age_s``, was applied, though its
        operator had been told it was refused (review37). Redis not answering: not known, applied as before."""
        try:
            raw = self._redis.get(reply_key(self.ctx.settings, str(cmd.get("id") or "")))
            first = json.loads(raw) if raw else None
        except (redis.RedisError, ValueError):
            return None
        if isinstance(first, dict) and first.get("reason") == "unknown":
            return "replay", (
                f"command id {cmd.get('id')!r} was answered 'unknown' when first sent, before this model existed "
                "(a replayed command; send a new one with `driftline models ...`)"
            )
        return None

    def command(self, raw: RawRecord, cmd: dict[str, Any]) -> None:
        ctx, lc = self.ctx, self.lifecycle
        name, args = str(cmd["command"]), dict(cmd.get("args") or {})
        reply: dict[str, Any] = {"id": cmd.get("id", ""), "command": name, "args": args}
        reply["key_id"] = cmd.get("key_id", "")
        problem = refusal(
            cmd,
            [operator_key(ctx.settings)],
            self.control_seen,
            now_ms(),
            ctx.settings.model.control_max_age_s,
        ) or self._answered_unknown(cmd)
        if problem is not None:
            reason, message = problem
            ctx.metrics.control_refused.labels(model=ctx.model, reason=reason).inc()
            self.security_log().warning(
                f"refused control commands of model {ctx.model}",
                reason,
                "SECURITY: control command %r refused: %s",
                name[:100],
                message,
            )
            reply.update(
                outcome="refused", reason=reason, message=f"control command {name!r} refused: {message}"
            )
        else:
            self.control_seen.add(str(cmd["id"]))
            before = lc.served_version
            try:
                validate_control(name, args, lc.guard, lc.drift)
            except Exception as exc:  # not a command the contract knows (another client wrote it): bad input
                reply.update(outcome="refused", reason="invalid", message=f"{type(exc).__name__}: {exc}")
            else:
                try:
                    message = self.apply(name, args, cmd)
                    reply.update(outcome="ok", reason="", message=message)
                except (LearnerError, ConfigError) as exc:  # a valid command the model's state does not allow
                    reply.update(outcome="refused", reason="state", message=f"{type(exc).__name__}: {exc}")
                except Exception as exc:  # a failure to apply it (an artifact that will not load, a read that
                    # failed): refused, never retried, and dead-lettered so that it stays visible
                    reply.update(outcome="refused", reason="error", message=f"{type(exc).__name__}: {exc}")
            if lc.served_version != before:
                reply["released"] = lc.served_version
        if reply["outcome"] == "ok":
            ctx.metrics.events.labels(stage="control", outcome="ok").inc()
        elif reply["reason"] == "state":
            # An operator's ordinary refusal ("no 'held' candidate", nothing to roll back to): answered, audited and
            # counted, not a dead letter (it fired DriftlineDeadLetters on an operator's typo; session 34).
            ctx.metrics.events.labels(stage="control", outcome="refused").inc()
        else:
            ctx.deadletter("control", raw, reply["message"])  # counted there, once
        ctx.metrics.learning_paused.labels(model=ctx.model).set(float(lc.paused))
        reply.update(at=now_ms(), served_version=lc.served_version, paused=lc.paused)
        ctx.audit(
            "control",
            {
                "command": name,
                "args": args,
                "id": cmd.get("id", ""),
                "signed_by": cmd.get("key_id", ""),  # who: the operator key id (the chain has its own key_id)
                "outcome": "ok" if reply["outcome"] == "ok" else f"refused: {reply['message']}",
            },
        )
        if reply["id"]:
            self.replies.append(reply)  # answered once the transaction holding its effects is committed

    def send_replies(self) -> None:
        """File the answers of the commands applied in the last committed transaction (Redis)."""
        replies, self.replies = self.replies, []
        for reply in replies:
            try:
                write_reply(self._redis, self.ctx.settings, str(reply["id"]), reply)
            except redis.RedisError as exc:
                log.warning("cannot file the answer to control command %s in Redis: %s", reply["id"], exc)

    def apply(self, command: str, args: dict[str, str], cmd: dict[str, Any] | None = None) -> str:
        """Apply a validated command; returns what happened, for the operator. ``promote VERSION`` and a rollback
        past probation restore a retained (verified) release."""
        lc = self.lifecycle
        if command == "promote" and "version" in args:
            version = int(args["version"])
            model, own = self.restore(version), self.own_stats(version)
            n = int(own.get("n_learned", lc.n_learned))
            self._released(lc.adopt(model, version=version, reason="manual", n_learned=n))
            return f"restored v{version} as v{lc.served_version}"
        if command == "rollback" and lc.rollback_version is None:
            # A rollback or promote release serves the model of the version it restored: roll that one back, so
            # a second rollback goes one version further back instead of restoring the same model again.
            checked = self.releases()  # read once: each read goes through the whole topic
            serving, seen = lc.served_version, {lc.served_version}
            current = checked.get(serving) or self.release_record(serving)  # the latter raises, naming it
            while (origin := (current.get("metrics") or {}).get("restored_from")) is not None:
                if int(origin) in seen:
                    break
                serving = int(origin)
                seen.add(serving)
                current = checked.get(serving) or self.release_record(serving)
            parent = current.get("parent")
            if parent is None:
                raise LearnerError(f"rollback: version {serving} has no parent to roll back to")
            model, own = self.restore(int(parent)), self.own_stats(int(parent))
            n = int(own.get("n_learned", lc.n_learned))
            self._released(lc.adopt(model, version=int(parent), reason="rollback", n_learned=n))
            return f"rolled back to v{parent} (released as v{lc.served_version})"
        if command == "pause_learning":
            discard = args.get("discard", "false").lower() in ("1", "true", "yes", "on")
            self.pause_discard = discard
            lc.apply_control(command, {})
            if discard:
                return "learning paused; labels arriving now are DISCARDED (counted), scoring goes on"
            return "learning paused; labels arriving now are kept and learned in order on resume"
        if command == "resume_learning":
            lc.apply_control(command, {})
            self.pause_discard = False
            learned = self.learn_held()
            return f"learning resumed; learned {learned} label(s) held during the pause"
        old = {key: self.setting_value(key) for key in args} if command == "set" else {}
        restoring = lc.rollback_version  # a rollback on probation restores this one (None: refused below)
        for event in lc.apply_control(command, args):
            self._released(event)
        if command == "rollback":
            return f"rolled back to v{restoring} (released as v{lc.served_version})"
        if command == "set":
            for key in args:
                self.live_sets[key] = {
                    "value": self.setting_value(key),
                    "set_at": (cmd or {}).get("ts"),
                    "key_id": (cmd or {}).get("key_id", ""),
                    "id": (cmd or {}).get("id", ""),
                }
            return "; ".join(f"{k}={self.setting_value(k)} (was {old[k]})" for k in args)
        return f"{command} applied; serving v{lc.served_version}"

    def _released(self, event: Any) -> None:
        """Handle an event of an operator's command; a release withheld (the scorers' loader would refuse its
        artifact, or no record can carry it) refuses the command, so the operator is not told it is served."""
        self.handle(event)
        if isinstance(event, Withheld):
            why = (
                "no record can carry its artifact"
                if event.problem == "too_large"
                else "the scorers' loader would refuse its artifact"
            )
            raise LearnerError(
                f"release withheld: {why} ({event.message[:300]}); "
                f"v{self.lifecycle.served_version} is still served"
            )

    def setting_value(self, key: str) -> Any:
        lc = self.lifecycle
        if key == "release_every":
            return lc.release_every
        section, _, name = key.partition(".")
        return getattr(lc.guard if section == "guard" else lc.drift, name)

    def live_settings(self) -> dict[str, dict[str, Any]]:
        """Every live setting with its value and where it came from (live set, environment, file, default)."""
        lc, s = self.lifecycle, self.ctx.settings
        rows: list[tuple[str, str, Any, Any, Any]] = [
            ("release_every", "model", lc.release_every, s.model.release_every, ModelSettings.release_every)
        ]
        for section, live, configured in (("guard", lc.guard, s.guard), ("drift", lc.drift, s.drift)):
            default = type(configured)()
            for f in dataclasses.fields(live):
                rows.append((f"{section}.{f.name}", section, getattr(live, f.name), getattr(configured, f.name),
                             getattr(default, f.name)))  # fmt: skip
        env = {k.upper() for k in os.environ}
        out: dict[str, dict[str, Any]] = {}
        for key, section, value, configured, default in rows:
            field_name = key.rpartition(".")[2]
            row: dict[str, Any] = {"value": value}
            if key in self.live_sets:
                row.update(
                    source="live set", **{k: v for k, v in self.live_sets[key].items() if k != "value"}
                )
            elif value != configured:
                row["source"] = "trainer"  # e.g. feature drift, which the scorers watch instead
            elif f"DRIFTLINE__{section.upper()}__{field_name.upper()}" in env:
                row["source"] = "environment"
            elif configured != default:
                row["source"] = "file"
            else:
                row["source"] = "default"
            out[key] = row
        return out

    def releases(self) -> CheckedReleases:
        """This model's releases on ``models``, verified; unverified ones are counted and logged."""
        checked = read_checked_releases(self.ctx.settings, self.ctx.codec, model=self.ctx.model)
        counted: set[tuple[Any, Any]] = self.__dict__.setdefault("_forgeries_counted", set())
        throttled = self.security_log()
        for release, reason, message in checked.rejected:
            # The topic is read again for every restore: count each forged record once per process.
            mark = (release.get("version"), release.get("signature"))
            if mark in counted:
                continue
            counted.add(mark)
            self.ctx.metrics.releases_rejected.labels(model=self.ctx.model, reason=reason).inc()
            throttled.warning(
                f"refused releases of model {self.ctx.model} on the models topic",
                reason,
                "SECURITY: release %s v%s on the models topic ignored: %s",
                self.ctx.model,
                release.get("version"),
                message,
            )
        throttled.flush(force=True)  # one pass over the topic: its summary now, not at the next read
        return checked

    def release_record(self, version: int) -> dict[str, Any]:
        release = self.releases().get(version)
        if release is not None:
            return release
        raise LearnerError(
            f"version {version} of {self.ctx.model!r} is not on {self.ctx.settings.topic('models')} "
            "as a verified release (unknown, forged, or compacted away)"
        )

    def own_stats(self, version: int) -> dict[str, float]:
        """The statistics a restored version was released with (its own n_learned and accuracy, not the
        current model's), for the release that restores it; empty if it is not retained."""
        return self.own_stats_and_range(version)[0]

    def own_stats_and_range(self, version: int) -> tuple[dict[str, float], dict[str, int]]:
        """:meth:`own_stats`, and the data range the restored version's signed header names (what its model
        learned from; empty if it names none or the version is not retained), from one read of the topic."""
        try:
            release = self.release_record(version)
        except LearnerError:
            return {}, {}
        stats = {
            k: float(v)
            for k, v in (release.get("metrics") or {}).items()
            if not k.startswith("guard.") and isinstance(v, (int, float))
        }
        stats["restored_from"] = float(version)
        try:
            header = json.loads(release.get("header") or "{}")
        except ValueError:
            header = {}
        data = header.get("data_range") if isinstance(header, dict) else None
        span = {
            str(k): v
            for k, v in (data.items() if isinstance(data, dict) else ())
            if type(v) is int  # verified (signed) header: ints as written; anything else is not a range
        }
        return stats, span

    def restore(self, version: int) -> Any:
        """Verify and load a retained release (never an unverified one)."""
        previous = self.ctx.settings.model.previous_signing_key.get().encode()
        return load_verified(self.release_record(version), self.key, previous, None, self.store)
