"""The guard: which candidate model may replace the served one. All decision rules live in this file.

Candidates are scored *paired* with the model they would replace, on the same labelled examples
(:class:`PairedEvidence`), then judged by :func:`judge`:

1. An anytime-valid statistical test (:class:`EProcess`, a betting e-process on the paired loss differences,
   updated on every label, so the caller may decide after any label: a clear case ships after tens of labels,
   a doubtful one waits). Regression differences are in units of the baseline's running MAE, clipped to +-1.
   - ``incremental`` (the champion that kept learning vs the served snapshot): non-inferiority: the candidate's
     error is shown to exceed the served one's by less than ``non_inferiority_margin`` (relative for regression).
   - ``challenger`` (a model started by a drift alarm vs the champion): superiority at ``alpha``.
2. Sanity checks, any failure rejects: finite outputs; prediction distribution not collapsed; predict latency
   within budget; no segment worse than ``segment_margin``; no regression beyond ``reference_margin`` on the
   trusted reference set (stream labels may be poisoned: the paired test cannot see that, the reference set can).
3. Disagreement with the served predictions on more than ``max_disagreement`` of the examples: ``hold`` for an
   operator, unless the candidate is shown better by more than ``hold_margin`` (see :func:`judge`).

:class:`Probation` keeps the previous model in shadow after a promotion and asks for a ``rollback`` when the new one
is shown worse (anytime-valid, at ``probation_alpha``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.config import GuardConfig
from learners.fairness import fairness_check, fairness_evidence
from learners.features import finite

PROBATION_FIRST = 50  # shadow pairs before the first probation look
# Share of the largest safe bet the e-processes stake: higher ships clear cases sooner (with no discordant pair, a
# 3 % non-inferiority margin is shown after ~120 labels at 0.8, ~200 at 0.5) and loses more on each bad pair.
# 0.5 for every test was measured (session 17): elec at delay 48 0.7856 -> 0.7788 (under ARF(10)'s 0.7808) and the
# flip poisoning rows with the reference set -0.19 points over seeds 1..5; 0.5 or 0.3 for the champion's
# non-inferiority test alone changed nothing beyond path noise (BENCHMARKS-accuracy.md, session 17).
BET_CAP = 0.8
# Regression's unit of the paired differences (``PairedEvidence._scale``): one pair's baseline error counts at most
# SCALE_CAP times the typical one, which the first SCALE_WARM pairs set by their lower median. 1,000 binds only on
# absurd labels: gate 1's 48 regression rows are the plain mean's but for one row by 0.1 point (10 changed 27 rows and
# failed two more; BENCHMARKS-accuracy.md, session 43), while a model poisoned by a 1e99 label is still held.
SCALE_CAP = 1000.0
SCALE_WARM = 10
# Predictions timed per judgement for the latency check: their median is the estimate. Seven tolerate three
# preempted calls, and each judgement pays for them (with carried evidence a trainer judges every ~50 labels;
# 25 timed calls were a tenth of the LR trainer's time).
LATENCY_SAMPLE = 7


@dataclass
class Decision:
    """A guard decision with everything it was based on (recorded with every release, rejection and hold)."""

    outcome: str  # promote | reject | hold | rollback | reset (the champion, to the served snapshot)
    reason: str  # incremental | challenger | manual | rollback
    candidate: str  # what was judged: "champion", "challenger", "previous", ...
    evidence: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool | str] = field(default_factory=dict)
    text: str = ""
    index: int | None = None

    def to_metrics(self) -> dict[str, float]:
        """Evidence plus checks as numbers (1.0 passed, 0.0 failed), for ModelRelease metrics and Prometheus."""
        out = {f"guard.{k}": float(v) for k, v in self.evidence.items() if finite(v)}
        for name, ok in self.checks.items():
            out[f"guard.check.{name}"] = 1.0 if ok is True else 0.0
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "outcome": self.outcome,
                "reason": self.reason,
                "candidate": self.candidate,
                "evidence": {k: v for k, v in self.evidence.items() if finite(v)},
                "checks": self.checks,
                "text": self.text,
                "index": self.index,
            },
            sort_keys=True,
        )


def _loss(task: str, y: Any, pred: Any) -> float:
    if task == "classification":
        return 0.0 if pred == y else 1.0
    return abs(float(pred) - float(y)) if finite(pred) and finite(y) else math.inf


class EProcess:
    """Anytime-valid test of H0: mean(d) >= ``m`` for paired differences d in [-1, 1], by betting.

    Wealth = prod(1 + lambda_t (m - d_t)) is a nonnegative supermartingale under H0 (Ville's inequality: it exceeds
    1/alpha with probability at most alpha, however often it is looked at), so H0 may be rejected the first time
    ``log_wealth >= log(1/alpha)``. ``lambda_t`` is chosen from past differences only (aGRAPA, Waudby-Smith and
    Ramdas, JRSS-B 2024) and capped at ``BET_CAP`` of what keeps every factor positive, so one bad pair costs at
    most that share of the wealth. Rejecting with m = margin shows non-inferiority; with m = 0 superiority; with
    m = -delta an improvement of more than delta.
    """

    __slots__ = ("log_wealth", "m", "n", "s", "s2")

    def __init__(self, m: float) -> None:
        self.m = m
        self.n = 0
        self.s = 0.0
        self.s2 = 0.0
        self.log_wealth = 0.0

    def add(self, d: float) -> None:
        mean = self.s / (self.n + 1)  # shrunk towards 0 so the first bets are cautious
        var = (self.s2 - self.s * mean + 0.25) / (self.n + 1)
        gap = self.m - mean
        lam = min(max(gap / (var + gap * gap), 0.0), BET_CAP / (1.0 - self.m)) if gap > 0 else 0.0
        self.log_wealth += math.log1p(lam * (self.m - d))
        self.n += 1
        self.s += d
        self.s2 += d * d

    def rejects(self, alpha: float) -> bool:
        return self.log_wealth >= -math.log(alpha)


# The fixed bets of :class:`MixtureEProcess`, as shares of the largest safe one (BET_CAP's): the mixture keeps
# staking after early losses, where the plug-in bet of :class:`EProcess` stakes nothing until the running mean of
# the differences falls back under the margin.
MIXTURE_BETS = (0.125, 0.25, 0.5, 1.0)


class MixtureEProcess:
    """:class:`EProcess`'s test as the average of bettors: half the wealth bets as :class:`EProcess` does, the other
    half is split over fixed bets (``MIXTURE_BETS``). Each bettor's wealth is a nonnegative supermartingale under H0,
    so their average with fixed weights is one too, and the same threshold applies (Ville's inequality). Setting
    ``log_wealth`` (a cap) scales every bettor alike.
    """

    __slots__ = ("_adaptive", "_fixed", "_lams", "_shift", "m")

    def __init__(self, m: float) -> None:
        self.m = m
        self._adaptive = EProcess(m)
        cap = BET_CAP / (1.0 - m)
        self._lams = tuple(c * cap for c in MIXTURE_BETS)
        self._fixed = [0.0] * len(self._lams)
        self._shift = 0.0

    @property
    def n(self) -> int:
        return self._adaptive.n

    @property
    def s(self) -> float:
        return self._adaptive.s

    @property
    def s2(self) -> float:
        return self._adaptive.s2

    @property
    def log_wealth(self) -> float:
        k = len(self._fixed)
        logs = [self._adaptive.log_wealth + math.log(0.5)] + [lw + math.log(0.5 / k) for lw in self._fixed]
        top = max(logs)
        return top + math.log(sum(math.exp(v - top) for v in logs)) + self._shift

    @log_wealth.setter
    def log_wealth(self, value: float) -> None:
        self._shift += value - self.log_wealth

    def add(self, d: float) -> None:
        self._adaptive.add(d)
        m = self.m
        fixed = self._fixed
        for i, lam in enumerate(self._lams):
            fixed[i] += math.log1p(lam * (m - d))

    def rejects(self, alpha: float) -> bool:
        return self.log_wealth >= -math.log(alpha)


def _add_shared(tests: Sequence[EProcess], n: int, s: float, s2: float, d: float) -> None:
    """``test.add(d)`` for e-processes fed the same differences so far (each has ``n``, ``s``, ``s2``): the part of
    :meth:`EProcess.add` that reads only those (the shrunk mean and variance) is computed once, the same
    expressions. A bet of 0 adds log1p(0.0) = 0.0, which leaves the (never negative-zero) wealth as it is: skipped."""
    mean = s / (n + 1)
    var = (s2 - s * mean + 0.25) / (n + 1)
    for test in tests:
        m = test.m
        gap = m - mean
        if gap > 0:
            lam = min(max(gap / (var + gap * gap), 0.0), BET_CAP / (1.0 - m))
            if lam:
                test.log_wealth += math.log1p(lam * (m - d))
        test.n = n + 1
        test.s = s + d
        test.s2 = s2 + d * d


class PairedEvidence:
    """Streaming summary of a candidate and a baseline predicting the same labelled examples."""

    # Evidence pickled before ``base_varied`` existed (a trainer's checkpoint) keeps the old collapse rule.
    base_varied = True
    _base_first: Any = None
    # Regression, the incremental comparison only (``wide``): the non-inferiority test at ``recovery_margin`` on the
    # same pairs, kept from the start for a drift alarm to take over (see ``learners.policies.IncrementalPolicy``).
    # None: not kept (classification, the challenger's and probation's evidence, evidence pickled before it).
    wide: EProcess | None = None
    # The bounded differences fed to the tests since this evidence's start, kept while ``not_worse`` is a test carried
    # over a release (``learners.policies.SHADOW``): the test started here can be replayed from them when the carried
    # one sinks (the same bets, the same wealth, at the cost of a list append per pair). None: not kept.
    kept: list[float] | None = None
    # Regression: the scale of the paired differences (:meth:`_scale`), kept apart from ``sum_base`` so that a few
    # absurd labels cannot set it (evidence pickled before it starts its warm-up again).
    sum_scale = 0.0
    _scale_n = 0
    absurd = 0  # regression: pairs where only the candidate erred by over SCALE_CAP typical errors (``sane_outputs``)
    _warm: tuple[float, ...] | list[float] = ()

    def __init__(self, task: str, config: GuardConfig | None = None, *, wide: bool = False) -> None:
        self.task = task
        config = config or GuardConfig()
        if wide and task != "classification" and config.recovery_margin > config.non_inferiority_margin:
            self.wide = EProcess(config.recovery_margin)
        # Anytime-valid tests on the paired differences (classification: loss difference in {-1, 0, 1};
        # regression: the absolute-error difference in units of the baseline's running MAE, clipped to [-1, 1],
        # so the margins are relative to the baseline's MAE as the paired t-test's were). Two snapshots of one
        # model rarely differ by a whole MAE on one event (|error difference| <= |prediction difference|), so
        # the clipping seldom bites; a wider unit would shrink the margin in its units and slow every release.
        # (A MixtureEProcess once a shadow has taken over: ``learners.policies.SHADOW``.)
        self.not_worse: EProcess | MixtureEProcess = EProcess(config.non_inferiority_margin)
        self.better = EProcess(-config.superiority_margin)
        self.much_better = EProcess(-config.hold_margin)
        self.n = 0
        self.cand_only = 0  # classification: candidate right, baseline wrong
        self.base_only = 0  # baseline right, candidate wrong
        self.cand_right = 0
        self.base_right = 0
        self.disagree = 0
        self.nonfinite = 0
        self.sum_d = 0.0  # regression: sum of (candidate loss - baseline loss)
        self.sum_d2 = 0.0
        self.sum_base = 0.0
        self.pred_counts: dict[Any, int] = {}
        self.label_counts: dict[Any, int] = {}
        # Classification: did the baseline give more than one answer (or none)? A candidate answering one class
        # is "collapsed" only where the baseline was not doing the same (see _collapsed).
        self.base_varied = False
        self._base_first: Any = None
        self.segments: dict[str, list[float]] = {}  # segment -> [n, candidate loss sum, baseline loss sum]
        self.pred_sum = 0.0
        self.pred_sum2 = 0.0

    def add(self, y: Any, cand: Any, base: Any, segment: str | None = None) -> float | None:
        """Add one pair; the difference the tests were fed (candidate loss minus baseline loss, regression's in
        units of :meth:`_scale`), None when they were fed none."""
        if y is None:
            return None
        if self.task == "classification" and segment is None:
            return self._add_classification(y, cand, base)
        self.n += 1
        if self.task == "classification":
            self.label_counts[y] = self.label_counts.get(y, 0) + 1
            self.pred_counts[cand] = self.pred_counts.get(cand, 0) + 1
            self._note_base(base)
        elif not finite(cand):
            self.nonfinite += 1
        else:
            self.pred_sum += float(cand)
            self.pred_sum2 += float(cand) ** 2
        lc, lb = _loss(self.task, y, cand), _loss(self.task, y, base)
        if not math.isfinite(lc):
            lc = lb if math.isfinite(lb) else 0.0
        if not math.isfinite(lb):
            lb = lc
        scale = 0.0 if self.task == "classification" else self._scale()
        if self.task == "classification":
            # A baseline with no answer yet cannot disagree.
            self.disagree += cand != base and base is not None
        elif finite(cand) and finite(base) and self.n > 1:
            # Regression answers always differ a little: count differences over twice the baseline's typical error.
            self.disagree += abs(float(cand) - float(base)) > 2 * max(scale, 1e-12)
        if self.task == "classification":
            self.cand_right += lc == 0.0
            self.base_right += lb == 0.0
            self.cand_only += lc == 0.0 and lb == 1.0
            self.base_only += lb == 0.0 and lc == 1.0
        d = lc - lb
        bounded: float | None = d
        if self.task != "classification":
            # Scale from earlier pairs only (the bet must be predictable); the first pair only sets it.
            bounded = max(-1.0, min(1.0, d / scale)) if scale > 0 else None
        if bounded is not None:
            for test in (self.not_worse, self.better, self.much_better):
                test.add(bounded)
            if self.wide is not None:
                self.wide.add(bounded)
            if self.kept is not None:
                self.kept.append(bounded)
        self.sum_d += d
        self.sum_d2 += d * d
        self.sum_base += lb
        if self.task != "classification":
            self._scale_add(lb)
            if scale > 0:  # the slice check's relative MAE, with the same bound on what one pair can weigh
                cap = SCALE_CAP * scale
                self.absurd += lc > cap >= lb
                lc, lb = min(lc, cap), min(lb, cap)
        if segment is not None:
            fairness_evidence(self).add(segment, y, cand, base)  # per-segment rates for the fairness check
            acc = self.segments.setdefault(segment, [0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += lc
            acc[2] += lb
        return bounded

    def _scale(self) -> float:
        """Regression: the baseline's typical absolute error over the earlier pairs, the unit of the paired
        differences. A mean (as the paired t-test's margins were relative to the baseline's MAE), with each pair's
        error capped at :data:`SCALE_CAP` times the mean so far (over the first :data:`SCALE_WARM` pairs: times
        their lower median). Until session 43 it was the plain mean: one label of 1e99 made it ~1e96, every later
        difference ~0 in its units, and a model poisoned by that label passed non-inferiority and was served
        (linear regression MAE 0.08 -> 1.5e9 for 900 events; docs/experiments/poison43.py). Capped, the unit grows
        by at most SCALE_CAP / n typical errors, and the poisoned model is off by far more."""
        if self._scale_n:
            return self.sum_scale / self._scale_n
        if not self._warm:
            return 0.0
        cap = SCALE_CAP * sorted(self._warm)[(len(self._warm) - 1) // 2]
        return sum(min(x, cap) for x in self._warm) / len(self._warm)

    def _scale_add(self, lb: float) -> None:
        if not self._scale_n:
            self._warm = [*self._warm, lb]  # a new list: never the class's default
            if len(self._warm) == SCALE_WARM:
                self.sum_scale, self._scale_n, self._warm = self._scale() * SCALE_WARM, SCALE_WARM, ()
            return
        scale = self.sum_scale / self._scale_n
        self.sum_scale += min(lb, SCALE_CAP * scale) if scale > 0 else lb
        self._scale_n += 1

    def _add_classification(self, y: Any, cand: Any, base: Any) -> float:
        # ``add`` for a classification pair without a segment, inlined: the trainer makes two or three of these
        # per label. The same updates in the same order (0/1 losses are always finite), with the same values and
        # types: the counters as ints, ``d`` as the float ``add`` subtracts, and while the three e-processes hold
        # the same history (the usual case) :func:`_add_shared`'s expressions inline, ``min``/``max`` written as
        # the comparisons they make (session 22: ~40 % of this method's time, ``tests/test_learners_guard.py``
        # checks it against the general path).
        self.n += 1
        counts = self.label_counts
        counts[y] = counts.get(y, 0) + 1
        counts = self.pred_counts
        counts[cand] = counts.get(cand, 0) + 1
        if not self.base_varied:
            self._note_base(base)
        cand_ok, base_ok = bool(cand == y), bool(base == y)
        self.disagree += cand != base and base is not None
        if cand_ok:
            self.cand_right += 1
            if base_ok:
                self.base_right += 1
                d = 0.0  # (0.0 if cand_ok else 1.0) - (0.0 if base_ok else 1.0), as the other branches
            else:
                self.cand_only += 1
                d = -1.0
        elif base_ok:
            self.base_right += 1
            self.base_only += 1
            d = 1.0
        else:
            d = 0.0
        first, second, third = self.not_worse, self.better, self.much_better
        n, s, s2 = first.n, first.s, first.s2
        if (
            type(first) is EProcess
            and second.n == n == third.n
            and second.s == s == third.s
            and second.s2 == s2 == third.s2
        ):
            # The three e-processes are fed the same differences, so the part of EProcess.add that reads only
            # n, s and s2 (the shrunk mean and variance) is the same for each: computed once, the same expressions.
            # A bet of 0 adds log1p(0.0) = 0.0, which leaves the (never negative-zero) wealth as it is: skipped.
            mean = s / (n + 1)
            var = (s2 - s * mean + 0.25) / (n + 1)
            n1, s1, s21 = n + 1, s + d, s2 + d * d
            for test in (first, second, third):
                m = test.m
                gap = m - mean
                if gap > 0:
                    # min(max(x, 0.0), cap): max keeps x unless x < 0.0, min keeps it unless cap < it (NaN stays).
                    lam = gap / (var + gap * gap)
                    if lam < 0.0:
                        lam = 0.0
                    cap = BET_CAP / (1.0 - m)
                    if cap < lam:
                        lam = cap
                    if lam:
                        test.log_wealth += math.log1p(lam * (m - d))
                test.n = n1
                test.s = s1
                test.s2 = s21
        else:
            # After a carried release not_worse has a longer history than the other two (on its own), while
            # better and much_better started together: the same shared mean and variance for those two.
            first.add(d)
            pair = (second, third)
            n, s, s2 = second.n, second.s, second.s2
            if third.n == n and third.s == s and third.s2 == s2:
                _add_shared(pair, n, s, s2, d)
            else:
                for test in pair:
                    test.add(d)
        if self.kept is not None:
            self.kept.append(d)
        self.sum_d += d
        self.sum_d2 += d * d
        self.sum_base += 0.0 if base_ok else 1.0
        return d

    def _note_base(self, base: Any) -> None:
        if self.n == 1:
            self._base_first = base
        if base is None or base != self._base_first:
            self.base_varied = True

    def summary(self) -> dict[str, float]:
        n = max(self.n, 1)
        out = {"n": float(self.n), "disagreement": self.disagree / n}
        if self.task == "classification":
            out.update(
                candidate_accuracy=self.cand_right / n,
                baseline_accuracy=self.base_right / n,
                candidate_only_right=float(self.cand_only),
                baseline_only_right=float(self.base_only),
            )
        else:
            out.update(candidate_mae=(self.sum_base + self.sum_d) / n, baseline_mae=self.sum_base / n)
        return out


def _paired_t(ev: PairedEvidence) -> tuple[float, float, int]:
    """Mean loss difference (candidate - baseline), its standard error and the degrees of freedom."""
    n = ev.n
    mean = ev.sum_d / n
    var = max(ev.sum_d2 / n - mean * mean, 0.0) * n / max(n - 1, 1)
    return mean, math.sqrt(var / n) or 1e-12, max(n - 1, 1)


def statistical_test(
    kind: str, ev: PairedEvidence, config: GuardConfig
) -> tuple[bool, dict[str, float], str]:
    """Run the anytime-valid test for ``kind`` (``incremental``: non-inferiority, otherwise superiority).

    Both are e-processes (:class:`EProcess`) updated on every pair, so a decision may be taken after any label
    without a correction for the number of looks.
    """
    alpha = config.alpha
    test = ev.not_worse if kind == "incremental" else ev.better
    evidence = {"log_e_value": test.log_wealth, "log_e_threshold": -math.log(alpha), "e_pairs": float(test.n)}
    ok = test.rejects(alpha)
    if ev.task == "classification":
        evidence["statistic"] = float(ev.cand_only - ev.base_only)
        counts = f"{ev.cand_only} vs {ev.base_only} discordant"
    else:
        mean, _se, _df = _paired_t(ev) if ev.n else (0.0, 0.0, 0)
        evidence["mean_loss_difference"] = mean
        counts = f"mean loss difference {mean:.4g}"
    if kind == "incremental":
        margin = test.m  # the configured margin, or the wider one of a recovery after a drift alarm
        evidence["margin"] = margin
        text = (
            f"non-inferiority (margin {margin}, anytime-valid): {counts}, log e-value {test.log_wealth:.2f}"
        )
    else:
        text = f"superiority (anytime-valid): {counts}, log e-value {test.log_wealth:.2f}"
    return ok, evidence, text + f" vs {-math.log(alpha):.2f}"


def _collapsed(ev: PairedEvidence, config: GuardConfig) -> bool:
    if ev.n < config.min_examples:
        return False  # a short window of an autocorrelated stream may legitimately hold a single answer
    if ev.task == "classification":
        common = [c for c, k in ev.label_counts.items() if k >= config.collapse_share * ev.n]
        # Only where the baseline answered more than one class on the same examples: on an autocorrelated stream
        # (elec) the served model itself answers one class for a few dozen events, and a candidate doing the same
        # is not broken (69 of elec's incremental releases were vetoed so, under carried evidence).
        return len(common) >= 2 and len(ev.pred_counts) < 2 and ev.base_varied
    n = ev.n - ev.nonfinite
    return n >= 10 and ev.pred_sum2 / n - (ev.pred_sum / n) ** 2 <= 1e-12 * max(1.0, (ev.pred_sum / n) ** 2)


def _score(model: Any, task: str, data: Sequence[tuple[dict[str, Any], Any]]) -> float:
    """Mean loss on ``data`` (error rate or MAE)."""
    return sum(_loss(task, y, model.predict_one(x)) for x, y in data) / max(len(data), 1)


def _latency_ms(model: Any, xs: Sequence[dict[str, Any]]) -> float:
    """The median time of ``LATENCY_SAMPLE`` predictions over the newest events (the fewer there are, the more often
    each is timed), in milliseconds.

    The median, not the mean: a process preempted by a busy machine during one call would otherwise veto a
    release, so the guard's decisions (and everything after them) would depend on the machine's load. Always
    ``LATENCY_SAMPLE`` timings, even in a cold start with one or two recent events: the median of two is their
    mean, and one slow call vetoed a release there (the fault tests' flake, session 19).
    """
    xs = list(xs)[-LATENCY_SAMPLE:]
    if not xs:
        return 0.0
    clock = time.perf_counter
    times = []
    for i in range(LATENCY_SAMPLE):
        x = xs[i % len(xs)]
        start = clock()
        model.predict_one(x)
        times.append(clock() - start)
    return statistics.median(times) * 1000


class LatencyCache:
    """The latency check's measurements, reused while the timed work cannot have changed (session 23).

    :meth:`measure` answers :func:`_latency_ms` for a candidate and sample, or the measurement of an earlier
    judgement of the same *shape* (:func:`latency_shape`): a binary or one-vs-rest logistic regression behind one
    ``FeatureScaler``, with the same number of classes, scaler statistics and weights per class, asked about
    newest events with as many features each. Why that is sound: such a prediction is the same fixed sequence of
    dictionary reads and float operations whatever the weights' *values* are (clean the event's features, scale each
    by its mean and variance, a dot product over the weights, a sigmoid, the class order); what the shape does not
    fix are the weights' and the events' values, and the few branches on those (a zero variance, a key the scaler
    never saw, a string one-hot) differ by a handful of operations, microseconds against a budget in
    milliseconds. Since session 34 a Hoeffding tree classifier has a shape too (:func:`_tree_shape`: per sampled
    event its path's length and its leaf's kind, answer, splitters and classes), ~25-35 us to compute against
    ~230-270 us for the seven timed predictions; a tree is measured ~290 times in its first ~3,600 labels of the
    bench's stream. A model whose shape changed (a new feature learned, a second class, a tree that split or
    whose leaf switched between majority class and naive Bayes: every other kind has no shape and is timed at
    every judgement) is timed again. Only a measurement within the budget is kept, so a veto is always a fresh
    measurement, as before; the trainer's LR judges ~400 times per 20,000 labels, ~50-100 us each for the seven
    timed predictions. Not pickled with a checkpoint: a restored trainer (maybe on another machine) measures again.
    """

    __slots__ = ("_ms",)
    LIMIT = 16  # shapes kept (champion, challenger and their growth); cleared when full

    def __init__(self) -> None:
        self._ms: dict[Any, float] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (LatencyCache, ())

    def measure(self, model: Any, sample: Sequence[dict[str, Any]], budget: float) -> float:
        """The median prediction time in ms (:func:`_latency_ms`), measured or, for a known shape, remembered."""
        xs = list(sample)[-LATENCY_SAMPLE:]
        shape = latency_shape(model, xs)
        if shape is not None:
            known = self._ms.get(shape)
            if known is not None:
                return known
        ms = _latency_ms(model, xs)
        if shape is not None and ms <= budget:
            if len(self._ms) >= self.LIMIT:
                self._ms.clear()
            self._ms[shape] = ms
        return ms


@functools.cache
def _shape_types() -> tuple[Any, ...]:
    """The classes :func:`latency_shape` knows, imported once (an import statement per judgement was a third of
    the shape's cost)."""
    from river import compose, linear_model, multiclass

    from learners.features import FeatureScaler
    from learners.specs import Learner

    return (
        Learner,
        compose.Pipeline,
        FeatureScaler,
        linear_model.LogisticRegression,
        multiclass.OneVsRestClassifier,
    )


def latency_shape(model: Any, xs: Sequence[dict[str, Any]]) -> tuple[Any, ...] | None:
    """What a linear classifier's prediction cost depends on (see :class:`LatencyCache`), or None: time it.

    Only the plain kinds whose prediction path is known here: ``FeatureScaler | LogisticRegression`` (binary) and
    ``FeatureScaler | OneVsRestClassifier(LogisticRegression)`` (``multiclass: auto`` past two classes, or
    ``ovr``) of a :class:`learners.specs.Learner` for classification without one-hot completion; everything else
    (trees, pools, naive Bayes, quadratic features, softmax, windows, scikit-learn) returns None."""
    learner, pipeline_type, scaler_type, lr_type, ovr_type = _shape_types()
    if type(model) is not learner or model.task != "classification":
        return None
    if type(model.model) in _tree_types():
        return _tree_shape(model, xs)
    if model._indicators is not None:
        return None
    pipeline = model.model
    if type(pipeline) is not pipeline_type or len(pipeline.steps) != 2:
        return None
    scaler, estimator = pipeline.steps.values()
    if type(scaler) is not scaler_type or not scaler.with_std or scaler.window_size is not None:
        return None
    members: list[Any]
    if type(estimator) is lr_type:
        members = [estimator]
    elif type(estimator) is ovr_type:
        members = list(estimator.classifiers.values())
        if not all(type(m) is lr_type for m in members):
            return None
    else:
        return None
    return (
        type(estimator),
        model._binary,
        len(model._classes),
        len(model._counts),
        len(scaler.means),
        len(scaler.vars),
        tuple((type(m.loss), len(m._weights)) for m in members),
        tuple(len(x) for x in xs),
    )


@functools.cache
def _tree_types() -> tuple[Any, ...]:
    """River's Hoeffding tree classifier and :mod:`learners.settled_tree`'s, imported once."""
    from river.tree import HoeffdingTreeClassifier

    from learners.settled_tree import SettledHoeffdingTreeClassifier

    return (HoeffdingTreeClassifier, SettledHoeffdingTreeClassifier)


def _tree_shape(model: Any, xs: Sequence[dict[str, Any]]) -> tuple[Any, ...] | None:
    """A Hoeffding tree classifier's :func:`latency_shape` (session 34), or None: time it.

    A tree's prediction for one event is the features' cleaning (a fixed sequence per feature count), the branch
    tests down to a leaf (one per level: the path's length), then the leaf's answer: the majority class (the class
    counts normalised) or naive Bayes (one Gaussian term per splitter and class), which ``learners.frozen_tree``'s
    ``_answers_naive`` decides as River's leaf does, and the learner's class filter. So per sampled event: its
    feature count, the path's length, the leaf's type, how it answers, its splitters and classes. Any of those
    changing (a split, a leaf switching to naive Bayes, a new class or feature) is a new shape, timed again. A
    tree whose features need one-hot completion (strings) is timed at every judgement."""
    if model._indicators or model._complete_names:
        return None  # one-hot indicators to complete: a cost this shape does not describe
    from learners.features import clean_features
    from learners.frozen_tree import _answers_naive

    tree = model.model
    root = tree._root
    per_event: list[tuple[Any, ...]] = []
    try:
        for x in xs:
            xc = clean_features(x)
            if root is None:
                per_event.append((len(x),))
                continue
            path = list(root.walk(xc, until_leaf=True))
            leaf = path[-1]
            splitters = getattr(leaf, "splitters", None)
            stats = getattr(leaf, "stats", None)
            per_event.append(
                (
                    len(x),
                    len(path),
                    type(leaf),
                    _answers_naive(leaf, tree),
                    -1 if splitters is None else len(splitters),
                    -1 if stats is None else len(stats),
                )
            )
    except Exception:  # an unexpected tree or event: timed
        return None
    return (type(tree), model._binary, len(model._classes), len(model._counts), tuple(per_event))


def sanity_checks(
    ev: PairedEvidence,
    config: GuardConfig,
    candidate: Any = None,
    baseline: Any = None,
    reference: Sequence[tuple[dict[str, Any], Any]] | None = None,
    sample: Sequence[dict[str, Any]] = (),
    reference_floor: float | None = None,
    latency: LatencyCache | None = None,
) -> tuple[dict[str, bool | str], dict[str, float]]:
    """The checks that can veto a candidate, each True or a string saying why it failed.

    ``reference_floor`` is the lowest reference-set loss of any model served so far: the candidate is compared
    with it too, so many small releases cannot each stay within ``reference_margin`` while drifting far from it
    together (a slow poisoning would otherwise pass one step at a time). ``latency``: measurements to reuse for a
    candidate of a known shape (:class:`LatencyCache`); None: timed now.
    """
    checks: dict[str, bool | str] = {}
    evidence: dict[str, float] = {}
    checks["finite_outputs"] = True if ev.nonfinite == 0 else f"{ev.nonfinite} non-finite predictions"
    if ev.task != "classification":
        # The paired test clips each difference to one typical error, so a model absurdly wrong on a few events (a
        # tree leaf that learned a 1e99 label) could pass it: those answers veto on their own (session 43).
        checks["sane_outputs"] = (
            True
            if not ev.absurd
            else f"{ev.absurd} answer(s) off by over {SCALE_CAP:g} typical errors where the served model was not"
        )
    checks["not_collapsed"] = "predicts a single value" if _collapsed(ev, config) else True
    if candidate is not None and sample:
        budget = config.max_predict_latency_ms
        ms = _latency_ms(candidate, sample) if latency is None else latency.measure(candidate, sample, budget)
        evidence["predict_latency_ms"] = ms
        checks["latency"] = True if ms <= budget else f"{ms:.3f} ms per prediction > budget {budget} ms"
    worst = ""
    for segment, (n, lc, lb) in sorted(ev.segments.items()):
        if n < 30:  # too few to say anything about the slice
            continue
        # Error rates for classification; relative MAE for regression, so one margin fits both.
        gap = (lc - lb) / n if ev.task == "classification" else (lc - lb) / max(lb, 1e-12)
        evidence[f"segment.{segment}.gap"] = gap
        if gap > config.segment_margin and not worst:
            worst = f"segment {segment!r} worse by {gap:.3f} > {config.segment_margin}"
    checks["segments"] = worst or True
    fair, fair_evidence = fairness_check(ev.__dict__.get("fairness"), config.fairness_max_gap)
    if fair is not None:  # a bound is set (learners/fairness.py)
        checks["fairness"] = fair
        evidence.update(fair_evidence)
    if reference and candidate is not None and baseline is not None:
        ref = list(reference)[: config.max_reference]
        lc, lb = _score(candidate, ev.task, ref), _score(baseline, ev.task, ref)
        evidence["reference_served_loss"] = lb
        if reference_floor is not None:
            lb = min(lb, reference_floor)
        gap = lc - lb if ev.task == "classification" else (lc - lb) / max(lb, 1e-12)
        evidence.update(reference_candidate_loss=lc, reference_baseline_loss=lb, reference_gap=gap)
        ok = gap <= config.reference_margin
        checks["reference"] = (
            True if ok else f"reference-set loss {lc:.4f} vs {lb:.4f} (margin {config.reference_margin})"
        )
    return checks, evidence


def judge(
    kind: str,
    ev: PairedEvidence,
    config: GuardConfig,
    *,
    candidate: Any = None,
    baseline: Any = None,
    reference: Sequence[tuple[dict[str, Any], Any]] | None = None,
    sample: Sequence[dict[str, Any]] = (),
    candidate_name: str | None = None,
    index: int | None = None,
    reference_floor: float | None = None,
    may_hold: bool = True,
    require_test: bool = True,
    latency: LatencyCache | None = None,
) -> Decision:
    """Decide ``promote``, ``reject`` or ``hold`` for a candidate of ``kind`` (``incremental`` or ``challenger``).

    ``may_hold`` False: no hold for disagreement (the served snapshot is young); ``require_test`` False: the
    statistical test is reported but does not veto (the served snapshot has learned too few labels for a test to
    show anything: the cold start). Every other check still applies. Both are the incremental policy's to ask
    for (:class:`learners.policies.IncrementalPolicy` says when and why). ``latency``: the latency check's
    measurements to reuse (:class:`LatencyCache`)."""
    name = candidate_name or ("champion" if kind == "incremental" else "challenger")
    evidence = ev.summary()
    ok, test_evidence, test_text = statistical_test(kind, ev, config)
    evidence.update(test_evidence)
    if not require_test:
        ok, test_text = True, f"cold start, not required: {test_text}"
    checks, check_evidence = sanity_checks(
        ev, config, candidate, baseline, reference, sample, reference_floor, latency
    )
    evidence.update(check_evidence)
    checks = {"statistical_test": True if ok else "not significant", **checks}
    failed = [f"{k}: {v}" for k, v in checks.items() if v is not True]
    if failed:
        return Decision(
            "reject", kind, name, evidence, checks, f"reject {name}: {'; '.join(failed)} ({test_text})", index
        )
    if evidence["disagreement"] > config.max_disagreement and may_hold:
        # Disagreement is a reason to look closely, not evidence of harm: after a concept reversal a good
        # candidate disagrees with the stale model almost everywhere. It is promoted without an operator when
        # it is better by more than hold_margin (anytime-valid), which a share of poisoned labels below
        # hold_margin / 2 cannot explain (each flipped label moves the paired error difference by at most 2/n),
        # and every check above passed, the reference set included. Otherwise it is held (the caller keeps
        # scoring it and asks again).
        evidence["log_e_much_better"] = ev.much_better.log_wealth
        if not ev.much_better.rejects(config.alpha):
            checks["disagreement"] = f"{evidence['disagreement']:.3f} > {config.max_disagreement}"
            text = (
                f"hold {name} for operator approval: disagrees on {evidence['disagreement']:.1%} and is not "
                f"shown better by {config.hold_margin} ({test_text})"
            )
            return Decision("hold", kind, name, evidence, checks, text, index)
        checks["disagreement"] = True
        text = (
            f"promote {name}: disagrees on {evidence['disagreement']:.1%} but is better by more than "
            f"{config.hold_margin} ({test_text})"
        )
        return Decision("promote", kind, name, evidence, checks, text, index)
    checks["disagreement"] = True
    return Decision("promote", kind, name, evidence, checks, f"promote {name}: {test_text}", index)


@functools.lru_cache(maxsize=16)
def _at_margin_zero(config: GuardConfig) -> GuardConfig:
    """``config`` with ``superiority_margin`` 0 (probation's test), made once per config: a frozen dataclass, so
    one copy serves every probation (``dataclasses.replace`` per release was ~4 us of each; session 23)."""
    return dataclasses.replace(config, superiority_margin=0.0)


class Probation:
    """Shadow comparison after a promotion: the new served model against the one it replaced."""

    def __init__(self, task: str, config: GuardConfig, previous_version: int) -> None:
        self.config = config
        self.previous_version = previous_version
        # candidate = previous model, baseline = new model. Superiority at margin 0: a rollback needs only the
        # previous model shown better (the challenger's superiority_margin guards a fresh model's short memory;
        # probation guards against a bad release, and a margin there would let a worse model stay served).
        self.evidence = PairedEvidence(task, _at_margin_zero(config))

    def add(self, y: Any, new_pred: Any, previous_pred: Any, segment: str | None = None) -> None:
        self.evidence.add(y, previous_pred, new_pred, segment)

    @property
    def finished(self) -> bool:
        return self.evidence.n >= self.config.probation_examples

    def check(self, index: int | None = None) -> Decision | None:
        """A ``rollback`` decision when the previous model is significantly better, else None."""
        ev = self.evidence
        # Looked at after every label: answer the usual "not shown worse" before building any evidence.
        if ev.n < PROBATION_FIRST or not ev.better.rejects(self.config.probation_alpha):
            return None
        # Anytime-valid: looked at after every pair, no correction for the number of looks.
        ok, evidence, text = statistical_test(
            "challenger", ev, GuardConfig(alpha=self.config.probation_alpha)
        )
        if not ok:
            return None
        evidence.update(ev.summary())
        checks: dict[str, bool | str] = {"probation": f"previous version {self.previous_version} is better"}
        text = f"rollback to version {self.previous_version}: {text}"
        return Decision(
            "rollback", "rollback", f"version {self.previous_version}", evidence, checks, text, index
        )
