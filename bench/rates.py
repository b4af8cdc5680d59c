"""Pure reductions of the bench's timestamps: how fast a phase ran, how steadily, and whether the worker kept up.

A score phase of a second or two read the maximum rate in whatever moment the shared machine happened to give it
(session 33: 29,196/s from 0.69 s in a quiet moment, and the latency phase at half that overloaded the worker).
These functions turn the phase's Prediction timestamps into windows whose median is the rate, with its spread;
and the latency phase's send and Prediction times into what makes its p99 judgeable (the per-second p99s, and a
flag when the predictions came out slower than the events went in). No broker here: the tests feed synthetic
timestamps.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from driftline.util import percentile

#: The score phase's windows (seconds of Prediction timestamps each).
WINDOW_S = 0.5
#: The fewest full windows whose median is taken as the rate; with fewer the phase's own rate stands.
MIN_WINDOWS = 3
#: Out rate below this fraction of the in rate: the worker fell behind (or the bench's producer did).
KEPT_UP_FRACTION = 0.95


def window_rates(stamps_ms: Sequence[float], window_s: float = WINDOW_S) -> list[float]:
    """Events per second in each full ``window_s`` window from the first timestamp (the trailing partial one
    dropped: its length is not a window's).

    >>> window_rates([0, 100, 200, 600, 700, 1100], 0.5)
    [6.0, 4.0]
    """
    if not stamps_ms:
        return []
    t0 = min(stamps_ms)
    last = max(stamps_ms)
    width = window_s * 1000.0
    full = int((last - t0) // width)
    counts = [0] * full
    for t in stamps_ms:
        k = int((t - t0) // width)
        if k < full:
            counts[k] += 1
    return [c / window_s for c in counts]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """Median, min, max and (max - min) / median of ``values`` (None for each when there are none)."""
    if not values:
        return {"median": None, "min": None, "max": None, "spread": None}
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {"median": med, "min": lo, "max": hi, "spread": (hi - lo) / med if med else None}


def score_rate(stamps_ms: Sequence[float], window_s: float = WINDOW_S) -> dict[str, Any]:
    """The score phase's rate from its Prediction timestamps: the median of its windows' rates and their spread.

    ``score_rate_eps`` is what the latency phase takes half of: the windows' median when the phase held at least
    ``MIN_WINDOWS`` full windows, else the phase's rate first to last (too short to be windowed).
    """
    rates = window_rates(stamps_ms, window_s)
    s = spread(rates)
    span_s = (max(stamps_ms) - min(stamps_ms)) / 1000.0 if stamps_ms else 0.0
    whole = (len(stamps_ms) - 1) / span_s if span_s > 0 else 0.0
    windowed = len(rates) >= MIN_WINDOWS and s["median"] is not None
    return {
        "score_window_s": window_s,
        "score_window_eps": [round(r, 1) for r in rates],
        "score_window_eps_median": s["median"],
        "score_window_eps_min": s["min"],
        "score_window_eps_max": s["max"],
        "score_window_spread": s["spread"],
        "score_rate_eps": s["median"] if windowed else whole,
        "score_rate_basis": "window_median" if windowed else "phase",
    }


def per_second(sent_ms: Sequence[float], latency_ms: Sequence[float], q: float = 99.0) -> list[float]:
    """The ``q`` percentile of the latencies of the events sent in each second of the phase (from the first send).

    A last second holding under half the median second's events is dropped: the bench's producer ran a little
    behind its schedule and spilled a few events past the phase's last whole second, and a p99 of a handful of
    events is not a second's.

    >>> per_second([0, 10, 1000, 1500], [5.0, 7.0, 30.0, 2.0], 100)
    [7.0, 30.0]
    """
    if not sent_ms:
        return []
    t0 = min(sent_ms)
    by_second: dict[int, list[float]] = {}
    for t, lat in zip(sent_ms, latency_ms, strict=True):
        by_second.setdefault(int((t - t0) // 1000), []).append(lat)
    seconds = [v for _, v in sorted(by_second.items())]
    if len(seconds) > 1 and len(seconds[-1]) < statistics.median(len(v) for v in seconds[:-1]) / 2:
        seconds.pop()
    return [percentile(v, q, 0.0) or 0.0 for v in seconds]


def kept_up(
    sent_ms: Sequence[float], done_ms: Sequence[float], fraction: float = KEPT_UP_FRACTION
) -> dict[str, Any]:
    """Whether the worker kept up with the phase: its predictions' rate over the phase against the events'.

    In = events over first send to last send; out = events over first send to the last Prediction. A worker that
    keeps up finishes within its latency of the last send (ratio ~1, whatever stalls it caught up from); one that
    cannot keep up ends the phase with a backlog it drains afterwards (session 33: p50 1.4 s at 14,598/s). The
    flag ``latency_fell_behind`` is the ratio below ``fraction``; ``latency_drain_ms`` is the backlog's tail.
    """
    if len(sent_ms) < 2 or not done_ms:
        return {"latency_out_vs_in": None, "latency_drain_ms": None, "latency_fell_behind": None}
    first, last_sent, last_done = min(sent_ms), max(sent_ms), max(done_ms)
    in_span, out_span = last_sent - first, max(last_done, last_sent) - first
    ratio = in_span / out_span if out_span > 0 else 1.0
    return {
        "latency_out_vs_in": ratio,
        "latency_drain_ms": max(0.0, last_done - last_sent),
        "latency_fell_behind": ratio < fraction,
    }


def latency_phase(
    sent_ms: Sequence[float], done_ms: Sequence[float], rate: float, achieved: float
) -> dict[str, Any]:
    """What makes a latency phase's p99 judgeable, next to it: the per-second p99s (their median and max) and
    whether the worker, or the bench's own producer, fell behind the phase's rate."""
    lat = [max(0.0, d - s) for s, d in zip(sent_ms, done_ms, strict=True)]
    p99s = per_second(sent_ms, lat, 99.0)
    s = spread(p99s)
    return {
        "latency_p99_by_second_ms": [round(v, 1) for v in p99s],
        "latency_p99_s_median_ms": s["median"],
        "latency_p99_s_max_ms": s["max"],
        **kept_up(sent_ms, done_ms),
        # The bench's producer could not send at the asked rate (its events then came later, not the worker's).
        "latency_send_behind": achieved < KEPT_UP_FRACTION * rate,
    }
