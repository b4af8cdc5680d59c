"""A model's releases as every view shows them (``driftline models``, the console, ``status``): the verified
ones in a registry, the records that failed verification apart and marked; and sending a ControlCommand exactly as
``driftline models ...`` does."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from connectors.producer import EventProducer
from connectors.topics import ensure_topics
from driftline.errors import DriftlineError
from driftline.settings import Settings
from learners.registry import ModelRegistry
from streams.control import new_command
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
    rejected = [
        unverified_row(r, reason, message)
        for r, reason, message in checked.rejected
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


def unverified_row(release: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    """What a record that failed verification claims, marked as such; it is never current."""
    metrics = release.get("metrics")
    return {
        "model": release.get("model"),
        "version": release.get("version"),
        "parent": release.get("parent"),
        "created_at": release.get("created_at"),
        "reason": release.get("reason"),
        "decision": release.get("decision") or "",
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
    info["verified"] = True if releases.checked else None
    return info


def release_list(releases: Releases) -> list[dict[str, Any]]:
    rows = [describe(releases, v) for v in releases.registry.versions()] + releases.rejected
    return sorted(rows, key=lambda r: (int(r["version"]), bool(r["verified"])), reverse=True)


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
