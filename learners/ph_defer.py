"""A scaled Page-Hinkley's updates held back over runs of values that cannot raise an alarm, then applied in one
compiled pass (the loss detectors of :meth:`learners.lifecycle.ModelLifecycle.learn_batch`; issue 16).

The trainer feeds two loss detectors per label (the served snapshot's and the reference snapshot's), each a
:class:`~learners.detectors.ScaledDetector` over River's ``PageHinkley``: three Python frames and ~20 attribute
reads and writes a value. Their state matters only when it is read (a copy, a pickle, the batch's end) and at a
value that raises an alarm. So a detector in a batch opens a *window* (:func:`open_window`): a cap ``V`` on the raw
value such that :data:`WINDOW` values all ``<= V`` provably cannot take the statistic over half the threshold;
each such value is only appended to a list, and the list is applied (:func:`apply`) when it is full, before a
value over ``V`` (which takes the per-value path: it may alarm), and before any read. The applied state is River's
to the bit: the same statements in the same order (:func:`_run_py`, compiled by numba when the kernels are on).

Why the cap is sound (``mode="up"``, ``0 < alpha <= 1``; other detectors are never held back). With ``g = s - m``
(River's ``_sum_increase`` less ``_min_increase``; the alarm is ``g > threshold``), one update gives
``g' = max(g + (alpha - 1) s + dev - delta, 0)``. Over a window of ``K`` values, from ``n0`` values of mean ``m0``:

- every running mean stays ``>= L = m0 - K (50 + m0) / (n0 + K)`` (the values are clipped to [-50, 50]), so
  ``dev = (z - mean_prev)(1 - 1/n) <= max(z - L, 0)``;
- ``|dev| <= 100``, so ``-s`` grows by at most ``100 + |delta|`` a value: ``(alpha - 1) s <= (1 - alpha) S`` with
  ``S = max(-s0, 0) + K (101 + |delta|)``;
- hence every value with ``z <= zcap`` adds at most ``zcap - L + (1 - alpha) S - delta`` to ``g``, and ``zcap`` is
  chosen so that ``K`` of them add ``threshold / 2 - g0``. Half the threshold is the margin for float rounding
  (relative 1e-16 on numbers of a few hundred). :func:`apply` checks it: an alarm inside a window raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from river import stats
from river.drift import PageHinkley

from learners.jit import jit_enabled

#: Values a window holds before they are applied (the cap falls as 1/K; the compiled pass costs ~2 us a call).
WINDOW = 16

_Run = Callable[..., tuple[float, float, float, float, float, float, bool, bool, int]]
_compiled: _Run | None = None
_tried = False


def _run_py(
    values: Any,
    wmean: float,
    wstd: float,
    n: float,
    mean: float,
    s_inc: float,
    s_dec: float,
    min_inc: float,
    max_dec: float,
    alpha: float,
    delta: float,
    threshold: float,
    min_instances: float,
) -> tuple[float, float, float, float, float, float, bool, bool, int]:
    """``ScaledDetector.update``'s scaling and ``page_hinkley_update``'s statements (mode up) over ``values``:
    the new ``(n, mean, s_inc, s_dec, min_inc, max_dec)``, whether ``min_inc`` / ``max_dec`` were assigned (River
    leaves an unassigned ``_max_decrease`` as the int -1), and the position of the first alarm or -1 (River
    assigns ``_drift_detected`` from ``min_instances`` values on: False, as it already is, unless that alarm)."""
    moved_min = moved_max = False
    first = -1
    for k in range(len(values)):
        z = (values[k] - wmean) / wstd
        # max(-50.0, min(50.0, z)), as Python evaluates it
        if not z < 50.0:
            z = 50.0
        if not z > -50.0:
            z = -50.0
        n += 1.0
        mean += (1.0 / n) * (z - mean)
        dev = z - mean
        s_inc = alpha * s_inc + dev - delta
        s_dec = alpha * s_dec + dev + delta
        if s_inc < min_inc:
            min_inc = s_inc
            moved_min = True
        if s_dec > max_dec:
            max_dec = s_dec
            moved_max = True
        if first < 0 and n >= min_instances and s_inc - min_inc > threshold:
            first = k
    return n, mean, s_inc, s_dec, min_inc, max_dec, moved_min, moved_max, first


def run() -> _Run:
    """The compiled pass, or :func:`_run_py` (``DRIFTLINE_NO_JIT=1``, no numba, or numba failing): same results."""
    global _compiled, _tried
    if not jit_enabled():
        return _run_py
    if not _tried:
        _tried = True
        try:
            import numba

            for cache in (True, False):  # as learners.kernels: a read-only install compiles per process
                try:
                    _compiled = numba.njit(cache=cache, nogil=True)(_run_py)
                    _compiled(*_WARM)
                    break
                except Exception:
                    _compiled = None
        except ImportError:
            _compiled = None
    return _compiled or _run_py


def warm() -> float:
    """Load (or compile) the pass now; its CPU seconds. A train worker calls it at its start
    (``learners.kernels.warm_for``) so that no label pays numba's load."""
    import time

    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def open_window(det: Any) -> None:
    """Let ``det`` (a :class:`~learners.detectors.ScaledDetector`) hold values back: sets its ``_pend`` (an empty
    list) and ``_cap`` (the raw cap ``V``) when its detector qualifies and the cap is finite, else removes both (the
    per-value path then). What it holds is applied first (a value the monitor dropped, NaN, left it open)."""
    if det._pend:
        apply(det)
    ph = det.detector
    cap = _cap(det, ph) if type(ph) is PageHinkley else -math.inf
    if cap > -math.inf:
        det._pend = []
        det._cap = cap
    else:
        close(det)


