"""Signed model artifacts: build a ModelRelease record, verify it, load it.

A release carries a canonical JSON *header* (model, version, parent, creation time, reason, format,
sha256 of the payload, library versions, lineage figures, metrics and the guard's decision) and a
*payload* (:func:`learners.safe_pickle.dumps` bytes), inline or by reference to an
:class:`ArtifactStore`. The signature is ``HMAC-SHA256(key, header_json + b"\\n" + payload)`` in hex;
the key comes from settings and is never stored with the artifact.

Verification never unpickles: the signature is compared with :func:`hmac.compare_digest` first, then
the payload digest, the record fields against the signed header, and the version against the one
being served (replay protection). Only :func:`load_release` unpickles, after all of that, through the
restricted unpickler.

>>> from river import linear_model
>>> release = build_release(linear_model.LogisticRegression(), name="m", version=1, parent=None,
...                         reason="initial", metrics={}, key=b"k", n_learned=0, created_at=0)
>>> header, model = load_release(release, key=b"k")
>>> header.version, type(model).__name__
(1, 'LogisticRegression')
>>> verify_release(release, key=b"k", current_version=1)
Traceback (most recent call last):
...
driftline.errors.SecurityError: model 'm': version 1 is not newer than 1
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import os
import platform
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from driftline.audit_chain import canonical_text
from driftline.errors import ArtifactError, ArtifactTooLarge, SecurityError
from driftline.util import json_depth
from learners import safe_pickle

__all__ = [
    "ArtifactHeader",
    "ArtifactStore",
    "build_release",
    "header_metrics",
    "library_versions",
    "load_release",
    "sign",
    "verify_release",
]

_NO_KEY = "no signing key configured (set DRIFTLINE_SIGNING_KEY)"
# A header holds a few scalars, library versions, metrics and a decision string: depth 2, a few KB.
MAX_HEADER_CHARS = 256 * 1024
MAX_HEADER_DEPTH = 4
_REF_SCHEME = "file://"


# Made once (json.dumps with arguments builds an encoder per call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(obj: Any) -> str:
    # Sorted keys and no spaces: the same header always yields the same bytes, so the same signature.
    return _CANONICAL.encode(obj)


@dataclass(frozen=True)
class ArtifactHeader:
    """What the signature vouches for, besides the payload bytes themselves."""

    model: str
    version: int
    parent: int | None
    created_at: int
    reason: str
    sha256: str
    format: str
    libraries: dict[str, str] = field(default_factory=dict)
    n_learned: int = 0
    data_range: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    decision: str = ""

    def to_json(self, metrics_json: str | None = None) -> str:
        """Canonical JSON (sorted keys, no spaces): the exact text that is signed. ``metrics_json``: the canonical
        JSON of :attr:`metrics`, when the caller has it (see :func:`build_release`)."""
        # The fields as they are, not dataclasses.asdict: its recursive deep copy of the dicts was a fifth of
        # build_release for a logistic regression, and json.dumps reads the same values either way.
        fields = {name: getattr(self, name) for name in _HEADER_FIELDS}
        if metrics_json is None:
            return _canonical(fields)
        return canonical_text(fields, {"metrics": metrics_json})

    @classmethod
    def from_json(cls, text: str) -> ArtifactHeader:
        """Parse a header; raises :class:`SecurityError` if it is malformed, too large or nested too deep
        (checked before parsing: the parser recurses once per level)."""
        if not isinstance(text, str) or len(text) > MAX_HEADER_CHARS:
            raise SecurityError(f"malformed artifact header: over {MAX_HEADER_CHARS} characters")
        if json_depth(text, MAX_HEADER_DEPTH) > MAX_HEADER_DEPTH:
            raise SecurityError(
                f"malformed artifact header: JSON nested deeper than {MAX_HEADER_DEPTH} levels"
            )
        try:
            data = json.loads(text)
            names = {f.name for f in dataclasses.fields(cls)}
            if not isinstance(data, dict) or not {"model", "version", "sha256", "format"} <= data.keys():
                raise ValueError("missing model, version, sha256 or format")
            header = cls(**{k: v for k, v in data.items() if k in names})
            _check_types(header)
            return header
        except (ValueError, TypeError) as exc:
            raise SecurityError(f"malformed artifact header: {exc}") from exc


_HEADER_FIELDS = tuple(f.name for f in dataclasses.fields(ArtifactHeader))


def _check_types(header: ArtifactHeader) -> None:
    def integer(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not isinstance(header.model, str) or not header.model:
        raise ValueError(f"model must be a non-empty string, got {header.model!r}")
    if not integer(header.version) or not (header.parent is None or integer(header.parent)):
        raise ValueError(f"version and parent must be integers, got {header.version!r}, {header.parent!r}")
    if not isinstance(header.sha256, str) or not isinstance(header.format, str):
        raise ValueError("sha256 and format must be strings")


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose classes a payload may contain (a copy: callers may change it)."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> dict[str, str]:
    # Read once per process: importlib.metadata parses each package's METADATA file on every call, which was
    # 8.6 % of a trainer's time at one release per ~100 labels (py-spy on the trainer group, 60,000 LR labels).
    found = {"python": platform.python_version()}
    for dist, label in (("river", "river"), ("scikit-learn", "sklearn"), ("numpy", "numpy")):
        try:
            found[label] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[label] = "absent"
    return found


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or not key:
        raise SecurityError(_NO_KEY)


def sign(header_json: str, payload: bytes, key: bytes) -> str:
    """HMAC-SHA256 over ``header_json`` (UTF-8), a newline and ``payload``, as lowercase hex."""
    _check_key(key)
    return hmac.new(bytes(key), header_json.encode() + b"\n" + payload, hashlib.sha256).hexdigest()


class ArtifactStore:
    """Content-addressed directory of payloads too large to travel inline.

    A payload is stored as ``<directory>/<sha256>`` and referenced as ``file://<directory>/<sha256>``.
    The directory must be shared by the trainer and the scorers (a volume or network file system).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        # expanduser: the default ``~/.driftline/artifacts`` is the home directory's, not a folder named "~" in
        # each worker's working directory (a trainer and scorers started in different ones would not share it).
        self.directory = Path(directory).expanduser().resolve()

    def __repr__(self) -> str:
        return f"ArtifactStore({str(self.directory)!r})"

    def put(self, payload: bytes) -> str:
        """Store ``payload`` (idempotent) and return its reference."""
        digest = hashlib.sha256(payload).hexdigest()
        target = self.directory / digest
        if not target.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a file under the final name.
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return f"{_REF_SCHEME}{target}"

    def get(self, ref: str, sha256: str) -> bytes:
        """Read the payload ``ref`` points to and check it hashes to ``sha256``.

        Refuses references outside this store, so a forged record cannot make a worker read
        arbitrary files.
        """
        if not ref.startswith(_REF_SCHEME):
            raise SecurityError(f"artifact_ref {ref!r} is not a {_REF_SCHEME} reference")
        path = Path(ref[len(_REF_SCHEME) :]).resolve()
        if path.parent != self.directory or path.name != sha256:
            raise SecurityError(
                f"artifact_ref {ref!r} is not the entry for sha256 {sha256} in {self.directory}"
            )
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"cannot read artifact {ref!r}: {exc}") from exc
        if not hmac.compare_digest(hashlib.sha256(payload).hexdigest(), sha256):
            raise SecurityError(f"sha256 mismatch for artifact {ref!r}")
        return payload


