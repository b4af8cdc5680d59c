"""The loader refuses every known gadget, even in a correctly signed release, with no side effect.

Each gadget is first shown to work under plain ``pickle.loads`` (where that is harmless in a test: a file written
in tmp_path, a string executed), so the refusal is a real one. Refusals must be SecurityErrors that the release
follower counts as ``reason="allow_list"`` (streams/releases.py ``_reason``).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pickle
import resource
import zlib
from pathlib import Path
from typing import Any

import pytest

from driftline.errors import SecurityError
from learners import safe_pickle
from learners.artifacts import ArtifactHeader, load_release, sign
from streams.releases import _reason

KEY = b"gadget-test-signing-key-0123456789abcdef"


class _Reduce:
    """Pickles as ``func(*args)`` followed by BUILD ``state`` (if any): how a forger writes a gadget."""

    def __init__(self, func: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.reduced = (func, args) if state is None else (func, args, state)

    def __reduce__(self) -> Any:
        return self.reduced


def _signed(raw_pickle: bytes, *, compressed: bytes | None = None) -> dict[str, Any]:
    """A release whose payload is ``raw_pickle`` (zlib), signed with KEY: what a leaked key allows."""
    payload = compressed if compressed is not None else zlib.compress(raw_pickle)
    header = ArtifactHeader(
        model="m", version=1, parent=None, created_at=0, reason="initial",
        sha256=hashlib.sha256(payload).hexdigest(), format=safe_pickle.FORMAT,
    )  # fmt: skip
    text = header.to_json()
    return {
        "model": "m", "version": 1, "parent": None, "created_at": 0, "reason": "initial", "metrics": {},
        "format": safe_pickle.FORMAT, "artifact": payload, "artifact_ref": None, "sha256": header.sha256,
        "signature": sign(text, payload, KEY), "header": text, "decision": "",
    }  # fmt: skip


def _refused(release: dict[str, Any]) -> SecurityError:
    with pytest.raises(SecurityError) as info:
        load_release(release, key=KEY)
    assert "allow-list" in str(info.value)
    assert _reason(str(info.value)) == "allow_list", str(info.value)
    return info.value


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(pid) for pid in text)
    return found


def _norm_gen_gadget(marker: Path) -> bytes:
    from scipy.stats._continuous_distns import norm_gen

    # rv_generic.__setstate__ -> _attach_methods -> exec(self._parse_arg_template % ...) in scipy.
    template = f"open({str(marker)!r}, 'w').write('pwned')\ndef _parse_args(*a, **k): return a, k\n"
    state = {"_parse_arg_template": template, "_ctor_param": {}, "numargs": 0, "shapes": None}
    state.update({"_random_state": None, "a": 0, "b": 1, "badvalue": None, "name": "norm", "xtol": 1e-14})
    return pickle.dumps(_Reduce(norm_gen, (), state), protocol=5)


def test_scipy_norm_gen_exec_gadget_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "exec-ran"
    raw = _norm_gen_gadget(marker)
    with contextlib.suppress(Exception):  # the gadget is real: plain pickle runs the string (then may fail)
        pickle.loads(raw)
    assert marker.exists(), "the scipy gadget no longer executes its template under plain pickle"
    marker.unlink()
    error = _refused(_signed(raw))
    assert "scipy.stats._continuous_distns.norm_gen is not allowed" in str(error)
    assert not marker.exists()


def test_write_html_file_gadget_is_refused(tmp_path: Path) -> None:
    from streams.reporting.page import write_html

    # The report writer puts text of the forger's choosing in a file of the forger's choosing.
    target = tmp_path / "planted.html"
    raw = pickle.dumps(_Reduce(write_html, (str(target), "t", [("planted", "<p>payload</p>")])), protocol=5)
    pickle.loads(raw)  # the gadget is real
    assert "<p>payload</p>" in target.read_text()
    target.unlink()
    error = _refused(_signed(raw))
    assert "streams.reporting.page.write_html is not allowed" in str(error)
    assert not target.exists()


def test_mapwrapper_spawn_gadget_is_refused() -> None:
    from scipy._lib._util import MapWrapper

    raw = pickle.dumps(_Reduce(MapWrapper, (4,)), protocol=5)
    before = _children()
    error = _refused(_signed(raw))
    assert "scipy._lib._util.MapWrapper is not allowed" in str(error)
    assert _children() == before and not multiprocessing.active_children()


def test_bytes_allocation_gadget_is_refused_without_allocating() -> None:
    raw = pickle.dumps(_Reduce(bytes, (400_000_000,)), protocol=5)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    error = _refused(_signed(raw))
    assert "builtins.bytes is not allowed" in str(error)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mib < 100, f"peak memory grew by {grown_mib:.0f} MiB"


def _zip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    parts = [packer.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(parts) + packer.flush()


def test_zip_bomb_is_refused_by_the_decompression_cap() -> None:
    bomb = _zip_bomb(300 * 1024 * 1024)
    assert len(bomb) < 400_000, len(bomb)  # ~292 KB that inflate to 300 MB
    error = _refused(_signed(b"", compressed=bomb))
    assert f"decompresses to over {safe_pickle.MAX_PICKLE_BYTES} bytes" in str(error)


def test_object_count_cap_stops_a_flood_of_small_objects() -> None:
    raw = pickle.dumps([{} for _ in range(400_000)], protocol=5)
    with pytest.raises(SecurityError, match="allocated over 50000 objects"):
        safe_pickle.loads(zlib.compress(raw), max_objects=50_000)
    assert len(safe_pickle.loads(zlib.compress(raw))) == 400_000  # the default cap lets it through


def test_a_frame_larger_than_the_cap_is_refused() -> None:
    body = pickle.dumps(list(range(10)), protocol=5)[11:]  # drop PROTO and the FRAME header
    big = b"\x80\x05\x95" + (2 << 20).to_bytes(8, "little") + body + b"N" * ((2 << 20) - len(body))
    with pytest.raises(SecurityError, match="pickle frame of 2097152 bytes"):
        safe_pickle.loads(zlib.compress(big))


def test_getattr_and_other_builtins_are_refused() -> None:
    for func, args in (
        (getattr, ("x", "upper")),
        (eval, ("1",)),
        (open, ("/etc/passwd",)),
        (os.system, ("",)),
    ):
        raw = pickle.dumps(_Reduce(func, args), protocol=5)
        with pytest.raises(SecurityError, match=rf"\.{func.__name__} is not allowed"):
            safe_pickle.loads(zlib.compress(raw))


def test_bounded_constructors_are_checked_before_anything_is_built() -> None:
    import numpy as np
    from river._river_rust.drift import AdaptiveWindowing
    from sklearn.tree._tree import Tree

    # max_buckets = 10**9 would preallocate gigabytes; n_outputs = 10**9 an 8 GB array.
    window = pickle.dumps(_Reduce(AdaptiveWindowing, (0.002, 32, 10**9, 5, 10)), protocol=5)
    tree = pickle.dumps(_Reduce(Tree, (2, np.array([2]), 10**9)), protocol=5)
    for raw, name in ((window, "AdaptiveWindowing called through REDUCE"), (tree, "Tree argument 2")):
        with pytest.raises(SecurityError, match=name):
            safe_pickle.loads(zlib.compress(raw))


def test_deepcopy_is_only_a_partial_func_never_called_at_load_time() -> None:
    import copy
    import functools

    big = list(range(1000))
    raw = pickle.dumps([big, _Reduce(copy.deepcopy, (big,))], protocol=5)
    with pytest.raises(SecurityError, match=r"copy\.deepcopy called through REDUCE"):
        safe_pickle.loads(zlib.compress(raw))
    ok = pickle.dumps(functools.partial(copy.deepcopy, [1, 2]), protocol=5)
    restored: Any = safe_pickle.loads(zlib.compress(ok))
    assert restored() == [1, 2]


@pytest.mark.parametrize(
    ("header", "message"),
    [("[" * 100_000, "nested deeper than 4 levels"), ('{"model": "' + "x" * 300_000 + '"}', "over 262144")],
)
def test_signed_header_is_parsed_within_depth_and_size_limits(header: str, message: str) -> None:
    payload = safe_pickle.dumps(1)
    release = {"model": "m", "version": 1, "artifact": payload, "header": header}
    release["signature"] = sign(header, payload, KEY)  # signed: only the parser's own limits stand in the way
    with pytest.raises(SecurityError, match=message):
        load_release(release, key=KEY)


def _stripped_dtype(base: tuple[Any, ...], state: tuple[Any, ...]) -> _Reduce:
    """A numpy dtype rebuilt with a forged ``__setstate__`` state (flags 0: "holds no object pointers")."""
    import numpy as np

    return _Reduce(np.dtype, base, state)


def _numpy_gadgets() -> dict[str, bytes]:
    import numpy as np
    from numpy._core.multiarray import scalar
    from numpy._core.numeric import _frombuffer

    objects = _stripped_dtype(("O8", False, True), (3, "|", None, None, None, -1, -1, 0))
    far_field = _stripped_dtype(
        ("V16", False, True), (3, "|", None, ("a",), {"a": (np.dtype("f8"), 1_000_000)}, 16, 1, 0)
    )
    nested = _stripped_dtype(("V8", False, True), (3, "|", None, ("a",), {"a": (objects, 0)}, 8, 1, 0))
    return {
        # a dtype kept as it is (an estimator's dtype attribute): x.astype(it) segfaults, np.empty(n, it) reads
        # uninitialised pointers
        "dtype_attribute_objects": pickle.dumps({"dtype": objects}, protocol=5),
        "dtype_attribute_far_field": pickle.dumps({"dtype": far_field}, protocol=5),
        # an object array over bytes of the pickle: each 8 bytes a PyObject* the forger chose
        "frombuffer_objects": pickle.dumps(
            _Reduce(_frombuffer, (b"\x41" * 16, objects, (2,), "C")), protocol=5
        ),
        # numpy reads the 8 bytes as a PyObject* while unpickling: a segfault at load, in every scorer
        "scalar_object": pickle.dumps(_Reduce(scalar, (objects, b"\x41" * 8)), protocol=5),
        # a field a megabyte past the end of each 16-byte element: reads (and writes) outside the buffer
        "frombuffer_field_out_of_bounds": pickle.dumps(
            _Reduce(_frombuffer, (b"\x41" * 16, far_field, (1,), "C")), protocol=5
        ),
        "frombuffer_nested_objects": pickle.dumps(
            _Reduce(_frombuffer, (b"\x41" * 16, nested, (2,), "C")), protocol=5
        ),
    }


_LOAD_IN_CHILD = """
import pickle, sys
from driftline.errors import SecurityError
from learners.artifacts import load_release
from streams.releases import _reason
release = pickle.loads(sys.stdin.buffer.read())
try:
    header, model = load_release(release, key=%r)
