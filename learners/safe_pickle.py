"""Compact pickling of models and a restricted unpickler with an allow-list.

Two halves with one reason to change: *what* a model artifact's bytes may contain.

Writing (:func:`dumps`): pickle protocol 5, then zlib (a pickle under 4 KB stored, not compressed). River's
probability distributions (``river.proba.Gaussian`` and friends, thousands of them inside tree splitters) each own a
``random.Random`` whose 625-word Mersenne-Twister state costs ~3 KB of incompressible bytes: an
ARF with 10 trees after 50k Agrawal examples pickles to 15.9 MB, 95 % of it those states. The
distributions only use that generator in ``sample()``, which no tree, forest or naive Bayes model
calls, so :class:`CompactPickler` stores it as a 64-bit seed drawn from a *copy* of the current
state (deterministic for a given model, the live model is untouched). Trade-off: after a reload a
distribution's ``sample()`` produces a different (still valid) random sequence than the original
would have. Generators that do drive learning (ARF's Poisson bagging, feature subspaces, HAT's
tie-breaking) are not distributions and keep their exact state, so a reloaded model learns and
predicts exactly like the original. See BENCHMARKS-artifacts.md for the numbers.

Loading in steps (format ``pickle5+zlib+steps``): unpickling is one C call that holds the interpreter lock,
so a scorer loading a 7 MB ARF in a background thread stalled its event loop for the whole 1-1.7 s load.
The pickler gives plain River / driftline objects (no custom reduce or ``__setstate__``: estimators, tree
nodes, splitters) a ``state_setter``, :func:`_set_state`, so the unpickler makes a Python call after each
(~47k for that ARF, at most ~1 ms apart); at each call the interpreter can hand the lock to a waiting
thread (every ``sys.getswitchinterval()``, 5 ms). It adopts the unpickled dict as the object's ``__dict__``
(faster than BUILD's copy). The many small statistics inside them (``river.stats``, ``river.proba``: 132k
in that ARF) keep plain BUILD: their parents are hand-over points enough, and giving them a setter too
made the artifact 29 % bigger instead of 7 %. Chunking the pickle into separately unpickled pieces was
the alternative; it splits the memo, so objects shared across pieces (a generator shared by all
distributions) would come back as copies.

Reading (:func:`loads`): the signature check in :mod:`learners.artifacts` is the primary control;
the loader is defence in depth for the day a signing key leaks, and trusts nothing in the bytes:

- the payload may decompress to at most ``max_bytes`` (:data:`MAX_PICKLE_BYTES`), checked while decompressing;
- the pickle's frames are walked (one step per 64 KB frame) before anything is unpickled: a frame over 1 MiB, or
  ordinary opcodes outside frames, are refused, so the unpickler reads its input in small pieces;
- while it reads, the number of memory blocks the load has allocated is checked at every piece against
  ``max_objects`` (:data:`MAX_PICKLE_OBJECTS`): a pickle of millions of empty dicts is stopped early;
- :class:`RestrictedUnpickler` resolves only the exact (module, name) pairs of :data:`learners.pickle_allow.ALLOWED`
  (classes and a few reconstructors, each reviewed there; no package prefixes, no ``getattr``);
- numpy's ``_frombuffer`` and ``scalar`` take only a dtype numpy would build itself, without objects (a forged
  dtype state makes them read pickle bytes as object pointers, or memory outside the buffer), and every dtype the
  pickle builds must be such a dtype once the load is over (before the model is returned and used);
- a pickle naming one of the few constructors that allocate from an argument
  (:data:`learners.pickle_allow.BOUNDED`), or longer than :data:`SCAN_ABOVE`, is first scanned opcode by opcode
  (:func:`learners.pickle_allow.scan`): bounded constructors' arguments, and no object of the pickle copied twice
  (a memo reference costs 2 bytes: 5,000 deques of one 200,000-item list fit in 576 bytes of payload, and the
  per-read check above does not see allocations over 512 bytes);
- numpy's ``__generator_ctor`` takes only a bit generator, or numpy's own ``__bit_generator_ctor`` as its
  constructor (it calls what it is given: a pickled ``partial`` would run at load time).

Every refusal is a :class:`SecurityError` whose message says "allow-list" (counted as ``reason="allow_list"``).

A trainer's sealed state (the ``changelog`` record, :func:`streams.train.unseal`) is read by the same loader
(:func:`loads_state`) after its HMAC check, for the same reason: a leaked signing key must not mean code execution
in the trainer. Its list, :data:`learners.pickle_allow.STATE_ALLOWED`, is this one plus the learning core's own
classes (lifecycle, policies, monitors, guard evidence, sentinel) and the trainer's (recent ids, input watch); a
state may also hold a few bound methods (River's ``PageHinkley._test_drift``), pickled as ``getattr(obj, name)``:
``builtins.getattr`` resolves to a checked getattr that returns only the methods of
:data:`learners.pickle_allow.BOUND_METHODS`, for an object of exactly that class.
"""

