"""pytest plugin (helper flake42, session 42): force the interleaving behind two intermittent trainer-group tests.

A model's trainer restored from its committed state is in ``group.trainers`` with its old ``n_learned`` before it
learns a single new example; this plugin holds it there 3 s, as a loaded machine may. A wait on ``n_learned >= k``
with k below the restored count then returns before anything new was learned. Usage (own stack's variables set)::

    git show <commit before the fix>:tests/test_trainer_group.py > tests/test_tgold_tmp42.py
    PYTHONPATH=$PWD:docs/experiments python -m pytest -p flake42_slow_restore -p no:randomly \\
        tests/test_tgold_tmp42.py tests/test_trainer_group.py -k "forged_changelog or copied_under"
"""

from __future__ import annotations

import time
from typing import Any

from streams.trainers import TrainerGroup

_real = TrainerGroup._trainer


def _slow(self: TrainerGroup, name: str, create: bool = True) -> Any:
    new = name not in self.trainers
    trainer = _real(self, name, create)
    if new and trainer is not None and trainer.lifecycle.n_learned > 0:
        time.sleep(3)
    return trainer


TrainerGroup._trainer = _slow  # type: ignore[method-assign]
