"""Feature hygiene shared by every learner, and the pickle-size fix for River's per-distribution RNGs.

Feature policy (the same for every learner kind, applied before the estimator sees ``x``):

- ``None``, NaN and +/-inf values are dropped: the feature is treated as missing for that event.
- booleans become ``0.0``/``1.0``; ints and floats become floats, clipped to +/-1e12 (squares stay finite).
- strings are one-hot encoded as ``"<name>=<value>": 1.0`` (so an unseen category is simply a new feature); a
  value over ``MAX_VALUE_CHARS`` characters is named by its start and a digest (:func:`value_name`).
- anything else (lists, dicts) is ignored.
- trees (``learners.specs.SPLITTING``) also see a known indicator that is absent as ``0.0``
  (:func:`complete_indicators`), so they can split on strings.
- what a model *learns* from is bounded (:class:`Vocabulary`): at most ``MAX_VALUES`` values of each string
  feature and ``MAX_KEYS`` distinct feature keys per model; a key past them is not learned (no weight, no scaler
  entry, no splitter) and so adds nothing to a prediction. A uuid column or events whose feature names are all new
  cannot grow a model, its releases and checkpoints without bound.

>>> clean_features({"a": 1, "b": None, "c": float("nan"), "d": True, "e": "red"})
{'a': 1.0, 'd': 1.0, 'e=red': 1.0}
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import random
import types
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any

from river.base import Transformer
from river.preprocessing import StandardScaler

CLIP = 1e12


def clean_features(x: Mapping[str, Any]) -> dict[str, float]:
    """Return a copy of ``x`` with only finite float values (see the module docstring for the policy)."""
    values = x.values()
    # Fast path for the common event (every value a float, all finite and within the clip): a few C-level passes
    # instead of a Python loop. A NaN or an infinity anywhere makes the sum non-finite (so does an overflow of
    # huge values, which the clip handles): those events take the slow path.
    if (
        values
        and all(type(v) is float for v in values)
        and math.isfinite(sum(values))
        and min(values) >= -CLIP
        and max(values) <= CLIP
    ):
        return dict(x)
    out: dict[str, float] = {}
    for name, value in x.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = 1.0 if value else 0.0
        elif isinstance(value, (int, float)):
            v = float(value)
            if math.isfinite(v):
                out[name] = min(max(v, -CLIP), CLIP)
        elif isinstance(value, str):
            out[f"{name}={value if len(value) <= MAX_VALUE_CHARS else value_name(value)}"] = 1.0
    return out


#: A string value longer than this is named by its start and a digest in its one-hot key: the key is a weight's
#: name in the model, its checkpoints, every release and its ``what_changed``, and a 10,000-character value made
#: every release carry it (the console's lineage of 552 releases was 1.97 MB; found from outside, session 31).
#: Distinct values keep distinct keys; no value of the accuracy suites comes near it.
MAX_VALUE_CHARS = 100


def value_name(value: str) -> str:
    """A long string value's name in its one-hot key: its first 64 characters and a 16-hex-digit digest.

    >>> value_name("x" * 10_000)
    'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx~a1fa80be9546da4b'
    """
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{value[:64]}~{digest}"


#: A string feature with more values than this (an id, a free text) is not completed by
#: :func:`complete_indicators`: every event would carry all its indicators and a tree's cost grows with them
#: (2.5x CPU on a 5,000-value token when all were completed). Its values past the first ``MAX_CATEGORIES + 1``
#: are not shown to the tree at all (see :func:`complete_indicators`).
MAX_CATEGORIES = 32
# The keys of the last example :func:`complete_indicators` learned with none of them a one-hot indicator (no
# ``=`` in a string key): a process-wide cache of one entry; a stale read is still a checked tuple.
_PLAIN_KEYS: list[tuple[Any, ...]] = [()]


def complete_indicators(
    xc: dict[str, Any], groups: dict[str, list[str]], names: tuple[str, ...], learn: bool
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``(xc with every known one-hot indicator it lacks as 0.0, the names completed from now on)``.

    Why: a one-hot feature (``"color=red": 1.0``) is present only when true, so a tree saw it only as 1.0 and
    never split on it (a splitter needs two values): a Hoeffding tree learned nothing from strings. For trees,
    absent means 0.0. ``groups`` (feature -> its indicator names, updated in place when ``learn``) remembers
    them; features with more than ``MAX_CATEGORIES`` values are left out of ``names``.

    A value of such a wide feature that is not among its first ``MAX_CATEGORIES + 1`` is dropped from ``xc``:
    a tree gave every new value a splitter in the leaf that saw it, and a uuid column made a Hoeffding tree hold
    one splitter per event (``driftline replay`` of 20,000 events: 6.5 minutes instead of 17 s, each release
    pickling them all). Such an indicator is never completed, so the tree only ever saw it as 1.0: a splitter
    with a single value offers no split and adds no naive Bayes term (no variance), and dropping it changes no
    answer (tests/test_learners_unseen.py).
    """
    if not groups and not names:
        # No one-hot feature seen yet (every all-numeric stream): nothing to complete or drop. When learning, the
        # same keys as the last example checked have no indicator among them either (1-2 us a label of the
        # trainer's tree champion; session 37).
        if not learn:
            return xc, names
        keys = tuple(xc)
        if keys == _PLAIN_KEYS[0]:
            return xc, names
        if not any(type(k) is str and "=" in k for k in keys):
            _PLAIN_KEYS[0] = keys
            return xc, names
    if learn:
        changed = False
        for k, v in xc.items():
            if v == 1.0 and type(k) is str and "=" in k:
                group = groups.setdefault(k.partition("=")[0], [])
                if len(group) <= MAX_CATEGORIES and k not in group:
                    group.append(k)  # one past the bound marks a wide feature; no more are kept
                    changed = True
        if changed:
            names = tuple(k for g in groups.values() if len(g) <= MAX_CATEGORIES for k in g)
    if any(len(g) > MAX_CATEGORIES for g in groups.values()):
        xc = {k: v for k, v in xc.items() if not _unknown_wide(k, v, groups)}
    if not names:
        return xc, names
    missing = [k for k in names if k not in xc]
    if not missing:
        return xc, names
    out = dict(xc)
    out.update(dict.fromkeys(missing, 0.0))
    return out, names


