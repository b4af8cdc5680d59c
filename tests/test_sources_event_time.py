"""``produce`` and ``replay`` read a file's event time from the same column (driftline.util.ts_column).

A column named ``ts`` was the event time in ``replay`` and a feature in ``produce`` (unless ``--ts-col`` named it):
a file produced and then replayed had other event times (the time of sending against the file's) and another
feature set (``ts`` learned live, not in the replay).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.sources import open_source
from driftline.errors import ConfigError
from learners.replay import read_rows


def _files(tmp_path: Path, rows: list[dict[str, object]]) -> list[Path]:
    csv = tmp_path / "events.csv"
    names = list(rows[0])
    csv.write_text(",".join(names) + "\n" + "".join(",".join(str(r[n]) for n in names) + "\n" for r in rows))
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [csv, jsonl]


def _both(path: Path, label_col: str, ts_col: str | None = None) -> tuple[list[tuple], list[tuple]]:
    produced = [
        (e.id, e.ts, e.features, e.label) for e in open_source(str(path), label_col=label_col, ts_col=ts_col)
    ]
    return produced, list(read_rows(path, label_col, ts_col=ts_col))


ROWS = [{"id": f"e{i}", "ts": 1_700_000_000_000 + i, "x": i * 0.5, "y": i % 2} for i in range(5)]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_ts_column_is_the_event_time_for_produce_and_replay(tmp_path: Path, kind: str) -> None:
    path = _files(tmp_path, ROWS)[kind == "jsonl"]
    produced, replayed = _both(path, "y")
    assert produced == replayed
    assert [ts for _, ts, _, _ in produced] == [r["ts"] for r in ROWS]
    assert all("ts" not in x for _, _, x, _ in produced)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_another_column_named_by_ts_col_and_ts_as_the_label(tmp_path: Path, kind: str) -> None:
    rows = [{"when": r["ts"], "ts": r["y"], "x": r["x"]} for r in ROWS]
    path = _files(tmp_path, rows)[kind == "jsonl"]
    produced, replayed = _both(path, "ts", ts_col="when")
    assert produced == replayed and [ts for _, ts, _, _ in produced] == [r["when"] for r in rows]
    produced, replayed = _both(path, "ts")  # ts is the label: no event time, `when` a feature
    assert produced == replayed and {ts for _, ts, _, _ in produced} == {None}
    assert all("when" in x for _, _, x, _ in produced)


def test_a_ts_column_without_a_number_is_refused_by_both_naming_it(tmp_path: Path) -> None:
    rows = [{"id": "a", "ts": "yesterday", "y": 1}]
    for path in _files(tmp_path, rows):
        for read in (lambda p: list(open_source(str(p), label_col="y")), lambda p: list(read_rows(p, "y"))):
            with pytest.raises(ConfigError, match=r"column 'ts' \(the event time by default\).*--ts-col"):
                read(path)
    # An empty cell is no event time (produce stamps the time of sending), for both.
    csv = tmp_path / "gap.csv"
    csv.write_text("id,ts,x,y\na,,1,0\nb,5,2,1\n")
    produced, replayed = _both(csv, "y")
    assert produced == replayed and [ts for _, ts, _, _ in produced] == [None, 5]
