"""The frozen-snapshot sentinel for regression (``learners.sentinel.ExceedanceCusum``, session 39): a copy's
"error" is whether its absolute error exceeds q, a quantile of its own absolute errors in the first half of its
warm-up, so the test's baseline is a Bernoulli rate whatever the error's tails or scale. It stays quiet on
heavy-tailed stationary noise, alarms when the function changes, alarms on an abrupt drift the regression detectors
missed (bench.unseen's friedman-gra-early), is switched by ``drift.sentinel_regression``, and a checkpoint from
before it restores and starts it."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from driftline.errors import ConfigError
from learners.drift import DriftSignal
from learners.lifecycle import ModelLifecycle
from learners.lifecycle_control import check_setting
from learners.sentinel import EXCEEDANCE_LEVEL, ExceedanceCusum, SnapshotSentinel


class _Model:
    def copy(self) -> _Model:
        return _Model()


def _student_t(rng: random.Random, df: float = 2.0) -> float:
    """Student-t noise (2 degrees of freedom: infinite variance)."""
    return rng.gauss(0, 1) / math.sqrt(rng.gammavariate(df / 2, 2.0) / df)


def test_the_statistic_is_the_same_whatever_the_errors_distribution() -> None:
    # Distribution-free: the indicators depend only on the errors' order, so Gaussian errors and the same ranks
    # through a heavy tail (Cauchy: no mean) or a wild scale give the same CUSUM, label by label.
    rng = random.Random(4)
    u = [rng.random() for _ in range(12_000)]
    forms = (
        lambda v: v,  # |U - 1/2|
        lambda v: math.tan(math.pi * v),  # |Cauchy| of the same rank (tan(pi |U - 1/2|) is |Cauchy|)
        lambda v: 1e6 * v**3,
    )
    paths = []
    for form in forms:
        test = ExceedanceCusum(1000, 0.05, math.log(1000))
        paths.append([(test.update(form(abs(v - 0.5))), round(test.s, 12)) for v in u])
    assert paths[0] == paths[1] == paths[2]


def test_heavy_tailed_stationary_errors_stay_well_under_the_false_alarm_bound() -> None:
    # Issue 13's bound: 1 false alarm per 10,000 stationary labels. Ten copies of |Student-t(2)| errors (infinite
    # variance), each watching 10,000 labels (the longest a copy watches: sentinel_every + sentinel_overlap): at most
    # 2 alarms in 100,000 labels against the bound's 10 (simulated over 100 copies: 6 alarms, 0.07 per 10,000
    # labels after the warm-up, as the 0/1 test at the same rate: 9; session 39).
    rng = random.Random(0)
    alarms = 0
    for _ in range(10):
        test = ExceedanceCusum(1000, 0.05, math.log(1000))
        alarms += any(test.update(abs(3.0 * _student_t(rng))) for _ in range(10_000))
        # q is the first half's 0.75 quantile: |t2| exceeds ~1.60 (times 3) a quarter of the time.
        assert 0.18 < test.rate < 0.32 and 0.7 * 4.8 < test.q < 1.3 * 4.8
        assert test.p0 > test.rate  # the bound, one standard error up
    assert alarms <= 2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("change", ["scale", "location"])
def test_a_change_of_the_function_is_alarmed_soon_after_and_not_before(seed: int, change: str) -> None:
    rng = random.Random(seed)
    test = ExceedanceCusum(1000, 0.05, math.log(1000))
    fired = []
    for i in range(6000):
        e = rng.gauss(0, 1)
        if i >= 4000:  # the frozen copy's residual after the change: wider, or off by half a noise sd
            e = 1.5 * e if change == "scale" else e + 1.0
        if test.update(abs(e)):
            fired.append(i)
            break
    assert fired and 4000 <= fired[0] < 4500, fired


def test_ties_and_non_numbers() -> None:
    # A copy that answers exactly (every error 0): q is 0, p0 the smoothed rate of nothing exceeding it, and any
    # error after that is a rise. An answer that is no number exceeds any q.
    test = ExceedanceCusum(100, 0.05, math.log(1000))
    assert not any(test.update(0.0) for _ in range(100))
    assert test.q == 0.0 and test.p0 < 0.05 and not test.trending
    assert any(test.update(1.0) for _ in range(20))
    test = ExceedanceCusum(100, 0.05, math.log(1000))
    for _ in range(100):
        test.update(1.0)
    assert test.q == 1.0 and not any(test.update(1.0) for _ in range(5000))  # ties at q do not exceed it
    sentinel = SnapshotSentinel(DriftConfig(sentinel_first=10, sentinel_warmup=10), "regression")

    for _ in range(10):
        sentinel.learned(_Model())
    test = sentinel.copies[0].test
    assert isinstance(test, ExceedanceCusum)
    for _ in range(10):
        sentinel.observe(1.0, lambda _m: None, 0)  # None: no number
    assert test.q == math.inf and test.first_half == 0


def test_the_warm_up_trend_tells_a_rising_error_from_a_flat_one() -> None:
    rng = random.Random(3)
    flat, rising = ExceedanceCusum(1000, 0.05, 6.9), ExceedanceCusum(1000, 0.05, 6.9)
    for i in range(1000):
        e = abs(rng.gauss(0, 1))
        flat.update(e)
        rising.update(e * (1 + i / 500))  # a copy frozen while a gradual drift mixes in
    assert not flat.trending and rising.trending
    assert abs(flat.warmup_trend()) < 3 < rising.warmup_trend()
    assert flat.first_half is not None and abs(flat.first_half - (1 - EXCEEDANCE_LEVEL) * 500) <= 1


def _regression_lifecycle(drift: DriftConfig | None = None) -> ModelLifecycle:
    lc = ModelLifecycle(
        "m", "regression", LearnerSpec("linear_regression"), None, drift or DriftConfig(), GuardConfig()
    )
    lc.initial_release()
    return lc


def _rows(
    n: int, seed: int, change_at: int | None = None, second_at: int | None = None
) -> list[tuple[dict[str, float], float]]:
    """y = w.x + N(0, 0.5) over four standard normal features; at ``change_at`` w0 grows by 0.5 (a learning
    linear model adapts within a few hundred labels, and the regression detectors miss it at seeds 1-3), at
    ``second_at`` w1 too."""
    rng = random.Random(seed)
    w = [rng.uniform(-2, 2) for _ in range(4)]
    out = []
    for i in range(n):
        x = {f"x{j}": rng.gauss(0, 1) for j in range(4)}
        shift = 0.5 * x["x0"] if change_at is not None and i >= change_at else 0.0
        shift += 0.5 * x["x1"] if second_at is not None and i >= second_at else 0.0
        out.append((x, sum(a * x[f"x{j}"] for j, a in enumerate(w)) + shift + 0.5 * rng.gauss(0, 1)))
    return out


def _alarms(
    lc: ModelLifecycle, rows: list[tuple[dict[str, float], float]], start: int = 0
) -> list[DriftSignal]:
    out = []
    for i, (x, y) in enumerate(rows[start:], start):
        for e in lc.learn_one(x, y, index=i):
            if isinstance(e, DriftSignal) and not e.signal.startswith("feature"):
                out.append(e)
    return out


def _sentinel_alarms(
    lc: ModelLifecycle, rows: list[tuple[dict[str, float], float]], start: int = 0
) -> list[DriftSignal]:
    return [e for e in _alarms(lc, rows, start) if e.details.get("test") == "frozen_snapshot"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_regression_lifecycle_alarms_from_a_frozen_copy_on_a_change_the_detectors_miss(seed: int) -> None:
    rows = _rows(5000, seed, change_at=3000)
    assert _alarms(_regression_lifecycle(DriftConfig(sentinel_regression=False)), rows) == []  # missed
    lc = _regression_lifecycle()
    alarms = _alarms(lc, rows)
    assert alarms, "a frozen copy must see the change"
    alarm = alarms[0]  # session 39: at 3,170 / 3,213 / 3,209
    assert 3000 <= alarm.index < 3500, alarm
    assert (alarm.detector, alarm.signal) == ("page_hinkley", "error")
    assert alarm.details["test"] == "frozen_snapshot" and alarm.details["statistic"] == "exceedance_cusum"
    assert alarm.details["level"] == "0.75" and float(alarm.details["quantile"]) > 0
    assert float(alarm.details["p0"]) < float(alarm.details["p1"])
    assert int(alarm.details["snapshot_label"]) <= 3000
    assert lc.challenger is not None  # it acts as ADWIN's alarm does: a challenger starts at once


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_second_change_soon_after_the_first_is_alarmed_by_the_copy_frozen_at_the_first_alarm(
    seed: int,
) -> None:
    # The copy frozen at an alarm warms up over ``RESTART_WARMUP`` labels (250): with sentinel_warmup's 1,000 it
    # tested nothing until 1,000 labels after the first alarm and the second change went unalarmed at all three
    # seeds (bench.unseen's friedman-gra at 2,000 events, drifts at 800 and 1,600: seeds 1, 6, 7; session 39).
    rows = _rows(5000, seed, change_at=3000, second_at=3800)
    alarms = _alarms(_regression_lifecycle(), rows)
    assert [a.index for a in alarms if a.index < 3800] and [a.index for a in alarms if a.index >= 3800], (
        alarms
    )
    second = next(a for a in alarms if a.index >= 3800)  # session 39: 4,062 / 4,780 / 4,043
    assert second.details["test"] == "frozen_snapshot" and int(second.details["snapshot_label"]) < 3800


def test_after_a_regression_alarm_a_short_warm_up_copy_then_a_full_one_sentinel_first_labels_on() -> None:
    config = DriftConfig()
    for task, expected in (
        # The short copy once the champion has learned ``RESTART_DELAY`` (200) labels after the alarm (restart39).
        ("regression", {5200: (250, 1.5, True), 6000: (1000, 1.0, True)}),
        ("classification", {5000: (1000, 1.0, False)}),  # as before session 39
    ):
        sentinel = SnapshotSentinel(config, task)
        for _ in range(5000):
            sentinel.learned(_Model())
        sentinel.restart(_Model())
        frozen = {}
        for _ in range(1500):
            for c in sentinel.copies:
                frozen.setdefault(c.label, (c.test.warmup, c.test.z, isinstance(c.test, ExceedanceCusum)))
            sentinel.learned(_Model())
        assert frozen == expected, task


def _recurring_rows(seed: int) -> list[tuple[dict[str, float], float]]:
    """``_rows``'s stream whose w0 grows by 1 from label 3,000 and comes back at 4,000 (a recurring drift)."""
    rng = random.Random(seed)
    w = [rng.uniform(-2, 2) for _ in range(4)]
    out = []
    for i in range(5000):
        x = {f"x{j}": rng.gauss(0, 1) for j in range(4)}
        shift = x["x0"] if 3000 <= i < 4000 else 0.0
        out.append((x, sum(a * x[f"x{j}"] for j, a in enumerate(w)) + shift + 0.5 * rng.gauss(0, 1)))
    return out