def _unknown_wide(k: Any, v: Any, groups: dict[str, list[str]]) -> bool:
    """True for an indicator of a wide feature (:data:`MAX_CATEGORIES`) that is not among its kept values."""
    if v != 1.0 or type(k) is not str or "=" not in k:
        return False
    group = groups.get(k.partition("=")[0])
    return group is not None and len(group) > MAX_CATEGORIES and k not in group


#: Values of one string feature a model learns (its first ones; later values are not learned). A categorical column
#: of a few hundred values (a country, a city, a product line) keeps all of them, and its one-hot weights help a
#: linear model (a 500-value city, LR test-then-train: accuracy 0.8010 with the trees' 33 values, 0.8022 with
#: 256, 0.8036 with all 500); an id or a free text (every value new) stops growing the model here. Trees keep their
#: own, smaller bound (``MAX_CATEGORIES + 1``). BENCHMARKS.md "Session 14: bounded feature vocabulary".
MAX_VALUES = 1024
#: Distinct feature keys (numeric features and one-hot indicators together) one model learns; later new keys are
#: not learned. Each key is a weight and three scaler entries, ~66 bytes of a linear model's release pickle
#: (measured: 269 KB at 4,096 keys, 1.32 MB at 20,003), so an LR release stays under 270 KB whatever the stream
#: sends, and the default ``auto`` pool's (two linear members and a tree) measured 755 KB after 100,000 events each
#: with a new feature name: under ``serving.max_inline_bytes`` (900,000; a larger release would go by reference).
#: Keys carry no cost per event (an event costs its own keys), only memory and release size: a bound of this size
#: leaves room for a few wide categoricals before anything is refused.
MAX_KEYS = 4096
#: Distinct keys a tree learns: each is a splitter in every leaf that sees it (a GaussianSplitter holds one
#: Gaussian per class), and each is evaluated at every split attempt: a tree fed a new name per event took 321 s
#: for 20,000 events and released 1.4 MB (9,226 splitters); with this bound 14 s and 15 KB, the same accuracy.
MAX_TREE_KEYS = 256


