"""``models diff A B`` as a library function: both releases verified and loaded, then compared.

What differs: the largest per-feature weight or importance changes (:mod:`learners.explain`), every metric,
the data range each lineage learned from, and the guard's evidence each release carries. Nothing is trusted
before its signature checks out: a release that fails verification stops the diff with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftline.errors import ArtifactError, SecurityError
from driftline.settings import Settings
from driftline.util import version_ranges
from learners.artifacts import ArtifactHeader, ArtifactStore, load_release
from learners.explain import weight_changes
from schemas.codec import Codec
from streams.decisions import decision_object
from streams.releases import read_checked_releases


def load_header_and_model(release: Mapping[str, Any], settings: Settings) -> tuple[ArtifactHeader, Any]:
    """Verify with the signing key (or the previous one during a rotation), then unpickle."""
    key = settings.model.signing_key.get().encode()
    previous = settings.model.previous_signing_key.get().encode()
    store = ArtifactStore(settings.model.artifact_store) if settings.model.artifact_store else None
    try:
        return load_release(release, key=key, store=store)
    except SecurityError as exc:
        if not previous or "signature" not in str(exc):
            raise
        return load_release(release, key=previous, store=store)


def diff_releases(
    releases: Sequence[Mapping[str, Any]], settings: Settings, model: str, a: int, b: int, top: int = 10
) -> dict[str, Any]:
    """The difference from version ``a`` to version ``b`` of ``model`` (releases as read from ``models``)."""
    by_version = {int(r["version"]): r for r in releases if r.get("model") == model}
    loaded = {}
    for v in (a, b):
        if v not in by_version:
            known = version_ranges(by_version)
            raise ArtifactError(f"models diff: version {v} of {model!r} is not retained (retained: {known})")
        loaded[v] = load_header_and_model(by_version[v], settings)
    (ha, ma), (hb, mb) = loaded[a], loaded[b]
    names = sorted(set(ha.metrics) | set(hb.metrics))
    metrics = [
        {
            "metric": n,
            "a": ha.metrics.get(n),
            "b": hb.metrics.get(n),
            "delta": (hb.metrics[n] - ha.metrics[n]) if n in ha.metrics and n in hb.metrics else None,
        }
        for n in names
    ]
    sides = {v: _side(h) for v, h in ((a, ha), (b, hb))}
    for side in sides.values():
        # A rollback restores its parent's model; its own header has no data range (it learned nothing new).
        parent = side["parent"]
        if side["reason"] == "rollback" and not side["data_range"] and parent in by_version:
            side["data_range"] = dict(load_header_and_model(by_version[parent], settings)[0].data_range)
            side["data_range_from"] = parent
    return {
        "model": model,
        "a": sides[a],
        "b": sides[b],
        "weights": weight_changes(ma, mb, top),
        "metrics": metrics,
    }


def _side(h: ArtifactHeader) -> dict[str, Any]:
    return {
        "version": h.version,
        "parent": h.parent,
        "reason": h.reason,
        "created_at": h.created_at,
        "n_learned": h.n_learned,
        "data_range": dict(h.data_range),
        "decision": decision_object(h.decision),
        "sha256": h.sha256,
    }


def diff_from_topic(
    settings: Settings, a: int, b: int, top: int = 10, codec: Codec | None = None
) -> dict[str, Any]:
    # Verified records only: a forged copy of a version must not hide the real one (issue 12).
    verified = read_checked_releases(settings, codec, model=settings.model.name).verified
    return diff_releases(verified, settings, settings.model.name, a, b, top)
