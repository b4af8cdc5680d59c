"""An event time that is NaN or infinite (JSON ``1e400``, a stream feature named by ``--ts-col``) is refused with the
row named, or is no time where the column is only the default ``ts``: ``int()`` of it raised a bare ValueError or
OverflowError with a traceback (``driftline replay``; ``--ts-col`` on a ``--stream``, session 33)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftline.errors import ConfigError
from driftline.util import event_time
from learners.replay import read_rows, stream_columns
from streams.cli import main


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_event_time_is_refused_when_named_and_missing_when_default(value: float) -> None:
    with pytest.raises(ConfigError, match="--ts-col 't' must hold epoch milliseconds"):
        event_time(value, "t", True, "row 1")
    assert event_time(value, "ts", False, "row 1") is None
    assert event_time(12.7, "t", True, "row 1") == 12  # a finite float is still truncated


def test_a_stream_feature_named_by_ts_col_that_is_nan_is_refused_naming_the_event() -> None:
    rows = [("0", None, {"t": 5.0, "a": 1.0}, 1), ("1", None, {"t": float("nan"), "a": 1.0}, 0)]
    got = stream_columns(rows, None, "t", "s")
    assert next(got)[1] == 5
    with pytest.raises(ConfigError, match="s: event 1: --ts-col 't'"):
        next(got)


def test_replay_of_a_json_file_with_an_infinite_default_ts(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a", "ts": 1e400, "x": 1.0, "y": 0}\n{"id": "b", "ts": 7, "x": 2.0, "y": 1}\n')
    assert [ts for _, ts, _, _ in read_rows(path, "y")] == [None, 7]
    assert main(["replay", "--file", str(path), "--label-col", "y", "--no-plain", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 2
    assert main(["replay", "--file", str(path), "--label-col", "y", "--ts-col", "ts", "--no-plain"]) != 0
    assert "row 1: --ts-col 'ts' must hold epoch milliseconds, got inf" in capsys.readouterr().err