def admit(
    xc: dict[Any, float], known: dict[Any, None], values: dict[str, int], max_keys: int, max_values: int
) -> dict[Any, float]:
    """``xc`` without the keys a model may not learn: a new key is learned while the model knows fewer than
    ``max_keys`` and, for a one-hot indicator (``"<name>=<value>": 1.0``), while its feature has fewer than
    ``max_values`` values learned. ``known`` (the keys learned, a dict for a pickle that does not depend on the
    string hash seed) and ``values`` (feature -> its values learned) are the model's vocabulary, updated in
    place. Returns ``xc`` itself when no key is refused, so a stream that never reaches the bounds is learned
    exactly as before (the same dict: a learning tree's recorded answer is matched by its identity).

    Why on learning only: a key the model never learned has no weight, no scaler entry and no splitter, so it
    adds nothing to a prediction (:class:`FeatureScaler` and River's weights read it without inserting it);
    filtering predictions too would cost every event for no change of answer.

    >>> known, values = {}, {}
    >>> [sorted(admit({"a": 0.5, f"id={i}": 1.0}, known, values, 10, 2)) for i in range(3)]
    [['a', 'id=0'], ['a', 'id=1'], ['a']]
    """
    if known.keys() >= xc.keys():
        return xc
    out = {}
    refused = False
    for k, v in xc.items():
        if k not in known:
            if len(known) >= max_keys:
                refused = True
                continue
            if v == 1.0 and type(k) is str and "=" in k:
                name = k.partition("=")[0]
                n = values.get(name, 0)
                if n >= max_values:
                    refused = True
                    continue
                values[name] = n + 1
            known[k] = None
        out[k] = v
    return out if refused else xc


class FeatureScaler(StandardScaler):
    """River's ``StandardScaler`` that passes one-hot indicators through instead of zeroing them.

    Why: River updates a feature's statistics only in the events that carry it. A one-hot feature
    (``"color=red": 1.0``, see :func:`clean_features`) is absent when false, so every value the scaler sees is 1.0,
    its variance is 0 and ``StandardScaler`` outputs 0.0 for it: a linear model behind it could never learn from a
    categorical feature. A feature whose every observed value was exactly 1.0 (variance 0, mean 1.0) is therefore
    passed through unchanged; every other feature is standardised exactly as River does (a constant feature of
    any other value still becomes 0.0). ``learners.batch.LinearMirror`` mirrors this rule.
    """

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        if not self.with_std or self.window_size is not None:
            return dict(super().transform_one(x))
        means, vars_ = self.means, self.vars
        if x.keys() <= vars_.keys():
            # One comprehension (the hot path of every linear learner): an indicator passes, any other constant
            # is 0.
            return {
                i: (xi - means[i]) / v**0.5 if (v := vars_[i]) else (xi if means[i] == 1.0 else 0.0)
                for i, xi in x.items()
            }
        # A key the scaler never learned: read with ``get``, not River's ``means[i]``. The statistics are
        # defaultdicts, and that read inserted the key, so a served model grew by one entry per unseen feature
        # name it was asked about. An unseen key reads 0.0 either way (it transforms to 0.0): the same answers.
        mean, var = means.get, vars_.get
        return {
            i: (xi - mean(i, 0.0)) / v**0.5 if (v := var(i, 0.0)) else (xi if mean(i, 0.0) == 1.0 else 0.0)
            for i, xi in x.items()
        }


#: Most inputs :class:`Quadratic` makes a whole plan for (every product's name and index pair, cached): 255
#: inputs make 32,640 products, a 4.5 MB plan. An event with more inputs (a hostile one: 5,000 features made a
#: 12.5-million-product plan, ~1.6 GB kept in the cache of a scorer whose quadratic member served it, and took
#: 30-160 s) has its products named one at a time only until the bound is reached (:meth:`Quadratic.learn_one`),
#: and only the products the model learned computed (:meth:`Quadratic._transform_wide`: ~10-15 ms an event with
#: ``MAX_KEYS`` names learned, cheaper than a plan's products from ~220 inputs on; session 31).
MAX_PLAN_INPUTS = 255
#: Inputs of the plans the small cache keeps (256 plans of at most 0.6 MB); wider ones the large one (16 plans, at
#: most ~72 MB: two made a plan per event, ~5x the time, for 100 numbers and a one-hot category of 3 values).
_SMALL_PLAN_INPUTS = 90


