"""Signed pickles that copy one of their objects many times (session 35, F1 and F8 of docs/experiments/sec35.md).

A memo reference costs 2 bytes, so a few hundred bytes of payload can copy one large list or dict thousands of
times: 5,000 ``collections.deque(L)`` of one 200,000-item list, or 2,000 ``river.stats.mean.Mean`` whose BUILD
state is one 100,000-key dict. Both reached a 3 GiB limit before the loader refused them (the per-read memory
check does not see allocations over 512 bytes). The loader now refuses a pickle that copies one object twice,
before it unpickles anything. The cases here are small (a few MB even unrefused), so the tests are safe without
the fix; the shape is what the loader refuses, whatever the sizes.

F8: numpy's ``__generator_ctor(x, ctor)`` calls ``ctor(x)``, so a pickled ``partial(copy.deepcopy)`` ran at load
time (one deep copy) although the scan refuses calling anything but a global.
"""

from __future__ import annotations

import pickletools
import zlib
from typing import Any

import pytest

from learners import safe_pickle
from tests.test_safe_pickle_gadgets import _refused, _signed


def _framed(body: bytes) -> bytes:
    """Protocol 5 with frames of at most 64 KB cut at opcode boundaries, as the pickler writes them."""
    data = b"\x80\x05" + body
    cuts = [*[pos for _, _, pos in pickletools.genops(data)][1:], len(data)]
    out, start, last = bytearray(b"\x80\x05"), 2, 2
    for cut in cuts:
        if cut - start > 65536:
            out += b"\x95" + (last - start).to_bytes(8, "little") + data[start:last]
            start = last
        last = cut
    out += b"\x95" + (len(data) - start).to_bytes(8, "little") + data[start:]
    return bytes(out)


def deque_copies(n: int, calls: int) -> bytes:
    """A list of ``n`` references to one int (memo 0), then ``calls`` times ``collections.deque(list)``."""
    body = bytearray(b"]\x94K\x01\x940(" + b"h\x01" * n + b"e0")
    body += b"\x8c\x0bcollections\x94\x8c\x05deque\x94\x93\x94"  # collections.deque (memo 4)
    body += b"(" + b"h\x04h\x00\x85R" * calls + b"l."
    return _framed(bytes(body))


def build_copies(n: int, calls: int) -> bytes:
    """A dict of ``n`` keys (memo 0), then ``calls`` times ``river.stats.mean.Mean()`` with it as BUILD state."""
    body = bytearray(b"}\x94(")
    for i in range(n):
        key = b"k%d" % i
        body += b"\x8c" + bytes([len(key)]) + key + b"N"
    body += b"u0"
    body += b"\x8c\x10river.stats.mean\x94\x8c\x04Mean\x94\x93\x94"  # river.stats.mean.Mean (memo 3)
    body += b"(" + b"h\x03)\x81h\x00b" * calls + b"l."
    return _framed(bytes(body))


def dup_copies(n: int) -> bytes:
    """``deque(L)`` twice where the argument tuple ``(L,)`` is duplicated by DUP, and L is never memoized."""
    body = b"\x8c\x0bcollections\x8c\x05deque\x93](" + b"K\x01" * n + b"e\x852\x940R"  # DUP, memo 0, POP
    body += b"\x8c\x0bcollections\x8c\x05deque\x93h\x00R\x86."  # deque(memo 0), as a pair with the first
    return _framed(body)


def generator_ctor_copy(n: int) -> bytes:
    """F8: ``numpy.random._pickle.__generator_ctor(list, functools.partial(copy.deepcopy))``."""
    body = bytearray(b"]\x94K\x01\x940(" + b"h\x01" * n + b"e0")  # list (memo 0)
    body += b"\x8c\x09functools\x94\x8c\x07partial\x94\x93\x94"  # memo 4
    body += b"\x8c\x04copy\x94\x8c\x08deepcopy\x94\x93\x94"  # memo 7
    body += b"h\x04h\x07\x85R\x94"  # partial(deepcopy): memo 8
    body += b"\x8c\x14numpy.random._pickle\x94\x8c\x10__generator_ctor\x94\x93\x94"  # memo 11
    body += b"h\x0bh\x00h\x08\x86R."
    return _framed(bytes(body))


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (deque_copies(12_000, 50), "an argument of collections.deque"),
        (build_copies(3_000, 20), "BUILD state"),
        (dup_copies(12_000), "an argument of collections.deque"),
    ],
    ids=["deque_of_one_list", "build_state_of_one_dict", "through_dup"],
)
def test_a_signed_pickle_copying_one_object_many_times_is_refused(raw: bytes, where: str) -> None:
    assert len(raw) > safe_pickle.SCAN_ABOVE  # no bounded constructor named: refused for its copies alone
    error = _refused(_signed(raw))
    assert "copied more than once" in str(error) and where in str(error), str(error)


def test_the_576_byte_payload_of_session_35_is_refused_before_it_builds_anything() -> None:
    # 8 GB of deques if loaded: loaded in a child whose address space is capped at 2 GiB, so a loader that does
    # not refuse it fails this test (MemoryError) instead of the machine.
    import pickle
    import resource
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_safe_pickle_gadgets import _LOAD_IN_CHILD, KEY

    raw = deque_copies(200_000, 5_000)
    payload = zlib.compress(raw, 9)
    assert len(payload) < 1024

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    child = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_CHILD % KEY],
        input=pickle.dumps(_signed(raw, compressed=payload)),
        capture_output=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
        preexec_fn=cap,
    )
    out = child.stdout.decode(errors="replace")
    assert child.returncode == 0, f"child died with {child.returncode}: {out} {child.stderr.decode()[-500:]}"
    assert out.startswith("REFUSED allow_list") and "copied more than once" in out, out


def test_one_copy_of_each_object_still_loads() -> None:
    restored: Any = safe_pickle.loads(zlib.compress(deque_copies(12_000, 1)))
    assert len(restored) == 1 and len(restored[0]) == 12_000


def test_numpy_generator_ctor_does_not_call_a_pickled_partial_at_load_time() -> None:
    error = _refused(_signed(generator_ctor_copy(1_000)))
    assert "__generator_ctor" in str(error), str(error)


def test_a_numpy_generator_still_round_trips() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    restored: Any = safe_pickle.loads(safe_pickle.dumps(rng))
    assert restored.integers(0, 1 << 30) == np.random.default_rng(7).integers(0, 1 << 30)
