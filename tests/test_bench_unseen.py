"""``bench/unseen.py`` (issue 13's acceptance check on streams the suite never saw): the defaults run through the
real ``driftline replay`` CLI on short unseen streams of each kind without failing, and the table judges them."""

from __future__ import annotations

import math

import pytest

from bench.unseen import job, make, table, verdict


@pytest.mark.parametrize("name", ["randomtree-abrupt", "waveform-permute", "mv-shift"])
def test_defaults_replay_unseen_streams_through_the_cli(name: str) -> None:
    # String categories, 3 classes with permuted labels, regression with string features.
    r = job(name, 800, None)
    assert "error" not in r, r
    assert r["n"] == 800 and math.isfinite(r["guarded"])
    assert r["points"] == [400]
    assert name in table([r]) and verdict(r) in table([r])


def test_unseen_streams_have_their_drift_where_said() -> None:
    rows, points, task, gradual = make("waveform-permute", 1000)
    assert (points, task, gradual) == ([500], "classification", False)
    assert {y for _, y in rows} == {0, 1, 2}
    rows, points, task, _ = make("stagger-strings", 900)
    assert points == [300, 600] and all(isinstance(x["color"], str) for x, _ in rows)


def test_linear_reversal_flips_its_target_where_said() -> None:
    rows, points, task, _ = make("linear-reversal", 900)
    assert (points, task) == ([500], "regression")
    # Least squares on each side: the same weights, opposite signs (noise 0.5, 500 and 400 rows).
    import numpy as np

    def fit(part: list[tuple[dict[str, float], float]]) -> np.ndarray:
        xs = np.array([[x[f"x{j}"] for j in range(6)] for x, _ in part])
        return np.linalg.lstsq(xs, np.array([y for _, y in part]), rcond=None)[0]

    before, after = fit(rows[:500]), fit(rows[500:])
    assert np.allclose(before, -after, atol=0.2) and np.abs(before).max() > 0.5


@pytest.mark.parametrize(
    "name", ["agrawal-2-7", "hyperplane5-flip", "sea-0-3", "rbf5-swap", "stagger-0-2", "friedman-gra-early"]
)
def test_session_8_streams_generate_with_their_drift_inside(name: str) -> None:
    rows, points, _, _ = make(name, 900)
    assert len(rows) == 900 and all(0 < p < 900 for p in points)


def test_the_label_delay_reaches_the_cli_and_the_plain_learners() -> None:
    short, long = job("linear-reversal", 600, None, delay=5), job("linear-reversal", 600, None, delay=200)
    assert "error" not in short and "error" not in long
    # Later labels: both the served model and the plain learners learn less of the same stream.
    assert long["guarded"] > short["guarded"] and long["plain_LR"] > short["plain_LR"]


def test_real_weather_is_skipped_cleanly_without_its_folder_and_read_with_it(
    tmp_path, monkeypatch, capsys
) -> None:
    """The project never needs /work/shared/data: a named real stream whose file is absent is skipped with a note."""
    import sys

    import bench.unseen as unseen

    monkeypatch.setattr(unseen, "DATA_DIRS", (tmp_path / "absent",))
    assert unseen.real_available("weather") is not None
    monkeypatch.setattr(sys, "argv", ["unseen", "--streams", "weather", "--workers", "1"])
    assert unseen.main() == 0
    assert "# skipped weather: weather.csv not found" in capsys.readouterr().out
    (tmp_path / "weather.csv").write_text("feat_1,feat_2,target\n1.5,2,0\n0.5,1,1\n2.5,3,0\n")
    monkeypatch.setattr(unseen, "DATA_DIRS", (tmp_path / "absent", tmp_path))
    assert unseen.real_available("weather") is None
    rows, points, task, gradual = make("weather", 2)
    assert rows == [({"feat_1": 1.5, "feat_2": 2}, 0), ({"feat_1": 0.5, "feat_2": 1}, 1)]
    assert (points, task, gradual) == ([], "classification", False)


