"""Every pickle opcode that can name or call a global goes through the allow-list, in a correctly signed release
(session 35, as an attacker): GLOBAL + REDUCE (protocol 0), INST, OBJ, STACK_GLOBAL + REDUCE, NEWOBJ, NEWOBJ_EX, an
extension code (EXT1/2/4: the registry names a global) and a persistent id. Each gadget is first shown to run
under plain ``pickle.loads`` where it can (it writes a file in tmp_path), then refused by the loader with no file
written."""

from __future__ import annotations

import copyreg
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from driftline.errors import ArtifactError, SecurityError
from tests.test_safe_pickle_gadgets import _refused, _signed


def _code(marker: Path) -> bytes:
    return f"open({str(marker)!r}, 'w').write('pwned')".encode()


def _unicode(text: bytes) -> bytes:  # protocol 0 string argument (UNICODE opcode)
    return b"V" + text + b"\n"


def _short(text: bytes) -> bytes:  # SHORT_BINUNICODE
    return b"\x8c" + bytes([len(text)]) + text


GADGETS: dict[str, Callable[[Path], bytes]] = {
    "global_reduce": lambda m: b"cbuiltins\nexec\n(" + _unicode(_code(m)) + b"tR.",
    "inst": lambda m: b"(" + _unicode(_code(m)) + b"ibuiltins\nexec\n.",
    "obj": lambda m: b"(cbuiltins\nexec\n" + _unicode(_code(m)) + b"o.",
    "stack_global_reduce": lambda m: (
        b"\x80\x04" + _short(b"builtins") + _short(b"exec") + b"\x93" + _short(_code(m)) + b"\x85R."
    ),
    "ext1_reduce": lambda m: b"\x80\x02\x82\xf1" + _short(_code(m)) + b"\x85R.",
}
# No side effect to show under plain pickle (a class's __new__), but the class must be refused all the same.
CLASSES: dict[str, bytes] = {
    "newobj": b"\x80\x02csubprocess\nPopen\n)\x81.",
    "newobj_ex": b"\x80\x04" + _short(b"subprocess") + _short(b"Popen") + b"\x93)}\x92.",
    "stack_global_os": b"\x80\x04" + _short(b"os") + _short(b"system") + b"\x93.",
    "global_posix": b"cposix\nsystem\n.",
    "global_nt_dotted": b"\x80\x04" + _short(b"os.path") + _short(b"os.system") + b"\x93.",  # qualname walk
}


@pytest.fixture
def extension() -> Iterator[None]:
    """Extension code 241 names builtins.exec (a registry entry a forger cannot add, but another library could)."""
    copyreg.add_extension("builtins", "exec", 241)
    try:
        yield
    finally:
        copyreg.remove_extension("builtins", "exec", 241)


@pytest.mark.parametrize("name", sorted(GADGETS))
def test_each_opcode_path_to_a_global_is_refused(name: str, tmp_path: Path, extension: None) -> None:
    works, refused = tmp_path / "works", tmp_path / "refused"
    pickle.loads(GADGETS[name](works))
    assert works.read_text() == "pwned"  # the gadget is real
    error = _refused(_signed(GADGETS[name](refused)))
    assert "builtins.exec is not allowed" in str(error)
    assert not refused.exists()


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_classes_named_by_any_opcode_are_refused(name: str) -> None:
    assert "is not allowed" in str(_refused(_signed(CLASSES[name])))


def test_a_persistent_id_is_an_error_not_a_lookup() -> None:
    from learners.artifacts import load_release
    from tests.test_safe_pickle_gadgets import KEY

    for raw in (b"Pos.system\n.", b"\x80\x04" + _short(b"os.system") + b"Q."):
        with pytest.raises((ArtifactError, SecurityError), match="persistent"):
            load_release(_signed(raw), key=KEY)
