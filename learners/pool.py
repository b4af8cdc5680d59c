"""The ``auto`` learner: a small pool of cheap learners that all learn every label; the one with the lowest recent
prequential loss answers.

Why: no single cheap learner is best on every stream (the accuracy suite: linear models win on Hyperplane, SEA and
elec, Hoeffding trees on Agrawal and STAGGER, and which one wins changes after a drift). Each member is scored on
every label *before* it learns it (test-then-train), so the choice is made on the same evidence a plain learner's
accuracy is measured on. In the trainer, a regression pool's members are also scored on what their copies in the
served snapshot answer (:meth:`Pool.score_served`): test-then-train alone ignores the label delay, and on
TrumpApproval it chose the member whose served answers were the worst. Serving costs one member's prediction (a
blend of two for regression); a release carries the members (a few KB).

A pool that a drift alarm starts (the lifecycle's challenger) also holds *warm* copies of the champion pool's
members (:meth:`Pool.warm_start`): a fresh pool wins soon after an abrupt drift and then stays worse than the old
lineage would have been had it kept learning (a continuing Hoeffding tree keeps its splits and its leaves re-learn),
so the copies keep what the old lineage knows and the pool's own choice decides when they are right again. Bounded:
at most as many copies as fresh members, and ``WARM_PRUNE`` labels later one member of each kind is kept.

Classification: logistic regression (``multiclass: auto``), the same on pairwise feature products (``degree: 2``,
only with at most ``MAX_QUADRATIC_FEATURES`` features) and a Hoeffding tree. Regression: linear regression and a
Hoeffding tree regressor, blended. ``members`` (a list of ``{name, params}``) replaces them.

>>> from driftline.config import LearnerSpec
>>> from learners.specs import build_learner
>>> model = build_learner(LearnerSpec("auto"))
>>> for i in range(200):
...     model.learn_one({"a": float(i % 2)}, i % 2)
>>> model.predict_one({"a": 1.0}), model.model.leader
(1, 0)
"""

from __future__ import annotations

import math
from typing import Any

from driftline.errors import LearnerError

