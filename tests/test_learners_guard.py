"""Guard decisions on constructed cases."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest

from driftline.config import GuardConfig
from learners.guard import EProcess, MixtureEProcess, PairedEvidence, Probation, judge


def _evidence(
    n: int, cand_acc: float, base_acc: float, seed: int = 0, labels=(0, 1), config: GuardConfig | None = None
) -> PairedEvidence:
    """Paired predictions with the given accuracies; errors drawn independently."""
    rng = random.Random(seed)
    ev = PairedEvidence("classification", config)
    for _ in range(n):
        y = rng.choice(labels)
        cand = y if rng.random() < cand_acc else 1 - y
        base = y if rng.random() < base_acc else 1 - y
        ev.add(y, cand, base)
    return ev


class Const:
    """A stub model answering one value."""

    def __init__(self, value) -> None:
        self.value = value

    def predict_one(self, x):
        return self.value


class Rule:
    """A stub model: label 1 when x['a'] > 0, optionally flipped."""

    def __init__(self, flipped: bool = False) -> None:
        self.flipped = flipped

    def predict_one(self, x):
        return int((x["a"] > 0) != self.flipped)


def test_better_challenger_is_promoted_with_evidence() -> None:
    d = judge("challenger", _evidence(400, 0.95, 0.7), GuardConfig())  # by more than superiority_margin
    assert d.outcome == "promote", d.text
    assert d.evidence["log_e_value"] >= d.evidence["log_e_threshold"] == pytest.approx(math.log(20))
    assert d.evidence["candidate_only_right"] > d.evidence["baseline_only_right"]
    assert d.checks["statistical_test"] is True
    metrics = d.to_metrics()
    assert metrics["guard.check.statistical_test"] == 1.0 and "guard.log_e_value" in metrics
    assert json.loads(d.to_json())["outcome"] == "promote"


def test_worse_or_equal_challenger_is_rejected() -> None:
    assert judge("challenger", _evidence(400, 0.7, 0.85), GuardConfig()).outcome == "reject"
    assert judge("challenger", _evidence(400, 0.8, 0.8, seed=3), GuardConfig()).outcome == "reject"


def test_incremental_update_non_inferiority() -> None:
    same = PairedEvidence("classification")
    for i in range(300):  # an incremental update that changes two answers out of 300
        y = i % 2
        same.add(y, y if i not in (5, 6) else 1 - y, y if i != 7 else 1 - y)
    assert judge("incremental", same, GuardConfig()).outcome == "promote"
    worse = _evidence(400, 0.7, 0.85)
    d = judge("incremental", worse, GuardConfig())
    assert d.outcome == "reject" and d.evidence["log_e_value"] < d.evidence["log_e_threshold"]


def test_anytime_test_with_few_discordant_pairs() -> None:
    ev = PairedEvidence("classification")
    for i in range(200):
        ev.add(1, 1, 1 if i >= 3 else 0)  # candidate right 3 more times: not significant
    plain = GuardConfig(superiority_margin=0.0)  # the test itself, without the default margin
    assert judge("challenger", ev, plain).outcome == "reject"
    ev2 = PairedEvidence("classification", plain)
    for i in range(200):
        ev2.add(1, 1, 1 if i >= 12 else 0)  # 12 vs 0
    d = judge("challenger", ev2, plain)
    assert d.outcome == "promote" and d.evidence["log_e_value"] >= math.log(20)


def test_e_process_keeps_its_level_under_continuous_monitoring() -> None:
    # Equal models (H0 true at the boundary): looked at after every pair, the test may reject at most alpha of
    # the time over the whole run. 300 runs of 400 pairs with 20 % discordance.
    rejected = 0
    for seed in range(300):
        rng = random.Random(seed)
        test = EProcess(0.0)
        for _ in range(400):
            r = rng.random()
            test.add(-1.0 if r < 0.1 else 1.0 if r < 0.2 else 0.0)
            if test.rejects(0.05):
                rejected += 1
                break
    assert rejected <= 0.05 * 300
    # A clearly better candidate is shown better after a few dozen pairs.
    test, n = EProcess(0.0), 0
    rng = random.Random(1)
    while not test.rejects(0.05):
        r = rng.random()
        test.add(-1.0 if r < 0.3 else 1.0 if r < 0.05 else 0.0)
        n += 1
    assert n < 60


def test_the_mixture_e_process_keeps_its_level_and_bets_after_early_losses() -> None:
    """Session 32 (``MixtureEProcess``): half the wealth bets as ``EProcess``, half on fixed bets. At the null's
    boundary (non-inferiority at 0.03, the champion worse by 0.03, 20 % discordance) it rejects at most alpha of
    the time under monitoring after every pair; after two lost pairs and then wins, ``EProcess`` stakes nothing
    until the running mean is back under the margin, the mixture gains from the first win; a cap scales every
    bettor alike."""
    rejected = 0
    for seed in range(300):
        rng = random.Random(seed)
        test = MixtureEProcess(0.03)
        for _ in range(400):
            r = rng.random()
            test.add(1.0 if r < 0.115 else -1.0 if r < 0.2 else 0.0)  # mean 0.115 - 0.085 = 0.03
            if test.rejects(0.05):
                rejected += 1
                break
    assert rejected <= 0.05 * 300
    plain, mixed = EProcess(0.03), MixtureEProcess(0.03)
    for d in (1.0, 1.0):
        plain.add(d)
        mixed.add(d)
    lost, before = plain.log_wealth, mixed.log_wealth
    for _ in range(2):  # two wins: the running mean (2/3, then 1/4) is still over the margin
        plain.add(-1.0)
        mixed.add(-1.0)
    assert plain.log_wealth == lost  # staked nothing
    assert mixed.log_wealth > before + 0.1 and mixed.n == plain.n == 4 and mixed.s == plain.s
    capped = copy.deepcopy(mixed)
    capped.log_wealth = 1.0
    assert capped.log_wealth == pytest.approx(1.0)
    before = mixed.log_wealth
    for test in (mixed, capped):
        test.add(1.0)
    assert capped.log_wealth - 1.0 == pytest.approx(mixed.log_wealth - before)  # the same bets, scaled


def test_poisoned_candidate_is_stopped_by_reference_set() -> None:
    # On the (poisoned) stream labels the candidate looks far better...
    ev = _evidence(400, 0.95, 0.6)
    reference = [({"a": a}, int(a > 0)) for a in (random.Random(i).uniform(-1, 1) for i in range(200))]
    d = judge(
        "challenger", ev, GuardConfig(), candidate=Rule(flipped=True), baseline=Rule(), reference=reference
    )
    # ...but it is wrong on the trusted reference set.
    assert d.outcome == "reject"
    assert d.checks["reference"] is not True and "reference" in d.text
    assert d.evidence["reference_gap"] > 0.9
    # The same evidence without the reference set would have been promoted.
    assert (
        judge("challenger", ev, GuardConfig(), candidate=Rule(flipped=True), baseline=Rule()).outcome
        == "promote"
    )


def test_high_disagreement_is_held_unless_the_gain_is_beyond_the_hold_margin() -> None:
    modest = _evidence(2000, 0.62, 0.45)  # disagree on ~51 %, better by ~17 points: shown better, not by 20
    d = judge("challenger", modest, GuardConfig(max_disagreement=0.5, hold_margin=0.2))
    assert d.outcome == "hold", d.text
    assert d.evidence["disagreement"] > 0.5 and d.checks["disagreement"] is not True
    assert judge("challenger", modest, GuardConfig(max_disagreement=0.9)).outcome == "promote"
    large = _evidence(400, 0.98, 0.35)  # disagree on ~62 %, better by ~60 points
    d = judge("challenger", large, GuardConfig(max_disagreement=0.5, hold_margin=0.2))
    assert d.outcome == "promote" and "better by more than 0.2" in d.text
    # The margins are fixed when a comparison starts (the e-processes bet on them from the first pair).
    strict = GuardConfig(max_disagreement=0.5, hold_margin=0.7)
    assert judge("challenger", _evidence(400, 0.98, 0.35, config=strict), strict).outcome == "hold"


def test_collapsed_candidate_is_rejected() -> None:
    rng = random.Random(1)
    ev = PairedEvidence("classification")
    for _ in range(400):
        y = rng.choice((0, 1))
        ev.add(y, 1, y if rng.random() < 0.3 else 1 - y)
    d = judge("challenger", ev, GuardConfig())
    assert d.outcome == "reject" and d.checks["not_collapsed"] != True  # noqa: E712


def test_one_answer_is_not_collapse_where_the_baseline_gave_one_answer_too() -> None:
    """An autocorrelated stretch (elec: prices high for a day): the served model answers 1 throughout, the labels
    are mostly 1; a candidate answering 1 too is not broken. Against a baseline that answered both classes, the
    same candidate is collapsed."""
    shown = {}
    for varied in (False, True):
        ev = PairedEvidence("classification")
        for i in range(60):
            y = 0 if i % 10 == 0 else 1
            ev.add(y, 1, (i % 2) if varied else 1)
        shown[varied] = judge("incremental", ev, GuardConfig()).checks["not_collapsed"]
    assert shown[False] is True and shown[True] == "predicts a single value"


def test_segment_margin_and_latency_budget_veto() -> None:
    rng = random.Random(2)
    ev = PairedEvidence("classification")
    for _ in range(600):
        y = rng.choice((0, 1))
        seg = rng.choice(("north", "south"))
        cand_acc = 0.99 if seg == "north" else 0.6  # far better overall, worse on one segment
        cand = y if rng.random() < cand_acc else 1 - y
        base = y if rng.random() < 0.75 else 1 - y
        ev.add(y, cand, base, segment=seg)
    d = judge("challenger", ev, GuardConfig(max_disagreement=1.0))
    assert d.outcome == "reject" and "south" in str(d.checks["segments"])
    good = _evidence(400, 0.9, 0.75)
    sample = [{"a": 1.0}] * 20
    slow = judge(
        "challenger", good, GuardConfig(max_predict_latency_ms=-1.0), candidate=Const(1), sample=sample
    )
    assert slow.outcome == "reject" and slow.checks["latency"] is not True


def test_one_preempted_prediction_does_not_veto_a_release_but_a_slow_model_does() -> None:
    """The latency check takes the median prediction time: a machine that preempts the trainer during one call
    (here: one timed call takes 150 ms) must not change the guard's decision; a model slow on every call must."""
    import time

    class Stalls:
        def __init__(self, every: int, seconds: float) -> None:
            self.calls, self.every, self.seconds = 0, every, seconds

        def predict_one(self, x: dict) -> int:
            self.calls += 1
            if self.calls % self.every == 0:
                time.sleep(self.seconds)
            return 1

    good = _evidence(400, 0.9, 0.75)
    sample = [{"a": 1.0}] * 20
    config = GuardConfig(max_predict_latency_ms=5.0)
    once = judge("challenger", good, config, candidate=Stalls(5, 0.15), sample=sample)
    assert once.checks["latency"] is True and once.evidence["predict_latency_ms"] < 5.0
    always = judge("challenger", good, config, candidate=Stalls(1, 0.006), sample=sample)
    assert always.outcome == "reject" and "budget 5.0 ms" in str(always.checks["latency"])
    # A cold start has one or two recent events: one preempted call among them vetoed the release (session 19).
    for n in (1, 2):
        cold = judge("challenger", good, config, candidate=Stalls(2, 0.15), sample=sample[:n])
        assert cold.checks["latency"] is True and cold.evidence["predict_latency_ms"] < 5.0


