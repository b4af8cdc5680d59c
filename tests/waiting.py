"""The one polling helper of the tests: wait for a condition, fail saying what was awaited and what was seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_until(
    what: str,
    predicate: Callable[[], T],
    timeout: float = 60.0,
    interval: float = 0.5,
    *,
    abort: Callable[[], str | None] | None = None,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    An exception from ``predicate`` counts as "not yet" (an endpoint not up, a topic not there yet); it is reported
    if the wait times out. ``abort`` is checked after each failed poll: a message from it fails the wait at once
    (a process that died will not make the condition true). ``context`` adds text (logs) to either failure.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    error: BaseException | None = None
    while True:
        try:
            last = predicate()
            error = None
        except Exception as exc:
            error = exc
        if last and error is None:
            return last
        reason = abort() if abort is not None else None
        extra = f"\n{context()}" if context is not None else ""
        if reason:
            raise AssertionError(f"waiting for {what}: {reason}{extra}")
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what} (last value {last!r}, error {error!r}){extra}"
            )
        time.sleep(interval)
