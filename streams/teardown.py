"""Freeing a replaced model in small pieces, so the event loop never waits for its deallocation.

A large release (a 40-tree adaptive random forest) is ~500k Python objects. When a scorer drops the last reference
to the model it served, CPython frees all of them in one C call holding the interpreter lock: 50-130 ms during
which the event loop cannot run. :class:`Reaper` takes the old model instead and dismantles it in a daemon thread:
a depth-first walk with an explicit stack that, before clearing a container, moves its children onto the stack, so
that clearing it frees nothing big at once, and that hands the interpreter lock over every millisecond or so.

Only objects nobody else references are taken apart (their reference count is what the walk itself holds, no weak
references): a sub-object shared with the new model, or a root still held elsewhere, is never modified. A shared
root is parked and looked at again later; it is taken apart only once the reaper holds the last reference.
Types, functions, modules, methods and code objects are never touched; tuples, frozensets and other immutables are
held while their items are moved to the stack and then dropped.
"""

from __future__ import annotations

import collections
import queue
import sys
import threading
import time
import types
import weakref
from typing import Any

HANDOVER_S = 0.001  # longest stretch the reaper holds the interpreter lock before letting other threads run
RECHECK_S = (0.005, 1.0)  # first and longest pause before looking again at roots still referenced elsewhere

_HEAPTYPE = (
    1 << 9
)  # Py_TPFLAGS_HEAPTYPE: classes defined in Python (instances of static C types are not cleared)
_NEVER = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.GeneratorType,
    types.CoroutineType,
    weakref.ReferenceType,
)
_STOP = object()


class Reaper:
    """A daemon thread that takes objects handed to :meth:`reap` and frees them a piece at a time.

    >>> reaper = Reaper()
    >>> reaper.reap({"trees": [[1.0, 2.0], [3.0]]})
    >>> reaper.wait_idle(5.0)
    True
    >>> reaper.stop()
    """

    def __init__(self, name: str = "model-reaper") -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._parked: list[Any] = []  # roots still referenced elsewhere: looked at again later
        self._idle = threading.Condition()
        self._outstanding = 0  # objects handed over and not yet dropped by the reaper
        self._thread: threading.Thread | None = None
        self._name = name
        self._start_lock = threading.Lock()
        self.dismantled = 0  # containers cleared so far (for tests and the benchmark)

    def reap(self, obj: Any) -> None:
        """Take ``obj`` over: the caller drops its own references, the reaper frees the rest in pieces.

        The queue holds ``obj`` from here on, so the caller never drops the last reference itself.
        """
        if obj is None:
            return
        with self._idle:
            self._outstanding += 1
        self._ensure_started()
        self._queue.put(obj)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until everything handed over has been dismantled or dropped (shared roots count as pending)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def pending(self) -> int:
        """Objects handed over and not yet dropped (parked shared roots included)."""
        with self._idle:
            return self._outstanding

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after the current walk; parked roots are dropped as they are (nothing is freed twice)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        wait = RECHECK_S[0]
        while True:
            try:
                item = self._queue.get(timeout=wait if self._parked else None)
            except queue.Empty:
                wait = min(wait * 2, RECHECK_S[1])  # a root held elsewhere for long: look less often
            else:
                if item is _STOP:
                    return
                self._parked.append(item)
                del item
                wait = RECHECK_S[0]
            self._sweep()

    def _sweep(self) -> None:
        """Dismantle every parked root only the reaper refers to; keep the others parked."""
        roots, self._parked = self._parked, []
        roots.append([])  # a fresh sentinel nobody else refers to: its count is the baseline of this loop
        baseline = -1
        done = 0
        while roots:
            obj = roots.pop()
            count = sys.getrefcount(obj)
            if baseline < 0:
                baseline = count
                continue
            if count > baseline or weakref.getweakrefcount(obj):
                self._parked.append(
                    obj
                )  # still served, followed or kept as `previous` elsewhere: not ours yet
                continue
            stack = [obj]
            del obj  # the stack holds the only reference now
            self._dismantle(stack)
            done += 1
        if done:
            with self._idle:
                self._outstanding -= done
                self._idle.notify_all()

    def _dismantle(self, stack: list[Any]) -> None:
        """Depth-first: pop an object, and if only the stack held it, move its children to the stack, clear it."""
        stack.append([])  # sentinel again: the baseline is measured on this very loop's references
        baseline = -1
        last = time.perf_counter()
        pop, extend = stack.pop, stack.extend
        while stack:
            obj = pop()
            count = sys.getrefcount(obj)
            if baseline < 0:
                baseline = count
                continue
            ours = count == baseline and not isinstance(obj, _NEVER) and not _weakly_referenced(obj)
            if ours and _take_apart(obj, extend):
                self.dismantled += 1
            del obj  # frees it now if it was ours: its children are on the stack, so this is cheap
            now = time.perf_counter()
            if now - last > HANDOVER_S:
                time.sleep(0)  # hand the interpreter lock over: the event loop runs at least every ~1 ms
                last = time.perf_counter()


def _weakly_referenced(obj: Any) -> bool:
    try:
        return weakref.getweakrefcount(obj) > 0
    except TypeError:
        return False


def _take_apart(obj: Any, extend: Any) -> bool:
    """Move ``obj``'s children to the stack and clear it; returns whether anything was taken apart."""
    cls = type(obj)
    if cls is float or cls is int or cls is str or cls is bytes:
        return False
    taken = True
    if isinstance(obj, dict):
        extend(obj.keys())
        extend(obj.values())
        dict.clear(obj)
    elif isinstance(obj, list):
        extend(obj)
        list.clear(obj)
    elif isinstance(obj, set):
        extend(obj)
        set.clear(obj)
    elif isinstance(obj, collections.deque):
        extend(obj)
        collections.deque.clear(obj)
    elif isinstance(obj, (tuple, frozenset)):
        extend(obj)  # immutable: held by the stack while the container itself is dropped
    else:
        taken = False
    # A C object has nothing to take apart safely; one with a __del__ may need its state when it is finalised.
    if not cls.__flags__ & _HEAPTYPE or hasattr(cls, "__del__"):
        return taken
    state, count = _instance_dict(obj)
    if state is None or count != _own_dict_count():
        return taken  # no plain instance dict, or someone else holds it too: leave it alone
    # The instance dict is only referenced by ``obj``: empty it here rather than walking it separately.
    extend(state.values())
    state.clear()
    return True


def _instance_dict(obj: Any) -> tuple[dict[str, Any] | None, int]:
    """``obj``'s instance dict and its reference count as seen from here (compared with a private instance's)."""
    try:
        state = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None, 0
    if type(state) is not dict:
        return None, 0
    return state, sys.getrefcount(state)


class _Probe:
    def __init__(self) -> None:
        self.value = 0


_dict_count: list[int] = []


def _own_dict_count() -> int:
    """The count :func:`_instance_dict` sees for a dict only its instance refers to (measured once)."""
    if not _dict_count:
        _dict_count.append(_instance_dict(_Probe())[1])
    return _dict_count[0]


_default: Reaper | None = None
_default_lock = threading.Lock()


def default_reaper() -> Reaper:
    """The process-wide reaper (its thread starts on the first :meth:`Reaper.reap`, not at import)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Reaper()
        return _default


def reap(obj: Any) -> None:
    """Hand ``obj`` to the process-wide reaper: it is freed in pieces in a background thread."""
    default_reaper().reap(obj)
