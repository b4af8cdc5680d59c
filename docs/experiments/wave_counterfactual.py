"""Session 24 (helper wavegate): what the incremental test's evidence wait costs a stream, as a counterfactual (not a
proposal: it releases without the test). Runs ``docs/experiments/wave_trace.py`` with the incremental policy's
non-inferiority test always shown at each judgement, so releases come at the floors alone.

    PYTHONPATH=TREE python docs/experiments/wave_counterfactual.py MODE STREAM SEED [wave_trace options]

MODE: ``base`` (nothing patched); ``every50`` (the floors as they are: ``release_every`` 25 in quiet stretches, the
carried floor 50 for ``QUIET_LABELS`` after an alarm); ``every25`` (25 everywhere); ``every10`` (10 everywhere).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import learners.policies as policies


def main() -> None:
    mode = sys.argv.pop(1)
    if mode != "base":
        decide = policies.IncrementalPolicy.decide

        def shown(self: Any, index: int, **kw: Any) -> Any:
            self.evidence.not_worse.log_wealth = (
                10.0  # the test always rejects (the other checks still judge)
            )
            return decide(self, index, **kw)

        policies.IncrementalPolicy.decide = shown  # type: ignore[method-assign]
        if mode in ("every25", "every10"):
            policies.QUIET_LABELS = 1
        if mode == "every10":
            waiting = policies.IncrementalPolicy.waiting

            def every10(self: Any, release_every: int, served_learned: bool) -> bool:
                return waiting(self, 10, served_learned)

            policies.IncrementalPolicy.waiting = every10  # type: ignore[method-assign]
    sys.argv = ["wave_trace.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).parent / "wave_trace.py"), run_name="__main__")


if __name__ == "__main__":
    main()
