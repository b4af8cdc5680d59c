"""Tampered, replayed, unsigned and malicious releases are refused, and never unpickled first."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

import pytest
from river import drift, linear_model, preprocessing

from driftline.errors import ArtifactError, SecurityError
from learners import safe_pickle
from learners.artifacts import ArtifactHeader, build_release, load_release, sign, verify_release

KEY = b"test-signing-key"


@pytest.fixture
def release() -> dict[str, Any]:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    model.learn_one({"a": 1.0}, True)
    return build_release(
        model, name="churn", version=5, parent=4, reason="incremental", metrics={"accuracy": 0.8},
        key=KEY, n_learned=10, decision="promoted: non-inferior", created_at=1,
    )  # fmt: skip


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches the unpickler."""

    def boom(*_: Any, **__: Any) -> None:
        raise AssertionError("unpickler reached before verification failed")

    monkeypatch.setattr(safe_pickle.RestrictedUnpickler, "load", boom)
    monkeypatch.setattr(pickle, "loads", boom)


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("where", [0, 7, -1])
def test_flipped_payload_byte_is_refused(release: dict[str, Any], no_unpickling: None, where: int) -> None:
    tampered = dict(release, artifact=_flip(release["artifact"], where))
    with pytest.raises(SecurityError, match="signature mismatch"):
        load_release(tampered, key=KEY)


