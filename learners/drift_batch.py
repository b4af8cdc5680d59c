"""Vectorised feeding of a batch of events to the per-feature Page-Hinkley detectors (``FeatureDriftMonitor``).
Another feature detector (``drift.feature_detector``) takes the per-value path of its :class:`ScaledDetector`.

The per-event path costs a River ``PageHinkley.update`` per numeric feature and event. Here each feature is a
column of the batch and River's recurrence is evaluated with numpy across the whole column:

- the running mean of the z-scores by a cumulative sum: ``mean_t = m0 + cumsum(z - m0) / n_t``;
- the two sums ``s_t = alpha * s_{t-1} + dev_t -/+ delta`` in closed form, ``s_t = alpha^t (s_0 + sum_j alpha^-j u_j)``
  (blocks are at most :data:`BLOCK` events long, so ``alpha^-j`` stays close to 1 and the sum loses nothing);
- the running min / max by ``np.minimum.accumulate`` / ``np.maximum.accumulate``; the first alarm by ``argmax``.

The state is written back into the same River objects the per-event path uses, so the two paths can be mixed and
the monitor pickles as before. What the closed form cannot reproduce is left to the scalar path: the warm-up (its
mean and standard deviation are reported in the alarm details), the event that raises an alarm (River and
``ScaledDetector`` reset there) and the short tails of a column. The sums differ from River's sequential ones
only by float rounding (about 1e-12 relative), which moves an alarm only if a statistic lands that close to the
threshold.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from river.drift import PageHinkley

from learners.detectors import ScaledDetector
from learners.features import finite

#: Longest run of events evaluated in one closed form (alpha^-BLOCK must stay near 1 for any sensible alpha).
BLOCK = 1024
#: Below this many values left in a column the scalar path is cheaper than a round of numpy calls.
MIN_RUN = 8

#: One detector alarm: position in the batch, feature name, alarm details.
Alarm = tuple[int, str, dict[str, str]]

_FLOAT = {float}


def new_features(known: Mapping[str, Any], xs: Sequence[Mapping[str, Any]], room: int) -> list[str]:
    """Names the per-event path would register over ``xs``, in its order: first finite value, by event then key.

    Registration depends on no detector, so it can be settled before any value is fed. Only names not yet
    ``known`` are scanned (a string feature, never registered, costs one pass over its column).
    """
    if room <= 0:
        return []
    unknown = set().union(*xs).difference(known)
    firsts = []
    for name in unknown:
        for i, x in enumerate(xs):
            if finite(x.get(name)):
                firsts.append((i, list(x).index(name), name))
                break
    return [name for _, _, name in sorted(firsts)[:room]]


def feed_batch(detectors: Mapping[str, ScaledDetector], xs: Sequence[Mapping[str, Any]]) -> list[Alarm]:
    """Feed every finite value of ``xs`` (at most :data:`BLOCK` events) to its feature's detector.

    Returns every detector alarm (cool-down not applied), grouped by feature, in event order within a feature.
    Values of features without a detector are ignored: registering new features is the caller's job.
    """
    names = list(detectors)
    if not names or not xs:
        return []
    try:  # one C-level pass when every event has every monitored feature (the common case)
        get = operator.itemgetter(*names)
        rows = list(map(get, xs)) if len(names) > 1 else [(v,) for v in map(get, xs)]
    except KeyError:
        rows = [tuple(x.get(name) for name in names) for x in xs]
    alarms: list[Alarm] = []
    ready: list[tuple[str, ScaledDetector]] = []
    columns: list[tuple[Any, ...]] = []
    for name, col in zip(names, zip(*rows, strict=True), strict=True):
        det = detectors[name]
        if set(map(type, col)) == _FLOAT and math.isfinite(sum(col)):
            # Every event has a finite float (a NaN or an infinity makes the sum non-finite; so does an overflow
            # of huge finite values, which then simply take the per-value path below).
            if _active(det):
                ready.append((name, det))
                columns.append(col)
            else:
                alarms += _feed_column(det, name, col, range(len(col)))
            continue
        positions = [i for i, v in enumerate(col) if finite(v)]
        if positions:
            alarms += _feed_column(det, name, [float(col[i]) for i in positions], positions)
    if ready:
        k = len(xs)
        flat = np.fromiter(itertools.chain.from_iterable(columns), np.float64, count=k * len(columns))
        first = _run([det for _, det in ready], flat.reshape(len(columns), k).T)
        for (name, det), col, t in zip(ready, columns, first.tolist(), strict=True):
            if t >= 0:  # state is at row t - 1: the scalar path takes the alarming row and what follows
                alarms += _feed_column(det, name, col[t:], range(t, len(col)), scalar_first=True)
    return alarms


def _active(det: ScaledDetector) -> bool:
    """A Page-Hinkley past its warm-up that has not just alarmed (River resets on the next update).

    A warm-up on values near the float limit overflows into a NaN mean or std; those detectors stay on the scalar
    path, whose clamp treats NaN differently from ``np.clip``.
    """
    return (
        isinstance(det.detector, PageHinkley)
        and not det.detector.drift_detected
        and math.isfinite(det.mean)
        and math.isfinite(det.std)
    )


def _feed_column(
    det: ScaledDetector,
    name: str,
    values: Sequence[float],
    positions: Sequence[int],
    scalar_first: bool = False,
) -> list[Alarm]:
    """One feature's finite values (and their batch positions): scalar where needed, vectorised where it pays."""
    out: list[Alarm] = []
    p, k = 0, len(values)
    while p < k:
        if scalar_first or not _active(det) or k - p < MIN_RUN:
            scalar_first = False
            details = det.update(values[p])
            if details is not None:
                out.append((positions[p], name, details))
            p += 1
            continue
        t = int(_run([det], np.array(values[p:], dtype=np.float64)[:, None])[0])
        if t < 0:
            break
        p += t
        scalar_first = True  # the row that alarmed: River's own update decides and resets
    return out