def _quadratic_plan(names: tuple[Any, ...]) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """Output names and index pairs of every product of two of ``names`` (a feature with itself included), for
    at most ``MAX_PLAN_INPUTS`` names; cached, a few wide plans apart from many narrow ones."""
    if len(names) > MAX_PLAN_INPUTS:
        raise ValueError(f"{len(names)} inputs: over MAX_PLAN_INPUTS ({MAX_PLAN_INPUTS})")
    return (_small_plan if len(names) <= _SMALL_PLAN_INPUTS else _wide_plan)(names)


def _make_plan(names: tuple[Any, ...]) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    pairs = tuple(itertools.combinations_with_replacement(range(len(names)), 2))
    return tuple(_product_names(names)), pairs


_small_plan = functools.lru_cache(maxsize=256)(_make_plan)
_wide_plan = functools.lru_cache(maxsize=16)(_make_plan)


def _product_names(names: tuple[Any, ...]) -> Iterator[str]:
    """The names of every product of two of ``names``, in the plan's order, one at a time."""
    for i, j in itertools.combinations_with_replacement(range(len(names)), 2):
        yield "*".join(map(str, _ordered(names[i], names[j])))


def _ordered(a: Any, b: Any) -> tuple[Any, Any]:
    """``a`` and ``b`` sorted as River's extender sorts them; by their text when they do not compare.

    Why: an event with integer feature keys (River's generators use 0, 1, ...) and a string feature has, once
    cleaned, keys ``0`` and ``"color=red"``; sorting those raises ``TypeError`` and crashed the ``auto`` pool's
    quadratic member. Keys that compare keep River's names, so a model trained before keeps its weights.
    """
    try:
        return (a, b) if a <= b else (b, a)
    except TypeError:
        return (a, b) if str(a) <= str(b) else (b, a)


