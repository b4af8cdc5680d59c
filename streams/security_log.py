"""SECURITY log lines that an attacker cannot turn into a flood.

Anyone who can write a topic can publish 3,000 forged releases (or changelog records); one full line each buries
everything else in the log and costs disk. :class:`ThrottledLog` writes the first :data:`BURST` lines of each
kind (what was refused, of which model, for which reason) per interval in full, then one summary line per
interval with the count. Counters are not its business: callers count every refusal as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BURST", "INTERVAL_S", "MAX_KINDS", "ThrottledLog"]

BURST = 5
INTERVAL_S = 60.0
# Kinds throttled apart at once; a further kind shares one window per reason (:data:`FURTHER`). The kind names a model
# that the record itself claims: 3,000 forgeries naming 3,000 models were 3,000 full lines and 3,000 windows (review32).
MAX_KINDS = 20
FURTHER = "refusals of further kinds"


@dataclass
class _Window:
    started: float
    logged: int = 0
    suppressed: int = 0


class ThrottledLog:
    """``warning(kind, reason, msg, *args)``: logged in full for the first ``burst`` calls of ``(kind, reason)``
    in an interval, counted after that; the count is written as one line (``... and 2,995 more <kind> in the last
    60 s: reason <reason>``) when the interval ends (on the next call or :meth:`flush`) or at :meth:`flush`
    with ``force`` (the end of a one-off pass, such as a restore). Past ``max_kinds`` kinds at once, a new kind is
    throttled with the others over that number, per reason (the kind is often a name the refused record claims).

    >>> import logging
    >>> lines = []
    >>> class Keep(logging.Handler):
    ...     def emit(self, record): lines.append(record.getMessage())
    >>> logger = logging.getLogger("doctest.throttled"); logger.addHandler(Keep()); logger.propagate = False
    >>> throttled = ThrottledLog(logger, burst=2)
    >>> for v in range(5):
    ...     throttled.warning("refused releases of model m", "signature", "SECURITY: release m v%d refused", v)
    >>> throttled.flush(force=True)
    >>> lines[:2], lines[2].startswith("SECURITY: ... and 3 more refused releases of model m in the last")
    (['SECURITY: release m v0 refused', 'SECURITY: release m v1 refused'], True)
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        burst: int = BURST,
        interval_s: float = INTERVAL_S,
        max_kinds: int = MAX_KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval_s = interval_s
        self.max_kinds = max_kinds
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, reason: str, msg: str, *args: object) -> None:
        now = self._clock()
        with self._lock:
            key = (kind, reason)
            window = self._windows.get(key)
            if window is not None and now - window.started >= self.interval_s:
                self._summarise(key, window, now)
                window = None
            if window is None and len(self._windows) >= self.max_kinds:
                key = (FURTHER, reason)
                window = self._windows.get(key)
                if window is not None and now - window.started >= self.interval_s:
                    self._summarise(key, window, now)
                    window = None
            if window is None:
                window = self._windows[key] = _Window(now)
            if window.logged < self.burst:
                window.logged += 1
                full = True
            else:
                window.suppressed += 1
                full = False
        if full:
            self.logger.warning(msg, *args)

    def flush(self, force: bool = False) -> None:
        """Write the summary of every interval that ended (every one, with ``force``) and forget it."""
        now = self._clock()
        with self._lock:
            for key, window in list(self._windows.items()):
                if force or now - window.started >= self.interval_s:
                    self._summarise(key, window, now)

    def _summarise(self, key: tuple[str, str], window: _Window, now: float) -> None:
        del self._windows[key]
        if window.suppressed:
            kind, reason = key
            span = max(now - window.started, 0.0)
            self.logger.warning(
                "SECURITY: ... and %s more %s in the last %.0f s: reason %s (each counted; the first %d logged)",
                f"{window.suppressed:,}",
                kind,
                span,
                reason,
                window.logged,
            )
