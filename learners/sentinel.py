"""A frozen snapshot of the champion as a drift sentinel: for drifts the learning model's own error never shows.

Why: when a drift changes only a few percent of the labels (SEA's threshold moves: 5-9 %), a model that keeps
learning adapts within a few hundred labels and no detector on its error sees a shift that lasts (the suite:
sea-abrupt 0/4 with ADWIN). A *frozen* copy does not adapt: its error rises and stays up, which a sequential test
finds (BENCHMARKS-accuracy.md, "A detector measured and not yet wired in", session 7; session 8 wires it in).

Schedule (``DriftConfig.sentinel_*``): a copy of the champion is frozen after ``sentinel_first`` labels, then after
twice as many, and so on while that is under half of ``sentinel_every``, then every ``sentinel_every`` labels; the
previous copy keeps watching until the new one has seen ``sentinel_overlap`` labels (its own test warms up
meanwhile). Copies frozen more than ``sentinel_overlap`` labels apart overlap two at a time; the early ones of a
young lineage (``EARLY_FIRST``: 250, 500, 1,000, 2,000 labels by default, closer than the overlap) watch up to four
at once. Each copy's 0/1 error feeds a Bernoulli CUSUM (Page's test;
Page-Hinkley is its running-mean form): the baseline error ``p0`` is an upper bound (one standard error up) of the
copy's own error over its first ``sentinel_warmup`` labels, the alternative ``p0 + sentinel_margin``, and the alarm
when the log-likelihood ratio's CUSUM passes ``sentinel_threshold`` (log 1000: measured 0.13 false alarms per
10,000 stationary labels with p0 the point estimate, session 8; fewer with the bound). Any error alarm (this one
or another detector's) replaces every copy with a fresh one: the drift is known, and an old copy would keep
alarming on it. A promoted challenger (a new lineage served) drops every copy and restarts the schedule.

A baseline is only a baseline if the copy's error was stationary while it was measured: a copy frozen while a
gradual drift is still mixing (an alarm at its start freezes one) errs more and more, its ``p0`` is an average
of a rising error, and the rest of the drift then passes the CUSUM's threshold thousands of labels later, outside
any detection window (hyperplane-gradual: 1.25 false alarms per 10,000, BENCHMARKS-accuracy.md session 9). So at
the end of its warm-up a copy whose error in the second half is higher than in the first by more than
``WARMUP_TREND_Z`` standard errors is replaced by a fresh copy of the champion, which warms up again.

Regression (``drift.sentinel_regression``, session 39): an absolute error has no Bernoulli baseline of its own, and a
CUSUM on the standardised error either missed drifts or false-alarmed (heavy tails, a scale that moves with the
target's variance; BENCHMARKS-accuracy.md, session 8). So a regression copy's "error" is whether its absolute error
exceeds ``q``, the ``EXCEEDANCE_LEVEL`` (0.75) quantile of its own absolute errors over the first half of its
warm-up (:class:`ExceedanceCusum`): under stationarity that indicator is Bernoulli (~0.25) whatever the errors'
distribution or scale, as in a sign test, and a drift that changes the target function lifts the frozen copy's
errors and the rate with them. ``p0`` is the rate over the second half of the warm-up (out of the sample that chose
``q``), bounded as above; margin, threshold, schedule and trend check are the classification ones. After an alarm
the copy that replaces the old ones is frozen once the champion has learned ``RESTART_DELAY`` more labels (at the
alarm it still holds the old concept, and a recurring drift's return would make that copy err less, not more) and
warms up over ``RESTART_WARMUP`` labels (an early copy's warm-up and bound), so a second drift soon after the first
is watched (bench.unseen's friedman-gra: drifts 800 labels apart), and another copy with the full warm-up is frozen
``sentinel_first`` labels after the alarm. Measured in BENCHMARKS-accuracy.md, session 39. The copies answer once
per label each (one to four at a time, as above).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

from driftline.config import DriftConfig, check_sentinel_config
from learners.drift import DriftSignal

__all__ = ["BernoulliCusum", "ExceedanceCusum", "SnapshotSentinel", "check_sentinel_config"]

# Standard errors by which a copy's error in the second half of its warm-up may exceed the first half's before the
# copy is deemed frozen mid-drift and replaced (a one-sided two-proportion z-test; 3: about 1 stationary copy in 700
# is replaced needlessly, which only delays its test by one warm-up). Chosen a priori, not tuned; measured on the
# suite's seeds 1 and 2 (BENCHMARKS-accuracy.md, session 9).
WARMUP_TREND_Z = 3.0
# p0 is the warm-up's error rate plus this many of its standard errors: the test's baseline is an upper bound of the
# copy's error, not its point estimate. Why: with p0 read 1 SE low (0.012 at 0.19 over 1,000 labels) a quarter of
# the 0.05 margin is gone and the CUSUM's false-alarm rate multiplies. On the unseen streams at seed 7, 5 of the 6
# false alarms of copies went with 1 SE (sine-gradual's stayed), randomtree-abrupt's two at seed 100 too, each
# drift still alarmed (BENCHMARKS-accuracy.md, session 11).
P0_UPPER_Z = 1.0
# The first copy of a new lineage is frozen after this many labels (doubling from there as from
# ``sentinel_first``), and a copy frozen before ``sentinel_first`` warms up over as many labels as its lineage had
# learned (250, 500; from ``sentinel_first`` on, ``sentinel_warmup`` as before); None: the first copy at
# ``sentinel_first``. Why: with the first copy at 1,000 labels and a 1,000-label warm-up no copy tests anything
# before label 2,000 of a lineage, so on a 2,000-event stream (and for 2,000 labels after each challenger
# promotion) only ADWIN on the learning model's error watches, and it misses the drifts a learning model adapts to:
# bench.unseen --n 2000 sea-abrupt (seeds 0 and 5), sea-0-3 (0, 5), randomtree-abrupt (0, 5) and rbf-abrupt (5)
# unalarmed on main; the early copies alarm on all of them but sea-abrupt at seed 5. A frozen copy's error is
# stationary however young the copy, so a short warm-up costs only a noisier p0: bounded at ``EARLY_P0_Z``
# standard errors (at 1, sine-gradual at --n 10000 seed 3 raised a false alarm from the copy at 500; at 2, none).
# Session 22 (BENCHMARKS-accuracy.md, "unseen short streams").
EARLY_FIRST: int | None = 250
# ``P0_UPPER_Z`` of a copy whose warm-up is shorter than ``sentinel_warmup`` (an early copy's). 1.5 since session 38:
# at 2 the bound lifts a 250-label copy's p0 by ~4 points (SEA at 250 labels errs ~10 %: one standard error is
# ~0.02), about as much as a SEA threshold shift adds to its error, so the CUSUM barely climbs: bench.unseen's
# sea-abrupt at --n 4000 seed 1 (the shift at 1,600, 2,000 events to alarm it) peaked at 6.16 against the threshold
# 6.91 and went unalarmed, the other seven seeds alarmed 474-1,372 labels after it. At 1.5 all eight alarm (427-1,091
# after it) and sine-gradual at --n 10000 seed 3 keeps no false alarm (at 1 its copy at 500 raises one at 2,105).
# Gates in BENCHMARKS-accuracy.md, session 38 (``docs/experiments/det38_trace.py`` traces the misses).
EARLY_P0_Z = 1.5
# Regression (``ExceedanceCusum``): the quantile of a copy's absolute errors its test counts exceedances of. 0.75
# (p0 ~0.25): the CUSUM's alternative p0 + margin is a larger ratio of p0 than at the median, and the quantile is
# read from 500 errors without the extreme tail's noise. Chosen a priori, not tuned (session 39).
EXCEEDANCE_LEVEL = 0.75
# Regression: the warm-up of the copy frozen at an alarm (``restart``), as an early copy's (``EARLY_P0_Z``); None:
# ``sentinel_warmup`` as for classification. Why: with 1,000 labels the copy tested nothing until 1,000 labels after
# the alarm, and bench.unseen's friedman-gra at 2,000 events (drifts at 800 and 1,600) lost its second drift's alarm
# at seeds 1, 6, 7 once the sentinel alarmed the first (session 39). Classification keeps sentinel_warmup (not gated).
RESTART_WARMUP: int | None = 250
# Regression: labels the champion learns after an alarm before the copy that replaces the old ones is frozen (then it
# warms up over ``RESTART_WARMUP``); 0: frozen at the alarm. Why: an alarm comes a few dozen labels after a drift, when
# the champion still holds the old concept; a copy frozen then warms up on the new concept with high errors (a high q),
# and when a recurring drift brings the old concept back that copy errs *less*, so it cannot alarm (bench.unseen's
# friedman-gra-early, drifts 1,000 labels apart; session 39, helper restart39). Classification keeps 0 (not gated).
RESTART_DELAY = 200


class BernoulliCusum:
    """Page's CUSUM of the log-likelihood ratio of ``p1 = p0 + margin`` against ``p0`` on 0/1 errors, ``p0``
    estimated from the first ``warmup`` errors (Laplace-smoothed, so a copy that never errs still has a test, plus
    ``P0_UPPER_Z`` standard errors)."""

    # Class-level defaults: a test pickled before session 9 (a checkpoint) restores without them and skips the
    # trend check of its warm-up.
    first_half: int | None = None  # errors over the first half of the warm-up
    trending: bool = False  # the warm-up's error rose (see ``warmup_trend``): the copy was frozen mid-drift
    rate = (
        math.nan
    )  # the warm-up's (smoothed) error rate, of which p0 is the upper bound (before session 11: p0)

    # Class-level default: a test pickled before session 22 (a checkpoint) bounds p0 with ``P0_UPPER_Z``.
    z = P0_UPPER_Z

    def __init__(self, warmup: int, margin: float, threshold: float, z: float = P0_UPPER_Z) -> None:
        self.warmup = warmup
        self.z = z
        self.margin = margin
        self.threshold = threshold
        self.n = 0
        self.errors = 0
        self.first_half = None
        self.trending = False
        self.p0 = math.nan
        self.s = 0.0
        self.up = 0.0
        self.down = 0.0

    def warmup_trend(self) -> float:
        """The rise of the error from the first to the second half of the warm-up, in standard errors (a
        two-proportion z statistic on the pooled, Laplace-smoothed rate); 0 before the warm-up's end."""
        if self.first_half is None or self.n < self.warmup:
            return 0.0
        h1 = self.warmup // 2
        h2 = self.warmup - h1
        pooled = (self.errors + 1) / (self.warmup + 2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / h1 + 1 / h2))
        return ((self.errors - self.first_half) / h2 - self.first_half / h1) / se

    def update(self, error: bool) -> bool:
        """Feed one error; True when the statistic passes the threshold (the sentinel then replaces the copy, and
        with it this test). At the warm-up's end ``trending`` tells whether the error rose while it was measured."""
        self.n += 1
        if self.n <= self.warmup:
            self.errors += error
            if self.n == self.warmup // 2 and self.warmup >= 2:
                self.first_half = self.errors
            if self.n == self.warmup:
                self.trending = self.warmup_trend() > WARMUP_TREND_Z
                self._arm(self.errors, self.warmup)
            return False
        self.s = max(0.0, self.s + (self.up if error else self.down))
        return self.s > self.threshold

    def _arm(self, errors: int, n: int) -> None:
        """p0 from ``errors`` in ``n`` labels (smoothed, plus ``z`` standard errors), and the CUSUM's steps."""
        self.rate = rate = (errors + 1) / (n + 2)
        self.p0 = min(rate + self.z * math.sqrt(rate * (1 - rate) / n), 0.99)
        p1 = min(self.p0 + self.margin, 0.99)
        if p1 <= self.p0:  # p0 already at the cap: no higher error rate left to test for
            self.up = self.down = 0.0
        else:
            self.up = math.log(p1 / self.p0)
            self.down = math.log((1 - p1) / (1 - self.p0))