from __future__ import annotations

import abc
import copyreg
import functools
import io
import pickle
import random
import sys
import threading
import weakref
import zlib
from collections.abc import Mapping
from typing import Any

from driftline.errors import ArtifactError, ArtifactTooLarge, SecurityError
from learners.pickle_allow import ALLOWED, BOUND_METHODS, BOUNDED, STATE_ALLOWED, scan

__all__ = [
    "FORMAT",
    "MAX_PICKLE_BYTES",
    "MAX_PICKLE_OBJECTS",
    "MAX_STATE_BYTES",
    "MAX_STATE_OBJECTS",
    "SCAN_ABOVE",
    "ClassNotAllowed",
    "CompactPickler",
    "RestrictedUnpickler",
    "check_loadable",
    "compact",
    "dumps",
    "loads",
    "loads_state",
    "made",
    "payload_bound",
]

#: Value of the ``format`` field for what :func:`dumps` writes: pickle 5 whose River / driftline objects get
#: their state through :func:`_set_state` (a Python call between objects, see "Loading in steps" above), then zlib.
FORMAT = "pickle5+zlib+steps"

# zlib level 6: on ARF(10) it is 8x faster than level 9 and 15x faster than lzma for 3-18 % more bytes.
_ZLIB_LEVEL = 6
# A pickle smaller than this is stored in its zlib stream uncompressed (level 0, the same format to the reader):
# compressing a logistic regression's 2.3 KB to 1.6 KB took 50-90 us, a tenth of a release, to save 700 bytes of
# a Kafka record; level 1 was no faster on these float-filled pickles, level 0 takes 4 us.
_STORED_BELOW = 4096

#: Decompressed size cap (the largest learner measured, a 40-tree ARF, pickles to about 30 MB).
MAX_PICKLE_BYTES = 128 * 1024 * 1024
#: Cap on memory blocks a load may allocate (sys.getallocatedblocks; a 10-tree ARF after 50k examples: ~1.2M).
MAX_PICKLE_OBJECTS = 8_000_000
#: The same cap for a trainer state (:func:`loads_state`): a state holds several models (champion, the lineage
#: learning, a challenger, a held candidate, the sentinel's copies, an ``auto`` pool's members) and its record may
#: be up to the changelog's 64 MiB (``connectors.topics.CHANGELOG_MAX_BYTES``). Real states allocate at most 0.125
#: blocks per pickle byte (a 10-tree ARF's after 20,000 labels: 2.95 MB, 368k blocks; docs/experiments/unseal43.md):
#: the largest record a changelog holds would be ~8.4M; twice that, as a model's cap is about twice its largest.
MAX_STATE_OBJECTS = 16_000_000
#: Size cap for a trainer state's pickle: over the changelog's largest record (64 MiB, plus the producer's 1 MiB).
MAX_STATE_BYTES = 128 * 1024 * 1024
_MAX_FRAME = 1 << 20
#: Pickles longer than this are scanned (:func:`learners.pickle_allow.scan`) even if they name no bounded
#: constructor. Below it, copying one object many times builds at most a few thousand items times a few
#: thousand copies (~200 MB at worst); the default logistic regression (~3 KB) pays no scan.
SCAN_ABOVE = 16 * 1024
# Opcodes the pickler writes outside frames: the header of a large bytes/str/bytearray payload.
_LARGE_HEADERS = {ord("B"): 4, 0x8E: 8, ord("X"): 4, 0x8D: 8, 0x96: 8}
_FRAME = 0x95


def _refuse(message: str) -> SecurityError:
    return SecurityError(f"model artifact refused by the allow-list: {message}")


class ClassNotAllowed(SecurityError):
    """The refusal of a class that is not in :data:`learners.pickle_allow.ALLOWED`; ``refused`` names it
    (``module.name``), so a trainer that withholds a release for it can say which entry is missing."""

    def __init__(self, refused: str) -> None:
        super().__init__(f"model artifact refused by the allow-list: {refused} is not allowed")
        self.refused = refused


