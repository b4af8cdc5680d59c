"""The switch for the compiled kernels (:mod:`learners.kernels` for LR, :mod:`learners.nb_kernel` for a tree's
naive Bayes): one place that reads it, so both kernels and their callers agree."""

from __future__ import annotations

import os

# os.environ's own dictionary (bytes keys on POSIX), which every change to os.environ writes through (setenv,
# monkeypatch.setenv, del). Read directly because a learning tree asks at each label, twice (its leaf's mirror,
# then its learn): ``os.environ.get`` of an unset name encodes the key and raises and catches a KeyError, ~0.7 us
# a read, 2.8 us of a tree's label (session 24); a dictionary read is ~0.05 us. Elsewhere, os.environ itself.
_DATA = getattr(os.environ, "_data", None)
_POSIX = os.name == "posix" and isinstance(_DATA, dict)


def jit_enabled() -> bool:
    """On unless ``DRIFTLINE_NO_JIT=1`` (or ``DRIFTLINE_JIT=0``): the pure-Python paths then, with the same
    results. On by default since session 17 (BENCHMARKS.md): with the write-back deferred to the batch's read
    points and the kernel warmed at the train worker's start, ~14 us of ``learn_batch``'s ~51 per LR label in
    process."""
    if _POSIX and _DATA is getattr(os.environ, "_data", None):
        data = _DATA
        assert data is not None
        return data.get(b"DRIFTLINE_NO_JIT", b"") in (b"", b"0") and data.get(b"DRIFTLINE_JIT", b"") != b"0"
    env = os.environ
    return env.get("DRIFTLINE_NO_JIT", "") in ("", "0") and env.get("DRIFTLINE_JIT", "") != "0"