class ExceedanceCusum(BernoulliCusum):
    """Regression: :class:`BernoulliCusum` on whether a copy's absolute error exceeds ``q``, the ``level``
    quantile of its absolute errors over the first half of its warm-up (an order statistic). Under stationarity
    the indicator is Bernoulli whatever the error's distribution, tails or scale (as in a sign test); a drift that
    changes the target function lifts a frozen copy's errors and with them the rate. ``p0`` is measured on the
    second half of the warm-up, out of the sample that chose ``q`` (its smoothed rate plus ``z`` standard errors);
    the trend check compares the second half's rate with the first half's (in-sample, ~``1 - level``): the same
    two-proportion z statistic, whose variance under stationarity is the sample quantile's plus the rate's. A
    copy whose answers tie (a constant over discrete labels) exceeds ``q`` less often than ``1 - level``: its p0,
    measured, says so."""

    def __init__(
        self, warmup: int, margin: float, threshold: float, z: float = P0_UPPER_Z, level: float = 0.75
    ) -> None:
        super().__init__(max(warmup, 2), margin, threshold, z)
        self.level = level
        self.q = math.nan
        self.head: list[float] | None = []  # the first half's absolute errors, until q is read from them

    def update(self, error: float) -> bool:
        """Feed one absolute error (``math.inf`` for an answer that is no number)."""
        head = self.head
        if head is None:
            exceeds = error > self.q
            if self.n < self.warmup:  # the second half of the warm-up: p0's sample
                self.n += 1
                self.errors += exceeds
                if self.n == self.warmup:
                    self.trending = self.warmup_trend() > WARMUP_TREND_Z
                    self._arm(self.errors - (self.first_half or 0), self.warmup - self.warmup // 2)
                return False
            self.n += 1
            self.s = max(0.0, self.s + (self.up if exceeds else self.down))
            return self.s > self.threshold
        self.n += 1
        head.append(error)
        if self.n == self.warmup // 2:
            head.sort()
            self.q = q = head[min(int(self.level * len(head)), len(head) - 1)]
            self.first_half = self.errors = sum(1 for v in head if v > q)
            self.head = None
        return False


def _abs_error(pred: Any, y: Any) -> float:
    """A regression copy's absolute error; ``math.inf`` for an answer that is no number (it exceeds any q)."""
    try:
        error = abs(float(pred) - float(y))
    except (TypeError, ValueError):
        return math.inf
    return error if error == error else math.inf  # NaN: no answer either


def _first(config: DriftConfig) -> int:
    """Labels of a new lineage before its first copy (``EARLY_FIRST`` when set and sooner)."""
    return config.sentinel_first if EARLY_FIRST is None else min(EARLY_FIRST, config.sentinel_first)


class _Copy:
    """One frozen copy of the champion and its test."""

    def __init__(
        self, model: Any, label: int, config: DriftConfig, warmup: int | None = None, regression: bool = False
    ) -> None:
        self.model = model
        self.label = label  # sentinel labels seen when it was frozen
        early = warmup is not None and warmup < config.sentinel_warmup
        args = (
            config.sentinel_warmup if warmup is None else warmup,
            config.sentinel_margin,
            config.sentinel_threshold,
            EARLY_P0_Z if early else P0_UPPER_Z,
        )
        self.test = ExceedanceCusum(*args, EXCEEDANCE_LEVEL) if regression else BernoulliCusum(*args)


class SnapshotSentinel:
    """The frozen copies, their schedule and their tests (see the module docstring). Picklable (checkpoints)."""

    # Class-level default: a sentinel pickled before session 10 (a checkpoint) has its schedule from label 0.
    origin = 0  # sentinel label at which the watched lineage was new (0, or its promotion: ``promoted``)
    # Class-level default: a sentinel pickled before session 39 (a checkpoint) watches a classifier.
    regression = False
    # Class-level default (a checkpoint from before it): the sentinel label at which the copy of a regression alarm's
    # restart is due (``RESTART_DELAY``), None when none is.
    pending: int | None = None

    def __init__(self, config: DriftConfig, task: str = "classification") -> None:
        self.config = config
        self.regression = task == "regression"
        self.copies: list[_Copy] = []
        self.seen = 0  # labels the champion learned while the sentinel watched
        self.origin = 0
        self.next_copy = _first(config)
        self.pending = None

    @property
    def models(self) -> list[Any]:
        """The frozen copies now watching (oldest first)."""
        return [c.model for c in self.copies]

    def observe(self, y: Any, predict: Callable[[Any], Any], index: int) -> list[DriftSignal]:
        """Feed every copy its error on this label (``predict(model)`` answers for the example); the alarm, if one
        copy's test passes its threshold. Call before the champion learns the label."""
        alarm: _Copy | None = None
        if self.regression:
            for c in self.copies:
                if cast(ExceedanceCusum, c.test).update(_abs_error(predict(c.model), y)) and alarm is None:
                    alarm = c
        else:
            for c in self.copies:
                if c.test.update(predict(c.model) != y) and alarm is None:
                    alarm = c
        if alarm is None:
            return []
        t = alarm.test
        details = {
            "test": "frozen_snapshot",
            "statistic": "bernoulli_cusum",
            "snapshot_label": str(alarm.label),
            "snapshot_age": str(self.seen - alarm.label),
            "p0": f"{t.p0:.4f}",  # the bound the test uses; p0_rate is the warm-up's error rate
            "p0_rate": f"{t.rate:.4f}",
            "p1": f"{min(t.p0 + t.margin, 0.99):.4f}",
            "cusum": f"{t.s:.3f}",
            "threshold": f"{t.threshold:.3f}",
        }
        if isinstance(t, ExceedanceCusum):  # the "error" is an absolute error over q: p0 is a rate of those
            details["statistic"] = "exceedance_cusum"
            details["quantile"] = f"{t.q:.6g}"
            details["level"] = f"{t.level:g}"
        return [DriftSignal("page_hinkley", "error", index, details)]

    def restart(self, champion: Any) -> None:
        """An error alarm: watch from a fresh copy of the champion only (the old ones have seen the drift). For
        regression that copy is frozen ``RESTART_DELAY`` labels on (no copy watches meanwhile) and warms up over
        ``RESTART_WARMUP`` labels, and the next is frozen ``sentinel_first`` labels on with the full warm-up (the
        short warm-up's p0 is noisier: alone it missed friedman-gra-early's second drift, 2,000 labels after the
        first, at 4,000 events seed 3; session 39)."""
        c = self.config
        warmup = RESTART_WARMUP if self.regression else None
        if self.regression and RESTART_DELAY > 0:
            # The copy once the champion has learned the new concept a while (see RESTART_DELAY).
            self.copies = []
            self.pending = self.seen + RESTART_DELAY
        else:
            self.copies = [_Copy(champion.copy(), self.seen, c, warmup, self.regression)]
        self.next_copy = self.seen + (c.sentinel_first if self.regression and warmup else c.sentinel_every)

    def promoted(self, champion: Any) -> None:
        """A new lineage is served (a challenger promoted): every copy is of the lineage it replaced, and watches
        nothing users are served (an old-concept copy frozen at the drift's alarm, p0 0.55, alarmed 2,585 labels
        after the promotion on agrawal-2-7; BENCHMARKS-accuracy.md, session 10). Watch the new lineage as a new
        model: its schedule from here (the first copy ``sentinel_first`` labels on). No copy at the promotion
        itself: the promoted challenger has learned only a few hundred labels, and a copy of it frozen then raised a
        false alarm 1,900 labels later (led-abrupt seed 1, p0 0.36; session 10)."""
        self.copies = []
        self.pending = None
        self.origin = self.seen
        self.next_copy = self.seen + _first(self.config)

    def learned(self, champion: Any) -> None:
        """The champion learned one label: freeze a copy when one is due, drop a copy the next one has replaced."""
        self.seen += 1
        c = self.config
        trending = False
        for copy in self.copies:  # (a loop, not a generator built per label)
            if copy.test.trending:
                trending = True
                break
        if trending:
            # Frozen mid-drift: its p0 is no baseline. Freeze the champion again, as the newest copy (an older one
            # still watching keeps watching until this one has seen sentinel_overlap labels).
            self.copies = [copy for copy in self.copies if not copy.test.trending]
            self.copies.append(_Copy(champion.copy(), self.seen, c, regression=self.regression))
        if (
            self.pending is not None and self.seen >= self.pending
        ):  # a regression alarm's delayed copy (restart)
            self.pending = None
            self.copies.append(_Copy(champion.copy(), self.seen, c, RESTART_WARMUP, self.regression))
        if self.seen >= self.next_copy:
            age = self.seen - self.origin
            early = EARLY_FIRST is not None and age < c.sentinel_first
            warmup = max(age, 1) if early else None
            self.copies.append(_Copy(champion.copy(), self.seen, c, warmup, self.regression))
            # Doubling from sentinel_first (1,000, 2,000, 4,000 by default) while that is under half of
            # sentinel_every, then every sentinel_every labels (12,000, 20,000, ...): a young model changes fast.
            double = 2 * age < c.sentinel_every
            self.next_copy = self.origin + 2 * age if double else self.seen + c.sentinel_every
        # A copy is dropped once a newer one has watched sentinel_overlap labels. Not only the newest: with copies
        # 1,000 labels apart (1,000, 2,000, 4,000) the newest is always younger than the overlap when the next is
        # frozen, and the first copy watched for 5,000 labels beside two others (two false alarms in the suite,
        # led-abrupt and agrawal-gradual seed 1, both from the copy at 1,000; BENCHMARKS-accuracy.md session 9).
        copies = self.copies
        if len(copies) > 1:  # one copy: nothing to drop
            # From the newest ripe copy on (a copy at position 0 alone being ripe drops nothing).
            seen, overlap = self.seen, c.sentinel_overlap
            for k in range(len(copies) - 1, 0, -1):
                if seen - copies[k].label >= overlap:
                    self.copies = copies[k:]
                    break
