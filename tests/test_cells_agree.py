"""The same CSV file gives the same values to ``driftline replay`` and ``driftline produce`` (session 31, outside17).

A user measures the learning core with ``replay`` and then runs the pipeline on the same file with ``produce``:
a missing cell written ``NA`` or ``null`` and a boolean written ``true``/``False`` used to be read as missing and
boolean by replay but sent as the strings ``"NA"``/``"true"`` by produce, and a label ``NA`` was published as a
class of its own.
"""

from __future__ import annotations

from pathlib import Path

from connectors.sources import csv_source, parse_value
from learners.replay import read_rows

CELLS = [
    "",
    "NA",
    "na",
    "null",
    "NULL",
    "None",
    "NaN",
    "nan",
    "true",
    "False",
    "TRUE",
    "yes",
    "0",
    "1",
    "2.5",
    "x",
]


def test_parse_value_reads_missing_and_boolean_spellings() -> None:
    assert [parse_value(s) for s in CELLS] == [
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        True,
        False,
        True,
        "yes",
        0,
        1,
        2.5,
        "x",
    ]


def test_replay_and_produce_read_the_same_rows(tmp_path: Path) -> None:
    path = tmp_path / "messy.csv"
    # The label: missing in the spellings of a missing cell, else 0/1 (a column of one kind).
    labels = [c if parse_value(c) is None else str(i % 2) for i, c in enumerate(CELLS)]
    lines = ["a,b,y"] + [f"{c},{c},{y}" for c, y in zip(CELLS, labels, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    replayed = [(x, y) for _, _, x, y in read_rows(path, "y")]
    produced = [(e.features, e.label) for e in csv_source(path, label_col="y")]
    assert produced == replayed
    assert [type(y) for _, y in produced] == [type(y) for _, y in replayed]
    assert produced[1] == ({"a": None, "b": None}, None)  # NA: missing, so no label is published for it
