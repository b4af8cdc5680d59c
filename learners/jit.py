"""The switch for the compiled kernels (:mod:`learners.kernels` for LR, :mod:`learners.nb_kernel` for a tree's
naive Bayes): one place that reads it, so both kernels and their callers agree."""

from __future__ import annotations

import os


def jit_enabled() -> bool:
    """On unless ``DRIFTLINE_NO_JIT=1`` (or ``DRIFTLINE_JIT=0``): the pure-Python paths then, with the same
    results. On by default since session 17 (BENCHMARKS.md): with the write-back deferred to the batch's read
    points and the kernel warmed at the train worker's start, ~14 us of ``learn_batch``'s ~51 per LR label in
    process."""
    env = os.environ
    return env.get("DRIFTLINE_NO_JIT", "") in ("", "0") and env.get("DRIFTLINE_JIT", "") != "0"
