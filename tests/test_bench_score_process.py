"""``python -m bench.score_process``: the score stage's CPU per event at small batches, per source tree."""

from __future__ import annotations

import json

import pytest

from bench.score_process import ROOT, main


def test_it_measures_each_batch_size_of_this_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--events", "120", "--batches", "2,40", "--rounds", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = out["us_per_event"][str(ROOT)]
    assert set(row) == {"2", "40"} and all(us > 0 for us in row.values())
