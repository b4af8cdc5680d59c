"""Compact pickling of models and a restricted unpickler with an allow-list.

Two halves with one reason to change: *what* a model artifact's bytes may contain.

Writing (:func:`dumps`): pickle protocol 5, then zlib. River's probability distributions
(``river.proba.Gaussian`` and friends, thousands of them inside tree splitters) each own a
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
this allow-list is defense in depth. :class:`RestrictedUnpickler` resolves a global only if its
module is under an allowed root, the resolved object really lives there (re-exports such as
``river.something.os.system`` are refused), it is not in a deny-listed I/O or test module, and it is
a class, or a function from an explicit list or from River / driftline's own packages. ``getattr``
(which pickle uses for bound methods, e.g. River's Page-Hinkley) is replaced by a version that only
binds a plain method of a River or driftline class to its object: no dunders, attributes or
properties, and no numpy methods (``ndarray.tofile`` would write files).
"""

from __future__ import annotations

import copyreg
import inspect
import io
import pickle
import random
import types
import zlib
from typing import Any

from driftline.errors import ArtifactError, SecurityError

__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "CompactPickler",
    "RestrictedUnpickler",
    "dumps",
    "loads",
]

#: Value of the ``format`` field for what :func:`dumps` writes: pickle 5 whose River / driftline objects get
#: their state through :func:`_set_state` (a Python call between objects, see "Loading in steps" above), then zlib.
FORMAT = "pickle5+zlib+steps"

#: Formats :func:`loads` reads: the current one, and plain ``pickle5+zlib`` (releases written before
#: "+steps", still on the compacted models topic; they load, but in one long call).
READABLE_FORMATS = (FORMAT, "pickle5+zlib")

# zlib level 6: on ARF(10) it is 8x faster than level 9 and 15x faster than lzma for 3-18 % more bytes.
_ZLIB_LEVEL = 6

# Roots whose classes may be instantiated. Functions need more (see _function_allowed).
_PACKAGE_ROOTS = ("river", "sklearn", "numpy", "scipy", "learners")

# Modules (and their submodules) that read or write files, fetch URLs or run code.
_DENIED_PREFIXES = (
    "river.datasets",
    "river.stream",
    "river.api",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
    "numpy.testing",
    "numpy.distutils",
    "numpy.f2py",
    "numpy.ctypeslib",
    "numpy.lib.npyio",
    "numpy.lib._npyio_impl",
    "numpy.lib._datasource",
    "numpy.lib.format",
    "numpy._core.memmap",
    "numpy.core.memmap",
    "scipy.io",
    "scipy.datasets",
    "scipy._lib._testutils",
)
_DENIED_PARTS = frozenset({"tests", "testing", "conftest", "_pytesttester"})

# Standard-library globals a model may reference, by (module, name). Nothing that can import, open,
# execute or reach arbitrary attributes.
_STDLIB_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", n)
        for n in (
            "bool",
            "int",
            "float",
            "complex",
            "str",
            "bytes",
            "bytearray",
            "list",
            "tuple",
            "dict",
            "set",
            "frozenset",
            "slice",
            "range",
            "object",
            "NotImplemented",
            "Ellipsis",
        )
    }
    | {("collections", n) for n in ("OrderedDict", "defaultdict", "deque", "Counter")}
    | {("copyreg", n) for n in ("_reconstructor", "__newobj__", "__newobj_ex__")}
    | {("functools", "partial"), ("random", "Random"), ("statistics", "NormalDist")}
    | {("datetime", n) for n in ("date", "time", "datetime", "timedelta", "timezone")}
    | {("decimal", "Decimal"), ("fractions", "Fraction"), ("_codecs", "encode")}
    | {("re", "_compile"), ("array", "array"), ("array", "_array_reconstructor")}
)
_MATH_MODULES = frozenset({"math"})  # pure functions of numbers

