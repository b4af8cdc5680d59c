"""A fourth ``auto`` pool member, screened on the plain pool (issue 13, session 20).

    PYTHONPATH=TREE python docs/experiments/pool_member.py [--streams a,b] [--seeds 1,2] [--delays 10,50]
        [--n 10000] [--member JSON ...] [--baseline] [--fade F] [--margin M] [--lagged N] [--served N]
        [--workers 1]

The plain ``auto`` pool (``gradual_streams.py``'s streams, test-then-train with each label ``delay`` events late),
with ``--member`` (a ``{name, params}`` mapping, JSON) appended to the default classification members, or the
default members when it is not given. At every event each member's own answer (the pool's own members: the same
learned state as a plain run of that member at the same delay). Prints per run the pool's accuracy, each member's,
the share of events each member leads, the pool's accuracy while each leads, and the number of leader switches;
scored from event ``delay + 1`` as ``gradual_streams.py`` scores. ``--fade`` patches ``learners.pool.FADE``;
``--margin M``: a member takes the lead only once its faded loss is ``M`` under the leader's (hysteresis);
``--lagged N``: each member is scored by what a copy of it refreshed every ``N`` labels answers (aged like a served
snapshot), not by its own test-then-train answer. ``--served N`` (session 21): a copy of the whole pool taken every
``N`` labels stands for the served snapshot, and before each label the pool's own ``Pool.score_served`` scores its
members on it, as the trainer does (what that changes is ``learners.pool.SERVED_SHARE`` / ``SERVED_TAKE``, set
through a ``sitecustomize.py`` first on ``PYTHONPATH``). ``--arrival``: instead, each member is scored by what it
answered when the event arrived, ``delay`` labels before it learns the label (the member at the stream's true
label delay: what a trainer could score with the snapshot that served the event, ``Labelled.served_version``).
``elec`` (only when named): elec.csv from row SEED on, all of it.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from gradual_streams import STREAMS


def _name(spec: Any) -> str:
    p = dict(spec.params)
    if spec.name == "hoeffding_tree":
        return "HT"
    tag = "QLR" if p.pop("degree", 1) == 2 else "LR"
    if p.pop("products", "centred") == "raw":
        tag += "raw"
    if "lr" in p:
        tag += f"{p.pop('lr')}"
    return tag + (repr(p) if p else "")


def _hysteresis(margin: float) -> None:
    import learners.pool as lp

    orig = lp.Pool.learn_one

    def learn_one(self: Any, x: dict[str, Any], y: Any, fast: Any = None) -> None:
        leader = self.leader
        orig(self, x, y, fast)
        moved = self.leader != leader and leader < len(self.members)
        if moved and self.losses[self.leader] > self.losses[leader] - margin:
            self.leader = leader

    lp.Pool.learn_one = learn_one  # type: ignore[method-assign]


def _lagged(every: int) -> None:
    """Score each member by what a copy of it, refreshed every ``every`` labels, answers (an aged member, as a
    served snapshot is), instead of by its own test-then-train answer."""
    import learners.pool as lp

    orig = lp.Pool.learn_one

    def learn_one(self: Any, x: dict[str, Any], y: Any, fast: Any = None) -> None:
        n = getattr(self, "_lag_n", 0)
        if n % every == 0 or len(getattr(self, "_lag_copies", [])) != len(self.members):
            self._lag_copies = [m.copy() for m in self.members]
        self._lag_n = n + 1
        own = [self._loss(m.predict_one(x, cleaned=True), y) for m in self.members]
        aged = [self._loss(c.predict_one(x, cleaned=True), y) for c in self._lag_copies]
        leader = self.leader
        orig(self, x, y, fast)
        if len(self.members) == len(own):
            self.losses = [loss + a - o for loss, a, o in zip(self.losses, aged, own, strict=True)]
            self.leader = min(range(len(self.members)), key=lambda k: (self.losses[k], k != leader))

    lp.Pool.learn_one = learn_one  # type: ignore[method-assign]


def run(
    name: str,
    seed: int,
    delay: int,
    n: int,
    member: str | None,
    fade: float | None,
    margin: float = 0.0,
    lagged: int = 0,
    served_every: int = 0,
    arrival: bool = False,
) -> dict[str, Any]:
    from gradual_streams import make

    import learners.pool as lp
    from learners.features import clean_features
    from learners.specs import LearnerSpec, build_learner

    if fade is not None:
        lp.FADE = fade
    if margin:
        _hysteresis(margin)
    if lagged:
        _lagged(lagged)
    if name == "elec":  # elec.csv from row ``seed`` on (bench.accuracy's stream), all of it
        from bench.accuracy import make_stream

        rows, _ = make_stream("elec", 0, 1)
        examples, task, n = [(r[2], r[3]) for r in rows[seed:]], "classification", len(rows) - seed
    else:
        examples, task = make(name, n, seed)
    members = list(lp.DEFAULT_MEMBERS[task])
    if member:
        members.append(json.loads(member))
    model: Any = build_learner(LearnerSpec("auto", {"members": members}), task, 0)
    pool = model.model
    names = [_name(m.spec) for m in pool.members]
    pending: collections.deque[tuple[Any, Any, list[Any] | None]] = collections.deque()
    right: collections.Counter[str] = collections.Counter()
    lead: collections.Counter[str] = collections.Counter()
    lead_right: collections.Counter[str] = collections.Counter()
    switches, last, lo = 0, None, delay + 1
    served, learned = None, 0
    for i, (x, y) in enumerate(examples):
        p = model.predict_one(x)
        xc = clean_features(x)
        answers = [m.predict_one(xc, cleaned=True) for m in pool.members] if arrival or i >= lo else None
        if i >= lo and answers is not None:
            for k in range(len(pool.members)):
                right[names[k]] += answers[k] == y
            right["pool"] += p == y
            who = names[pool.leader]
            lead[who] += 1
            lead_right[who] += p == y
            switches += last is not None and who != last
            last = who
        pending.append((x, y, answers if arrival else None))
        if len(pending) > delay:
            lx, ly, then = pending.popleft()
            if then is not None and len(then) == len(pool.members):
                pool._served_losses = [pool._loss(a, ly) for a in then]
            if served_every:
                if learned % served_every == 0:
                    served = pool.__class__.__new__(pool.__class__)
                    served.__dict__.update(copy.deepcopy(pool.__dict__))
                pool.score_served(served, clean_features(lx), ly)
                learned += 1
            model.learn_one(lx, ly)
    m = n - lo
    return {
        "stream": name,
        "seed": seed,
        "delay": delay,
        "member": member,
        "margin": margin,
        "lagged": lagged,
        "served_every": served_every,
        "arrival": arrival,
        "acc": {k: round(v / m, 4) for k, v in right.items()},
        "lead_share": {k: round(v / m, 3) for k, v in lead.items()},
        "acc_when_leading": {k: round(lead_right[k] / v, 4) for k, v in lead.items()},
        "switches": switches,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default=",".join(s for s in STREAMS if s != "rotreg"))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--delays", default="10,50")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--member", action="append", default=[], help="JSON {name, params}; repeat for variants")
    ap.add_argument("--baseline", action="store_true", help="also run the default members")
    ap.add_argument("--fade", type=float, default=None)
    ap.add_argument("--margin", type=float, default=0.0)
    ap.add_argument("--lagged", type=int, default=0, help="score members on copies refreshed every N labels")
    ap.add_argument("--served", type=int, default=0, help="score members on a pool copy taken every N labels")
    ap.add_argument(
        "--arrival", action="store_true", help="score members on their answers at the event's arrival"
    )
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    variants: list[str | None] = ([None] if args.baseline or not args.member else []) + list(args.member)
    jobs = [
        (s, int(seed), int(d), args.n, v, args.fade, args.margin, args.lagged, args.served, args.arrival)
        for s in args.streams.split(",")
        for seed in args.seeds.split(",")
        for d in args.delays.split(",")
        for v in variants
    ]
    with ProcessPoolExecutor(args.workers) as ex:
        for r in ex.map(run, *zip(*jobs, strict=True)):
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
