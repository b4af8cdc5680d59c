"""The lifecycle's three release policies on their own (pure logic, a recording judge instead of the guard's)."""

from __future__ import annotations

from typing import Any

from driftline.config import GuardConfig, LearnerSpec
from learners.guard import Decision, PairedEvidence
from learners.policies import (
    CHECK_EVERY,
    ChallengerPolicy,
    IncrementalPolicy,
    Lineage,
    ProbationPolicy,
)
from learners.specs import Learner, build_learner

GUARD = GuardConfig(min_examples=20, max_examples=200, challenger_grace=5, probation_examples=100)


def _model() -> Learner:
    return build_learner(LearnerSpec("logistic_regression"), "classification", 0)


class Judge:
    """Answers ``outcome`` and records what it was asked."""

    def __init__(self, outcome: str, checks: dict[str, bool | str] | None = None) -> None:
        self.outcome, self.checks = outcome, checks or {}
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, kind: str, ev: PairedEvidence, cand: Learner, base: Learner, index: int) -> Decision:
        self.calls.append((kind, ev.n, index))
        return Decision(self.outcome, kind, "x", {}, dict(self.checks), "", index)


def _pairs(policy: Any, n: int, cand_right: bool) -> None:
    for _ in range(n):
        policy.observe(1, 1 if cand_right else 0, 0 if cand_right else 1, None)


def test_incremental_waits_for_the_release_floor_then_for_evidence() -> None:
    policy, judge, m = IncrementalPolicy("classification", GUARD), Judge("promote"), _model()
    args = dict(release_every=30, served_learned=True, reference=False, champion=m, served=m, judge=judge)
    for i in range(29):
        policy.observe(1, 1, 1, None)  # ties: no evidence either way
        policy.since_release += 1
        assert policy.decide(i, **args) is None
    policy.since_release += 1
    assert policy.decide(29, **args) is None  # due, but non-inferiority not shown on ties alone
    assert judge.calls == []
    _pairs(policy, 150, cand_right=True)
    decision = policy.decide(180, **args)
    assert decision is not None and decision.outcome == "promote" and judge.calls[-1][0] == "incremental"
    policy.released()
    assert policy.since_release == 0 and policy.evidence.n == 0


def test_incremental_after_a_refusal_waits_check_every_pairs_or_restarts_on_the_reference_set() -> None:
    m = _model()
    policy, judge = IncrementalPolicy("classification", GUARD), Judge("reject")
    args = dict(release_every=1, served_learned=True, reference=False, champion=m, served=m, judge=judge)
    policy.since_release = 1
    _pairs(policy, 150, cand_right=True)
    assert policy.decide(1, **args) is not None
    _pairs(policy, CHECK_EVERY - 1, cand_right=True)
    assert policy.decide(2, **args) is None  # not yet: CHECK_EVERY pairs since the refusal
    _pairs(policy, 1, cand_right=True)
    assert policy.decide(3, **args) is not None and len(judge.calls) == 2
    poisoned = IncrementalPolicy("classification", GUARD)
    poisoned.since_release = 1
    _pairs(poisoned, 150, cand_right=True)
    decision = poisoned.decide(1, **{**args, "judge": Judge("reject", {"reference": "worse"})})
    assert decision is not None and poisoned.evidence.n == 0  # the comparison starts over


def test_cold_start_offers_the_first_release_without_evidence() -> None:
    policy, judge, m = IncrementalPolicy("classification", GUARD), Judge("promote"), _model()
    policy.since_release = 50
    decision = policy.decide(
        50, release_every=1000, served_learned=False, reference=False, champion=m, served=m, judge=judge
    )
    assert decision is not None and judge.calls == [("incremental", 0, 50)]


def test_challenger_grace_then_promotion_hands_over_its_lineage() -> None:
    policy, judge, champ = ChallengerPolicy("classification", GUARD), Judge("promote"), _model()
    lineage = Lineage(_model(), 7)
    policy.start(lineage, index=100)
    asked: list[Learner] = []
    for _ in range(GUARD.challenger_grace):
        policy.observe(1, 0, None, lambda mdl: asked.append(mdl) or 1)
    assert asked == [] and policy.evidence.n == 0  # the grace period is not compared
    for i in range(60):
        policy.observe(1, 0, None, lambda mdl: 1)
        decision, promoted = policy.decide(200 + i, champ, judge)
        if decision is not None:
            break
    assert decision is not None and promoted is lineage and policy.lineage is None
    assert GUARD.min_examples <= judge.calls[0][1] < 60


def test_a_challenger_never_shown_better_is_judged_once_more_and_dropped() -> None:
    policy, judge, champ = ChallengerPolicy("classification", GUARD), Judge("promote"), _model()
    policy.start(Lineage(_model()), index=0)
    for _ in range(GUARD.challenger_grace + GUARD.max_examples):
        policy.observe(1, 1, None, lambda mdl: 1)  # ties only: never better
    decision, promoted = policy.decide(999, champ, judge)
    assert decision is not None and promoted is None and policy.lineage is None
    assert judge.calls == [("challenger", GUARD.max_examples, 999)]


def test_probation_asks_for_a_rollback_when_the_previous_model_is_better_and_ends_quietly_otherwise() -> None:
    worse = ProbationPolicy("classification", GUARD)
    previous = Lineage(_model())
    worse.start(previous, version=3)
    decision = None
    for i in range(GUARD.probation_examples):
        worse.observe(1, 0, 1, None)  # the served (new) model is wrong, the previous one right
        decision = worse.decide(i)
        if decision is not None:
            break
    assert decision is not None and decision.outcome == "rollback" and worse.previous is previous
    fine = ProbationPolicy("classification", GUARD)
    fine.start(Lineage(_model()), version=3)
    for i in range(GUARD.probation_examples):
        fine.observe(1, 1, 1, None)
        assert fine.decide(i) is None
    assert not fine.active and fine.version is None
