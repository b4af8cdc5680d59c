"""Silent input changes made visible: a feature whose value type changes (``"sunny"`` where numbers came until now)
and a label class the model has never seen are counted warnings (``driftline_input_warnings_total``) and published
as drift-style events (detector ``schema``, signal ``feature_type:<name>`` or ``label:new_class``).

The trainer runs it on every labelled example it learns from (scorers see unlabelled events too, but a feature that
changes type reaches the learner through the trainer, which is where it changes what is learned).
"""

from __future__ import annotations

from typing import Any

from learners.drift import DriftSignal

WARMUP = 50  # labels before a new class is news (the first classes of a fresh model are all new)
MAX_CLASSES = 10_000  # bounded memory on a regression-like label stream declared as classification
#: Feature names whose type is remembered; a name first seen after this many is not watched. Why: events whose
#: feature names are all new (an adversary, a key-per-entity payload) grew ``kinds``, and with it the trainer's
#: checkpoint, by one entry per event. A model learns at most ``learners.features.MAX_KEYS`` keys, so a name
#: past this bound is almost certainly one no model learns from either.
MAX_NAMES = 10_000


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


class InputWatch:
    """Remembers each feature's value type and the label classes seen (it goes into the trainer's checkpoint)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.kinds: dict[str, str] = {}
        self.classes: set[str] = set()
        self.n = 0

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
                continue
            if was != kind:
                self.kinds[name] = kind  # one warning per change, not one per event
                details = {"feature": name, "was": was, "now": kind, "value": repr(value)[:60]}
                out.append(DriftSignal("schema", f"feature_type:{name}", index, details))
        if self.task == "classification" and label is not None and len(self.classes) < MAX_CLASSES:
            key = str(label)
            if key not in self.classes:
                if self.n >= WARMUP:
                    known = ", ".join(sorted(self.classes)[:10])
                    details = {"label": key, "known": known}
                    out.append(DriftSignal("schema", "label:new_class", index, details))
                self.classes.add(key)
        self.n += 1
        return out
