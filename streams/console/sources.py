"""What the console shows that the command line already knows: status, the model registry, the audit log, control.

These are thin adapters over the functions behind ``driftline status --json``, ``driftline models list|show --json``
and ``driftline models pause|resume|...``, so the page and scripts read one source and actions take one path
(validated, signed, answered). The command modules are imported here, in one place only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from driftline.errors import ArtifactError, DriftlineError
from driftline.settings import Settings
from streams.decisions import decision_object
from streams.model_registry import Releases

__all__ = [
    "Releases",
    "action_log_path",
    "answer",
    "audit_entries",
    "audit_path",
    "audit_trail",
    "audit_verification",
    "lineage",
    "models_list",
    "models_show",
    "read_registry",
    "send_control",
    "status",
    "trainer",
]


def status(settings: Settings) -> dict[str, Any]:
    """The object ``driftline status --json`` prints."""
    from streams.status import collect_status

    return collect_status(settings)


def trainer(settings: Settings) -> dict[str, Any] | None:
    """The trainer's live state from Redis (``n_learned``, ``served_version``, ``paused``, ``metrics``, ...)."""
    from streams.trainer_status import trainer_status

    return trainer_status(settings)


def send_control(settings: Settings, command: str, args: dict[str, str]) -> dict[str, Any]:
    """Validate, sign and publish a ControlCommand exactly as ``driftline models ...`` does (same function).

    Raises :class:`ConfigError` naming the argument when the trainer's rules refuse it (nothing is sent then).
    """
    from streams.model_registry import send_command

    return send_command(settings, command, args)


def answer(settings: Settings, command_id: str) -> dict[str, Any] | None:
    """The trainer's answer to a command (``outcome``, ``message``), or None while it has not answered.

    Raises :class:`redis.RedisError` when Redis cannot be read (the API then answers 503 naming its address):
    read through :func:`streams.control.wait_reply`, which takes a Redis error for no answer yet, a Redis that
    was down answered ``{"answered": false}`` for ever."""
    from connectors.redis_store import redis_client
    from streams.control import reply_key

    raw = redis_client(settings).get(reply_key(settings, command_id))
    return json.loads(raw) if raw else None


def read_registry(settings: Settings) -> Releases:
    """The model's releases as ``driftline models`` reads them: verified ones in a registry, failures apart."""
    from streams.model_registry import read_registry

    return read_registry(settings)


def models_list(settings: Settings, releases: Releases) -> list[dict[str, Any]]:
    """The rows of ``driftline models list --model M --json`` (newest first; failed verification marked; the
    current one with its owner, lag and the trainer's live counts, as the command line shows it)."""
    from streams.model_registry import live_release_list

    return live_release_list(settings, releases)


def models_show(settings: Settings, releases: Releases, version: int | None = None) -> dict[str, Any]:
    """The object of ``driftline models show [VERSION] --json`` (the champion gets the trainer's live state)."""
    from streams.model_registry import adopt_live_counts, adopt_serving, describe
    from streams.serving import read_serving

    try:
        info: dict[str, Any] = describe(releases, version)
    except ArtifactError:
        forged = [r for r in releases.rejected if version is not None and r["version"] == version]
        if not forged:
            raise
        return dict(forged[0])
    if version is None:
        live = trainer(settings)
        info["trainer"] = live
        adopt_live_counts(info, live)
    serving = read_serving(settings, settings.model.name)
    adopt_serving(info, serving)
    info["scorers"] = serving
    return info


# -- audit log and the console's own action log --------------------------------------------------------------------
def audit_path(settings: Settings) -> Path:
    """The trainer's audit chain on disk (releases, guard decisions, control commands it applied)."""
    from streams.audit import audit_paths

    return audit_paths(settings, settings.model.name)[0]