def _check_frames(data: bytes) -> None:
    """Refuse a pickle whose frames are larger than 1 MiB or that holds ordinary opcodes outside frames (beyond a
    short tail): the unpickler reads a whole frame at once, so the per-read object check needs small frames."""
    pos, size = 2, len(data)
    if size <= 1024:  # a tiny pickle (no frame needed) cannot flood memory between two reads
        return
    if data[:1] != b"\x80":
        raise _refuse("not a pickle of protocol 4 or later")
    while pos < size:
        op = data[pos]
        if op == _FRAME:
            length = int.from_bytes(data[pos + 1 : pos + 9], "little")
            if length > _MAX_FRAME:
                raise _refuse(f"pickle frame of {length} bytes (over {_MAX_FRAME})")
            pos += 9 + length
        elif op in _LARGE_HEADERS:
            width = _LARGE_HEADERS[op]
            pos += 1 + width + int.from_bytes(data[pos + 1 : pos + 1 + width], "little")
        elif size - pos <= 1024:  # a tiny pickle (or its last opcodes) is written without a frame
            return
        else:
            raise _refuse(f"unframed pickle opcode 0x{op:02x} at byte {pos}")


class _Input:
    """The pickle bytes as the file the unpickler reads, checking the memory the load allocated at each read.

    With ``peek`` the C unpickler reads ahead in 128 KB pieces (one frame at most each, see _check_frames), so a
    pickle of millions of small containers is refused after one piece too many, not after it filled memory.
    """

    def __init__(self, data: bytes, max_objects: int) -> None:
        self._view = memoryview(data)
        self._pos = 0
        # The allocated blocks at the first read: before the load built anything.
        self._base: int | None = None
        self._max = max_objects

    def _check(self) -> None:
        # sys.getallocatedblocks() walks the whole heap (~300 us in a trainer or scorer holding ~300k objects):
        # the first read comes before the unpickler built anything, so it takes the base and checks nothing
        # (a check there measured only the unpickler's own construction). A one-frame pickle (an LR's, ~2.4 KB)
        # takes two walks (its prefetch, and its read at the end of the load), not three.
        if self._base is None:
            self._base = sys.getallocatedblocks()
            return
        grown = sys.getallocatedblocks() - self._base
        if grown > self._max:
            raise _refuse(f"the load allocated over {self._max} objects ({grown} blocks) by byte {self._pos}")

    def peek(self, n: int = 0) -> bytes:
        self._check()
        return bytes(self._view[self._pos : self._pos + max(n, 1)])

    def read(self, n: int = -1) -> bytes:
        self._check()
        end = len(self._view) if n is None or n < 0 else self._pos + n
        out = bytes(self._view[self._pos : end])
        self._pos += len(out)
        return out

    def readinto(self, buffer: Any) -> int:
        self._check()
        out = self._view[self._pos : self._pos + len(buffer)]
        buffer[: len(out)] = out
        self._pos += len(out)
        return len(out)

    def readline(self) -> bytes:
        self._check()
        data = self._view[self._pos :].tobytes()
        line = data[: data.find(b"\n") + 1 or len(data)]
        self._pos += len(line)
        return line


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals of :mod:`learners.pickle_allow`.

    >>> import pickle, subprocess
    >>> evil = pickle.dumps(subprocess.Popen)
    >>> RestrictedUnpickler(io.BytesIO(evil)).load()
    Traceback (most recent call last):
    ...
    driftline.errors.SecurityError: model artifact refused by the allow-list: subprocess.Popen is not allowed
    """

    def __init__(
        self,
        file: Any,
        *,
        data: bytes | None = None,
        allowed: Mapping[tuple[str, str], str] = ALLOWED,
    ) -> None:
        super().__init__(file)
        self._allowed = allowed  # ALLOWED for a model artifact, STATE_ALLOWED for a trainer state
        self._data = data  # the whole pickle, scanned if it names a bounded constructor
        self._scanned = False
        self.dtypes: list[Any] = []  # every numpy dtype the pickle built, checked by loads() after the load

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key not in self._allowed:
            raise ClassNotAllowed(f"{module}.{name}")
        if key == ("builtins", "getattr"):
            return _bound_method
        if key in BOUNDED and not self._scanned:
            if self._data is None:
                raise _refuse(f"{module}.{name} needs the scanned loader (safe_pickle.loads)")
            scan(self._data)
            self._scanned = True
        try:
            found = super().find_class(module, name)
        except (ImportError, AttributeError) as exc:
            raise ArtifactError(
                f"model artifact needs {module}.{name}, which is not available: {exc}"
            ) from exc
        if name in _RAW_MEMORY and module in _NUMPY_MODULES:
            return _dtype_checked(found)
        if key == ("numpy.random._pickle", "__generator_ctor"):
            return _generator_ctor(found, super().find_class(module, "__bit_generator_ctor"))
        if key == ("numpy", "dtype"):
            built = self.dtypes

            def dtype(*args: Any, **kwargs: Any) -> Any:
                made = found(*args, **kwargs)
                built.append(made)  # its BUILD state comes next: checked once the load is over
                return made

            return dtype
        return found


def _bound_method(obj: Any, name: Any, *default: Any) -> Any:
    """``getattr(obj, name)`` as pickle writes a bound method, only for a method of
    :data:`learners.pickle_allow.BOUND_METHODS` on an object of exactly its class (any other use of getattr reaches
    ``__class__``, ``__globals__`` and from there everything)."""
    cls = type(obj)
    where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"
    names = BOUND_METHODS.get((str(getattr(cls, "__module__", "")), str(getattr(cls, "__qualname__", ""))))
    if default or type(name) is not str or names is None or name not in names:
        raise _refuse(f"builtins.getattr({where}, {str(name)[:60]!r}) is not allowed")
    return getattr(obj, name)


def _generator_ctor(found: Any, bit_generator_ctor: Any) -> Any:
    """numpy's ``__generator_ctor(name, ctor)`` calls ``ctor(name)``: only its own ``__bit_generator_ctor`` may be
    that ctor (numpy 2 pickles pass a bit generator alone; numpy 1 a name and that function)."""

    def generator_ctor(*args: Any) -> Any:
        if len(args) > 2 or (len(args) == 2 and args[1] is not bit_generator_ctor):
            raise _refuse("numpy.random._pickle.__generator_ctor given a constructor other than numpy's own")
        return found(*args)

    return generator_ctor


# numpy's constructors that read raw bytes as values of a dtype the pickle built. The dtype comes from
# ``numpy.dtype(...)`` and a BUILD whose state is the forger's: numpy's ``__setstate__`` takes its flags and field
# offsets as given, so a state with flags 0 makes an object dtype that frombuffer and scalar accept (bytes of the
# pickle read as PyObject pointers: scalar segfaults at load), and a field a megabyte past the item's end reads
# outside the buffer. Each dtype they are given must equal one numpy builds (and checks) afresh, with no objects.
_RAW_MEMORY = ("_frombuffer", "scalar")
_NUMPY_MODULES = (
    "numpy._core.numeric",
    "numpy.core.numeric",
    "numpy._core.multiarray",
    "numpy.core.multiarray",
)


def _rebuilt_dtype(dtype: Any) -> Any:
    """``dtype`` made again by numpy's validating constructors from its parts (ValueError/TypeError if they
    cannot be: a field outside the item, ...)."""
    import numpy as np

    if not isinstance(dtype, np.dtype):
        raise TypeError(f"not a numpy dtype but {type(dtype).__name__}")
    if dtype.names is not None:
        by_name: Any = dtype.fields or {}
        fields = [by_name[n] for n in dtype.names]
        if any(len(f) != 2 for f in fields):
            raise TypeError("a field with a title")
        return np.dtype(
            {
                "names": list(dtype.names),
                "formats": [_rebuilt_dtype(f[0]) for f in fields],
                "offsets": [f[1] for f in fields],
                "itemsize": dtype.itemsize,
                "aligned": dtype.isalignedstruct,
            }
        )
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((_rebuilt_dtype(base), shape))
    return np.dtype(dtype.str)


def _sound_dtype(dtype: Any, *, raw_memory: bool = True) -> None:
    """Refuse a dtype unlike the one numpy builds from its parts; with ``raw_memory`` (it is about to read bytes)
    also any dtype holding objects."""
    try:
        fresh = _rebuilt_dtype(dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _refuse(f"a numpy dtype numpy would not build: {exc}") from None
    if raw_memory and fresh.hasobject:
        raise _refuse("a numpy dtype holding objects, read from raw bytes")
    if (
        fresh != dtype
        or fresh.flags != dtype.flags
        or fresh.itemsize != dtype.itemsize
        or fresh.alignment != dtype.alignment
    ):
        raise _refuse(f"a numpy dtype whose state differs from numpy's own ({dtype!r})")


def _dtype_checked(func: Any) -> Any:
    """``func(buffer_or_dtype, ...)`` (``_frombuffer(buf, dtype, shape, order)``, ``scalar(dtype, data)``) after
    :func:`_sound_dtype` on its dtype argument."""
    dtype_at = 1 if func.__name__ == "_frombuffer" else 0
    # A pickle memoizes each dtype once and refers to it again: each is checked once per load (kept alive here,
    # so an id is not reused by another object during the load).
    sound: dict[int, Any] = {}

    def checked(*args: Any, **kwargs: Any) -> Any:
        if len(args) <= dtype_at or kwargs:
            raise _refuse(f"{func.__name__} called without its dtype as argument {dtype_at}")
        dtype = args[dtype_at]
        if sound.get(id(dtype)) is not dtype:
            _sound_dtype(dtype)
            sound[id(dtype)] = dtype
        return func(*args)

    return checked


class _Seeded:
    """Stand-in that pickles as ``random.Random(seed)``."""

    __slots__ = ("seed",)

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __reduce__(self) -> tuple[Any, ...]:
        return (random.Random, (self.seed,))


@functools.cache
def _distribution_type() -> type | None:
    try:
        from river.proba.base import Distribution
    except ImportError:  # river is a dependency, but dumps() must work for any object
        return None
    return Distribution


# What object.__reduce_ex__ puts first for a plain class (the pickler turns it into NEWOBJ).
_NEWOBJ = copyreg.__newobj__  # type: ignore[attr-defined]


def _set_state(obj: Any, state: Any) -> None:
    """What pickle's BUILD does for a plain object, as a Python call (see "Loading in steps")."""
    if isinstance(obj, type) or type(state) is not dict:
        raise SecurityError(f"state of a {type(obj).__name__} must be a dict, got {type(state).__name__}")
    if obj.__dict__:
        obj.__dict__.update(state)
    else:
        # Adopt the unpickled dict instead of copying it: no copy, and the unpickler's memo, freed in one
        # call after the load, then holds live attribute dicts instead of dead copies.
        object.__setattr__(obj, "__dict__", state)  # as BUILD, past a custom or frozen __setattr__


