"""Session 36 (helper prior36): the ``auto`` pool serving the class prior where no member beats it at the label
delay (issue 13, rbfdrift-fast). An experiment patch, not in the code that serves.

The rule (``install()``): the classification pool gets a fourth member, River's ``dummy.PriorClassifier`` (the
most frequent label so far). The three learning members still choose the learning leader by test-then-train loss,
as main. The prior answers instead of that leader when its faded loss is lower than the leader's faded
test-then-train loss *plus the delay penalty*: the faded mean of (loss of what the served snapshot answered when
the event arrived) - (the leader's test-then-train loss on the same label), over the labels whose event a learning
member answered. Why: test-then-train scores the members as if the label delay were 0; on a stream that moves
faster than the delay (RandomRBFDrift, every centroid at 0.01) the quadratic LR looks best by 3-7 points there and
is the worst member as served, and the prior beats every member. The penalty is what serving actually cost, so
it holds the release lag too; the lifecycle feeds it (``ModelLifecycle._step`` has the served answer and its
version). With no lifecycle (a plain pool) nothing feeds it and the prior never answers.

    PYTHONPATH=TREE python docs/experiments/prior_floor.py CSV --delay 50 [--label-col y] [--margin 0]
        [--pen-fade F] [--min-pen N] [--variant main|floor] [--plain]

``--plain``: the plain pool (no guard) with the penalty fed from its own answers at arrival. ``--pen-fade``: the
penalty's own fade (default the pool's ``FADE``, .995); ``--min-pen``: penalty samples before the prior may answer.
For the gate scripts (which run the CLI in subprocesses) put a ``sitecustomize.py`` first on ``PYTHONPATH`` that
imports this module and calls ``install(0.0, 0.999)``; ``--run SCRIPT ARGS...`` installs the default rule in
process and runs SCRIPT. Not kept: it passes rbfdrift-fast at three seeds and elec at delay 48 with
``--pen-fade 0.999`` but fails gate 1 (agrawal-gradual; BENCHMARKS-accuracy.md, session 36).
"""

from __future__ import annotations

import argparse
import collections
import runpy
import sys
import time
from typing import Any

PRIOR = "prior"
WARM = 200  # labels learned before the prior may answer
LIVE: set[int] = (
    set()
)  # ids of the pools the guard judges (``at_serving``): they answer with the learning leader


def _is_prior(m: Any) -> bool:
    return m.spec.name == PRIOR


def install(
    margin: float = 0.0, pen_fade: float | None = None, min_pen: int = 1, at_serving: bool = False
) -> None:
    """Patch the pool and the lifecycle (``pen_fade``: the penalty's own fade, default the pool's ``FADE``;
    ``min_pen``: penalty samples the pool must have taken before the prior may answer; ``at_serving``: the pool
    still leads with its learning member, and only its released copies answer the prior: the champion and a
    challenger, which the guard judges, answer with the learning leader, so the guard's releases are main's)."""
    import learners.lifecycle as lc
    import learners.pool as lp
    import learners.specs as sp

    def _prior(params: dict[str, Any], task: str, seed: int) -> Any:
        from river import dummy

        return dummy.PriorClassifier()

    sp.KINDS[PRIOR] = (_prior, ("classification",))
    if not any(m["name"] == PRIOR for m in lp.DEFAULT_MEMBERS["classification"]):
        lp.DEFAULT_MEMBERS["classification"] = [*lp.DEFAULT_MEMBERS["classification"], {"name": PRIOR}]
    orig_learn = lp.Pool.learn_one

    def learn_one(self: Any, x: Any, y: Any, fast: Any = None) -> None:
        d = self.__dict__
        if self.task != "classification" or not any(_is_prior(m) for m in self.members):
            return orig_learn(self, x, y, fast)
        before = list(self.losses)
        lead = d.get("_lead_learner", 0)
        if lead >= len(self.members) or _is_prior(self.members[lead]):
            lead = next(k for k, m in enumerate(self.members) if not _is_prior(m))
        self.leader = lead
        orig_learn(self, x, y, fast)
        if len(before) != len(self.losses):  # the members changed (quadratic drop, prune): restart the scores
            before = [0.0] * len(self.losses)
        ttt = [a - lp.FADE * b for a, b in zip(self.losses, before, strict=True)]
        learners = [k for k, m in enumerate(self.members) if not _is_prior(m)]
        lead = min(learners, key=lambda k: (self.losses[k], k != lead))
        d["_lead_learner"] = lead
        served = d.pop("_served_loss", None)
        if served is not None and not served[1]:  # a learning member answered the event: the penalty learns
            pf = lp.FADE if pen_fade is None else pen_fade
            d["_pen"] = pf * d.get("_pen", 0.0) + (served[0] - ttt[lead])
            d["_pw"] = pf * d.get("_pw", 0.0) + 1.0
            d["_pn"] = d.get("_pn", 0) + 1
        d["_n"] = d.get("_n", 0) + 1
        prior = next(k for k, m in enumerate(self.members) if _is_prior(m))
        pw = d.get("_pw", 0.0)
        use = (
            d["_n"] > WARM
            and d.get("_pn", 0) >= min_pen
            and self.losses[prior] / self.weight < self.losses[lead] / self.weight + d["_pen"] / pw - margin
        )
        if at_serving:
            self.leader, d["_serve_prior"] = lead, bool(use)
        else:
            self.leader = prior if use else lead

    lp.Pool.learn_one = learn_one  # type: ignore[method-assign]
    if at_serving:
        orig_proba, orig_predict = lp.Pool.predict_proba_one, lp.Pool.predict_one

        def answers_prior(pool: Any) -> bool:
            return bool(pool.__dict__.get("_serve_prior")) and id(pool) not in LIVE

        def predict_proba_one(self: Any, x: Any) -> Any:
            if answers_prior(self):
                prior = next(m for m in self.members if _is_prior(m))
                return prior.predict_proba_one(x, cleaned=True)
            return orig_proba(self, x)

        def predict_one(self: Any, x: Any) -> Any:
            if answers_prior(self):
                prior = next(m for m in self.members if _is_prior(m))
                return prior.predict_one(x, cleaned=True)
            return orig_predict(self, x)

        lp.Pool.predict_proba_one = predict_proba_one  # type: ignore[method-assign]
        lp.Pool.predict_one = predict_one  # type: ignore[method-assign]
    orig_step = lc.ModelLifecycle._step

    def _step(self: Any, x: Any, y: Any, pred: Any, version: Any, *rest: Any) -> Any:
        kept = self.__dict__.setdefault("_prior_kept", collections.OrderedDict())
        pool = self.served_model.model
        LIVE.clear()
        LIVE.add(id(self._lineage.model.model))
        if self._challenger.lineage is not None:
            LIVE.add(id(self._challenger.lineage.model.model))
        if self.served_version not in kept and type(pool) is lp.Pool:
            kept[self.served_version] = _is_prior(pool.members[pool.leader]) or bool(
                pool.__dict__.get("_serve_prior")
            )
            while len(kept) > 64:
                kept.popitem(last=False)
        champion = self._lineage.model.model
        if (
            self.task == "classification"
            and y is not None
            and pred is not None
            and version in kept
            and type(champion) is lp.Pool
        ):
            champion.__dict__["_served_loss"] = (0.0 if pred == y else 1.0, kept[version])
        return orig_step(self, x, y, pred, version, *rest)

    lc.ModelLifecycle._step = _step  # type: ignore[method-assign]


