"""``docs/experiments/short_trace.py --patch`` (and ``regtax_gate.py``, which uses it) set a module constant by its
type: the string "False" is False for a bool (``bool("False")`` was True), and what does not parse is refused
(fixes33, item 5)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "experiments"))

import short_trace  # type: ignore[import-not-found]


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("patched_for_test")
    mod.FLAG = True  # type: ignore[attr-defined]
    mod.COUNT = 3  # type: ignore[attr-defined]
    mod.RATE = 0.5  # type: ignore[attr-defined]
    mod.NOTHING = None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "patched_for_test", mod)
    return mod


def test_a_bool_constant_reads_false_as_false(module: types.ModuleType) -> None:
    short_trace._patch("patched_for_test.FLAG=False,patched_for_test.COUNT=7,patched_for_test.RATE=0.25")
    assert (module.FLAG, module.COUNT, module.RATE) == (False, 7, 0.25)
    short_trace._patch("patched_for_test.FLAG=true,patched_for_test.NOTHING=12")
    assert (module.FLAG, module.NOTHING) == (True, 12)
    short_trace._patch("patched_for_test.COUNT=None")
    assert module.COUNT is None


@pytest.mark.parametrize(
    "patch",
    [
        "patched_for_test.FLAG=Flase",
        "patched_for_test.COUNT=1.5",
        "patched_for_test.RATE=x",
        "patched_for_test.FLAG",
    ],
)
def test_what_does_not_parse_is_refused(module: types.ModuleType, patch: str) -> None:
    with pytest.raises(SystemExit, match="--patch"):
        short_trace._patch(patch)
    assert (module.FLAG, module.COUNT, module.RATE) == (True, 3, 0.5)