# Small, numerous objects restored by plain BUILD (see "Loading in steps").
_SMALL_STATISTICS = ("river.stats", "river.proba")
# Packages whose plain objects get the state setter when written (reading trusts only the allow-list).
_STEPPED_ROOTS = ("river", "learners")


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def _plain_class(cls: type) -> bool:
    """True if pickle would rebuild ``cls`` instances with ``cls.__new__`` and a ``__dict__`` update."""
    module = getattr(cls, "__module__", None) or ""
    return (
        _under(module, _STEPPED_ROOTS)
        and not _under(module, _SMALL_STATISTICS)
        and not issubclass(cls, type)  # classes themselves are pickled by name
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and getattr(cls, "__setstate__", None) is None
        and cls not in copyreg.dispatch_table
    )


# What CompactPickler.reducer_override does with a class's instances, kept across picklers: a release pickles
# the same few classes each time. _PLAIN_KIND: rebuilt through _set_state (_plain_class); _DISTRIBUTION: a River
# distribution (its generator written as a seed). 0: neither, the pickler's own reduction. Deciding anew for
# each pickler was a tenth of a logistic regression's pickle; the distribution test per object (an ABC's
# isinstance, ~0.6 us) was called for every container and class written (~30 a logistic regression) while
# depending only on the class: a seventh of its pickle (session 38). Kept with the ABCs' cache token: a class
# registered as a Distribution afterwards is decided again.
_PLAIN_KIND, _DISTRIBUTION = 1, 2
_KINDS: dict[type, int] = {}
_KINDS_TOKEN: list[object] = [abc.get_cache_token()]


