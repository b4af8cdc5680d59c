"""pytest plugin (helper flake42, session 42): the second consumer a process subscribes joins its group 8 s late,
as a second member may on a loaded machine. Forces the race of test_batches_finisher's rebalance test, which gave
the second member a fixed 3 s to take a partition. Usage (own stack's variables set)::

    git show <commit before the fix>:tests/test_batches_finisher.py > tests/test_bfold_tmp42.py
    PYTHONPATH=$PWD:docs/experiments python -m pytest -p flake42_slow_join -p no:randomly \\
        tests/test_bfold_tmp42.py -k rebalance_finishes
"""

from __future__ import annotations

import time
from typing import Any

from connectors.batch_source import BatchSource

_real = BatchSource._subscribe
_calls = [0]


def _slow(self: BatchSource) -> Any:
    _calls[0] += 1
    if _calls[0] == 2:
        time.sleep(8)
    return _real(self)


BatchSource._subscribe = _slow  # type: ignore[method-assign]
