"""Session 18's shortcuts inside ``ModelLifecycle.learn_batch`` give what they replace, bit for bit:

- ``page_hinkley_update`` (the loss detector's Page-Hinkley without River's calls) against River's ``update`` and
  ``drift_detected``: every value of the detector's state after every value fed;
- ``SnapshotSentinel.learned``'s loops against the list-building rule it replaced (which copies are kept);
- ``BatchContext.frozen_label`` against ``frozen(...)[0]``, and the plain-block logits of a mirrored LR snapshot
  against the general path (clip and missing mask), to the bit, on batches with and without odd rows.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import drift

from bench.data import make_rows, pretrained
from driftline.config import DriftConfig, LearnerSpec
from learners.batch import BatchContext, LinearMirror
from learners.detectors import page_hinkley_update
from learners.sentinel import SnapshotSentinel

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _ph_state(d: Any) -> tuple[Any, ...]:
    return (
        d._x_mean.n,
        d._x_mean._mean,
        d._sum_increase,
        d._sum_decrease,
        d._min_increase,
        d._max_decrease,
        d._drift_detected,
    )


@PROPS
@given(
    values=st.lists(
        st.one_of(st.floats(-50.0, 50.0, allow_nan=False), st.sampled_from([0.0, -0.0, 50.0, -50.0, 1e-300])),
        max_size=400,
    ),
    min_instances=st.integers(1, 40),
    delta=st.sampled_from([0.0, 0.005, 0.5]),
    threshold=st.sampled_from([0.5, 3.0, 50.0]),
    alpha=st.sampled_from([1.0, 1 - 0.0001, 0.9]),
    mode=st.sampled_from(["up", "down", "both"]),
)
def test_page_hinkley_shortcut_equals_river(
    values: list[float], min_instances: int, delta: float, threshold: float, alpha: float, mode: str
) -> None:
    params = {
        "min_instances": min_instances,
        "delta": delta,
        "threshold": threshold,
        "alpha": alpha,
        "mode": mode,
    }
    fast, river = drift.PageHinkley(**params), drift.PageHinkley(**params)
    for i, x in enumerate(values):
        got = page_hinkley_update(fast, x)
        river.update(x)
        assert got is bool(river.drift_detected), i
        assert _ph_state(fast) == _ph_state(river), i


def test_page_hinkley_shortcut_alarms_and_resets_as_river() -> None:
    rng = random.Random(3)
    fast, river = drift.PageHinkley(threshold=5.0), drift.PageHinkley(threshold=5.0)
    alarms = []
    for i in range(6000):
        x = rng.gauss(0.0 if (i // 1500) % 2 == 0 else 2.0, 1.0)
        got = page_hinkley_update(fast, x)
        river.update(x)
        assert got is bool(river.drift_detected) and _ph_state(fast) == _ph_state(river), i
        if got:
            alarms.append(i)
    assert len(alarms) >= 2  # the shortcut went through alarms and the resets after them


def _old_learned(s: SnapshotSentinel, champion: Any) -> None:
    """SnapshotSentinel.learned as it was before session 18 (the list-building rule)."""
    from learners.sentinel import _Copy

    s.seen += 1
    c = s.config
    if any(cp.test.trending for cp in s.copies):
        s.copies = [cp for cp in s.copies if not cp.test.trending]
        s.copies.append(_Copy(champion.copy(), s.seen, c))
    if s.seen >= s.next_copy:
        s.copies.append(_Copy(champion.copy(), s.seen, c))
        age = s.seen - s.origin
        double = 2 * age < c.sentinel_every
        s.next_copy = s.origin + 2 * age if double else s.seen + c.sentinel_every
    if len(s.copies) > 1:
        ripe = [k for k, cp in enumerate(s.copies) if s.seen - cp.label >= c.sentinel_overlap]
        if ripe and ripe[-1] > 0:
            s.copies = s.copies[ripe[-1] :]


class _Model:
    def __init__(self, k: int) -> None:
        self.k = k

    def copy(self) -> _Model:
        return _Model(self.k)


@PROPS
@given(
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 30)), min_size=1, max_size=300),
    first=st.integers(1, 20),
    every=st.integers(2, 60),
    overlap=st.integers(0, 40),
)
def test_sentinel_learned_keeps_the_copies_the_old_rule_kept(
    steps: list[tuple[bool, int]], first: int, every: int, overlap: int
) -> None:
    config = DriftConfig(sentinel_first=first, sentinel_every=every, sentinel_overlap=overlap)
    new, old = SnapshotSentinel(config), SnapshotSentinel(config)
    for i, (flip, which) in enumerate(steps):
        # Mark a copy (the same one in both) as frozen mid-drift now and then.
        if flip and new.copies:
            k = which % len(new.copies)
            new.copies[k].test.trending = old.copies[k].test.trending = True
        new.learned(_Model(i))
        _old_learned(old, _Model(i))
        assert [(c.label, c.model.k) for c in new.copies] == [(c.label, c.model.k) for c in old.copies], i
        assert (new.seen, new.next_copy) == (old.seen, old.next_copy)


def test_sentinel_drops_up_to_the_newest_ripe_copy() -> None:
    # Copies at 10 and 20; the one at 20 frozen mid-drift is replaced at label 40, when a scheduled copy is due
    # too: two copies of label 40 next to the one of label 10, both ripe at 65 (overlap 25). The old rule kept only
    # the newest of them.
    config = DriftConfig(sentinel_first=10, sentinel_every=1000, sentinel_overlap=25)
    new, old = SnapshotSentinel(config), SnapshotSentinel(config)
    for i in range(1, 71):
        if i == 40:
            for s in (new, old):
                s.copies[1].test.trending = True
        new.learned(_Model(i))
        _old_learned(old, _Model(i))
        if i == 64:
            assert [c.label for c in new.copies] == [10, 40, 40]
        assert [(c.label, c.model.k) for c in new.copies] == [(c.label, c.model.k) for c in old.copies], i
    assert [c.label for c in new.copies] == [40]


def _odd_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Rows with the bench's float features, some with a NaN, an inf, a huge value or a missing feature."""
    rng = random.Random(seed)
    rows = [x for _, x, _ in make_rows(n, seed=seed)]
    for x in rows:
        r = rng.random()
        key = rng.choice(list(x))
        if r < 0.05:
            x[key] = math.nan
        elif r < 0.08:
            x[key] = math.inf
        elif r < 0.11:
            x[key] = 1e15
        elif r < 0.14:
            del x[key]
    return rows