def test_nonfinite_regression_outputs_are_rejected_and_paired_t_test_works() -> None:
    rng = random.Random(3)
    good, bad = PairedEvidence("regression"), PairedEvidence("regression")
    for _ in range(300):
        y = rng.gauss(0, 1)
        good.add(y, y + rng.gauss(0, 0.2), y + rng.gauss(0, 1.0))
        bad.add(y, float("nan") if rng.random() < 0.1 else y, y + rng.gauss(0, 1.0))
    d = judge("challenger", good, GuardConfig())
    assert d.outcome == "promote" and d.evidence["log_e_value"] > math.log(100)
    assert judge("incremental", good, GuardConfig()).outcome == "promote"
    assert judge("challenger", bad, GuardConfig()).checks["finite_outputs"] is not True


def test_probation_rolls_back_a_worse_new_model_and_not_an_equal_one() -> None:
    rng = random.Random(4)
    worse, fine = Probation("classification", GuardConfig(), 7), Probation("classification", GuardConfig(), 7)
    decision = None
    for i in range(500):
        y = rng.choice((0, 1))
        old = y if rng.random() < 0.9 else 1 - y
        worse.add(y, y if rng.random() < 0.6 else 1 - y, old)
        fine.add(y, y if rng.random() < 0.9 else 1 - y, old)
        decision = decision or worse.check(i)
        assert fine.check(i) is None
    assert decision is not None and decision.outcome == "rollback" and "version 7" in decision.text
    assert fine.finished


