"""What the console shows that the command line already knows: status, the model registry, the audit log.

These are thin adapters over the functions behind ``driftline status --json`` and ``driftline models list|show
--json``, so the page and scripts read one source. The command modules are imported here, in one place, so a
change in them (the control path, signing) reaches the console without a second copy of their logic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from driftline.errors import ArtifactError, DriftlineError, SecurityError
from learners.artifacts import ArtifactStore, verify_release
from learners.registry import ModelRegistry
from streams.releases import read_releases
from streams.settings import Settings

__all__ = [
    "audit_entries",
    "audit_path",
    "lineage",
    "models_list",
    "models_show",
    "send_control",
    "status",
    "trainer",
]


def status(settings: Settings) -> dict[str, Any]:
    """The object ``driftline status --json`` prints."""
    from streams.commands.status import collect_status

    return collect_status(settings)


def trainer(settings: Settings) -> dict[str, Any] | None:
    """The trainer's live state from Redis (``n_learned``, ``served_version``, ``paused``, ``metrics``)."""
    from streams.commands.models import trainer_status

    return trainer_status(settings)


def send_control(settings: Settings, command: str, args: dict[str, str]) -> dict[str, Any]:
    """Publish a ControlCommand exactly as ``driftline models ...`` does (same function, same signing)."""
    from streams.commands.models import send_command

    return send_command(settings, command, args)


def _registry(releases: Iterable[Mapping[str, Any]], model: str) -> ModelRegistry:
    registry = ModelRegistry(model)
    for release in releases:
        if release.get("model") == model:
            registry.add(release)
    return registry


def models_list(settings: Settings, releases: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The rows of ``driftline models list --json``: every retained release, newest first."""
    registry = _registry(read_releases(settings) if releases is None else releases, settings.model.name)
    return [registry.describe(v) for v in sorted(registry.versions(), reverse=True)]


def models_show(
    settings: Settings, version: int | None = None, releases: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The object of ``driftline models show [VERSION] --json`` (the champion gets the trainer's live state)."""
    registry = _registry(read_releases(settings) if releases is None else releases, settings.model.name)
    info = registry.describe(version)
    if version is None:
        live = trainer(settings)
        info["trainer"] = live
        if live is not None:
            info["n_learned_in_release"] = info["n_learned"]
            info["n_learned"] = live["n_learned"]
    return info


# -- audit log -----------------------------------------------------------------------------------------------------
def audit_path(settings: Settings) -> Path:
    """The trainer's audit log (JSON lines: releases, guard decisions, control commands, console actions)."""
    name = f"{settings.kafka.topic_prefix}{settings.model.name}.jsonl"
    return Path(settings.state_dir).expanduser() / "audit" / name


def audit_entries(settings: Settings, last: int = 2000) -> list[dict[str, Any]]:
    """The last ``last`` entries of the audit log, oldest first (a line that is not JSON is skipped)."""
    path = audit_path(settings)
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


def append_audit(settings: Settings, kind: str, record: dict[str, Any], ts: int) -> None:
    """Add one line to the audit log, in the trainer's format (``kind``, ``ts``, ``model``, fields)."""
    path = audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"kind": kind, "ts": ts, "model": settings.model.name, **record}, default=str)
    # One write of one line in append mode: lines from the trainer and the console never interleave.
    with path.open("a") as fh:
        fh.write(line + "\n")


# -- lineage -------------------------------------------------------------------------------------------------------
def _decision(release: Mapping[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(release.get("decision") or "null")
    except ValueError:
        return {"text": str(release.get("decision"))}
    return value if isinstance(value, dict) else {}


def _signature(release: Mapping[str, Any], settings: Settings) -> str:
    key = settings.model.signing_key.get().encode()
    if not key:
        return "not checked (no signing key configured)"
    store = ArtifactStore(settings.model.artifact_store) if settings.model.artifact_store else None
    failure = ""
    for k in (key, settings.model.previous_signing_key.get().encode()):
        if not k:
            continue
        try:
            verify_release(release, key=k, store=store)
            return "valid" if k == key else "valid (previous key)"
        except (SecurityError, ArtifactError) as exc:
            failure = str(exc)
        except DriftlineError as exc:
            failure = f"{type(exc).__name__}: {exc}"
    return f"INVALID: {failure}"


def _promoted_by(release: Mapping[str, Any], decision: Mapping[str, Any], audit: list[dict[str, Any]]) -> str:
    reason = str(release.get("reason"))
    if reason in ("manual", "rollback"):
        # The operator command that caused it: the last applied promote/rollback before the release.
        created = int(release.get("created_at") or 0)
        wanted = "promote" if reason == "manual" else "rollback"
        commands = [
            e
            for e in audit
            if e.get("kind") == "control" and e.get("command") == wanted and int(e.get("ts", 0)) <= created
        ]
        if commands:
            cmd = commands[-1]
            via = {e.get("id"): e for e in audit if e.get("kind") == "console"}.get(cmd.get("id"))
            who = f"operator via console ({via.get('remote')})" if via else "operator (control command)"
            return f"{who}, command id {cmd.get('id') or '-'}"
        return "operator (control command)"
    if decision.get("outcome"):
        return f"guard ({decision.get('outcome')}, {decision.get('candidate', reason)})"
    return "trainer" if reason == "initial" else f"trainer ({reason})"


def lineage(
    settings: Settings, releases: list[dict[str, Any]], audit: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every release as a node (parent -> child) with its guard evidence, size, signature and promoter,
    plus the candidates the guard rejected or held (they are in the audit log, not on ``models``)."""
    registry = _registry(releases, settings.model.name)
    current = registry.current()
    nodes = []
    for version in registry.versions():
        release = registry.get(version)
        info = registry.describe(version)
        decision = _decision(release)
        nodes.append(
            {
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
                "signature": _signature(release, settings),
                "decision": decision,
                "promoted_by": _promoted_by(release, decision, audit),
            }
        )
    candidates = [
        {
            "ts": e.get("ts"),
            "outcome": e.get("outcome"),
            "reason": e.get("reason"),
            "candidate": e.get("candidate"),
            "evidence": e.get("evidence") or {},
            "checks": e.get("checks") or {},
            "text": e.get("text", ""),
            "index": e.get("index"),
        }
        for e in audit
        if e.get("kind") == "decision" and e.get("outcome") in ("reject", "hold")
    ]
    return {"model": settings.model.name, "releases": nodes, "candidates": candidates}