class Quadratic(Transformer):
    """The features and every pairwise product of them: River's ``PolynomialExtender(degree=2)`` (same names,
    same values, same order), about 50 times faster.

    Why: River's extender joins and sorts the names and multiplies through ``functools.reduce`` for every product
    of every event; with 10 features that is most of the ``auto`` pool's CPU (profiled in BENCHMARKS-accuracy.md).
    Here the names and index pairs are computed once per feature set (cached) and each product is one
    multiplication. An event with more than ``MAX_PLAN_INPUTS`` inputs gets no plan: its products are named only
    until the bound below is reached, and transformed only where the model learned them (the same answers; see
    :meth:`_transform_wide`).

    Its outputs are bounded like a model's keys (:func:`admit`): it learns the names of at most ``MAX_KEYS``
    outputs (features and products), and once that many are known an output it never learned is left out, so the
    scaler and weights behind it stay within ``MAX_KEYS``. The bound is on the products, not on the inputs: a
    500-value city makes ~1,500 products with two numbers (under the bound, learned as before), while any ``m``
    inputs could make ``m (m + 1) / 2``. Before the bound is reached nothing is left out (the same outputs as
    before); after it, a left-out output had no weight and no scaler entry, so the answers are unchanged.
    """

    # The output names learned, and whether there are ``MAX_KEYS`` of them (then unknown outputs are left out).
    # Class-level defaults: a Quadratic pickled before the bound starts learning names at its next example.
    _known: dict[Any, None] | None = None
    _full = False
    _last: tuple[str, ...] | None = None  # the last plan whose outputs were all known (not pickled)

    def learn_one(self, x: dict[Hashable, Any]) -> None:
        if self._full:
            return
        names = tuple(x)
        if len(names) > MAX_PLAN_INPUTS:  # over MAX_KEYS products: named only until the bound is reached
            keys: Iterable[str] = _product_names(names)
        else:
            keys = _quadratic_plan(names)[0]
            if keys is self._last:
                return  # the usual example: the same features as the last one (the plan is cached: same tuple)
        known = self._known
        if known is None:
            known = self._known = {}
        for k in itertools.chain(x, keys):
            if k not in known:
                if len(known) >= MAX_KEYS:
                    self._full = True
                    return
                known[k] = None
        if type(keys) is tuple:
            self._last = keys

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_last", None)  # a cache of the plan, not state: pickles stay the same whatever came last
        return state

    def transform_one(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        if len(x) > MAX_PLAN_INPUTS:
            return self._transform_wide(x)
        keys, pairs = _quadratic_plan(tuple(x))
        values = list(x.values())
        out = dict(x)
        out.update(zip(keys, [values[i] * values[j] for i, j in pairs], strict=True))
        if self._full:
            known = self._known
            assert known is not None
            return {k: v for k, v in out.items() if k in known}
        return out

    def _transform_wide(self, x: dict[Hashable, Any]) -> dict[Hashable, Any]:
        """:meth:`transform_one` of an event with more than ``MAX_PLAN_INPUTS`` inputs (over 32,000 products):
        its inputs and only those of its products whose names this Quadratic learned, found from the learned
        names (at most ``MAX_KEYS``) rather than by naming every product.

        The same answers: the scaler and the weights after this step only ever learned names this step learned
        (:meth:`learn_one` names an example's outputs before the pipeline learns them), so a product it never
        learned has no weight and adds nothing. An event this wide fills the bound when it is learned, so the
        outputs learned from it are the ones :meth:`transform_one` would give. Only a product named like another
        (feature names holding ``*``) may be taken from another pair of inputs. A Quadratic pickled before the
        bound knows no names yet (``_known`` None): it computes every product, as before.
        """
        known = self._known
        if known is None:
            names = tuple(x)
            values = list(x.values())
            out = dict(x)
            for key, (i, j) in zip(
                _product_names(names),
                itertools.combinations_with_replacement(range(len(names)), 2),
                strict=True,
            ):
                out[key] = values[i] * values[j]
            return out
        out = {k: v for k, v in x.items() if k in known} if self._full else dict(x)
        by_text = {str(k): k for k in x}
        for key in known:
            if type(key) is not str or "*" not in key:
                continue
            at = key.find("*")
            while at >= 0:  # a split of the name into two input names of this event, in River's order
                a, b = by_text.get(key[:at]), by_text.get(key[at + 1 :])
                if a is not None and b is not None and "*".join(map(str, _ordered(a, b))) == key:
                    out[key] = x[a] * x[b]
                    break
                at = key.find("*", at + 1)
        return out


def finite(value: Any) -> bool:
    """True when ``value`` is a real number that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# Objects the walk never descends into: scalars, RNGs themselves, and code (classes, functions, modules).
_LEAVES = (
    str,
    bytes,
    int,
    float,
    bool,
    type(None),
    random.Random,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
)


_LEAF_TYPES = frozenset(_LEAVES)


def share_distribution_rngs(model: Any) -> int:
    """Point every River distribution's ``_rng`` inside ``model`` at one shared ``random.Random``.

    Why: River gives each Gaussian/Multinomial estimator in a tree leaf its own ``random.Random``; each pickles
    to about 3 KB of Mersenne-Twister state, so a Hoeffding tree's checkpoint is dominated by RNGs that the tree
    never draws from (they only serve ``Distribution.sample``). Pickle memoises a shared object once, so after
    this call the RNGs cost 3 KB in total. Estimators' own RNGs (used for splits/bagging) are left alone.
    Returns the number of distributions rewired.
    """
    from river.proba.base import Distribution

    shared = random.Random(0)
    seen: set[int] = set()
    stack: list[Any] = [model]
    count = 0
    leaf_types = _LEAF_TYPES
    while stack:
        obj = stack.pop()
        # The exact type first: most objects a tree holds are floats and ints, and a set lookup is cheaper than
        # isinstance over every leaf type (a subclass of one still ends at the isinstance check).
        if type(obj) in leaf_types or id(obj) in seen or isinstance(obj, _LEAVES):
            continue
        seen.add(id(obj))
        if isinstance(obj, Distribution):
            obj._rng = shared
            count += 1
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        else:
            state = getattr(obj, "__dict__", None)
            if state is not None:
                stack.extend(state.values())
            for slot in getattr(type(obj), "__slots__", ()):
                if isinstance(slot, str) and hasattr(obj, slot):
                    stack.append(getattr(obj, slot))
    return count