def _cap(det: Any, ph: Any) -> float:
    mean = ph._x_mean
    if ph.mode != "up" or ph._drift_detected or type(mean) is not stats.Mean:
        return -math.inf
    alpha, delta, threshold = float(ph.alpha), float(ph.delta), float(ph.threshold)
    n0, m0, s0, g0 = (
        float(mean.n),
        float(mean._mean),
        float(ph._sum_increase),
        ph._sum_increase - ph._min_increase,
    )
    k = WINDOW
    if not (0.0 < alpha <= 1.0) or not all(map(math.isfinite, (delta, threshold, n0, m0, s0, g0, det.mean))):
        return -math.inf
    if not det.std > 0.0 or not math.isfinite(det.std):
        return -math.inf
    low = m0 - k * max(50.0 + m0, 0.0) / (n0 + k)
    per_value = (1.0 - alpha) * (max(-s0, 0.0) + k * (101.0 + abs(delta))) - delta
    room = (threshold / 2.0 - g0) / k
    if not room > per_value:
        return -math.inf
    zcap = low + room - per_value
    if not zcap >= -50.0:
        return -math.inf
    cap = det.mean + zcap * det.std
    return cap if math.isfinite(cap) else -math.inf


def apply(det: Any) -> None:
    """Apply ``det``'s held values (oldest first), as ``ScaledDetector.update`` would have one by one, and empty
    the list; the window is spent (its cap was for the state it opened on): :func:`open_window` or :func:`close`
    next. Raises ``AssertionError`` if one of them alarms (the cap's bound failed: never expected)."""
    pend = det._pend
    if not pend:
        return
    ph = det.detector
    mean = ph._x_mean
    fn = run()
    n, m, s_inc, s_dec, min_inc, max_dec, moved_min, moved_max, first = fn(
        pend if fn is _run_py else _array(pend),  # (Python floats in, Python floats out)
        det.mean,
        det.std,
        float(mean.n),
        mean._mean,
        ph._sum_increase,
        ph._sum_decrease,
        float(ph._min_increase),
        float(ph._max_decrease),
        float(ph.alpha),
        float(ph.delta),
        float(ph.threshold),
        float(ph.min_instances),
    )
    if first >= 0:
        raise AssertionError(
            f"a held-back loss value alarmed (value {first} of {len(pend)}): the window's cap"
        )
    mean.n, mean._mean, ph._sum_increase, ph._sum_decrease = n, m, s_inc, s_dec
    if moved_min:
        ph._min_increase = min_inc
    if moved_max:
        ph._max_decrease = max_dec
    if det.recent is not None:
        det.recent.extend(pend)
    pend.clear()


def close(det: Any) -> None:
    """Apply what ``det`` holds and stop holding values back (its attributes as if it never had: the same pickle)."""
    if "_pend" in det.__dict__:
        apply(det)
        del det._pend, det._cap


def _array(values: list[float]) -> Any:
    import numpy as np

    return np.array(values, dtype=np.float64)


_WARM = (
    _array([0.5, 1.5]),
    *(0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0),
    *(0.9999, 0.05, 100.0, 100.0),
)
