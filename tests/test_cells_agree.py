"""The same CSV file gives the same values to ``driftline replay`` and ``driftline produce`` (session 31, outside17).

A user measures the learning core with ``replay`` and then runs the pipeline on the same file with ``produce``:
a missing cell written ``NA`` or ``null`` and a boolean written ``true``/``False`` used to be read as missing and
boolean by replay but sent as the strings ``"NA"``/``"true"`` by produce, and a label ``NA`` was published as a
class of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.sources import csv_source, jsonl_source, parse_value
from driftline.errors import ConfigError
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


def test_a_digit_that_is_not_a_decimal_digit_is_text_not_an_error() -> None:
    # "²".isdigit() is True but int("²") raises: the cell parser crashed the whole file on one such cell.
    assert [parse_value(s) for s in ["²", "-²", "x²", "٣"]] == ["²", "-²", "x²", 3]


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


def test_replay_reads_a_known_class_quoted_the_other_way_as_the_trainer_does(tmp_path: Path) -> None:
    """Labels 0/1 in the first rows and "0"/"1" in the later ones (two producers that quote differently): the
    trainer learns ``"1"`` as the class ``1`` it knows (streams.watch.FeatureWatch.admit) and the pipeline ran the
    file, but replay refused it at the first quoted label. A label of the other kind that is no known class is
    still refused, naming the row."""
    path = tmp_path / "mixed.jsonl"
    rows = [{"id": f"e{i}", "a": i, "y": i % 2 if i < 4 else str(i % 2)} for i in range(8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [y for _, _, _, y in read_rows(path, "y")] == [0, 1, 0, 1, 0, 1, 0, 1]
    text_first = tmp_path / "text_first.jsonl"
    text_first.write_text('{"a": 1, "y": "1"}\n{"a": 2, "y": 1}\n', encoding="utf-8")
    assert [y for _, _, _, y in read_rows(text_first, "y")] == ["1", "1"]
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, {"a": 9, "y": "2"}]), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"row 9: label '2' is text, the labels before it are numbers"):
        list(read_rows(path, "y"))


def test_a_quoted_regression_target_replays_as_the_trainer_learns_it(tmp_path: Path) -> None:
    """The trainer learns a regression label ``"12.5"`` as 12.5 (streams.watch.FeatureWatch.admit); ``replay
    --task regression`` refused the same file at the first quoted number ("is text, the labels before it are
    numbers"). Text that is no number is still refused, naming the row."""
    path = tmp_path / "quoted.jsonl"
    rows = [{"a": i, "y": 2.5 * i if i % 2 else str(2.5 * i)} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [y for _, _, _, y in read_rows(path, "y", regression=True)] == [2.5 * i for i in range(6)]
    with pytest.raises(ConfigError, match=r"row 2: label 2.5 is a number, the labels before it are text"):
        list(read_rows(path, "y"))  # a classification's labels: each kind stays what it is
    path.write_text(path.read_text(encoding="utf-8") + '{"a": 9, "y": "abc"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"row 7: label 'abc' is text, the labels before it are numbers"):
        list(read_rows(path, "y", regression=True))


def test_a_non_finite_json_feature_is_missing_in_replay_as_produce_sends_it(tmp_path: Path) -> None:
    """JSON ``1e400`` (infinity), ``NaN`` and ``-Infinity`` as a feature: produce sends null, replay kept the float
    (the README says both read the same values)."""
    path = tmp_path / "inf.jsonl"
    path.write_text('{"id": "1", "x": 1e400, "n": NaN, "m": -Infinity, "k": 2.0, "y": 0}\n', encoding="utf-8")
    (_, _, features, _) = next(read_rows(path, "y"))
    (sent,) = list(jsonl_source(path, label_col="y"))
    assert features == {"x": None, "n": None, "m": None, "k": 2.0}
    assert features == sent.features


def test_replay_reads_feature_event_lines_as_produce_does(tmp_path: Path) -> None:
    """A JSONL file of FeatureEvent-shaped lines (``{id, ts, features, label}``, the contract's record): produce
    publishes its ``features``, but replay took ``features`` for one feature holding an object, which no learner
    reads, and replayed the file at chance (0.49) without a word."""
    path = tmp_path / "events.jsonl"
    lines = [
        {"id": f"e{i}", "ts": 1_700_000_000_000 + i, "features": {"a": i % 3, "b": "x"}, "label": i % 2}
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    replayed = [(rid, ts, x, y) for rid, ts, x, y in read_rows(path, "label")]
    produced = [(e.id, e.ts, e.features, e.label) for e in jsonl_source(path, label_col="label")]
    assert replayed == produced
    assert replayed[1] == ("e1", 1_700_000_000_001, {"a": 1, "b": "x"}, 1)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"a": {"b": 1}, "y": 1}', r"row 1: feature 'a' is a JSON object"),
        ('{"a": [1, 2], "y": 1}', r"row 1: feature 'a' is a JSON array"),
        ('{"a": 1, "a": 2, "y": 1}', r"row 1: duplicate key 'a'"),
    ],
)
def test_replay_refuses_what_produce_refuses_in_a_json_line(tmp_path: Path, line: str, message: str) -> None:
    """Nested values and repeated keys: produce refuses the file naming the line; replay dropped the value (no
    learner reads an object) or kept the last one, and ran."""
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        list(jsonl_source(path, label_col="y"))
    with pytest.raises(ConfigError, match=message):
        list(read_rows(path, "y"))


def test_replay_refuses_a_label_column_without_a_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every label cell empty or NA (the wrong column, or labels not joined in yet): replay printed accuracy 0.0
    over no labelled event, which reads as a model that is always wrong."""
    from streams.cli import main

    path = tmp_path / "nolabels.csv"
    path.write_text("a,y\n1,\n2,NA\n3,null\n", encoding="utf-8")
    assert main(["replay", "--file", str(path), "--label-col", "y", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no row has a label in 'y'" in captured.err, captured.err


@pytest.mark.parametrize("command", ["features", "labels"])
def test_produce_refuses_repeated_ids_when_it_publishes_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """A column named ``id`` that is a customer id (700 customers, 4,000 rows) is taken as the event id: produce
    published it without a word and the joiner, which joins a label to its prediction by id and drops duplicate
    labels, learned 151 of 4,000 labels (nothing dead-lettered); replay of the same file learned them all."""
    from streams.cli import main

    path = tmp_path / "customers.csv"
    path.write_text("id,a,y\nc0,1,0\nc1,2,1\nc0,3,1\n", encoding="utf-8")
    args = ["--bootstrap", "127.0.0.1:1", "produce", command, "--file", str(path), "--label-col", "y"]
    assert main([*args, "--with-labels"] if command == "features" else args) == 2
    err = capsys.readouterr().err
    assert "event id 'c0' repeats" in err and "--id-col" in err, err


def test_replay_notes_a_column_of_numbers_with_thousands_separators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``"106,557.2"`` is read as text, one category per value: on a messy file the income column that decided
    the label added nothing, and replay scored 0.80 where the same numbers without separators score 0.92, without
    a word. The reading stays (a comma is also a decimal mark); replay says what it read and what to do."""
    from streams.cli import main

    path = tmp_path / "income.csv"
    rows = [f'"{50_000 + 997 * i:,}.5",{i % 2}' for i in range(40)]
    path.write_text("income,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert main(["replay", "--file", str(path), "--label-col", "y", "--json", "--no-plain"]) == 0
    err = capsys.readouterr().err
    assert "'income'" in err and "thousands separators" in err and "'50,000.5'" in err, err


def test_replay_refuses_a_numeric_target_written_as_text(tmp_path: Path) -> None:
    """A JSONL price written as strings (``"51.23"``): replay took each value for a class of a classifier (1,500
    classes over 2,000 rows), printed accuracy 0.0 after five minutes and said nothing; the trainer dead-letters
    such labels past its class limit. Numbers as numbers are replayed as regression, as before."""
    from learners.replay import infer_task

    path = tmp_path / "price.jsonl"
    path.write_text("".join(json.dumps({"a": i, "price": f"{50 + i / 7:.2f}"}) + "\n" for i in range(200)))
    with pytest.raises(ConfigError, match=r"'price' are numbers written as text \('50.14'.*JSON numbers"):
        infer_task(read_rows(path, "price"), "classification", "price")
    path.write_text("".join(json.dumps({"a": i, "price": 50 + i / 7}) + "\n" for i in range(200)))
    assert infer_task(read_rows(path, "price"), "classification", "price")[0] == "regression"
    path.write_text("".join(json.dumps({"a": i, "y": str(i % 3)}) + "\n" for i in range(200)))
    assert infer_task(read_rows(path, "y"), "classification", "y")[0] == "classification"
