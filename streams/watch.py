"""Silent input changes made visible: a feature whose value type changes (``"sunny"`` where numbers came until now)
and a label class the model has never seen are counted warnings (``driftline_input_warnings_total``) and published
as drift-style events (detector ``schema``, signal ``feature_type:<name>`` or ``label:new_class``).

The trainer runs it on every labelled example it learns from (scorers see unlabelled events too, but a feature that
changes type reaches the learner through the trainer, which is where it changes what is learned).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from driftline.util import MAX_REGRESSION_LABEL, quoted_number
from learners.drift import DriftSignal
from learners.specs import MAX_MODEL_CLASSES

WARMUP = 50  # labels before a new class is news (the first classes of a fresh model are all new)
MAX_CLASSES = 10_000  # bounded memory on a regression-like label stream declared as classification
#: Feature names whose type is remembered; a name first seen after this many is not watched. Why: events whose
#: feature names are all new (an adversary, a key-per-entity payload) grew ``kinds``, and with it the trainer's
#: checkpoint, by one entry per event. A model learns at most ``learners.features.MAX_KEYS`` keys, so a name
#: past this bound is almost certainly one no model learns from either.
MAX_NAMES = 10_000
#: The longest text label learned as a class. Why: a class name sits in every Prediction's ``proba`` map, so a
#: label of 600 KB made every Prediction that large (two of them: over ``serving.max_record_bytes``, every event
#: dead-lettered). Far longer than any real class name.
MAX_LABEL_CHARS = 1024
#: The classes a classifier learns, and their names' characters in all: a label of a new class past either is
#: refused (dead-lettered). Why: every Prediction carries a probability per class, so 2,600 distinct 400-character
#: labels (an outside check, session 27) grew each Prediction's ``proba`` map past 200 KB on their way to the
#: record limit, where every event is dead-lettered; and a model's prediction cost grows with its classes
#: (``learners.specs.MAX_MODEL_CLASSES``). The labels of one batch are admitted before the watch sees any; the
#: classes a batch admitted count at once (before session 44 a batch passed either bound by its own new classes).
MAX_CLASS_CHARS = 200_000


# The usual types answered with one dict probe (``_kind``'s isinstance chain was most of the trainer's per-label
# input check); any other type, subclasses included, goes through ``_kind``.
_KINDS: dict[type, str] = {float: "number", int: "number", bool: "bool", str: "string", type(None): "null"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


# Value types that are a "number" (or a missing value): a feature of a name already known as a number with one of
# these types can change nothing and warn of nothing (``check_many``'s shortcut). Exact types: a subclass (bool
# is one of int) takes the full check.
_NUMERIC_TYPES = frozenset((float, int, type(None)))


def _too_large(label: float) -> str | None:
    """Why a regression label is beyond what the learners can square (``MAX_REGRESSION_LABEL``), or None."""
    if abs(label) <= MAX_REGRESSION_LABEL:
        return None
    return (
        f"refused label {label!r:.60}: beyond +/-{MAX_REGRESSION_LABEL:g}, where the learners' squared errors "
        "overflow a double (one such label stopped all later learning of the model)"
    )


class InputWatch:
    """Remembers each feature's value type and the label classes seen (it goes into the trainer's checkpoint)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.kinds: dict[str, str] = {}
        self.classes: set[str] = set()
        self.n = 0
        self.label_kind: str | None = None  # "number" or "string": the kind of the first label learned

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_numeric", None)  # derived from ``kinds``: rebuilt when needed, never in the checkpoint
        state.pop("_admitted", None)  # ``classes`` once learned
        return state

    def refuse_label(self, label: Any) -> str | None:
        """Why a classification label cannot be learned, or None. A label is a number (bool, int, float) or a
        string; River's classifiers keep their classes sorted (the Hoeffding tree's ``predict_proba_one``), so
        once a string class sits next to numeric ones every later prediction raises ``TypeError`` and the model
        learns nothing more. The first label learned sets the kind; a label of the other kind is refused (the
        trainer dead-letters it), as is a text label over ``MAX_LABEL_CHARS`` and a new class past
        ``MAX_MODEL_CLASSES`` or ``MAX_CLASS_CHARS``. A checkpoint from before this check
        takes the kind of its next label.

        A regression label that is no finite number (text, a boolean) is refused too: the learner ignored it while
        the trainer counted it learned, so a producer sending the wrong column never saw a dead letter (session 33).
        """
        if label is None:
            return None
        if self.task == "regression":
            if isinstance(label, bool) or not isinstance(label, (int, float)) or not math.isfinite(label):
                return (
                    f"refused label {label!r:.60}: a {type(label).__name__}, and this model is a regression "
                    "(model.task: regression) that learns finite numbers: send the target as a JSON number"
                )
            return _too_large(label)
        if self.task != "classification":
            return None
        kind = "string" if isinstance(label, str) else "number"
        if kind == "string" and len(label) > MAX_LABEL_CHARS:
            return f"refused label {label!r:.60}: {len(label)} characters, over {MAX_LABEL_CHARS} for a class name"
        key = str(label)
        classes = self.classes
        new = key not in classes
        # Classes admitted but not yet seen by the watch (a batch is admitted before :meth:`check_many`) count
        # too: a batch of one-off labels admitted them all, as many as the batch held.
        pending = [c for c in self.__dict__.get("_admitted", ()) if c not in classes] if new else []
        if (
            new
            and key not in pending
            and (
                len(classes) + len(pending) >= MAX_MODEL_CLASSES
                or sum(map(len, classes)) + sum(map(len, pending)) + len(key) > MAX_CLASS_CHARS
            )
        ):
            return (
                f"refused label {label!r:.60}: a new class, and this model has {len(classes)} classes already "
                f"(at most {MAX_MODEL_CLASSES}, {MAX_CLASS_CHARS:,} characters of names in all: every Prediction "
                "carries a probability per class, and each class slows every prediction); map rare labels to one "
                "class such as 'other' before publishing them"
            )
        known = self.__dict__.get("label_kind")
        if known is None:
            self.label_kind = known = kind
        if kind == known:
            if new:
                # The classes admitted but not learned yet (a batch is admitted before the watch sees it): with
                # ``classes``, what :meth:`admit` repairs against, the same whatever the batch's size. Only a new
                # class is remembered: the usual label, a known class, costs no set insertion.
                admitted: set[str] | None = self.__dict__.get("_admitted")
                if admitted is None:
                    admitted = set()
                    self._admitted = admitted
                admitted.add(key)
            return None
        return (
            f"refused label {label!r:.60}: a {kind}, and this model's classes are {known}s "
            "(a classifier cannot order the two kinds together)"
        )

    def admit(self, example: dict[str, Any]) -> str | None:
        """:meth:`refuse_label` for a TrainingExample, after one repair: a label of the other kind that names a
        class this model knows (``"1"`` where ``1`` was learned, or ``1`` where ``"1"`` was: two producers that
        quote differently) is learned as that class, in the model's kind; a regression label in text that spells a
        finite number is learned as that number (``example["label"]`` is replaced)."""
        why = self.refuse_label(example["label"])
        if why is None:
            return None
        if self.task == "regression":
            number = quoted_number(example["label"])
            if (
                number is not None and _too_large(number) is None
            ):  # "12.5" from a producer that quotes its numbers
                example["label"] = number
                return None
            return why if number is None else _too_large(number)
        if (same := self._known_class(example["label"])) is not None:
            example["label"] = same
            return None
        return why

    def _known_class(self, label: Any) -> Any:
        """``label`` in this model's kind when its text is a class the model knows, else None."""
        key = str(label)
        if key not in self.classes and key not in self.__dict__.get("_admitted", ()):
            return None
        if self.__dict__.get("label_kind") == "string":
            return key
        if isinstance(label, str):
            for number in (int, float):
                try:
                    value = number(label)
                except ValueError:
                    continue
                return value if str(value) == key else None
        return None

    def _numeric_names(self) -> frozenset[str]:
        """The names whose remembered kind is a number (rebuilt after :meth:`check` changed ``kinds``)."""
        names: frozenset[str] | None = self.__dict__.get("_numeric")
        if names is None:
            names = self._numeric = frozenset(k for k, v in self.kinds.items() if v == "number")
        return names

    def check_many(self, examples: Sequence[tuple[dict[str, Any], Any]], index: int) -> list[DriftSignal]:
        """:meth:`check` for a batch of (features, label), the first at ``index``: the same warnings in the same
        order, with the same state after. An example whose features are all numbers (or missing) of names
        already known as numbers is answered by two set comparisons in C instead of a probe per feature (the
        trainer's usual example: ~3 us -> ~1 per label at 20 features)."""
        out: list[DriftSignal] = []
        numeric = self._numeric_names()
        numeric_types = _NUMERIC_TYPES
        classify = self.task == "classification"
        classes = self.classes
        for k, (features, label) in enumerate(examples):
            if not (features.keys() <= numeric and numeric_types.issuperset(map(type, features.values()))):
                out += self.check(features, label, index + k)
                numeric = self._numeric_names()
                continue
            if classify and label is not None and len(classes) < MAX_CLASSES:
                key = str(label)
                if key not in classes:
                    out += self._new_class(key, index + k)
            self.n += 1
        return out

    def _new_class(self, key: str, index: int) -> list[DriftSignal]:
        out = []
        if self.n >= WARMUP:
            known = ", ".join(
                c[:60] for c in sorted(self.classes)[:10]
            )  # each shortened: the event stays small
            out.append(DriftSignal("schema", "label:new_class", index, {"label": key[:60], "known": known}))
        self.classes.add(key)
        return out

    def check(self, features: dict[str, Any], label: Any, index: int) -> list[DriftSignal]:
        """The warnings for one labelled example (usually none)."""
        out: list[DriftSignal] = []
        kinds = self.kinds
        for name, value in features.items():
            kind = _KINDS.get(type(value)) or _kind(value)
            if kind == "null":  # a missing value is not a type change
                continue
            was = kinds.get(name)
            if was is None:
                if len(kinds) < MAX_NAMES:
                    kinds[name] = kind
                    self.__dict__.pop("_numeric", None)
                continue
            if was != kind:
                self.kinds[name] = kind  # one warning per change, not one per event
                self.__dict__.pop("_numeric", None)
                details = {"feature": name, "was": was, "now": kind, "value": repr(value)[:60]}
                out.append(DriftSignal("schema", f"feature_type:{name}", index, details))
        if self.task == "classification" and label is not None and len(self.classes) < MAX_CLASSES:
            key = str(label)
            if key not in self.classes:
                out += self._new_class(key, index)
        self.n += 1
        return out