def _frozen_models() -> list[Any]:
    spec = LearnerSpec("logistic_regression")
    first = pretrained(spec, make_rows(300, seed=3))
    second = copy.deepcopy(first)
    for _, x, y in make_rows(300, seed=4):
        second.learn_one(x, y)
    return [first, second]


def test_frozen_label_is_frozen_s_label_on_plain_and_odd_batches() -> None:
    first, second = _frozen_models()
    for xs in ([x for _, x, _ in make_rows(700, seed=5)], _odd_rows(700, seed=6)):
        ctx, twin = BatchContext(xs), BatchContext(xs)
        for pos in range(len(xs)):
            xc = ctx.cleaned(pos)
            xc2 = twin.cleaned(pos)
            # Swapped now and then, as releases fall; asked ahead like the sentinel and not, like the previous one.
            model = first if (pos // 97) % 2 == 0 else second
            ahead = pos % 3 == 0
            assert ctx.frozen_label(model, pos, xc, ahead) == twin.frozen(model, pos, xc2, ahead)[0], pos
        ctx.close()
        twin.close()


_FIRST = _frozen_models()[0]


@PROPS
@given(seed=st.integers(0, 10_000), lo=st.integers(0, 499), size=st.integers(1, 300))
def test_plain_block_rows_equal_the_general_path_to_the_bit(seed: int, lo: int, size: int) -> None:
    first = _FIRST
    xs = [x for _, x, _ in make_rows(500, seed=seed)]
    hi = min(500, lo + size)
    ctx, general = BatchContext(xs), BatchContext(xs)
    assert ctx._plain_blocks() == [True]  # the fast path is taken
    general._plain = [None] * len(general.blocks())  # the clip, the missing mask and the row selection
    entry = ctx._entry(first)
    got = ctx._predict_rows(first, entry[1], lo, hi)
    want = general._predict_rows(first, entry[1], lo, hi)
    assert got[0] == want[0]
    assert np.array_equal(np.array(got[1]), np.array(want[1]))
    assert np.array_equal(np.array(got[2]), np.array(want[2]))
    assert got[3:] == want[3:]


def test_logits_plain_is_logits_on_finite_clipped_values() -> None:
    rng = np.random.default_rng(1)
    names = tuple(f"f{i}" for i in range(6))
    mirror = LinearMirror(
        {n: float(rng.normal()) for n in names[:5]},
        {n: float(rng.uniform(0.1, 3.0)) for n in names[:5]},
        {n: float(rng.normal()) for n in names[:4]},
        0.3,
    )
    values = rng.normal(size=(300, 6)) * 100
    assert np.array_equal(mirror.logits_plain(values, names), mirror.logits(values, names))


_ATOM = st.one_of(st.floats(allow_nan=True), st.integers(-5, 5), st.booleans())


@PROPS
@given(
    counts=st.dictionaries(st.one_of(st.text(max_size=3), st.integers(-3, 3)), _ATOM, max_size=5),
    odd=st.booleans(),
)
def test_normalised_copy_is_river_s(counts: dict[Any, Any], odd: bool) -> None:
    from river.utils.norm import normalize_values_in_dict

    from learners import frozen_tree

    assert frozen_tree._install_memo()
    if odd:  # a key that is not an atom: River's function answers
        counts = {**counts, ("t",): 1.0}
    got = frozen_tree._normalised_copy(counts, inplace=False)
    want = normalize_values_in_dict(counts, inplace=False)
    assert got is not counts
    assert list(got) == list(want)
    assert all(
        type(a) is type(b) and (a == b or (a != a and b != b))
        for a, b in zip(got.values(), want.values(), strict=True)
    )


def test_a_learning_tree_learns_as_with_river_s_copy() -> None:
    import pickle

    from river.tree import HoeffdingTreeClassifier
    from river.tree.nodes import htc_nodes
    from river.utils import norm

    from learners import frozen_tree
    from learners.features import share_distribution_rngs

    assert frozen_tree._install_memo()
    assert htc_nodes.normalize_values_in_dict is frozen_tree._normalised_copy
    params = {"grace_period": 50, "delta": 0.01}
    fast, river = HoeffdingTreeClassifier(**params), HoeffdingTreeClassifier(**params)
    rows = make_rows(3000, seed=11)
    for i, (_, x, y) in enumerate(rows):
        fast.learn_one(x, y)
        htc_nodes.normalize_values_in_dict = norm.normalize_values_in_dict
        try:
            river.learn_one(x, y)
            want = river.predict_proba_one(x)
        finally:
            htc_nodes.normalize_values_in_dict = frozen_tree._normalised_copy
        assert fast.predict_proba_one(x) == want, i
    assert fast.n_nodes > 1  # it split: the leaves' answers decided something
    # Every leaf's Gaussians draw their own random seed (unused): one shared generator each, then byte for byte.
    share_distribution_rngs(fast)
    share_distribution_rngs(river)
    assert pickle.dumps(fast) == pickle.dumps(river)


def _old_learner_answer(raw: dict[Any, float], classes: list[Any], counts: dict[Any, int]) -> Any:
    """learners.frozen_tree.learner_answer as it was before session 18."""
    proba = {c: float(p) for c, p in raw.items() if c in counts and math.isfinite(p) and p >= 0}
    total = sum(proba.values())
    if total <= 0:
        return None
    proba = {c: p / total for c, p in proba.items()}
    return max(classes, key=lambda c: proba.get(c, -1.0)), proba


_PROBA = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 0.25, 1.0, -0.0]),
    st.integers(-2, 3),
)