def test_a_drift_with_less_than_a_recovery_window_after_it_is_not_judged() -> None:
    """Session 24: at 2,000 events friedman-gra's second drift (1,600) has 400 events after it, fewer than the
    500-event recovery window, so ``recovery()`` cannot answer anything but None there, whatever was served; the
    verdict does not count it (it failed every run on main: "FAIL recovery" for a window that cannot exist)."""
    from bench.unseen import judged

    assert judged([800, 1600], 2000) == [True, False]
    assert judged([555, 1555], 2000) == [True, False]
    assert judged([4000, 8000], 10000) == [True, True]
    assert judged([], 10000) == []  # a real stream (no drift point): it raised ValueError (found by gen30)
    row = {
        "stream": "friedman-gra", "task": "regression", "points": [800, 1600], "gradual": False, "tax": -1.0,
        "detection": {"detected": 2, "false": 0}, "recovery": [100, None], "recovery_judged": [True, False],
        "rollbacks_per_10k": 0.0,
    }  # fmt: skip
    assert verdict(row) == "ok"
    assert verdict({**row, "recovery": [None, None]}) == "FAIL recovery"  # the first drift never recovered
    assert verdict({**row, "recovery_judged": [True, True]}) == "FAIL recovery"  # judged: as before


def test_the_verdict_judges_false_alarms_per_10000_stationary_events() -> None:
    """Issue 13's bound "at most 1 false alarm per 10,000 stationary events" was computed (``false_per_10k``) but never
    judged: a stationary stream with alarms all over passed. One alarm is always allowed (a rate cannot be judged
    on a stream shorter than 10,000 stationary events), and a stream with no stationary stretch is not judged."""
    from bench.accuracy import detection

    d = detection([300, 5000, 9000], [], 10000)
    assert (d["false"], d["stationary"]) == (3, 10000)
    row = {
        "stream": "stationary", "task": "classification", "points": [], "gradual": True, "tax": 0.0,
        "detection": d, "recovery": [], "recovery_judged": [], "rollbacks_per_10k": 0.0,
    }  # fmt: skip
    assert verdict(row) == "FAIL false alarms"
    assert verdict({**row, "detection": detection([300], [], 10000)}) == "ok"
    assert verdict({**row, "detection": detection([300], [], 2000)}) == "ok"  # one alarm: always allowed
    assert verdict({**row, "detection": detection([300, 900], [], 2000)}) == "FAIL false alarms"
    assert verdict({**row, "detection": detection([300, 900], [], 25000)}) == "ok"  # 0.8 per 10,000
    # An incremental or a real stream has no stationary stretch: its alarms are not judged false.
    assert verdict({**row, "false_judged": False}) == "ok"
    # An alarm matched to a drift is not false; the 2,000 events after each drift are not stationary.
    d = detection([1010, 1500, 3500], [1000], 4000)
    assert (d["detected"], d["false"], d["stationary"]) == (1, 1, 2000)


def test_the_verdict_allows_one_rollback_as_it_allows_one_false_alarm() -> None:
    """Issue 13's "no rollback storms (at most 3 per 10,000 events)": one rollback in a 2,000-event row is no storm
    and no evidence of a rate of 5 per 10,000 (session 41: friedman-gsg s4 failed on one end-of-stream rollback under
    three unrelated levers); two in 2,000, or four in 10,000, still fail."""
    row = {
        "stream": "friedman-gsg", "task": "regression", "n": 2000, "points": [], "gradual": True, "tax": 0.0,
        "detection": {"detected": 0, "false": 0}, "recovery": [], "recovery_judged": [], "rollbacks_per_10k": 5.0,
    }  # fmt: skip
    assert verdict(row) == "ok"
    assert verdict({**row, "rollbacks_per_10k": 10.0}) == "FAIL rollbacks"  # 2 in 2,000
    assert verdict({**row, "n": 10000, "rollbacks_per_10k": 3.0}) == "ok"  # 3 in 10,000
    assert verdict({**row, "n": 10000, "rollbacks_per_10k": 4.0}) == "FAIL rollbacks"  # 4 in 10,000
    no_length = {k: v for k, v in row.items() if k != "n"}
    assert verdict(no_length) == "FAIL rollbacks"  # judged on the rate alone