except SecurityError as exc:
    print("REFUSED", _reason(str(exc)), exc)
    sys.exit(0)
repr(model)
print("LOADED", type(model).__name__)
"""


@pytest.mark.parametrize("gadget", sorted(_numpy_gadgets()))
def test_numpy_dtype_state_gadgets_are_refused(gadget: str) -> None:
    # numpy.dtype, _frombuffer and scalar are allowed (every learner's arrays travel as them), and BUILD hands the
    # dtype a state of the forger's choosing: flags that deny its object pointers, fields outside its items. The
    # arrays and scalars built with such a dtype read memory at addresses in the pickle: a crash at load (scalar)
    # or when the model is used. Loaded in a child process, since what is tested is that nothing crashes.
    import subprocess
    import sys

    release = _signed(_numpy_gadgets()[gadget])
    child = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_CHILD % KEY],
        input=pickle.dumps(release),
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    out = child.stdout.decode(errors="replace")
    assert child.returncode == 0, f"child died with {child.returncode}: {out} {child.stderr.decode()[-500:]}"
    assert out.startswith("REFUSED allow_list"), out


def test_a_rust_panic_in_a_setstate_is_an_artifact_error_not_a_base_exception() -> None:
    # River's ADWIN (AdaptiveWindowing, Rust) decodes its state with unwrap(): a truncated state panics, and pyo3's
    # PanicException derives from BaseException. It went through every `except Exception` on its way: the scorer's
    # release follower thread died without a word and the scorer kept serving its old model, ignoring every
    # later release.
    import copyreg
    import io

    from river import drift

    from driftline.errors import ArtifactError

    adwin = drift.ADWIN()
    for x in range(100):
        adwin.update(x % 3)
    helper = adwin._helper
    state = helper.__getstate__()

    class Truncating(pickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is type(helper):
                return (copyreg.__newobj__, (type(obj), 0.002, 32, 5, 5, 10), state[:30])
            return NotImplemented

    buf = io.BytesIO()
    Truncating(buf, protocol=5).dump({"adwin": helper})
    with pytest.raises(ArtifactError, match="cannot unpickle"):
        load_release(_signed(buf.getvalue()), key=KEY)