@pytest.mark.parametrize("seed", [7, 13])
def test_a_recurring_drift_is_alarmed_by_the_copy_frozen_once_the_champion_learned_the_first(
    seed: int,
) -> None:
    # The loss detector alarms the first drift a few dozen labels in (3,030 / 3,027), when the champion still holds
    # the old concept: a copy frozen then errs *less* once the old concept comes back, and no detector alarms the
    # return at these seeds with ``RESTART_DELAY`` 0. Frozen ``RESTART_DELAY`` labels later, the copy has learned the
    # new concept and errs more on the old one (4,145 / 4,086, both from a copy at 3,239). (Session 39, helper
    # restart39, chose seeds 6 and 7; since session 40's faster releases in a regression recovery window, ADWIN
    # alarms seed 6's return itself, at 4,063, so the seed no longer tells the delayed copy's work. Seed 8 likewise
    # since session 43's probation over consecutive releases: ADWIN alarms its return at 4,031, before the copy's
    # 4,086; seed 13 alarms at 3,059, then from a copy at 3,271 at 4,164, and nothing in 4,000-4,500 with
    # ``RESTART_DELAY`` 0.)
    alarms = _alarms(_regression_lifecycle(), _recurring_rows(seed))
    assert [a for a in alarms if 3000 <= a.index < 3200], alarms
    back = [a for a in alarms if 4000 <= a.index < 4500]
    assert back and back[0].details["test"] == "frozen_snapshot", alarms
    assert 3200 <= int(back[0].details["snapshot_label"]) < 4000, back[0]