def plain_pool(rows: list[Any], delay: int) -> float:
    """The plain pool with the rule, its penalty fed from its own answers at arrival."""
    from driftline.config import LearnerSpec
    from learners.specs import build_learner

    model = build_learner(LearnerSpec("auto"), "classification", 0)
    pending: collections.deque[tuple[Any, Any, Any, bool]] = collections.deque()
    ok = 0
    for _, _, x, y in rows:
        pool = model.model
        pred = model.predict_one(x)
        ok += pred == y
        pending.append((x, y, pred, _is_prior(pool.members[pool.leader])))
        if len(pending) > delay:
            xj, yj, pj, was_prior = pending.popleft()
            model.model.__dict__["_served_loss"] = (0.0 if pj == yj else 1.0, was_prior)
            model.learn_one(xj, yj)
    return ok / len(rows)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        install()
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("csv")
    ap.add_argument("--delay", type=int, default=50)
    ap.add_argument("--label-col", default="y")
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--pen-fade", type=float, default=None)
    ap.add_argument("--min-pen", type=int, default=1)
    ap.add_argument("--at-serving", action="store_true")
    ap.add_argument("--variant", default="floor", choices=("main", "floor"))
    ap.add_argument("--plain", action="store_true")
    args = ap.parse_args()
    if args.variant == "floor":
        install(args.margin, args.pen_fade, args.min_pen, args.at_serving)
    from bench.accuracy import default_lifecycle
    from learners.replay import read_rows, replay

    rows = list(read_rows(args.csv, args.label_col))
    n = len(rows)
    start = time.process_time()
    if args.plain:
        print(
            f"{args.variant} plain pool {plain_pool(rows, args.delay):.4f} cpu {time.process_time() - start:.1f}"
        )
        return
    lc = default_lifecycle("classification", 0)
    served: list[bool] = []
    prior_share = [0]

    def keep(r: dict[str, Any]) -> None:
        served.append(r["prediction"] == rows[r["index"]][3])
        pool = lc.served_model.model
        prior_share[0] += _is_prior(pool.members[pool.leader]) or bool(pool.__dict__.get("_serve_prior"))

    s = replay(rows, lc, delay=args.delay, on_prediction=keep).summary()
    print(
        f"{args.variant} margin {args.margin} pen_fade {args.pen_fade} min_pen {args.min_pen} "
        f"at_serving {args.at_serving} "
        f"served {sum(served) / n:.4f} prior served {prior_share[0] / n:.3f} "
        f"alarms {len(s['alarms'])} holds {s['holds']} rollbacks {len(s['rollbacks'])} "
        f"releases {len(s['promotions'])} cpu {time.process_time() - start:.1f}"
    )


if __name__ == "__main__":
    main()