def _kinds_current() -> None:
    """Forget :data:`_KINDS` if an ABC registered a class since it was filled (or it grew past 4,096 classes:
    classes made on the fly must not pile up). Once per pickler."""
    token = abc.get_cache_token()
    if token != _KINDS_TOKEN[0] or len(_KINDS) > 4096:
        _KINDS.clear()
        _KINDS_TOKEN[0] = token


def _kind(cls: type, distribution: type | None) -> int:
    """The bits of :data:`_KINDS` for instances of ``cls`` (``distribution``: River's ``Distribution``, or None)."""
    kind = (_PLAIN_KIND if _plain_class(cls) else 0) | (
        _DISTRIBUTION if distribution is not None and issubclass(cls, distribution) else 0
    )
    _KINDS[cls] = kind
    return kind


class CompactPickler(pickle.Pickler):
    """Pickler for :data:`FORMAT`: River distributions' ``random.Random`` stored as a seed, and River /
    driftline objects restored through :func:`_set_state` (see the module docstring)."""

    def __init__(self, file: io.BytesIO, protocol: int = 5) -> None:
        super().__init__(file, protocol=protocol)
        self._distribution = _distribution_type()
        _kinds_current()
        # id() is stable here: every generator stays referenced by the model while it is pickled.
        self._seeded: dict[int, _Seeded] = {}
        self._shared: _Seeded | None = None  # see share_generators

    def reducer_override(self, obj: Any) -> Any:
        kind = _KINDS.get(type(obj))
        if kind is None:
            kind = _kind(type(obj), self._distribution)
        if not kind:
            return NotImplemented
        return self._reduce(obj, bool(kind & _PLAIN_KIND), bool(kind & _DISTRIBUTION))

    def _reduce(self, obj: Any, plain: bool, distribution: bool) -> Any:
        """The reduction of ``obj``, a plain object (``plain``, see :func:`_plain_class`) and/or a River
        distribution (``distribution``), else NotImplemented (the pickler's own)."""
        reduced = obj.__reduce_ex__(5)
        if not isinstance(reduced, tuple) or len(reduced) < 3 or type(reduced[2]) is not dict:
            return NotImplemented
        state = reduced[2]
        if distribution and self._shared is not None:
            state = dict(state, _rng=self._shared)
        elif distribution and type(state.get("_rng")) is random.Random:
            state = dict(state, _rng=self._seed_of(state["_rng"]))
        if plain and len(reduced) == 5 and reduced[0] is _NEWOBJ and reduced[3:] == (None, None):
            return (*reduced[:2], state, None, None, _set_state)
        return (*reduced[:2], state, *reduced[3:])

    def share_generators(self) -> None:
        """Write every River distribution's generator as one ``random.Random``, the stand-in a fresh
        ``random.Random(0)`` gets here: the bytes of pickling a learner after
        :func:`learners.features.share_distribution_rngs` pointed every distribution of its model at a fresh
        ``random.Random(0)``, without that walk over the whole model (a Hoeffding tree's release copies walked
        ~1.3 ms each at 10,000 labels, growing with the tree). Only for a learner whose whole model is one walk's
        (``Learner.rewires_distributions``): a pool's members each rewire their own, with a generator each."""
        self._shared = _Seeded(random.Random(0).getrandbits(64))  # what _seed_of gives a fresh Random(0)

    def _seed_of(self, rng: random.Random) -> _Seeded:
        seeded = self._seeded.get(id(rng))
        if seeded is None:
            # Draw from a copy so serializing never changes the live model's random stream. One stand-in
            # per generator: a generator shared by many distributions stays shared after loading.
            twin = random.Random()
            twin.setstate(rng.getstate())
            seeded = self._seeded[id(rng)] = _Seeded(twin.getrandbits(64))
        return seeded


