"""Key rotation: verifiers accept the previous signing key while a rotation is in progress, never an unknown one."""

from __future__ import annotations

import pytest

from driftline.config import LearnerSpec
from driftline.errors import SecurityError
from learners.artifacts import build_release
from learners.specs import build_learner
from streams.releases import load_verified
from streams.train import seal, unseal


def _release(key: bytes, version: int = 2) -> dict:
    model = build_learner(LearnerSpec("gaussian_nb"))
    for x, y in [({"a": 1.0}, True), ({"a": -1.0}, False)] * 5:
        model.learn_one(x, y)
    return build_release(
        model, name="m", version=version, parent=None, reason="initial", metrics={}, key=key, n_learned=10
    )


def test_release_signed_with_previous_key_loads_during_rotation() -> None:
    release = _release(b"old-key")
    model = load_verified(release, b"new-key", b"old-key", None, None)
    assert model.predict_one({"a": 2.0}) is True


def test_release_signed_with_unknown_key_is_refused() -> None:
    release = _release(b"someone-else")
    with pytest.raises(SecurityError, match="signature"):
        load_verified(release, b"new-key", b"old-key", None, None)
    with pytest.raises(SecurityError, match="signature"):
        load_verified(_release(b"old-key"), b"new-key", b"", None, None)


def test_replay_is_refused_whatever_the_key() -> None:
    with pytest.raises(SecurityError, match="not newer"):
        load_verified(_release(b"old-key", version=2), b"new-key", b"old-key", 5, None)


def test_trainer_state_accepts_the_previous_key_and_is_sealed_with_the_new() -> None:
    sealed_old = seal({"n": 1}, b"old-key")
    assert unseal(sealed_old, [b"new-key", b"old-key"], "changelog") == {"n": 1}
    sealed_new = seal({"n": 2}, b"new-key")
    assert unseal(sealed_new, [b"new-key", b""], "changelog") == {"n": 2}
    with pytest.raises(SecurityError, match="changelog: signature mismatch"):
        unseal(sealed_new, [b"old-key", b""], "changelog")
    with pytest.raises(SecurityError):  # a forged record: someone without the key pickled a state
        unseal(b"0" * 64 + b"\n" + sealed_new.partition(b"\n")[2], [b"new-key"], "changelog")