#: Weight of the newest loss in each member's running loss: about the last 200 labels decide.
FADE = 0.995
WARMUP = 50.0  # faded count of labels before a regression pool blends its members
#: At a drift alarm on the served model, a regression champion pool's faded losses and count are multiplied by this
#: (the blend then weighs the labels since the alarm ~1 / ALARM_KEEP times as much as before; None: off).
ALARM_KEEP: float | None = 0.25
#: A regression pool weights each member by 1 / recent MAE ** BLEND_POWER. 8 rather than 2 (inverse squared
#: MAE): plain pools at delay 50, seeds 1-3, MAE against the best single member: friedman-lea +0.5..+1.7 % with 2,
#: -0.4..+0.3 % with 4, -0.7..-1.1 % with 8; friedman-gra -7.5..-8.4 % with 2, -7.9..-8.9 % with 4, -8.1..-9.0 %
#: with 8. A clearly worse member must weigh much less than inverse-squared gives it; two close members still
#: share the answer.
BLEND_POWER = 8.0
#: A member with ``params.degree == 2`` learns on every pairwise product of the features: its cost grows with the
#: square of their number, so it is dropped at the first example when there are more than this many.
MAX_QUADRATIC_FEATURES = 12
#: A member's loss on a label, when the served snapshot holds its copy (``Pool.score_served``): this share of what
#: the copy answered plus the rest of its own test-then-train loss, by task. Why a mix: the served copy measures the
#: member as the scorers use it (aged by the release cadence, holds and rollbacks; *not* by the label delay: scored
#: when the label comes back, the snapshot served then has learned the labels of the events in flight, session 21
#: (poolrule); TrumpApproval at delay 50, plain
#: ``auto`` MAE 7.13, 4.68 with the served copy alone, 4.59 with half), but a snapshot served for long measures the
#: member's old self. Why 0 for classification (the trainer then skips the copies' predictions): measured at 1,
#: elec fell 0.7846 -> 0.7731 and weather.csv 0.7842 -> 0.7712, and the trainer's learn_batch cost 2.3 times as
#: much (three more members to predict, mirrored again after every release). BENCHMARKS-accuracy.md, session 13:
#: the pool under label delay; docs/experiments/pool_served_share.py sweeps it.
SERVED_SHARE = {"classification": 0.0, "regression": 0.5}
#: Where True (by task), the served copies' scores (:meth:`Pool.score_served`) also gate the lead: a member whose
#: faded loss (the mix above) is the lowest takes the lead from the incumbent only if its copy in the served
#: snapshot has also answered better (a lower faded loss of the served copies alone); while the incumbent stays,
#: nothing changes. Why: test-then-train scores the members as if the label delay were 0, and on an
#: autocorrelated stream a member that tracks fast looks best there and answers worse once served (elec at delay
#: 48). Only where the trainer scores the served copies (``SERVED_SHARE`` above non-zero). Why off: measured for
#: classification (guarded elec, the six gate runs; BENCHMARKS-accuracy.md, session 21: the pool's leader at the
#: label delay), it is neutral with the three members (mean .7805 -> .7815, within the paths' noise; the trainer
#: pays the served copies' predictions, 2.3 times its learn_batch in session 13) and does not stop a fast fourth
#: member's false lead (``lr: 0.05``: .7818 / .7737 / .7687 at delays 24 / 48 / 96 against .7922 / .7856 / .7818):
#: it only gates taking the lead, and a member that once led on both scores keeps it on its own. The mix (share .5
#: for classification) cost elec a point (.7818 / .7753 at 24 / 48).
SERVED_TAKE = {"classification": False, "regression": False}
#: Why no fourth classification member that tracks a moving concept faster (an LR with ``lr: 0.05``, or
#: ``degree: 2, products: raw``, River's QLR, which beats the pool by 1.5-3 points on Hyperplane with every
#: feature drifting): the pool scores its members test-then-train, as if the label delay were 0, and on an
#: autocorrelated stream a fast tracker looks best there and answers worse once served with the delay. elec at
#: delay 48, plain pool: the raw-product member alone .7776 (the pool's LR .7796, its QLR .7923) leads 62 % of
#: the events, and the pool falls .7867 -> .7805; guarded, the mean of the six gate runs .7805 -> .7656 (``lr:
#: 0.05``) and .7745 (raw products; .7793 with ``SERVED_SHARE`` 1 for classification, under ARF(10)'s .7808).
#: BENCHMARKS-accuracy.md, session 20: a fourth pool member.
#: The most members a pool takes. Why: every member learns and is scored on every label, and 3,000 members made
#: `config validate` (and a worker's start) hang (session 45); the default pools have two or three.
MAX_MEMBERS = 16
DEFAULT_MEMBERS: dict[str, list[dict[str, Any]]] = {
    "classification": [
        {"name": "logistic_regression"},
        {"name": "logistic_regression", "params": {"degree": 2}},
        {"name": "hoeffding_tree"},
    ],
    "regression": [{"name": "linear_regression"}, {"name": "hoeffding_tree"}],
}
#: River's Hoeffding tree regressor splits a leaf whose two best candidate splits are within the Hoeffding bound (a
#: tie) only once the bound is below ``tau``: at its default 0.05 (delta 1e-7) that is ~3,200 labels in the leaf.
#: A challenger's tree uses ``RECOVERY_TAU`` (0.2: a tie is split at ~400 labels). Why: a challenger has to learn
#: the new concept within about as many labels as it gets to win (``lifecycle.CHALLENGER_FRESH``), and with
#: River's default whether it does was a coin flip on the label it started at: mv-shift at seed 13, a fresh pool
#: started at labels 5,000 or 5,025 (the drift is at 5,000) kept a leaf of 1,300 labels unsplit on a tie and ended
#: at MAE 13.2, one started at 5,050-5,575 split it and ended at 3.7-7.4; so the stream's MAE turned on the index
#: of the first alarm (12.1-12.3 against 9.9-10.4; BENCHMARKS-accuracy.md, sessions 15 and 16). With 0.2 the fresh
#: tree ends at 3.6-4.4 from every start measured (seeds 1 and 7: 3.4-7.3 against 4.5-15.3); the guarded stream
#: over 16 seeds: better at 14, equal at 2, and within 0.5 MAE wherever its first alarm lands. The cost: the
#: tree keeps the rule after its promotion and grows ~1.5-2.7 times the leaves (friedman, mv-shift at 20,000).
RECOVERY_TAU: float | None = 0.2  # None: a challenger is built with the ordinary members
#: A pool that a drift alarm starts (a challenger) also gets copies of the champion pool's members as they are at
#: the alarm (:meth:`Pool.warm_start`), at most as many as its own fresh members (the best by faded loss), and
#: once it has learned ``WARM_PRUNE`` labels it keeps one member of each kind, the one with the lowest faded loss
#: (:meth:`Pool._prune`). Why: a fresh pool wins soon after an abrupt drift and then stays worse than the old
#: lineage would have been had it kept learning (a continuing tree keeps its splits; its leaves re-learn the new
#: concept): reg_neg (y -> -y at 5,000; BENCHMARKS-accuracy.md, session 16 (lead)), test-then-train MAE over labels
#: 6,250-8,000, a continuing pool 1.381 against a fresh one 1.511. The pool's own choice (the faded loss, the
#: regression blend) serves the fresh members while the copies answer the old concept and the copies once they
#: have re-learned; a false alarm's challenger is about as good as the champion. Measured (session 17, delay 50,
#: `driftline replay` defaults): reg_neg s0 MAE 1.619 -> 1.586 (tax against the plain pool +3.48 -> +1.33 %),
#: agrawal38 s0 accuracy 0.8715 -> 0.8750 (+0.74 -> +0.39 points; served error per 250 events from +500 to +1,500
#: after the drift .072/.092/.072/.056 -> .076/.068/.044/.044); streams whose challenger was not promoted are
#: unchanged, and so are the regression streams of bench.unseen but linear-reversal (+-0.1 % of tax). The cost:
#: the copies learn every label until the prune (reg_neg's replay +32 % CPU, agrawal38's +5 %).
WARM_START = True  # False: a challenger pool is built with its fresh members only
#: Labels after the warm start at which the pool keeps one member of each kind (None: it keeps all of them). Why
#: prune: the copies cost a second learn of every member (and a bigger release) for as long as they are kept, and
#: never pruned, tenclass_swap s0 raised two more (false) alarms, at 7,635 and 9,964. Why 2,000: the pick is one
#: faded loss (the last ~200 labels) at that label, and an early pick keeps the wrong tree: reg_neg s0 MAE 1.617 at
#: 1,000, 1.619 at 1,500, 1.586 at 2,000, 1.585 at 3,000, 1.586 never (the fresh tree still looks better over the
#: first ~1,500 labels after the flip; the copied one is better from ~1,700 on). agrawal38 s0: 0.1250 error at 1,000
#: and 2,000, 0.1246 at 3,000 or never. ``docs/experiments/warm_prune.py`` sweeps it.
WARM_PRUNE: int | None = 2000
#: While a regression pool holds warm copies, its blend takes each kind's best member only (:meth:`Pool.predict_one`).
#: Why: a copy and its fresh twin answer alike, and blended both, their kind weighed twice against the other: the
#: two linear members within 0.3 MAE of each other doubled the linear weight against a tree that was about to be
#: better, and mv-shift got worse at every seed measured (seed 13 9.392 -> 9.741; 9.392 again with this). It costs
#: some of reg_neg's gain (1.5793 -> 1.5856 against base's 1.6192). False: every member is blended.
WARM_BLEND_BY_KIND = True