def test_a_sentinel_pickled_before_the_restart_delay_restores_without_a_pending_copy() -> None:
    sentinel = SnapshotSentinel(DriftConfig(), "regression")
    for _ in range(300):
        sentinel.learned(_Model())
    del sentinel.__dict__["pending"]  # what a checkpoint from before restart39 holds
    restored = pickle.loads(pickle.dumps(sentinel))
    assert restored.pending is None
    restored.learned(_Model())
    restored.restart(_Model())
    assert restored.copies == [] and restored.pending == restored.seen + 200


def test_no_sentinel_alarm_on_a_stationary_regression_stream_and_the_switch_turns_it_off() -> None:
    lc = _regression_lifecycle()
    assert _sentinel_alarms(lc, _rows(6000, 1)) == []
    assert lc._sentinel is not None and lc._sentinel.regression and lc._sentinel.copies
    off = _regression_lifecycle(DriftConfig(sentinel_regression=False))
    assert _sentinel_alarms(off, _rows(5000, 1, change_at=3000)) == [] and off._sentinel is None


@pytest.mark.parametrize("seed", [3, 5])
def test_bench_unseen_friedman_gra_early_at_4000_events_both_drifts_are_alarmed_within_2000_events(
    seed: int, tmp_path: Any
) -> None:
    # Issue 13: bench.unseen's friedman-gra-early (Friedman's global recurring abrupt drift at events 1,111 and
    # 3,111 of 4,000), replayed as ``docs/experiments/regtax_gate.py --n 4000`` does. Before session 39 no
    # detector alarmed the first drift at seed 5 (the loss detectors' scales and ADWIN's cut; session 38) nor the
    # second at seed 3; a frozen copy does (seed 3: 1,183 and 3,401 as raised; seed 5: 1,289 and 3,135). The second
    # at seed 3 needs the full-warm-up copy frozen ``sentinel_first`` labels after the first alarm.
    from bench.accuracy import default_lifecycle, raised
    from bench.unseen import DELAY, make, write_csv
    from learners.replay import read_rows, replay

    examples, points, task, _ = make("friedman-gra-early", 4000, seed)
    assert points == [1111, 3111] and task == "regression"
    path = tmp_path / "f.csv"
    write_csv(examples, path)
    rows = list(read_rows(path, "y"))
    alarms = raised(replay(rows, default_lifecycle(task, 0), delay=DELAY).summary()["alarms"], DELAY)
    assert [a for a in alarms if 1111 <= a < 3111] and [a for a in alarms if a >= 3111], alarms
    assert not [a for a in alarms if a < 1111], alarms  # nothing before the drift