_STEPS = np.arange(1, BLOCK + 1, dtype=np.float64)


@functools.lru_cache(maxsize=8)
def _powers(alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``alpha ** -j`` and ``alpha ** j`` for j = 1..BLOCK (the closed form's weights)."""
    return alpha**-_STEPS, alpha**_STEPS


def _read(det: ScaledDetector, ph: Any) -> tuple[float, ...]:
    """A detector's scaling, River state and parameters, in the order ``_run`` unpacks them."""
    return (
        *(det.mean, det.std, ph._x_mean.n, ph._x_mean._mean, ph._sum_increase, ph._sum_decrease),
        *(ph._min_increase, ph._max_decrease, ph.alpha, ph.delta, ph.threshold, ph.min_instances),
        *(ph.mode != "down", ph.mode != "up"),
    )


def _run(dets: list[ScaledDetector], values: np.ndarray) -> np.ndarray:
    """Closed-form Page-Hinkley over ``values`` (events x detectors, raw finite values, every detector active).

    Returns, per detector, the row of its first alarm or -1. A detector without an alarm ends in the state after
    the last row; one with an alarm at row t is left in the state after row t - 1, for the scalar path to go on.
    """
    k, width = values.shape
    phs: list[Any] = [
        d.detector for d in dets
    ]  # River's PageHinkley: its private state is read and written back
    state = np.array([_read(d, ph) for d, ph in zip(dets, phs, strict=True)]).T
    means, stds, n0, m0, s_inc0, s_dec0, min_inc0, max_dec0 = state[:8]
    alpha, delta, threshold, min_instances, up, down = state[8:]
    z = (values - means) / stds
    np.clip(z, -50.0, 50.0, out=z)  # as ScaledDetector.update, elementwise (no NaN here: all finite)

    steps = _STEPS[:k, None]
    n = n0 + steps
    mean = np.cumsum(z - m0, axis=0)
    mean /= n
    mean += m0
    dev = z - mean
    if (alpha == alpha[0]).all():  # one alpha for every feature (always, from one config): cached powers
        grow, shrink = (p[:k, None] for p in _powers(float(alpha[0])))
    else:
        grow, shrink = alpha**-steps, alpha**steps
    s_inc = np.cumsum(grow * (dev - delta), axis=0)
    s_inc += s_inc0
    s_inc *= shrink
    s_dec = np.cumsum(grow * (dev + delta), axis=0)
    s_dec += s_dec0
    s_dec *= shrink
    min_inc = np.minimum.accumulate(s_inc, axis=0)
    np.minimum(min_inc, min_inc0, out=min_inc)
    max_dec = np.maximum.accumulate(s_dec, axis=0)
    np.maximum(max_dec, max_dec0, out=max_dec)
    hit = ((s_inc - min_inc > threshold) & (up > 0)) | ((max_dec - s_dec > threshold) & (down > 0))
    hit &= n >= min_instances
    first = np.where(hit.any(axis=0), hit.argmax(axis=0), -1)

    # State after the last row, or after the row before the first alarm; plain floats, so the monitor pickles
    # exactly as the per-event path leaves it.
    last = np.where(first < 0, k - 1, first - 1)
    at = (np.maximum(last, 0), np.arange(width))
    ends = np.array([n[at], mean[at], s_inc[at], s_dec[at], min_inc[at], max_dec[at]]).T.tolist()
    for ph, row, end in zip(phs, last.tolist(), ends, strict=True):
        if row >= 0:
            (ph._x_mean.n, ph._x_mean._mean, ph._sum_increase, ph._sum_decrease) = end[:4]
            ph._min_increase, ph._max_decrease = end[4:]
    return first