@PROPS
@given(
    raw=st.dictionaries(st.sampled_from(["a", "b", "c", 1, True]), _PROBA, max_size=5),
    classes=st.lists(st.sampled_from(["a", "b", "c", 1, True]), min_size=1, max_size=4, unique=True),
    known=st.sets(st.sampled_from(["a", "b", "c", 1, True])),
)
def test_learner_answer_is_the_old_one(raw: dict[Any, float], classes: list[Any], known: set[Any]) -> None:
    from learners.frozen_tree import learner_answer

    counts = dict.fromkeys(known, 1)
    got, want = learner_answer(raw, classes, counts), _old_learner_answer(raw, classes, counts)
    if want is None:
        assert got is None
        return
    assert got is not None and got[0] == want[0] and type(got[0]) is type(want[0])
    assert list(got[1].items()) == list(want[1].items())


@PROPS
@given(votes=st.dictionaries(st.integers(0, 5), st.floats(-800.0, 50.0), min_size=1, max_size=5))
def test_normalise_is_river_s_log_sum_exp(votes: dict[int, float]) -> None:
    from learners.frozen_tree import _normalise

    want = dict(votes)
    max_ll = max(want.values())
    lse = max_ll + math.log(sum(math.exp(lp - max_ll) for lp in want.values()))
    for c in want:
        want[c] = math.exp(want[c] - lse)
    assert list(_normalise(dict(votes)).items()) == list(want.items())


def _walked_compact(learner: Any) -> bytes:
    """safe_pickle.compact as it was before session 18: the learner's own walk, then the pickler."""
    import io

    from learners import safe_pickle

    buffer = io.BytesIO()
    safe_pickle.CompactPickler(buffer, protocol=5).dump(learner)
    return buffer.getvalue()


def test_a_tree_s_release_pickle_is_the_walked_one_byte_for_byte() -> None:
    import pickle

    from learners import safe_pickle
    from learners.features import share_distribution_rngs

    for spec, rows in (
        (
            LearnerSpec("hoeffding_tree", {"grace_period": 50, "delta": 0.01}),
            make_rows(2000, 12),
        ),
        (LearnerSpec("hoeffding_tree"), make_rows(300, 13)),
    ):
        learner = pretrained(spec, rows)
        assert learner.rewires_distributions()
        fresh = safe_pickle.compact(learner)  # the pickler shares the generators; no walk
        # Only afterwards does the learner's own walk run (plain pickling, as before): the same bytes.
        assert fresh == _walked_compact(learner)
        copy_ = pickle.loads(fresh)
        gens = {id(g) for g in _generators(copy_)}
        assert len(gens) == 1  # one shared generator in the copy, as the walk made
        assert share_distribution_rngs(copy_.model) > 0


def _generators(learner: Any) -> list[Any]:
    from river.proba.base import Distribution

    out, stack, seen = [], [learner.model], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, int, float, bool, type(None), random.Random)):
            continue
        seen.add(id(obj))
        if isinstance(obj, Distribution):
            out.append(obj._rng)
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return out