def compact(model: object) -> bytes:
    """The pickle of :func:`dumps`, before zlib."""
    buffer = io.BytesIO()
    pickler = CompactPickler(buffer, protocol=5)
    rewires = getattr(model, "rewires_distributions", None)
    shared = callable(rewires) and rewires() is True
    if shared:
        pickler.share_generators()
        _SHARING.root = model
    try:
        pickler.dump(model)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"cannot serialize model of type {type(model).__name__}: {exc}") from exc
    finally:
        if shared:
            _SHARING.root = None
    return buffer.getvalue()


class _Sharing(threading.local):
    root: Any = None


# The learner :func:`compact` is pickling with every distribution's generator written as one (see
# ``CompactPickler.share_generators``), per thread: its ``__getstate__`` then skips its own rewiring walk.
_SHARING = _Sharing()


def sharing(model: object) -> bool:
    """True while :func:`compact` pickles ``model`` and writes every River distribution's generator itself as the
    one shared generator that :func:`learners.features.share_distribution_rngs` would have made."""
    return _SHARING.root is model


# Pickles already made of a model, by the model (weakly: an entry goes with its model): learners.specs.Learner.copy
# makes a copy from the release pickle of the original and leaves that pickle here for the copy, with the copy's
# learned mark (Learner.learned_mark); dumps() takes it once, if the copy has learned nothing since. A release
# copies the champion and then pickles the copy: one pickle instead of two (~400 LR releases per 20,000 labels).
# The third item is the zlib payload when check_loadable had to compress it to know its size (``max_payload``).
_MADE: weakref.WeakKeyDictionary[Any, tuple[bytes, Any, bytes | None]] = weakref.WeakKeyDictionary()
_MADE_MAX = 512  # releases published after their batch: ~80 per 4,000 LR labels; never more than this kept