def _read_lines(path: Path, last: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines()[-last:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def audit_entries(settings: Settings, last: int = 2000) -> list[dict[str, Any]]:
    """The last ``last`` entries of the audit chain, oldest first (record fields are copied at the top level)."""
    return audit_trail(settings, last)[0]


def audit_trail(
    settings: Settings, last: int = 2000, topic_chain: Callable[[], list[Any]] | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The last ``last`` entries of the model's audit chain and where they were read: the trainer's file in the
    state dir, followed by what the ``audit`` topic holds after the file's last entry (the file stops where this
    machine's trainer stopped writing: the model moved to another trainer of the group), or the topic alone where
    there is no file (a console on another machine than the trainer's). ``topic_chain``: how to read the model's
    chain on the topic (default: read the topic now)."""
    from streams.audit import read_topic, topic_continuation

    def read() -> list[Any]:
        return read_topic(settings).get(settings.model.name, [])

    path = audit_path(settings)
    if path.exists():
        entries = _read_lines(path, last)
        try:
            more = topic_continuation(entries, (topic_chain or read)())
        except DriftlineError:  # the broker away: the file is what this machine has
            more = []
        if more:
            where = f"{path}, then {settings.topic('audit')} from seq {more[0]['seq']}"
            return [e for e in [*entries, *more] if isinstance(e, dict)][-last:], where
        return entries, str(path)
    try:
        chain = (topic_chain or read)()
    except DriftlineError as exc:  # the topic could not be read to its end: show nothing rather than a part
        return [], f"{settings.topic('audit')} (not read: {exc})"
    return [e for e in chain if isinstance(e, dict)][-last:], settings.topic("audit")


def audit_verification(settings: Settings) -> dict[str, Any]:
    """The verdict of ``driftline audit verify --model M --json`` on the console's model (file and topic): ``ok``
    and the ``checks`` with their ``problems``, or ``ok`` None and the ``error`` that kept it from checking.

    The entries the console shows are read as they are; without this, a chain with a forged, reordered,
    duplicated or cut-off entry looked the same on the page as a sound one."""
    from streams.audit_verify import verify_chains

    try:
        checks = verify_chains(settings, "both", settings.model.name)
    except DriftlineError as exc:  # no signing key here, the broker down, the topic not read to its end
        return {"ok": None, "checks": [], "error": str(exc)}
    if not checks:
        return {"ok": False, "checks": [], "error": "no audit chain found"}
    return {"ok": all(c["ok"] for c in checks), "checks": checks}


def action_log_path(settings: Settings) -> Path:
    """Where the console notes who sent which command (address, command id). Not the audit chain: that has one
    writer, the trainer, which records every command it applies with the signing key's id."""
    name = f"{settings.kafka.topic_prefix}{settings.model.name}.actions.jsonl"
    return Path(settings.state_dir).expanduser() / "console" / name


def note_action(settings: Settings, record: dict[str, Any]) -> None:
    path = action_log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:  # one write of one line in append mode: concurrent consoles never interleave
        fh.write(json.dumps({"ts": int(time.time() * 1000), **record}, default=str) + "\n")


def actions(settings: Settings, last: int = 2000) -> list[dict[str, Any]]:
    return _read_lines(action_log_path(settings), last)


# -- lineage -------------------------------------------------------------------------------------------------------
def _decision(release: Mapping[str, Any]) -> dict[str, Any]:
    """As every ``--json`` view of the CLI gives it (``streams.decisions``): JSON that is not an object is words."""
    return decision_object(release.get("decision"))


def _promoted_by(
    release: Mapping[str, Any],
    decision: Mapping[str, Any],
    audit: list[dict[str, Any]],
    sent: dict[str, dict[str, Any]],
) -> str:
    reason = str(release.get("reason"))
    if reason in ("manual", "rollback"):
        # The operator command that caused it: the applied promote/rollback closest in time (the trainer audits
        # the command right after the release it caused).
        created = int(release.get("created_at") or 0)
        wanted = "promote" if reason == "manual" else "rollback"
        commands = [
            e
            for e in audit
            if e.get("kind") == "control"
            and e.get("command") == wanted
            and str(e.get("outcome")) == "ok"
            and abs(int(e.get("ts", 0)) - created) < 60_000
        ]
        if not commands:
            return "operator (control command)"
        cmd = min(commands, key=lambda e: abs(int(e.get("ts", 0)) - created))
        via = sent.get(str(cmd.get("id")))
        record = cmd.get("record") or {}
        # The trainer records the signer as `signed_by` (the chain's own key is `sig_key_id`).
        key = (
            record.get("signed_by")
            or record.get("key_id")
            or cmd.get("signed_by")
            or cmd.get("key_id")
            or "?"
        )
        who = f"operator key {key}" + (f" via the console from {via.get('remote')}" if via else "")
        return f"{who}, command {cmd.get('id') or '-'}"
    if decision.get("outcome"):
        return f"guard ({decision.get('outcome')}, {decision.get('candidate', reason)})"
    return "trainer" if reason == "initial" else f"trainer ({reason})"


def release_changes(audit: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """``{version: what changed}`` from the audited releases (as ``driftline models diff`` and the demo report's
    "What changed" table tell it): ``learned_from``, ``changes`` and ``guard`` as short texts, and ``top``, the
    largest per-feature changes ``[{feature, before, after, delta}]`` with their ``unit``."""
    from learners.explain import describe_release

    out: dict[int, dict[str, Any]] = {}
    for entry in audit:
        record = entry.get("record")
        if entry.get("kind") != "release" or not isinstance(record, Mapping):
            continue
        try:
            version = int(record["version"])
            text = describe_release(record)
        except (KeyError, TypeError, ValueError):  # an entry this console cannot read: shown as not recorded
            continue
        raw = record.get("changes")
        changes: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        out[version] = {**text, "top": list(changes.get("top") or []), "unit": changes.get("unit")}
    return out


def lineage(settings: Settings, releases: Releases, audit: list[dict[str, Any]]) -> dict[str, Any]:
    """Every release as a node (parent -> child) with its guard evidence, size, signature and promoter; the
    records that failed verification; the candidates the guard rejected or held (from the audit log)."""
    from streams.model_registry import adopt_serving
    from streams.serving import read_serving

    registry = releases.registry
    current = registry.current()
    serving = read_serving(settings, settings.model.name)
    sent = {str(a.get("id")): a for a in actions(settings)}
    changed = release_changes(audit)
    nodes = []
    for version in registry.versions():
        release = registry.get(version)
        info = registry.describe(version)
        decision = _decision(release)
        node: dict[str, Any] = {"version": version}
        adopt_serving(node, serving)  # what the scorers report: serving it, or refused it (and why)
        nodes.append(
            {
                **node,
                "version": version,
                "parent": info["parent"],
                "reason": info["reason"],
                "created_at": info["created_at"],
                "current": current is not None and current.get("version") == version,
                "metrics": {k: v for k, v in info["metrics"].items() if not k.startswith("segment.")},
                "n_learned": info["n_learned"],
                "size_bytes": info["size_bytes"],
                "artifact_ref": info["artifact_ref"],
                "format": info["format"],
                "sha256": info["sha256"],
                # Verified as the scorers verify (signature, sha256) unless no key is configured here.
                "signature": "valid" if releases.checked else "not checked (no signing key configured)",
                "decision": decision,
                "promoted_by": _promoted_by(release, decision, audit, sent),
                "data_range": info.get("data_range") or {},
                # What changed from the model it replaced, as the release's audit entry records it (None when
                # the entry is not in the part of the chain read).
                "what_changed": changed.get(version),
            }
        )
    unverified = [
        {
            "version": r.get("version"),
            "reason": r.get("reason"),
            "created_at": r.get("created_at"),
            "rejected": r.get("rejected"),
            "error": r.get("error"),
        }
        for r in releases.rejected
    ]
    candidates = [
        _candidate_row(e)
        for e in audit
        if e.get("kind") == "decision" and e.get("outcome") in ("reject", "hold")
    ]
    return {
        "model": settings.model.name,
        "scorers": serving,
        "releases": nodes,
        "unverified": unverified,
        "candidates": candidates,
        "candidate_runs": candidate_runs(audit),
    }


def _candidate_row(e: Mapping[str, Any]) -> dict[str, Any]:
    """A reject/hold decision of the audit log as the lineage lists it."""
    return {
        "ts": e.get("ts"),
        "outcome": e.get("outcome"),
        "reason": e.get("reason"),
        "candidate": e.get("candidate"),
        "evidence": e.get("evidence") or {},
        "checks": e.get("checks") or {},
        "text": e.get("text", ""),
        "index": e.get("index"),
    }


def candidate_runs(audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The guard's reject/hold decisions (oldest first) with consecutive identical ones (same candidate, outcome
    and reason, no other decision between) as one run: ``count`` evaluations from ``first_ts``/``first_index`` to
    ``last_ts``/``last_index``, with the evidence, checks and text of the last. A held challenger is evaluated
    again at every check, and each evaluation is an audit decision: the page listed 103 identical ``hold`` rows.

    >>> runs = candidate_runs([{"kind": "decision", "outcome": "hold", "candidate": "c", "reason": "r", "ts": t,
    ...     "index": t} for t in (1, 2, 3)] + [{"kind": "decision", "outcome": "promote", "candidate": "c"}])
    >>> [(r["outcome"], r["count"], r["first_ts"], r["last_ts"]) for r in runs]
    [('hold', 3, 1, 3)]
    """
    runs: list[dict[str, Any]] = []
    last: tuple[Any, ...] | None = None
    for e in audit:
        if e.get("kind") != "decision":
            continue
        outcome = e.get("outcome")
        if outcome not in ("reject", "hold"):
            last = None  # another decision between: the next reject/hold starts a run of its own
            continue
        key = (e.get("candidate"), outcome, e.get("reason"))
        row = _candidate_row(e)
        if runs and key == last:
            run = runs[-1]
            run.update(row, count=run["count"] + 1, last_ts=row["ts"], last_index=row["index"])
        else:
            runs.append(
                {
                    **row,
                    "count": 1,
                    "first_ts": row["ts"],
                    "last_ts": row["ts"],
                    "first_index": row["index"],
                    "last_index": row["index"],
                }
            )
        last = key
    return runs
