"""pytest plugin (helper flake42, session 42): in each test, the trainer's first transaction seals its state (and
so starts its commit) 3 s after its examples were learned. A test that waits for ``n_learned`` and then patches the
commit catches the first commit this way (the race of a213bc8). Usage (own stack's variables set)::

    git show a213bc8:tests/test_trainer_group.py > tests/test_tgold_tmp42.py
    PYTHONPATH=$PWD:docs/experiments python -m pytest -p flake42_slow_first_seal \\
        tests/test_tgold_tmp42.py -k "watchdog or hung_commit"
"""

from __future__ import annotations

import time
from typing import Any

from streams import trainer_transactions

_real = trainer_transactions.seal
_calls = [0]


def _slow(*args: Any, **kwargs: Any) -> Any:
    _calls[0] += 1
    if _calls[0] == 1:
        time.sleep(3)
    return _real(*args, **kwargs)


trainer_transactions.seal = _slow


def pytest_runtest_setup(item: Any) -> None:
    _calls[0] = 0
