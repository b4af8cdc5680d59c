"""The pickle allow-list is exactly what the learners pickle: every learner kind round-trips through the restricted
loader, every global it names is listed, every listed entry is needed (or a documented legacy spelling), and every
listed class with its own ``__setstate__``/``__reduce__`` carries a review note of its own."""

from __future__ import annotations

import importlib
import zlib
from typing import Any

import pytest

from learners import pickle_allow, safe_pickle
from tests.learner_kinds import class_counts, examples, load_recording, specs, trained

SPECS = list(specs())


@pytest.fixture(scope="module")
def recorded() -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for kid, spec, task in SPECS:
        seen: set[tuple[str, str]] = set()
        for classes in class_counts(spec, task):
            model = trained(spec, task, n=150, classes=classes)
            payload = safe_pickle.dumps(model)
            load_recording(zlib.decompress(payload), seen)
            restored: Any = safe_pickle.loads(payload)  # the restricted loader takes every kind
            probe = [x for x, _ in examples(task, 20, seed=9)]
            assert [restored.predict_one(x) for x in probe] == [model.predict_one(x) for x in probe], kid
        out[kid] = seen
    return out


def test_every_kind_is_covered() -> None:
    from learners.specs import KINDS

    assert {spec.name for _, spec, _ in SPECS} == set(KINDS)


def test_every_pickled_global_is_allow_listed(recorded: dict[str, set[tuple[str, str]]]) -> None:
    missing = {kid: sorted(seen - pickle_allow.ALLOWED.keys()) for kid, seen in recorded.items()}
    assert not any(missing.values()), missing


def test_no_allow_list_entry_is_stale(recorded: dict[str, set[tuple[str, str]]]) -> None:
    needed = set().union(*recorded.values())
    unused = set(pickle_allow.ALLOWED) - needed - pickle_allow.LEGACY
    assert not unused, f"allow-listed but pickled by no learner kind: {sorted(unused)}"


def _resolve(module: str, name: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def test_classes_with_their_own_reduce_or_setstate_carry_a_review_note() -> None:
    plain = pickle_allow._PLAIN
    for (module, name), note in pickle_allow.ALLOWED.items():
        obj = _resolve(module, name)
        if not isinstance(obj, type):
            assert note and note != plain, f"function {module}.{name} needs its own review note"
            continue
        own = [
            attr
            for attr in ("__reduce__", "__reduce_ex__", "__setstate__")
            if getattr(obj, attr, None) is not getattr(object, attr, None)
        ]
        if own:
            assert note != plain, f"{module}.{name} defines {own}: it needs a review note, not the plain one"


def test_the_allow_list_names_classes_not_packages() -> None:
    for module, name in pickle_allow.ALLOWED:
        assert name and "*" not in name and not name.endswith("."), (module, name)
        _resolve(module, name)  # each entry is one real object