def recovery_members(task: str) -> list[dict[str, Any]] | None:
    """The default members for a pool that a drift alarm starts (a challenger), or None where they are the
    ordinary ones (classification: not measured; its trees split on the information gain's own bound)."""
    if task != "regression" or RECOVERY_TAU is None:
        return None
    return [
        {**m, "params": {"tau": RECOVERY_TAU, **m.get("params", {})}} if m["name"] == "hoeffding_tree" else m
        for m in DEFAULT_MEMBERS[task]
    ]


class Pool:
    """Members (``learners.specs.Learner``) learning side by side; ``leader`` indexes the one that answers."""

    # Class-level default, so a pool pickled before it existed (a trainer's checkpoint) restores: each member's
    # loss on the next label as its copy in the served snapshot answered it (:meth:`score_served`), or None.
    _served_losses: list[float] | None = None
    # Faded sums of each member's loss as its served copy answered (only the labels :meth:`score_served` scored),
    # for ``SERVED_TAKE``; None until the first such label, and again whenever the members change.
    _served_faded: list[float] | None = None
    # Class-level defaults (a pool pickled before session 17 restores as one never warm-started): labels learned
    # since :meth:`warm_start`, and whether the pool still holds its warm copies next to its fresh members.
    _since_warm = 0
    _warm = False
    _blending = False  # has blended once (an alarm's shrunk count does not stop the blend)

    def __init__(self, members: list[Any], task: str) -> None:
        if not members:
            raise LearnerError("learner 'auto': needs at least one member")
        self.members = members
        self.task = task
        self.losses = [0.0] * len(members)  # faded sums of prequential loss
        self.weight = 0.0  # faded count (same for every member)
        self.leader = 0

    def learn_one(self, x: dict[str, Any], y: Any, fast: Any = None) -> None:
        """Test then train every member on ``x`` (already cleaned by the Learner wrapping this pool).

        ``fast`` (the trainer's, ``learners.live_models``): ``fast.predict(k, member, x)`` and ``fast.learn(k,
        member, x, y)`` in place of the member's own ``predict_one`` / ``learn_one``, with the same answers and the
        same learned state, through the trainer's fast paths for the member's kind.
        """
        if self.weight == 0.0 and len(x) > MAX_QUADRATIC_FEATURES and len(self.members) > 1:
            keep = [k for k, m in enumerate(self.members) if m.spec.params.get("degree", 1) != 2] or [0]
            self.members = [self.members[k] for k in keep]
            self.losses = [self.losses[k] for k in keep]
            if self._served_losses is not None:
                self._served_losses = [self._served_losses[k] for k in keep]
            self._served_faded = None
        if self._warm:
            self._since_warm += 1
            if WARM_PRUNE is not None and self._since_warm > WARM_PRUNE:
                self._prune()
        served, self._served_losses = self._served_losses, None
        faded = self._served_faded
        if served is not None:
            if faded is None or len(faded) != len(served):
                faded = [0.0] * len(served)
            faded = self._served_faded = [FADE * f + s for f, s in zip(faded, served, strict=True)]
        for k, member in enumerate(self.members):
            pred = member.predict_one(x, cleaned=True) if fast is None else fast.predict(k, member, x)
            loss = self._loss(pred, y)
            if served is not None:
                share = SERVED_SHARE[self.task]
                loss = (1.0 - share) * loss + share * served[k]
            self.losses[k] = FADE * self.losses[k] + loss
            if fast is None:
                member.learn_one(x, y, cleaned=True)
            else:
                fast.learn(k, member, x, y)
        self.weight = FADE * self.weight + 1.0
        # The current leader keeps answering on ties, so two equal members do not flap.
        best = min(range(len(self.members)), key=lambda k: (self.losses[k], k != self.leader))
        if (
            best != self.leader
            and SERVED_TAKE[self.task]
            and faded is not None
            and len(faded) == len(self.members)
            and faded[best] > faded[self.leader]
        ):
            best = self.leader  # its served copy answered worse than the incumbent's: not at the delay
        self.leader = best

    def alarmed(self) -> None:
        """A drift alarm on the served model: the faded losses forget most of their past (``ALARM_KEEP``)."""
        if self.task != "regression" or ALARM_KEEP is None:
            return
        self._blending = self._blending or self.weight >= WARMUP
        self.losses = [ALARM_KEEP * loss for loss in self.losses]
        self.weight *= ALARM_KEEP

    def warm_start(self, champion: Pool) -> None:
        """Add copies of ``champion``'s members (learned state included) to this fresh pool: as many as this pool
        has members at most, the champion's best by faded loss first, kept in the champion's order. They learn
        every label from now on, like the fresh ones, and start with the same (zero) loss.

        Why the cap: a promoted pool is itself the next alarm's champion, so without it the pool would grow with
        every alarm; with it a pool never holds more than twice its fresh members, and :meth:`_prune` brings it
        back to one member of each kind ``WARM_PRUNE`` labels after the warm start. See ``WARM_START``."""
        if champion.task != self.task or self._warm or self.weight:
            return
        n = len(self.members)
        ranked = sorted(range(len(champion.members)), key=lambda k: (champion.losses[k], k))[:n]
        warm = [champion.members[k].copy() for k in sorted(ranked)]
        self.members = self.members + warm
        self.losses = self.losses + [0.0] * len(warm)
        self._served_losses = self._served_faded = None
        self._warm, self._since_warm = True, 0

    def _prune(self) -> None:
        """Keep one member of each kind (its name and parameters, a tree's ``tau`` aside): the one with the lowest
        faded loss, in the pool's order. The pool is then as large as it was before :meth:`warm_start`."""
        keep = sorted(self._best_of_kinds().values())
        self.leader = keep.index(self.leader) if self.leader in keep else 0
        self.members = [self.members[k] for k in keep]
        self.losses = [self.losses[k] for k in keep]
        self._served_losses = self._served_faded = None
        self._warm = False

    def _best_of_kinds(self) -> dict[str, int]:
        """The index of the member with the lowest faded loss of each kind (name and parameters, ``tau`` aside;
        the first on a tie)."""
        best: dict[str, int] = {}
        for k, m in enumerate(self.members):
            params = {p: v for p, v in m.spec.params.items() if p != "tau"}
            kind = repr((m.spec.name, sorted(params.items())))
            if kind not in best or self.losses[k] < self.losses[best[kind]]:
                best[kind] = k
        return best

    def _loss(self, pred: Any, y: Any) -> float:
        if self.task == "classification":
            return 0.0 if pred == y else 1.0
        loss = abs(float(pred) - float(y))
        return loss if math.isfinite(loss) else 1e12

    def score_served(self, served: Pool, x: dict[str, Any], y: Any, predict: Any = None) -> None:
        """Score each member, at the next :meth:`learn_one` (of this ``x`` and ``y``), by what its copy in
        ``served`` (the pool of the snapshot being served, a copy of this one from its last release) answers for
        ``x``, instead of by its own test-then-train answer. ``predict(member, x)``: the caller's way to ask a
        frozen member (default ``member.predict_one(x, cleaned=True)``).

        Why: the scorers answer with a snapshot, and the labels come back later still, so what counts is how well
        each member answers *after* the snapshot and the label delay have aged it, not how well it predicts the
        very next label. Test-then-train scores them as if the delay were 0, and a member that merely follows an
        autocorrelated target (a linear model on a growing ``ordinal_date``: TrumpApproval at delay 50) looks best
        there while its served answers are the worst (BENCHMARKS-accuracy.md, session 13: the pool under label
        delay). The served snapshot's members are aged copies, already held by the trainer; but the snapshot served
        when the label comes back is aged by the release cadence (and holds and rollbacks) only: it has learned the
        labels of the events in flight. The copy that answered the event when it arrived (its ``served_version``)
        is the one the delay ages (``docs/experiments/pool_arrival.py``; BENCHMARKS-accuracy.md, session 21).
        Ignored when ``served`` has other members (the first snapshot, before this pool dropped a quadratic
        member; a pool with other ``members``).
        """
        self._served_losses = None
        if len(served.members) != len(self.members) or any(
            a.spec != b.spec for a, b in zip(served.members, self.members, strict=True)
        ):
            return
        if self.task == "regression" and (
            isinstance(y, bool) or not isinstance(y, (int, float)) or not math.isfinite(y)
        ):
            return  # the members will not learn it either
        ask = predict or (lambda m, xc: m.predict_one(xc, cleaned=True))
        self._served_losses = [self._loss(ask(m, x), y) for m in served.members]

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        return self.members[self.leader].predict_proba_one(x, cleaned=True)

    def predict_one(self, x: dict[str, Any]) -> Any:
        if self.task == "classification" or (self.weight < WARMUP and not self._blending):
            return self.members[self.leader].predict_one(x, cleaned=True)
        # Regression: members' answers weighted by inverse recent MAE to the power BLEND_POWER. Two regressors'
        # errors are partly independent, so the blend beats the better one unless the other is far worse (then
        # its weight is small): measured on Friedman streams in BENCHMARKS-accuracy.md.
        weights = [1.0 / max(loss / self.weight, 1e-12) ** BLEND_POWER for loss in self.losses]
        if self._warm and WARM_BLEND_BY_KIND:
            # A warm copy and its fresh twin are two answers of one kind of model: blended both, that kind would
            # count twice against the others. Each kind's best member answers for it.
            best = set(self._best_of_kinds().values())
            weights = [w if k in best else 0.0 for k, w in enumerate(weights)]
        total = sum(weights)
        return (
            sum(
                w * m.predict_one(x, cleaned=True)
                for w, m in zip(weights, self.members, strict=True)
                if w > 0.0
            )
            / total
        )


def build_pool(params: dict[str, Any], task: str, seed: int) -> Pool:
    """``auto``'s builder for ``learners.specs.KINDS``."""
    from driftline.config import LearnerSpec
    from learners.specs import Learner

    extra = set(params) - {"members"}
    if extra:
        raise LearnerError(f"learner 'auto': unknown parameter {sorted(extra)[0]!r}; valid: members")
    specs = params.get("members", DEFAULT_MEMBERS[task])
    if not isinstance(specs, list) or not all(isinstance(m, dict) and "name" in m for m in specs):
        raise LearnerError("learner 'auto': parameter 'members' must be a list of mappings with a 'name'")
    if any(m["name"] == "auto" for m in specs):
        raise LearnerError("learner 'auto': a member cannot itself be 'auto'")
    if len(specs) > MAX_MEMBERS:
        raise LearnerError(
            f"learner 'auto': at most {MAX_MEMBERS} members, got {len(specs):,} (every member learns every label)"
        )
    members = [Learner(LearnerSpec(m["name"], dict(m.get("params", {}))), task, seed) for m in specs]
    return Pool(members, task)