def header_metrics(metrics: Mapping[str, float], n_learned: int) -> dict[str, float]:
    """The metrics a release's header and record carry: ``metrics`` as floats by str keys, and ``n_learned``."""
    out = {str(k): float(v) for k, v in metrics.items()}
    out["n_learned"] = float(n_learned)
    return out


def build_release(
    model: object,
    *,
    name: str,
    version: int,
    parent: int | None,
    reason: str,
    metrics: Mapping[str, float],
    key: bytes,
    n_learned: int,
    data_range: Mapping[str, int] | None = None,
    decision: str = "",
    max_inline_bytes: int = 4_000_000,
    store: ArtifactStore | None = None,
    created_at: int | None = None,
    metrics_json: str | None = None,
    made_metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Serialize and sign ``model`` as a ModelRelease record dict.

    ``metrics`` gets ``n_learned`` added (:func:`header_metrics`). A payload over ``max_inline_bytes`` is put in
    ``store`` and the record carries ``artifact_ref`` instead of ``artifact``. ``metrics_json``: the canonical
    JSON of ``header_metrics(metrics, n_learned)`` (``driftline.audit_chain.canonical_text``), when the caller
    made it for something else too (the trainer's audit entry of the release writes the same metrics), and
    ``made_metrics`` that dict itself (not changed here; the record gets a copy).
    """
    _check_key(key)
    if not name:
        raise ArtifactError("model name is empty")
    if parent is not None and parent >= version:
        raise ArtifactError(f"model {name!r}: parent {parent} must be older than version {version}")
    payload = safe_pickle.dumps(model)
    all_metrics = header_metrics(metrics, n_learned) if made_metrics is None else made_metrics
    header = ArtifactHeader(
        model=name,
        version=int(version),
        parent=None if parent is None else int(parent),
        created_at=int(time.time() * 1000) if created_at is None else int(created_at),
        reason=reason,
        sha256=hashlib.sha256(payload).hexdigest(),
        format=safe_pickle.FORMAT,
        libraries=library_versions(),
        n_learned=int(n_learned),
        data_range={str(k): int(v) for k, v in (data_range or {}).items()},
        metrics=all_metrics,
        decision=decision,
    )
    header_json = header.to_json(metrics_json)
    artifact: bytes | None = payload
    ref: str | None = None
    if len(payload) > max_inline_bytes:
        if store is None:
            raise ArtifactTooLarge(
                f"model {name!r} v{version}: payload of {len(payload)} bytes exceeds max_inline_bytes="
                f"{max_inline_bytes} and no artifact store is configured"
            )
        artifact, ref = None, store.put(payload)
    return {
        "model": header.model,
        "version": header.version,
        "parent": header.parent,
        "created_at": header.created_at,
        "reason": header.reason,
        "metrics": dict(all_metrics),
        "format": header.format,
        "artifact": artifact,
        "artifact_ref": ref,
        "sha256": header.sha256,
        "signature": sign(header_json, payload, key),
        "header": header_json,
        "decision": decision,
    }


def _payload(release: Mapping[str, Any], store: ArtifactStore | None, who: str) -> bytes:
    artifact = release.get("artifact")
    if artifact is not None:
        return bytes(artifact)
    ref = release.get("artifact_ref")
    if not ref:
        raise SecurityError(f"{who}: release carries neither artifact nor artifact_ref")
    if store is None:
        raise ArtifactError(
            f"{who}: artifact travels by reference ({ref}) but no artifact store is configured"
        )
    return store.get(str(ref), str(release.get("sha256") or ""))


# Record fields that must equal the signed header: a record is only as trustworthy as what is signed.
_SIGNED_FIELDS = ("model", "version", "parent", "created_at", "reason", "format", "sha256", "decision")


def _payload_and_header(
    release: Mapping[str, Any], key: bytes, current_version: int | None, store: ArtifactStore | None
) -> tuple[ArtifactHeader, bytes]:
    _check_key(key)
    who = f"model {release.get('model')!r} v{release.get('version')}"
    signature, header_json = release.get("signature"), release.get("header")
    if not signature or not header_json:
        raise SecurityError(f"{who}: unsigned artifact")
    payload = _payload(release, store, who)
    expected = sign(str(header_json), payload, key)
    if not hmac.compare_digest(expected.encode(), str(signature).lower().encode()):
        raise SecurityError(f"{who}: signature mismatch")
    header = ArtifactHeader.from_json(str(header_json))
    if not hmac.compare_digest(hashlib.sha256(payload).hexdigest(), header.sha256):
        raise SecurityError(f"{who}: sha256 mismatch")
    for name in _SIGNED_FIELDS:
        signed, given = getattr(header, name), release.get(name, "" if name == "decision" else None)
        if given != signed:
            raise SecurityError(
                f"{who}: field {name!r} = {given!r} does not match the signed header ({signed!r})"
            )
    if _canonical(release.get("metrics") or {}) != _canonical(header.metrics):
        raise SecurityError(f"{who}: field 'metrics' does not match the signed header")
    if current_version is not None and header.version <= current_version:
        raise SecurityError(
            f"model {header.model!r}: version {header.version} is not newer than {current_version}"
        )
    return header, payload


def verify_release(
    release: Mapping[str, Any],
    *,
    key: bytes,
    current_version: int | None = None,
    store: ArtifactStore | None = None,
) -> ArtifactHeader:
    """Check a release without unpickling it; return its signed header or raise :class:`SecurityError`.

    ``current_version`` is the version being served: anything not newer is refused as a replay.
    """
    return _payload_and_header(release, key, current_version, store)[0]


def load_release(
    release: Mapping[str, Any],
    *,
    key: bytes,
    current_version: int | None = None,
    store: ArtifactStore | None = None,
) -> tuple[ArtifactHeader, object]:
    """Verify a release, then restore its model with the restricted unpickler."""
    header, payload = _payload_and_header(release, key, current_version, store)
    return header, safe_pickle.loads(payload, header.format)