def test_default_challenger_must_win_by_the_superiority_margin() -> None:
    """A fresh challenger 8 points better on a window is not promoted; one 20 points better is (issue 13: on elec,
    challengers that won short windows by a little cost the champion its long memory, 0.95 points overall)."""
    shown = {}
    for gain in (8, 20):
        ev = PairedEvidence("classification", GuardConfig())
        for i in range(1000):
            k = i % 100  # candidate right on 90 % of pairs, the champion on 90 - gain %, never the other way
            ev.add(1, 1 if k < 90 else 0, 1 if gain <= k < 90 else 0)
        shown[gain] = ev.better.rejects(GuardConfig().alpha)
    assert shown == {8: False, 20: True}


def test_probation_rolls_back_without_the_challenger_margin() -> None:
    """The challenger's superiority_margin guards a fresh model's short memory; probation guards against a bad
    release and rolls back as soon as the previous model is shown better (here by 5 points, under the margin)."""
    probation = Probation("classification", GuardConfig(), previous_version=1)
    decision = None
    for i in range(1000):
        k = i % 100  # the previous model right on 90 %, the new one on 85 %, never the other way round
        probation.add(1, new_pred=1 if 5 <= k < 90 else 0, previous_pred=1 if k < 90 else 0)
        decision = decision or probation.check(i)
    assert decision is not None and decision.outcome == "rollback"