# numpy's own reconstructors (module spelling differs between numpy 1 and 2).
_NUMPY_FUNCTIONS: frozenset[tuple[str, str]] = frozenset(
    {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
    | {(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")}
    | {
        ("numpy.random._pickle", n)
        for n in ("__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor")
    }
)

# Functions from these roots are allowed (after the deny-list): River keeps factory functions such as
# GaussianNB._make_gaussian in its models, and driftline's learners may do the same.
_FUNCTION_ROOTS = ("river", "learners")


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def _denied(module: str) -> bool:
    if _under(module, _DENIED_PREFIXES):
        return True
    return bool(_DENIED_PARTS.intersection(module.split(".")))


def _module_allowed(module: str) -> bool:
    """Cheap first check on the requested module name, before anything is imported."""
    if _denied(module):
        return False
    if _under(module, _PACKAGE_ROOTS) or module in _MATH_MODULES:
        return True
    return any(module == m for m, _ in _STDLIB_ALLOWED)


def _function_allowed(module: str, name: str, obj: Any) -> bool:
    if (module, name) in _STDLIB_ALLOWED or (module, name) in _NUMPY_FUNCTIONS:
        return True
    real = getattr(obj, "__module__", None) or ""
    if module in _MATH_MODULES and real in _MATH_MODULES:
        return True
    return _under(real, _FUNCTION_ROOTS) and not _denied(real)


def _class_allowed(module: str, name: str, cls: type) -> bool:
    if (module, name) in _STDLIB_ALLOWED:
        return True
    real = cls.__module__ or ""
    # A class must live under a package root; stdlib classes only via the explicit list above.
    return (
        _under(real, _PACKAGE_ROOTS)
        and not _denied(real)
        and (real, cls.__qualname__)
        not in {
            ("numpy", "memmap"),
            ("numpy", "DataSource"),
        }
    )


def _safe_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as pickle needs it for bound methods of River / driftline objects, and nothing more.

    The method is looked up statically on the class and bound by hand: no property runs, an instance
    attribute cannot shadow it, and numpy/scikit-learn methods (``ndarray.tofile`` writes files) are out.
    """
    if not isinstance(name, str) or (name.startswith("__") and name.endswith("__")):
        raise SecurityError(f"getattr(..., {name!r}) not allowed in a model artifact")
    owner = type(obj)
    where = f"{owner.__module__}.{owner.__qualname__}"
    if not _under(owner.__module__ or "", _FUNCTION_ROOTS) or _denied(owner.__module__ or ""):
        raise SecurityError(f"getattr on a {where} not allowed in a model artifact")
    function = inspect.getattr_static(owner, name, None)
    module = getattr(function, "__module__", None) or ""
    if not isinstance(function, types.FunctionType) or not _under(module, _FUNCTION_ROOTS) or _denied(module):
        raise SecurityError(f"getattr({where}, {name!r}) is not a method of an allowed class; not allowed")
    return types.MethodType(function, obj)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only allow-listed globals (see the module docstring).

    >>> import pickle, subprocess
    >>> evil = pickle.dumps(subprocess.Popen)
    >>> RestrictedUnpickler(io.BytesIO(evil)).load()
    Traceback (most recent call last):
    ...
    driftline.errors.SecurityError: module 'subprocess' not allowed in a model artifact
    """

    def find_class(self, module: str, name: str) -> Any:
        if not _module_allowed(module):
            raise SecurityError(f"module {module!r} not allowed in a model artifact")
        if (module, name) == ("builtins", "getattr"):
            return _safe_getattr
        if any(part.startswith("__") and part.endswith("__") for part in name.split(".")) and (
            (module, name) not in _STDLIB_ALLOWED and (module, name) not in _NUMPY_FUNCTIONS
        ):
            raise SecurityError(f"global {module}.{name} not allowed in a model artifact")
        try:
            obj = super().find_class(module, name)
        except (ImportError, AttributeError) as exc:
            raise ArtifactError(
                f"model artifact needs {module}.{name}, which is not available: {exc}"
            ) from exc
        if isinstance(obj, type):
            allowed = _class_allowed(module, name, obj)
        elif callable(obj):
            allowed = _function_allowed(module, name, obj)
        else:
            allowed = (module, name) in _STDLIB_ALLOWED
        if not allowed:
            real = getattr(obj, "__module__", module)
            raise SecurityError(
                f"global {module}.{name} (from module {real!r}) not allowed in a model artifact"
            )
        return obj


class _Seeded:
    """Stand-in that pickles as ``random.Random(seed)``."""

    __slots__ = ("seed",)

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __reduce__(self) -> tuple[Any, ...]:
        return (random.Random, (self.seed,))


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


def _plain_class(cls: type) -> bool:
    """True if pickle would rebuild ``cls`` instances with ``cls.__new__`` and a ``__dict__`` update."""
    module = getattr(cls, "__module__", None) or ""
    return (
        _under(module, _FUNCTION_ROOTS)
        and not _under(module, _SMALL_STATISTICS)
        and not issubclass(cls, type)  # classes themselves are pickled by name
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and getattr(cls, "__setstate__", None) is None
        and cls not in copyreg.dispatch_table
    )


class CompactPickler(pickle.Pickler):
    """Pickler for :data:`FORMAT`: River distributions' ``random.Random`` stored as a seed, and River /
    driftline objects restored through :func:`_set_state` (see the module docstring)."""

    def __init__(self, file: io.BytesIO, protocol: int = 5) -> None:
        super().__init__(file, protocol=protocol)
        self._distribution = _distribution_type()
        # id() is stable here: every generator stays referenced by the model while it is pickled.
        self._seeded: dict[int, _Seeded] = {}
        self._plain: dict[type, bool] = {}

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        plain = self._plain.get(cls)
        if plain is None:
            plain = self._plain[cls] = _plain_class(cls)
        distribution = self._distribution is not None and isinstance(obj, self._distribution)
        if not plain and not distribution:
            return NotImplemented
        reduced = obj.__reduce_ex__(5)
        if not isinstance(reduced, tuple) or len(reduced) < 3 or type(reduced[2]) is not dict:
            return NotImplemented
        state = reduced[2]
        if distribution and type(state.get("_rng")) is random.Random:
            state = dict(state, _rng=self._seed_of(state["_rng"]))
        if plain and len(reduced) == 5 and reduced[0] is _NEWOBJ and reduced[3:] == (None, None):
            return (*reduced[:2], state, None, None, _set_state)
        return (*reduced[:2], state, *reduced[3:])

    def _seed_of(self, rng: random.Random) -> _Seeded:
        seeded = self._seeded.get(id(rng))
        if seeded is None:
            # Draw from a copy so serializing never changes the live model's random stream. One stand-in
            # per generator: a generator shared by many distributions stays shared after loading.
            twin = random.Random()
            twin.setstate(rng.getstate())
            seeded = self._seeded[id(rng)] = _Seeded(twin.getrandbits(64))
        return seeded


def dumps(model: object) -> bytes:
    """Serialize ``model`` as :data:`FORMAT` bytes (compact pickle protocol 5, zlib)."""
    buffer = io.BytesIO()
    try:
        CompactPickler(buffer, protocol=5).dump(model)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ArtifactError(f"cannot serialize model of type {type(model).__name__}: {exc}") from exc
    return zlib.compress(buffer.getvalue(), _ZLIB_LEVEL)


def loads(payload: bytes, format: str = FORMAT) -> object:
    """Restore a model from :func:`dumps` bytes with the restricted unpickler.

    Callers must have verified the payload's signature first (:func:`learners.artifacts.load_release`).
    """
    if format not in READABLE_FORMATS:
        raise ArtifactError(
            f"unknown artifact format {format!r} (this reader knows {', '.join(map(repr, READABLE_FORMATS))})"
        )
    try:
        raw = zlib.decompress(payload)
    except zlib.error as exc:
        raise ArtifactError(f"artifact payload is not valid zlib data: {exc}") from exc
    try:
        return RestrictedUnpickler(io.BytesIO(raw)).load()
    except (SecurityError, ArtifactError):
        raise
    except Exception as exc:  # a corrupt pickle can raise almost anything; name it, keep the cause
        raise ArtifactError(f"cannot unpickle model artifact: {type(exc).__name__}: {exc}") from exc
