"""Vectorised feeding of a batch of events to the per-feature Page-Hinkley detectors (``FeatureDriftMonitor``).

The per-event path costs a River ``PageHinkley.update`` per numeric feature and event. Here each feature is a
column of the batch and River's recurrence is evaluated with numpy across the whole column:

- the running mean of the z-scores by a cumulative sum: ``mean_t = m0 + cumsum(z - m0) / n_t``;
- the two sums ``s_t = alpha * s_{t-1} + dev_t -/+ delta`` in closed form, ``s_t = alpha^t (s_0 + sum_j alpha^-j u_j)``
  (blocks are at most :data:`BLOCK` events long, so ``alpha^-j`` stays close to 1 and the sum loses nothing);
- the running min / max by ``np.minimum.accumulate`` / ``np.maximum.accumulate``; the first alarm by ``argmax``.

The state is written back into the same River objects the per-event path uses, so the two paths can be mixed and
the monitor pickles as before. What the closed form cannot reproduce is left to the scalar path: the warm-up (its
mean and standard deviation are reported in the alarm details), the event that raises an alarm (River and
``_ScaledPageHinkley`` reset there) and the short tails of a column. The sums differ from River's sequential ones
only by float rounding (about 1e-12 relative), which moves an alarm only if a statistic lands that close to the
threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from learners.features import finite

if TYPE_CHECKING:
    from learners.drift import _ScaledPageHinkley

#: Longest run of events evaluated in one closed form (alpha^-BLOCK must stay near 1 for any sensible alpha).
BLOCK = 1024
#: Below this many values left in a column the scalar path is cheaper than a round of numpy calls.
MIN_RUN = 8

#: One detector alarm: position in the batch, feature name, alarm details.
Alarm = tuple[int, str, dict[str, str]]


def feed_batch(detectors: Mapping[str, _ScaledPageHinkley], xs: Sequence[Mapping[str, Any]]) -> list[Alarm]:
    """Feed every finite value of ``xs`` (at most :data:`BLOCK` events) to its feature's detector.

    Returns every detector alarm (cool-down not applied), grouped by feature, in event order within a feature.
    Values of features without a detector are ignored: registering new features is the caller's job.
    """
    alarms: list[Alarm] = []
    ready: list[tuple[str, _ScaledPageHinkley]] = []
    columns: list[list[float]] = []
    for name, det in detectors.items():
        col: list[Any] = [x.get(name) for x in xs]
        if all(type(v) is float for v in col) and math.isfinite(sum(col)):
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
        values = np.array(columns, dtype=np.float64).T
        first = _run([det for _, det in ready], values)
        for (name, det), col, t in zip(ready, columns, first.tolist(), strict=True):
            if t >= 0:  # state is at row t - 1: the scalar path takes the alarming row and what follows
                alarms += _feed_column(det, name, col[t:], range(t, len(col)), scalar_first=True)
    return alarms


def _active(det: _ScaledPageHinkley) -> bool:
    """Past its warm-up, with a Page-Hinkley that has not just alarmed (River resets on the next update).

    A warm-up on values near the float limit overflows into a NaN mean or std; those detectors stay on the scalar
    path, whose clamp treats NaN differently from ``np.clip``.
    """
    return (
        det._ph is not None
        and not det._ph.drift_detected
        and math.isfinite(det._mean)
        and math.isfinite(det._std)
    )


def _feed_column(
    det: _ScaledPageHinkley,
    name: str,
    values: list[float],
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


def _run(dets: list[_ScaledPageHinkley], values: np.ndarray) -> np.ndarray:
    """Closed-form Page-Hinkley over ``values`` (events x detectors, raw finite values, every detector active).

    Returns, per detector, the row of its first alarm or -1. A detector without an alarm ends in the state after
    the last row; one with an alarm at row t is left in the state after row t - 1, for the scalar path to go on.
    """
    k = values.shape[0]
    phs: list[Any] = [d._ph for d in dets]  # River's PageHinkley; its private state is read and written back
    means = np.array([d._mean for d in dets])
    stds = np.array([d._std for d in dets])
    z = np.clip((values - means) / stds, -50.0, 50.0)  # as _ScaledPageHinkley.update, elementwise

    n0 = np.array([ph._x_mean.n for ph in phs])
    m0 = np.array([ph._x_mean._mean for ph in phs])
    alpha = np.array([ph.alpha for ph in phs])
    delta = np.array([ph.delta for ph in phs])
    threshold = np.array([ph.threshold for ph in phs])
    min_instances = np.array([ph.min_instances for ph in phs])
    up = np.array([ph.mode in ("up", "both") for ph in phs])
    down = np.array([ph.mode in ("down", "both") for ph in phs])

    steps = np.arange(1, k + 1, dtype=np.float64)[:, None]
    n = n0 + steps
    mean = m0 + np.cumsum(z - m0, axis=0) / n
    dev = z - mean
    grow = alpha**-steps
    shrink = alpha**steps
    s_inc0 = np.array([ph._sum_increase for ph in phs])
    s_dec0 = np.array([ph._sum_decrease for ph in phs])
    s_inc = shrink * (s_inc0 + np.cumsum(grow * (dev - delta), axis=0))
    s_dec = shrink * (s_dec0 + np.cumsum(grow * (dev + delta), axis=0))
    min_inc = np.minimum(np.minimum.accumulate(s_inc, axis=0), [ph._min_increase for ph in phs])
    max_dec = np.maximum(np.maximum.accumulate(s_dec, axis=0), [ph._max_decrease for ph in phs])
    hit = (up & (s_inc - min_inc > threshold)) | (down & (max_dec - s_dec > threshold))
    hit &= n >= min_instances
    first = np.where(hit.any(axis=0), hit.argmax(axis=0), -1)

    for c, ph in enumerate(phs):
        row = k - 1 if first[c] < 0 else int(first[c]) - 1
        if row < 0:
            continue
        # Plain floats: the monitor must pickle exactly as the per-event path leaves it.
        ph._x_mean.n = float(n[row, c])
        ph._x_mean._mean = float(mean[row, c])
        ph._sum_increase = float(s_inc[row, c])
        ph._sum_decrease = float(s_dec[row, c])
        ph._min_increase = float(min_inc[row, c])
        ph._max_decrease = float(max_dec[row, c])
    return first
