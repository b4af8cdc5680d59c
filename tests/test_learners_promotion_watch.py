"""After a challenger is promoted (session 10): the sentinel watches the new lineage as a new model (the copies of
the lineage it replaced go), and the loss detector fixes its scale only once the promoted model has settled.

The fakes stand for models only where the logic is pure (the schedule, the skipped losses); the last two tests run
two of ``bench.unseen``'s streams (seed 100) through the default lifecycle, where each change removes a false alarm
that the previous code raised (BENCHMARKS-accuracy.md, session 10).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from driftline.config import DriftConfig
from learners.drift import LossDriftMonitor
from learners.sentinel import SnapshotSentinel


class _Model:
    def __init__(self, name: str) -> None:
        self.name = name

    def copy(self) -> _Model:
        return _Model(self.name)


def test_a_promotion_drops_the_old_lineages_copies_and_restarts_the_schedule() -> None:
    sentinel = SnapshotSentinel(DriftConfig())
    for _ in range(5000):
        sentinel.learned(_Model("old"))
    assert [c.label for c in sentinel.copies] == [2000, 4000]
    sentinel.promoted(_Model("new"))
    assert sentinel.copies == []
    frozen: dict[int, str] = {}
    for _ in range(12000):
        sentinel.learned(_Model("new"))
        frozen.update((c.label, c.model.name) for c in sentinel.copies)
    # A new model's schedule, from the promotion: 250, 500 (``EARLY_FIRST``, session 22), 1,000, 2,000, 4,000
    # labels after it, then every 8,000.
    assert sorted(frozen) == [5250, 5500, 6000, 7000, 9000, 17000]
    assert set(frozen.values()) == {"new"}


def test_a_sentinel_pickled_before_the_restart_keeps_its_schedule() -> None:
    sentinel = SnapshotSentinel(DriftConfig())
    del sentinel.__dict__["origin"]  # what an older checkpoint holds
    restored: Any = pickle.loads(pickle.dumps(sentinel))
    for _ in range(4000):
        restored.learned(_Model("m"))
    assert restored.origin == 0 and restored.next_copy == 12000


def test_the_loss_monitor_skips_the_settling_losses_before_its_warm_up() -> None:
    config = DriftConfig()
    monitor = LossDriftMonitor(config)
    monitor.reset(settle=300)
    # A young model's losses: small and narrow, then the wide tail of a settled one (std about 1). Measured over
    # the narrow ones the scale would make every later confident mistake a wild outlier.
    for i in range(300):
        assert monitor.update(0.05, i) == []
    assert monitor._detector.detector is None and monitor._detector.var.n == 0
    for i in range(300, 300 + config.ph_min_instances):
        monitor.update(2.0 if i % 2 else 0.0, i)
    assert monitor._detector.std == pytest.approx(1.0, rel=0.02)
    assert monitor._settle == 0


def test_a_loss_monitor_pickled_before_the_settling_restores() -> None:
    monitor = LossDriftMonitor(DriftConfig())
    del monitor.__dict__["_settle"]
    restored: Any = pickle.loads(pickle.dumps(monitor))
    restored.update(0.5, 0)
    assert restored._detector.var.n == 1


def _false_alarms(name: str, upto: int) -> tuple[list[int], list[int], list[int]]:
    """(alarms, drift points, challenger promotions) of the default lifecycle on the first ``upto`` events of the
    unseen stream ``name`` at 20,000 events, seed 100, through the CSV round trip the CLI reads."""
    import tempfile

    from bench.accuracy import default_lifecycle
    from bench.unseen import DELAY, make, write_csv
    from learners.replay import read_rows, replay

    examples, points, task, _ = make(name, 20000, 100)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.csv"
        write_csv(examples[:upto], path)
        rows = list(read_rows(path, "y"))
    summary = replay(rows, default_lifecycle(task, 0), delay=DELAY).summary()
    promoted = [p["index"] for p in summary["promotions"] if p["reason"] == "challenger"]
    return summary["alarms"], points, promoted


def test_agrawal_2_7_has_no_alarm_from_the_replaced_lineage() -> None:
    """Before: a copy frozen at ADWIN's alarm of the switch (6,719, the old concept's champion, p0 0.55) kept
    watching after the challenger's promotion at 6,774 and alarmed at 9,304, on stationary events."""
    alarms, points, promoted = _false_alarms("agrawal-2-7", 12000)
    assert promoted and points[0] < promoted[0] < points[0] + 2000, promoted
    assert [a for a in alarms if points[0] - 20 <= a < points[0] + 2000], alarms  # the switch is detected
    assert [a for a in alarms if a >= points[0] + 2000] == [], alarms


def test_hyperplane5_flip_has_no_loss_alarm_after_the_promotion() -> None:
    """Before: the loss detector, its scale fixed over the first 100 losses of the challenger promoted at 13,467,
    alarmed at 15,414 on stationary events (and a copy frozen at ADWIN's alarm of the flip, p0 0.87, at 15,050)."""
    alarms, points, promoted = _false_alarms("hyperplane5-flip", 16500)
    assert promoted and points[0] < promoted[0] < points[0] + 2000, promoted
    assert [a for a in alarms if points[0] - 20 <= a < points[0] + 2000], alarms  # the flip is detected
    assert [a for a in alarms if a >= points[0] + 2000] == [], alarms
