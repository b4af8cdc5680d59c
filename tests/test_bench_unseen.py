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
