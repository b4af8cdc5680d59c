"""Session 36 (helper prior36): ADWIN on the served model's error alarming on a drop as well (issue 13,
agrawal-4-7-short: a drift that makes the task easier is never alarmed). An experiment patch, not in the code.

``install()`` replaces ``learners.drift.ErrorDriftMonitor.update`` with the same ADWIN update (River's own
``ADWIN.update``, which main's inlined statements copy) without its ``after <= before`` test, so a significant fall
of the error raises a drift alarm too (its details say ``direction: down``). For the gate scripts, which run the CLI
in subprocesses, put a ``sitecustomize.py`` first on ``PYTHONPATH`` that imports this module and calls ``install()``:

    PYTHONPATH=SITE:TREE python docs/experiments/gen35_streams.py OUT --judge --seed 45 \\
        --streams agrawal-4-7-short,stationary-10k
    PYTHONPATH=SITE:TREE python docs/experiments/regtax_gate.py --n 2000 --seeds 0-7 --streams <classification>

Not kept (BENCHMARKS-accuracy.md, session 36): it alarms the easier drift, but a young model's error falls too.
"""

from __future__ import annotations

import math
from typing import Any


def install() -> None:
    import learners.drift as d
    from learners.features import finite

    def update(self: Any, error: float, index: int) -> list[Any]:
        if not (math.isfinite(error) if type(error) is float else finite(error)):
            return []
        if self._name != "adwin":
            return self._update_other(float(error), index)
        detector = self._detector
        before = detector.estimation
        detector.update(float(error))
        self._n += 1
        if not detector.drift_detected or self._n < self.config.adwin_grace:
            return []
        after = detector.estimation
        details = {
            "error_before": f"{before:.4f}",
            "error_after": f"{after:.4f}",
            "width": str(detector.width),
            "direction": "down" if after <= before else "up",
        }
        return [d.DriftSignal("adwin", "error", index, details)]

    d.ErrorDriftMonitor.update = update  # type: ignore[method-assign]
