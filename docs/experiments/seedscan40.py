"""Which seeds of the recurring-drift test only the sentinel's delayed restart copy alarms (session 40, lead).

``tests/test_learners_sentinel_regression.py``'s recurring stream (w0 grows by 1 from label 3,000 and comes back at
4,000) at each seed, with ``learners.sentinel.RESTART_DELAY`` at its default (200) and at 0: whether the first drift
is alarmed (3,000-3,199), and the first alarm of the return (4,000-4,499) as (index, test, snapshot label).

    PYTHONPATH=. python docs/experiments/seedscan40.py 0 12
"""

from __future__ import annotations

import sys

import learners.sentinel as sentinel
from tests.test_learners_sentinel_regression import _alarms, _recurring_rows, _regression_lifecycle


def back(seed: int) -> tuple[bool, tuple[int, object, object] | None]:
    alarms = _alarms(_regression_lifecycle(), _recurring_rows(seed))
    first = any(3000 <= a.index < 3200 for a in alarms)
    ret = [a for a in alarms if 4000 <= a.index < 4500]
    return first, (
        ret[0].index,
        ret[0].details.get("test"),
        ret[0].details.get("snapshot_label"),
    ) if ret else None


def main(lo: int, hi: int) -> None:
    default = sentinel.RESTART_DELAY
    for seed in range(lo, hi):
        sentinel.RESTART_DELAY = default
        on = back(seed)
        sentinel.RESTART_DELAY = 0
        off = back(seed)
        print(seed, "delay", default, on, "delay 0", off, flush=True)
    sentinel.RESTART_DELAY = default


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