def test_a_young_served_model_gets_no_disagreement_hold() -> None:
    """``may_hold`` False (the served snapshot is young): a disagreeing candidate shown non-inferior is promoted
    instead of held; every other check still decides."""
    config = GuardConfig(max_disagreement=0.5, hold_margin=0.2)
    modest = _evidence(2000, 0.62, 0.45)  # disagree on ~51 %, better by ~17 points: non-inferior, not by 20
    assert judge("incremental", modest, config).outcome == "hold"
    d = judge("incremental", modest, config, may_hold=False)
    assert d.outcome == "promote" and d.checks["disagreement"] is True, d.text
    unproven = _evidence(30, 0.6, 0.6)  # nothing shown either way: the test still vetoes
    assert judge("incremental", unproven, config, may_hold=False).outcome == "reject"
    nonfinite = PairedEvidence("regression")
    for i in range(30):
        nonfinite.add(float(i), float("nan"), float(i))
    d = judge("incremental", nonfinite, config, candidate=Const(float("nan")), may_hold=False)
    assert d.outcome == "reject" and d.checks["finite_outputs"] is not True


@pytest.mark.parametrize("at", [0, 1, 40], ids=["first-pair", "second-pair", "later"])
def test_one_absurd_regression_label_does_not_let_a_poisoned_candidate_through(at: int) -> None:
    """Session 43: the unit of the paired differences was the baseline's plain mean error over the pairs, so one
    label of 1e99 (under the label cap) made it ~1e96 and every later difference ~0: the model that had learned
    that label (answers ~1e9 off) passed non-inferiority and was served. Now each pair's error counts at most
    ``SCALE_CAP`` times the typical one, so the poisoned candidate is held wherever the label falls (with the plain
    mean, ``SCALE_CAP`` 1e308, all three cases promote it)."""
    rng = random.Random(11)
    ev = PairedEvidence("regression")
    for i in range(200):
        y = rng.gauss(0, 1)
        base = y + rng.gauss(0, 0.1)
        if i == at:
            ev.add(1e99, base, base)  # the poison label: both models equally far from it
        elif i > at:
            ev.add(y, y + rng.choice((-1e9, 1e9)) * rng.random(), base)  # the model that learned it
        else:
            ev.add(y, y + rng.gauss(0, 0.1), base)
    d = judge("incremental", ev, GuardConfig())
    assert d.outcome != "promote", d.reason
    assert d.evidence["log_e_value"] < 0
    # the same labels, the poison among them, and an honest update: it still goes out
    rng = random.Random(11)
    fine = PairedEvidence("regression")
    for i in range(200):
        y = rng.gauss(0, 1)
        base = y + rng.gauss(0, 0.1)
        fine.add(1e99 if i == at else y, y + rng.gauss(0, 0.05), base)  # an update that learned something
    assert judge("incremental", fine, GuardConfig()).outcome == "promote"