def test_a_regression_checkpoint_from_before_session_39_restores_and_starts_the_sentinel() -> None:
    rows = _rows(5000, 1, change_at=3000)
    lc = _regression_lifecycle()
    for i, (x, y) in enumerate(rows[:500]):
        lc.learn_one(x, y, index=i)
    # What an older trainer pickled for a regression model: no sentinel (it was classification-only and dropped
    # it at the first label), a DriftConfig without sentinel_regression.
    lc.__dict__["_sentinel"] = None
    del lc.drift.__dict__["sentinel_regression"]
    restored = pickle.loads(pickle.dumps(lc))
    assert restored._sentinel is None and restored.drift.sentinel_regression is True  # class-level default
    alarms = _alarms(restored, rows, 500)
    sentinel = restored._sentinel
    assert sentinel is not None and sentinel.regression
    assert alarms and 3000 <= alarms[0].index < 3500 and alarms[0].details["test"] == "frozen_snapshot", (
        alarms
    )


def test_a_classification_sentinel_from_before_session_39_restores_as_one() -> None:
    sentinel = SnapshotSentinel(DriftConfig(sentinel_first=10, sentinel_warmup=10))

    for _ in range(10):
        sentinel.learned(_Model())
    del sentinel.__dict__["regression"]  # what an older checkpoint holds
    restored: Any = pickle.loads(pickle.dumps(sentinel))
    assert restored.regression is False
    for _ in range(10):
        restored.observe(1, lambda _m: 1, 0)  # 0/1 errors, not absolute ones
    assert restored.copies[0].test.errors == 0 and not isinstance(restored.copies[0].test, ExceedanceCusum)


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_bad_sentinel_regression_setting_is_refused_naming_the_field(value: str, tmp_path: Any) -> None:
    from driftline.settings import load_settings

    with pytest.raises(ConfigError, match="sentinel_regression"):
        check_setting("drift.sentinel_regression", value, GuardConfig(), DriftConfig())
    path = tmp_path / "bad.yaml"
    path.write_text(f"drift:\n  sentinel_regression: {value}\n")
    with pytest.raises(ConfigError, match=r"drift\.sentinel_regression"):
        load_settings(path, environ={})
    path.write_text("drift:\n  sentinel_regression: false\n")
    assert load_settings(path, environ={}).drift.sentinel_regression is False
