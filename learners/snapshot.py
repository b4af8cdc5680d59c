"""A released snapshot of a binary logistic regression, unpickled only when something needs River's objects.

Why: the trainer freezes the champion at every release (``ModelLifecycle._release``; every ~25 labels of a quiet
LR stretch, 798 per 20,000 labels) by pickling it and unpickling the bytes (:meth:`learners.specs.Learner.copy`).
The pickle is the release artifact's and is needed anyway, but the unpickled River objects are rarely read: the
trainer asks a frozen LR snapshot for its answers through the batch's numpy mirror (:mod:`learners.batch`), and
the release's explanation for its weights. Both come from the scaler's statistics and the weights alone, copied
here at the release (three small dicts) instead of unpickled (~45 us of ~145 per release; session 26).

:func:`snapshot` returns a :class:`FrozenLinear` for a binary ``FeatureScaler | LogisticRegression`` learner the
batch path mirrors, else ``learner.copy()``. A :class:`FrozenLinear` holds every attribute of the learner but
``_model``, the pickle, and the mirror's inputs (:func:`linear_parts`). The first read of ``_model`` (River's
objects: a per-event prediction, a judgement against a reference set, a copy, a checkpoint's pickle) unpickles
the bytes, exactly as ``Learner.copy`` would have, and the object becomes a plain :class:`~learners.specs.Learner`
(``__class__`` reassigned), indistinguishable from the copy: the same attributes in the same order, the same
pickle. A snapshot never learns (the lifecycle copies a served model before it learns again), so the copied
attributes stay what the pickle holds.
"""

from __future__ import annotations

import copy
import functools
import math
import pickle
from typing import Any

from driftline.config import LearnerSpec
from driftline.errors import ArtifactError
from learners import safe_pickle
from learners.features import FeatureScaler
from learners.specs import Learner

#: The mirror's inputs: the scaler's means and variances, the weights, the intercept, and whether the scaler
#: passes indicators through (``FeatureScaler``) (see ``learners.batch.LinearMirror``).
Parts = tuple[dict[str, float], dict[str, float], dict[str, float], float, bool]

_ATOMS = frozenset((str, int, float, bool, type(None), tuple, LearnerSpec))
_RAW, _PARTS = "_snapshot_raw", "_snapshot_parts"


@functools.cache
def _types() -> tuple[Any, ...]:
    from river import compose, linear_model, optim, preprocessing

    return (
        compose.Pipeline,
        (preprocessing.StandardScaler, FeatureScaler),
        (
            (linear_model.LogisticRegression, optim.losses.Log),
            (linear_model.LinearRegression, optim.losses.Squared),
        ),
    )


def linear_parts(model: Any) -> Parts | None:
    """The mirror's inputs for River ``StandardScaler() | LogisticRegression()`` (or ``FeatureScaler``, or a
    ``LinearRegression`` with squared loss, as ``learners.specs`` builds them), else None (not that shape, or a
    diverged model: answered per event, where the learner's own fallbacks apply)."""
    pipeline, scalers, linear = _types()
    if not isinstance(model, pipeline):
        return None
    steps = list(model.steps.values())
    if len(steps) != 2:
        return None
    scaler, lr = steps
    # A binary LogisticRegression (log loss), or a LinearRegression with squared loss (its mean_func is the
    # identity, so the logit is the prediction).
    if type(scaler) not in scalers or (type(lr), type(lr.loss)) not in linear:
        return None
    if not scaler.with_std or scaler.window_size is not None:
        return None
    weights = lr._weights.to_dict() if hasattr(lr._weights, "to_dict") else dict(lr._weights)
    if not all(math.isfinite(float(w)) for w in weights.values()) or not math.isfinite(float(lr.intercept)):
        return None
    indicators = type(scaler) is FeatureScaler
    return dict(scaler.means), dict(scaler.vars), weights, float(lr.intercept), indicators


class FrozenLinear(Learner):
    """A :class:`~learners.specs.Learner` snapshot whose River objects are unpickled at their first read (see the
    module docstring). Made by :func:`snapshot` only."""

    # No __slots__: the layout stays Learner's, so ``__class__`` can become Learner once loaded.

    def __getattr__(self, name: str) -> Any:
        # Called only for what the instance lacks: ``_model`` until it is loaded (every other attribute was copied).
        if name != "_model" or _RAW not in self.__dict__:
            raise AttributeError(name)
        return self.load()._model

    def load(self) -> Learner:
        """River's objects from the pickle: this object becomes the plain ``Learner`` ``copy()`` would have made."""
        state = self.__dict__
        raw = state[_RAW]
        mark = self.learned_mark()
        loaded = pickle.loads(raw)  # our own bytes, in process: the plain unpickler, as Learner.copy
        state.clear()
        state.update(loaded.__dict__)
        self.__class__ = Learner  # type: ignore[assignment]
        safe_pickle.remade(self, mark, self.learned_mark())
        return self

    def learned_mark(self) -> tuple[int, int, int]:
        # (Learner's reads ``_model``: the pickle stands for it until it is loaded, see ``load``.)
        state = self.__dict__
        if _RAW in state:
            return sum(self._counts.values()), self._y_n, id(state[_RAW])
        return Learner.learned_mark(self)

    @property
    def parts(self) -> Parts:
        """The batch mirror's inputs (:func:`linear_parts` of the learner as it was frozen)."""
        parts: Parts = self.__dict__[_PARTS]
        return parts

    def linear_weights(self) -> dict[str, float]:
        """The weights as River's ``LogisticRegression.weights`` of the unpickled model would give them."""
        return self.parts[2]

    def __getstate__(self) -> dict[str, Any]:
        self.load()
        return Learner.__getstate__(self)  # (not super(): this object is a Learner now)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickled (a checkpoint, deepcopy, a copy of a rolled-back snapshot) as the Learner it stands for.
        self.load()
        return object.__reduce_ex__(self, protocol)


def snapshot(learner: Learner) -> Learner:
    """``learner.copy()`` for a copy that will never learn (a release's served snapshot): a :class:`FrozenLinear`
    for a binary logistic regression whose batch mirror applies, else the copy itself.

    The pickle is made here as ``copy`` makes it and left for the release's artifact (``safe_pickle.made``)."""
    if (
        type(learner) is not Learner
        or learner.task != "classification"
        or not learner._binary
        or len(learner._classes) < 2
    ):
        return learner.copy()
    parts = linear_parts(learner._model)
    if parts is None:
        return learner.copy()
    state: dict[str, Any] = {}
    for key, value in learner.__dict__.items():
        kind = type(value)
        if key == "_model":
            continue
        if kind is list or kind is dict:
            value = kind(value)  # of labels, keys and counts: atoms
        elif kind not in _ATOMS:
            return learner.copy()  # something this module does not know to copy
        state[key] = value
    try:
        raw = safe_pickle.compact(learner)
    except ArtifactError:  # something unpicklable: copy it in memory, as Learner.copy does
        return copy.deepcopy(learner)
    frozen = FrozenLinear.__new__(FrozenLinear)
    state[_RAW] = raw
    state[_PARTS] = parts
    frozen.__dict__.update(state)
    safe_pickle.made(frozen, raw, frozen.learned_mark())
    return frozen