def made(model: object, raw: bytes, mark: Any, payload: bytes | None = None) -> None:
    """Record that ``raw`` is :func:`compact` of ``model`` (and ``payload`` its :func:`dumps`, if known) for as
    long as its ``learned_mark()`` is ``mark``."""
    if len(_MADE) < _MADE_MAX:
        _MADE[model] = (raw, mark, payload)


def remade(model: object, before: Any, after: Any) -> None:
    """``model``'s learned mark changed from ``before`` to ``after`` although it learned nothing (a
    :class:`learners.snapshot.FrozenLinear` unpickled its River objects): a pickle recorded for it still stands."""
    entry = _MADE.get(model)
    if entry is not None and entry[1] == before:
        _MADE[model] = (entry[0], after, entry[2])


def _made_entry(model: object) -> tuple[bytes, bytes | None] | None:
    try:
        raw, mark, payload = _MADE.pop(model)
    except (KeyError, TypeError):  # not recorded, or not weakly referenceable / hashable
        return None
    learned = getattr(model, "learned_mark", None)
    return (raw, payload) if learned is not None and learned() == mark else None


def _compress(raw: bytes) -> bytes:
    return zlib.compress(raw, 0 if len(raw) < _STORED_BELOW else _ZLIB_LEVEL)


def payload_bound(raw_length: int) -> int:
    """The longest :func:`dumps` payload a pickle of ``raw_length`` bytes can give (zlib's ``compressBound``):
    a pickle whose bound is under a limit needs no compression to know it fits."""
    n = raw_length
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13


def dumps(model: object) -> bytes:
    """Serialize ``model`` as :data:`FORMAT` bytes (compact pickle protocol 5, zlib)."""
    entry = _made_entry(model)
    if entry is None:
        return _compress(compact(model))
    raw, payload = entry
    return _compress(raw) if payload is None else payload


