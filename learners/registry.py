"""In-memory registry of one model's releases, fed from the compacted ``models`` topic.

The registry is a view: it stores ModelRelease records as they arrive and answers what the current
champion is, what a version descends from and how to describe it. It never unpickles. Given a
``key`` it verifies each release's signature on :meth:`ModelRegistry.add` (no replay check: old
versions are history, not a threat, here; replay protection belongs to whoever *loads* a model).

Which release is current: the newest version whose ``decision`` does not start with ``held`` or
``rejected`` (the guard may publish a candidate that waits for operator approval). Rollbacks and
manual promotions are new versions, so "newest" stays the rule.

>>> from learners.artifacts import build_release
>>> reg = ModelRegistry("m")
>>> for v, parent in ((1, None), (2, 1), (3, 2)):
...     reg.add(build_release({"w": v}, name="m", version=v, parent=parent, reason="incremental",
...                           metrics={}, key=b"k", n_learned=10 * v, created_at=v))
>>> reg.current()["version"], [r["version"] for r in reg.lineage(3)]
(3, [3, 2, 1])
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from driftline.errors import ArtifactError, SecurityError
from driftline.util import version_ranges
from learners.artifacts import ArtifactStore, verify_release

__all__ = ["ModelRegistry"]

_NOT_CURRENT = ("held", "rejected")


class ModelRegistry:
    """Releases of one model, by version.

    Parameters
    ----------
    model
        The model name; ``None`` adopts the name of the first release added.
    key
        If given, every added release must carry a valid signature (checked without unpickling).
    store
        Artifact store used to verify by-reference releases when ``key`` is given.
    """

    def __init__(
        self, model: str | None = None, *, key: bytes | None = None, store: ArtifactStore | None = None
    ) -> None:
        self.model = model
        self._key = key
        self._store = store
        self._releases: dict[int, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"ModelRegistry(model={self.model!r}, versions={self.versions()})"

    def __len__(self) -> int:
        return len(self._releases)

    def __contains__(self, version: object) -> bool:
        return version in self._releases

    def add(self, release: Mapping[str, Any]) -> None:
        """Record a release. Re-adding the same release is a no-op (topics are read more than once)."""
        name, version = release.get("model"), release.get("version")
        if not isinstance(name, str) or not isinstance(version, int) or isinstance(version, bool):
            raise ArtifactError(
                f"release needs a string 'model' and an int 'version', got {name!r}, {version!r}"
            )
        if self.model is None:
            self.model = name
        elif name != self.model:
            raise ArtifactError(f"release of model {name!r} added to the registry of {self.model!r}")
        if self._key is not None:
            verify_release(release, key=self._key, store=self._store)
        known = self._releases.get(version)
        if known is not None:
            if known.get("signature") != release.get("signature"):
                raise SecurityError(
                    f"model {name!r}: version {version} already registered with another signature"
                )
            return
        self._releases[version] = dict(release)

    def versions(self) -> list[int]:
        """All known versions, oldest first."""
        return sorted(self._releases)

    def get(self, version: int) -> Mapping[str, Any]:
        """The release of ``version``; :class:`ArtifactError` if unknown."""
        try:
            return self._releases[version]
        except KeyError:
            raise ArtifactError(
                f"model {self.model!r} has no version {version} (known: {version_ranges(self._releases)})"
            ) from None

    def current(self) -> Mapping[str, Any] | None:
        """The newest release that is not held or rejected, or ``None``."""
        for version in sorted(self._releases, reverse=True):
            release = self._releases[version]
            if not str(release.get("decision") or "").lower().startswith(_NOT_CURRENT):
                return release
        return None

    def lineage(self, version: int) -> list[Mapping[str, Any]]:
        """``version`` and its ancestors through ``parent``, newest first.

        Stops at a root or at a parent no longer known (compaction keeps only recent releases).
        """
        chain: list[Mapping[str, Any]] = []
        seen: set[int] = set()
        cursor: int | None = version
        self.get(version)  # unknown version -> ArtifactError
        while cursor is not None and cursor in self._releases and cursor not in seen:
            seen.add(cursor)
            release = self._releases[cursor]
            chain.append(release)
            parent = release.get("parent")
            cursor = parent if isinstance(parent, int) else None
        return chain

    def describe(self, version: int | None = None) -> dict[str, Any]:
        """A JSON-ready description of ``version`` (default: the current release); no bytes."""
        if version is None:
            current = self.current()
            if current is None:
                raise ArtifactError(f"model {self.model!r} has no current release")
            version = int(current["version"])
        release = self.get(version)
        header = _header_fields(release)
        artifact = release.get("artifact")
        metrics = dict(release.get("metrics") or {})
        current = self.current()
        return {
            "model": release.get("model"),
            "version": version,
            "parent": release.get("parent"),
            "created_at": release.get("created_at"),
            "reason": release.get("reason"),
            "decision": release.get("decision") or "",
            "current": current is not None and current.get("version") == version,
            "format": release.get("format"),
            "sha256": release.get("sha256"),
            "size_bytes": len(artifact) if artifact is not None else None,
            "artifact_ref": release.get("artifact_ref"),
            "n_learned": int(header.get("n_learned") or metrics.get("n_learned") or 0),
            "data_range": header.get("data_range", {}),
            "libraries": header.get("libraries", {}),
            "metrics": metrics,
            "lineage": [r["version"] for r in self.lineage(version)],
        }


def _header_fields(release: Mapping[str, Any]) -> dict[str, Any]:
    # Description only: the header is shown as sent; trust comes from verify_release, not from here.
    try:
        data = json.loads(release.get("header") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