def test_flipped_header_byte_is_refused(release: dict[str, Any], no_unpickling: None) -> None:
    header = release["header"].replace('"version":5', '"version":6')
    assert header != release["header"]
    with pytest.raises(SecurityError, match="signature mismatch"):
        load_release(dict(release, header=header, version=6), key=KEY)
    raw = release["header"].encode()
    for index in (0, len(raw) // 2, len(raw) - 1):
        with pytest.raises(SecurityError):
            load_release(dict(release, header=_flip(raw, index).decode(errors="replace")), key=KEY)


def test_flipped_signature_is_refused(release: dict[str, Any], no_unpickling: None) -> None:
    sig = release["signature"]
    tampered = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    with pytest.raises(SecurityError, match="signature mismatch"):
        load_release(dict(release, signature=tampered), key=KEY)


def test_wrong_key_is_refused(release: dict[str, Any], no_unpickling: None) -> None:
    with pytest.raises(SecurityError, match="signature mismatch"):
        load_release(release, key=b"another-key")


def test_empty_key_is_refused_for_signing_and_verifying(release: dict[str, Any]) -> None:
    with pytest.raises(SecurityError, match=r"no signing key configured \(set DRIFTLINE_SIGNING_KEY\)"):
        verify_release(release, key=b"")
    with pytest.raises(SecurityError, match="no signing key configured"):
        build_release(
            {}, name="m", version=1, parent=None, reason="initial", metrics={}, key=b"", n_learned=0
        )


def test_missing_signature_or_header_is_unsigned(release: dict[str, Any], no_unpickling: None) -> None:
    for field in ("signature", "header"):
        with pytest.raises(SecurityError, match="unsigned artifact"):
            load_release(dict(release, **{field: None}), key=KEY)


@pytest.mark.parametrize(
    ("field", "value"),
    [("version", 9), ("model", "other"), ("parent", None), ("reason", "manual"), ("decision", "forced"),
     ("sha256", "0" * 64), ("created_at", 2), ("metrics", {"accuracy": 0.99, "n_learned": 10.0})],
)  # fmt: skip
def test_record_fields_must_match_the_signed_header(
    release: dict[str, Any], no_unpickling: None, field: str, value: Any
) -> None:
    with pytest.raises(SecurityError, match=f"field '{field}'"):
        load_release(dict(release, **{field: value}), key=KEY)


def test_replayed_older_version_is_refused(release: dict[str, Any], no_unpickling: None) -> None:
    with pytest.raises(SecurityError, match="version 5 is not newer than 7"):
        load_release(release, key=KEY, current_version=7)
    with pytest.raises(SecurityError, match="version 5 is not newer than 5"):
        verify_release(release, key=KEY, current_version=5)
    assert verify_release(release, key=KEY, current_version=4).version == 5


def test_release_without_payload_is_refused(release: dict[str, Any]) -> None:
    with pytest.raises(SecurityError, match="neither artifact nor artifact_ref"):
        verify_release(dict(release, artifact=None), key=KEY)


def _forge(raw_pickle: bytes, key: bytes | None) -> dict[str, Any]:
    """A release around an arbitrary pickle, signed with ``key`` (an insider) or not at all."""
    payload = zlib.compress(raw_pickle)
    header = ArtifactHeader(
        model="churn", version=9, parent=None, created_at=1, reason="manual",
        sha256=hashlib.sha256(payload).hexdigest(), format=safe_pickle.FORMAT,
    )  # fmt: skip
    text = header.to_json()
    return {
        **{f.name: getattr(header, f.name) for f in dataclasses.fields(header) if f.name != "libraries"},
        "metrics": {}, "artifact": payload, "artifact_ref": None, "header": text if key else None,
        "signature": sign(text, payload, key) if key else None,
    }  # fmt: skip


def _malicious_pickles(marker: Path) -> dict[str, bytes]:
    cmd = f"touch {marker}"
    return {
        # Classic protocol-0 GLOBAL + REDUCE payloads.
        "os": f"cos\nsystem\n(V{cmd}\ntR.".encode(),
        "subprocess": f"csubprocess\ncall\n((V/bin/sh\nV-c\nV{cmd}\nltR.".encode(),
        "eval": f"cbuiltins\neval\n(V__import__('os').system({cmd!r})\ntR.".encode(),
        "exec": f"cbuiltins\nexec\n(V__import__('os').system({cmd!r})\ntR.".encode(),
        "import": b"cbuiltins\n__import__\n(Vos\ntR.",
        "open": f"cbuiltins\nopen\n(V{marker}\nVw\ntR.".encode(),
        # Re-export through an allowed module: learners.artifacts imports os.
        "reexport": _stack_global("learners.artifacts", "os.system", cmd),
        # numpy's test helper that exec()s a string, and memmap that creates files.
        "numpy_testing": _stack_global("numpy.testing._private.utils", "runstring", "import os"),
        "memmap": _stack_global("numpy", "memmap", str(marker)),
        # getattr is allowed for bound methods only; reaching a dunder is refused.
        "getattr_dunder": b"cbuiltins\ngetattr\n(criver.drift.adwin\nADWIN\n)\x81V__class__\ntR.",
        "getattr_attribute": (
            b"cbuiltins\ngetattr\n(criver.drift.adwin\nADWIN\n)\x81}Vdelta\nF0.5\nsbVdelta\ntR."
        ),
        "getattr_of_builtin": b"cbuiltins\ngetattr\n(cbuiltins\nint\nV__subclasses__\ntR.",
    }


def _stack_global(module: str, name: str, arg: str) -> bytes:
    out = io.BytesIO()
    out.write(b"\x80\x04")
    for text in (module, name):
        data = text.encode()
        out.write(b"\x8c" + bytes([len(data)]) + data)  # SHORT_BINUNICODE
    out.write(b"\x93")  # STACK_GLOBAL
    data = arg.encode()
    out.write(b"\x8c" + bytes([len(data)]) + data + b"\x85R.")  # TUPLE1 REDUCE STOP
    return out.getvalue()


@pytest.mark.parametrize(
    "kind",
    ["os", "subprocess", "eval", "exec", "import", "open", "reexport", "numpy_testing", "memmap",
     "getattr_dunder", "getattr_attribute", "getattr_of_builtin"],
)  # fmt: skip
def test_code_running_pickle_is_refused_even_when_signed(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    raw = _malicious_pickles(marker)[kind]
    with pytest.raises(SecurityError, match="unsigned artifact"):
        load_release(_forge(raw, key=None), key=KEY)
    with pytest.raises(SecurityError, match="signature mismatch"):
        load_release(_forge(raw, key=b"attacker-key"), key=KEY)
    # Defense in depth: an insider with the real key still cannot run code through the allow-list.
    with pytest.raises(SecurityError, match="not allowed"):
        load_release(_forge(raw, key=KEY), key=KEY)
    assert not marker.exists()


class _Call:
    """Pickles as ``f(*args)``: lets a test build a pickle that calls a method it fetched with getattr."""

    def __init__(self, f: Any, args: tuple[Any, ...]) -> None:
        self.f, self.args = f, args

    def __call__(self) -> None:  # pickle requires the reducer's callable to be callable
        raise AssertionError

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.f, self.args)


def test_getattr_cannot_reach_numpy_methods_that_write_files(tmp_path: Path) -> None:
    import numpy as np

    marker = tmp_path / "written"
    raw = pickle.dumps(_Call(_Call(getattr, (np.zeros(3), "tofile")), (str(marker),)), protocol=5)
    pickle.loads(raw)  # the gadget is real: plain pickle writes the file
    assert marker.exists()
    marker.unlink()
    with pytest.raises(SecurityError, match=r"builtins\.getattr is not allowed"):
        load_release(_forge(raw, key=KEY), key=KEY)
    assert not marker.exists()


def test_signed_header_with_wrong_types_is_refused() -> None:
    payload = safe_pickle.dumps(1)
    header = ArtifactHeader(
        model="m", version=1, parent=None, created_at=1, reason="manual",
        sha256=hashlib.sha256(payload).hexdigest(), format=safe_pickle.FORMAT,
    )  # fmt: skip
    text = header.to_json().replace('"version":1', '"version":"1"')
    release = {
        "model": "m",
        "version": "1",
        "artifact": payload,
        "header": text,
        "signature": sign(text, payload, KEY),
    }
    with pytest.raises(SecurityError, match="version and parent must be integers"):
        verify_release(release, key=KEY, current_version=0)


def test_refusal_messages_name_the_global(tmp_path: Path) -> None:
    raw = _malicious_pickles(tmp_path / "x")
    with pytest.raises(SecurityError, match=r"allow-list: os\.system is not allowed"):
        safe_pickle.loads(zlib.compress(raw["os"]))
    with pytest.raises(SecurityError, match=r"allow-list: subprocess\.call is not allowed"):
        safe_pickle.loads(zlib.compress(raw["subprocess"]))
    # A re-export through a listed module is still not the listed name.
    with pytest.raises(SecurityError, match=r"learners\.artifacts\.os\.system is not allowed"):
        safe_pickle.loads(zlib.compress(raw["reexport"]))


def test_the_allow_list_itself_still_accepts_what_models_need() -> None:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    model.learn_one({"a": 1.0}, True)
    restored = safe_pickle.loads(safe_pickle.dumps({"m": model, "n": [1, 2.5, None, "x", b"y"]}))
    assert isinstance(restored, dict) and restored["n"] == [1, 2.5, None, "x", b"y"]
    assert restored["m"].predict_proba_one({"a": 1.0}) == model.predict_proba_one({"a": 1.0})
    # A drift detector is part of no model artifact (only of the trainer's own checkpoint): not listed.
    with pytest.raises(SecurityError, match="PageHinkley is not allowed"):
        safe_pickle.loads(safe_pickle.dumps(drift.PageHinkley()))


def test_corrupt_payload_is_an_artifact_error_not_a_crash() -> None:
    with pytest.raises(ArtifactError, match="not valid zlib"):
        safe_pickle.loads(b"not zlib")
    with pytest.raises(ArtifactError, match="cannot unpickle"):
        safe_pickle.loads(zlib.compress(b"\x80\x05garbage"))
    with pytest.raises(ArtifactError, match="unknown artifact format"):
        safe_pickle.loads(zlib.compress(pickle.dumps(1)), "pickle5+lzma")


def test_malformed_signed_header_is_refused() -> None:
    payload = safe_pickle.dumps(1)
    text = json.dumps({"model": "m"})
    release = {
        "model": "m",
        "version": 1,
        "artifact": payload,
        "header": text,
        "signature": sign(text, payload, KEY),
    }
    with pytest.raises(SecurityError, match="malformed artifact header"):
        verify_release(release, key=KEY)