def _decompress(payload: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(payload, max_bytes + 1)
    except zlib.error as exc:
        raise ArtifactError(f"artifact payload is not valid zlib data: {exc}") from exc
    if len(raw) > max_bytes or inflater.unconsumed_tail:
        raise _refuse(f"payload decompresses to over {max_bytes} bytes (from {len(payload)})")
    return raw


def loads(
    payload: bytes,
    format: str = FORMAT,
    *,
    max_bytes: int | None = None,
    max_objects: int | None = None,
) -> object:
    """Restore a model from :func:`dumps` bytes with the restricted unpickler and the caps described above
    (:data:`MAX_PICKLE_BYTES` and :data:`MAX_PICKLE_OBJECTS` unless given).

    Callers must have verified the payload's signature first (:func:`learners.artifacts.load_release`).
    """
    if format != FORMAT:
        raise ArtifactError(f"unknown artifact format {format!r} (this reader knows {FORMAT!r})")
    raw = _decompress(payload, MAX_PICKLE_BYTES if max_bytes is None else max_bytes)
    return _load_raw(raw, MAX_PICKLE_OBJECTS if max_objects is None else max_objects)


def loads_state(raw: bytes, *, max_objects: int | None = None) -> object:
    """Restore a trainer state (a plain pickle: :func:`streams.train.seal`) with the restricted unpickler, the
    list :data:`learners.pickle_allow.STATE_ALLOWED` and the checks of :func:`loads`, with the caps
    :data:`MAX_STATE_BYTES` and :data:`MAX_STATE_OBJECTS` (unless ``max_objects`` is given). Refusals are
    :class:`SecurityError` (a :class:`ClassNotAllowed` names the class), a pickle that does not load an
    :class:`ArtifactError`; their messages say "trainer state".

    Callers must have verified the state's seal first (:func:`streams.train.unseal`).
    """
    try:
        if len(raw) > MAX_STATE_BYTES:
            raise _refuse(f"pickle of {len(raw)} bytes (over {MAX_STATE_BYTES})")
        limit = MAX_STATE_OBJECTS if max_objects is None else max_objects
        return _load_raw(raw, limit, allowed=STATE_ALLOWED)
    except ClassNotAllowed as exc:
        raise _as_state(ClassNotAllowed(exc.refused), exc) from exc
    except SecurityError as exc:
        raise _as_state(SecurityError(), exc) from exc
    except ArtifactError as exc:
        raise _as_state(ArtifactError(), exc) from exc


def _as_state(error: Exception, exc: Exception) -> Exception:
    """``error`` with ``exc``'s message, which names a trainer state instead of a model artifact."""
    error.args = (str(exc).replace("model artifact", "trainer state", 1),)
    return error


def check_loadable(
    model: object, *, scan: bool = True, unpickle_above: int = -1, max_payload: int | None = None
) -> tuple[int, bool]:
    """Raise what a scorer's :func:`loads` would raise for :func:`dumps` of ``model`` (:class:`SecurityError` or
    :class:`ArtifactError`), else return (the pickle's length, whether it was unpickled): the trainer never
    publishes an artifact no scorer could load.

    The same rules (size, frames, allocated objects, allow-list, dtypes) on the pickle the release will carry;
    that pickle is kept for the release's :func:`dumps` (made once, not twice). The size cap is checked always;
    the rest (a restricted unpickle: ~1 ms of an LR release, 40 us a label at a release every 25 labels) only
    for a pickle longer than ``unpickle_above`` bytes (the caller's choice: see
    ``learners.lifecycle.FULL_CHECK_EVERY``). ``scan=False`` skips only the opcode scan of bounded constructors'
    arguments (:func:`learners.pickle_allow.scan`: over 90 % of the check for a forest, 80-190 ms of a 190 KB
    ARF) for a caller that scanned the same learner's pickle before: those arguments come from the
    configuration (an ADWIN's), not from what the model learned.

    ``max_payload``: the longest :func:`dumps` payload the release may carry (``model.max_inline_bytes`` when no
    artifact store is configured), else :class:`ArtifactTooLarge`. Its length is known only once compressed, so
    the pickle is compressed only when :func:`payload_bound` of its length is over the limit (the payload is then
    kept for the release's :func:`dumps` too).
    """
    entry = _made_entry(model)
    raw, payload = entry if entry is not None else (compact(model), None)
    if len(raw) > MAX_PICKLE_BYTES:
        raise _refuse(f"payload decompresses to over {MAX_PICKLE_BYTES} bytes ({len(raw)})")
    if max_payload is not None and payload_bound(len(raw)) > max_payload:
        payload = payload or _compress(raw)
        if len(payload) > max_payload:
            raise ArtifactTooLarge(
                f"payload of {len(payload)} bytes exceeds model.max_inline_bytes={max_payload} and no artifact "
                "store is configured: set model.artifact_store (a directory the trainer and the scorers share) "
                "or raise model.max_inline_bytes (within the broker's message.max.bytes)"
            )
    unpickled = len(raw) > unpickle_above
    if unpickled:
        _load_raw(raw, MAX_PICKLE_OBJECTS, scan_arguments=scan)
    learned = getattr(model, "learned_mark", None)
    if learned is not None:
        made(model, raw, learned(), payload)
    return len(raw), unpickled


def _load_raw(
    raw: bytes,
    max_objects: int,
    *,
    scan_arguments: bool = True,
    allowed: Mapping[tuple[str, str], str] = ALLOWED,
) -> object:
    _check_frames(raw)
    # An extension code (EXT1/2/4) is looked up in copyreg's cache before find_class: an object that some earlier
    # plain unpickling resolved for a registered code would come back unchecked. Emptied, every code goes
    # through find_class (the registry is empty in driftline's processes; this keeps a library that registers
    # codes from opening that door).
    copyreg.clear_extension_cache()
    try:
        unpickler = RestrictedUnpickler(_Input(raw, max_objects), data=raw, allowed=allowed)
        unpickler._scanned = not scan_arguments
        if scan_arguments and len(raw) > SCAN_ABOVE:
            scan(raw)
            unpickler._scanned = True
        model = unpickler.load()
        # A dtype kept as such (an estimator's attribute) got its BUILD state after it was made: one whose state
        # lies (flags 0 on an object dtype: x.astype(it) segfaults) is refused before the model is used.
        for dtype in unpickler.dtypes:
            _sound_dtype(dtype, raw_memory=False)
        return model
    except (SecurityError, ArtifactError):
        raise
    except Exception as exc:  # a corrupt pickle can raise almost anything; name it, keep the cause
        raise ArtifactError(f"cannot unpickle model artifact: {type(exc).__name__}: {exc}") from exc
    except BaseException as exc:
        # A Rust panic in River's __setstate__ (a truncated ADWIN state: unwrap() on a decode error) reaches Python
        # as pyo3's PanicException, a BaseException: it went through every `except Exception` and stopped the
        # scorer's release follower thread. Only the interpreter's own exits pass.
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise ArtifactError(f"cannot unpickle model artifact: {type(exc).__name__}: {exc}") from exc
