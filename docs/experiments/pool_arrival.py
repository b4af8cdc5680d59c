"""The ``auto`` pool's members scored at the stream's label delay, in the guarded run (issue 13, session 21).

``learners.pool.Pool.score_served`` scores the champion's members on the snapshot served *when the label comes
back*: that copy is aged by the release cadence (and by holds and rollbacks), not by the label delay (it has
learned every label up to the last release, the labels of the ``delay`` events in flight included). The copy
that answered the event when it arrived is the one the label delay ages: its version comes with the label
(``Labelled.served_version``). This patch, for experiments only, makes the lifecycle keep the last
``KEEP`` released pools by version and score the champion's members on the one that served the event (falling
back to the current one when it is gone). With it, ``learners.pool.SERVED_SHARE`` / ``SERVED_TAKE`` act on
scores at the label delay. Installed from a ``sitecustomize.py`` first on ``PYTHONPATH`` (so every worker has it)::

    import sys; sys.path.insert(0, "TREE/docs/experiments"); import pool_arrival; pool_arrival.install(share=1.0)

then ``gradual_streams.py`` / ``coldstart_gates.py`` as usual.
"""

from __future__ import annotations

import collections
from typing import Any

KEEP = 16  # released pools kept by version (a pool is a few KB)


def install(share: float = 1.0, take: bool = False) -> None:
    import learners.lifecycle as lc
    import learners.pool as lp

    lp.SERVED_SHARE["classification"] = share or 1e-9
    lp.SERVED_TAKE["classification"] = take
    orig_step = lc.ModelLifecycle._step

    def _step(self: Any, x: Any, y: Any, pred: Any, version: Any, *rest: Any) -> Any:
        kept = self.__dict__.setdefault("_arrival_kept", collections.OrderedDict())
        if self.served_version not in kept:
            kept[self.served_version] = self.served_model.model
            while len(kept) > KEEP:
                kept.popitem(last=False)
        self.__dict__["_arrival_version"] = version
        return orig_step(self, x, y, pred, version, *rest)

    def _score_served_members(self: Any, xc: Any, y: Any, batch: Any, pos: int) -> None:
        if not lp.SERVED_SHARE.get(self.task):
            return
        kept = self.__dict__.get("_arrival_kept", {})
        champion = self._lineage.model.model
        served = kept.get(self.__dict__.get("_arrival_version"), self._served.model.model)
        if type(champion) is lp.Pool and type(served) is lp.Pool and served is not champion:
            champion.score_served(served, xc, y)

    lc.ModelLifecycle._step = _step  # type: ignore[method-assign]
    lc.ModelLifecycle._score_served_members = _score_served_members  # type: ignore[method-assign]
