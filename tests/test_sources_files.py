"""Real-world CSV/JSONL files through the sources of ``driftline produce`` (found from outside, session 28).

What cannot be sent faithfully is refused with the file, line and column named, never mangled or dropped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from connectors.publish import publish
from connectors.sources import MAX_CELL_CHARS, Event, csv_source, jsonl_source, open_source
from driftline.errors import ConfigError
from learners.replay import read_rows


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


# -- CSV structure ---------------------------------------------------------------------------------------------


def test_csv_with_a_byte_order_mark_names_its_first_column_plainly(tmp_path: Path) -> None:
    path = _write(tmp_path, "bom.csv", "\ufeffeid,x,y\nk1,1.5,a\n")
    assert list(csv_source(path, label_col="y", id_col="eid")) == [Event("k1", None, {"x": 1.5}, "a")]


def test_csv_duplicate_header_names_are_refused_naming_them(tmp_path: Path) -> None:
    path = _write(tmp_path, "dup.csv", "id,x,x,y\nc1,1,2,a\n")
    with pytest.raises(ConfigError, match=r"line 1: duplicate column name 'x'"):
        list(csv_source(path, label_col="y"))


def test_csv_row_with_more_cells_than_the_header_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "extra.csv", 'x,note,y\n1,"a, b",p\n2,"two\nlines",q\n3,z,r,EXTRA\n')
    events = csv_source(path, label_col="y")
    # Quoted commas and newlines inside cells are one cell each.
    assert next(events) == Event("0", None, {"x": 1, "note": "a, b"}, "p")
    assert next(events) == Event("1", None, {"x": 2, "note": "two\nlines"}, "q")
    # Line 5 (the newline inside a quoted cell counts as a line), 4 cells under a 3-column header.
    with pytest.raises(ConfigError, match=r"line 5: 4 cells, the header has 3 columns"):
        next(events)


def test_csv_short_rows_give_missing_values(tmp_path: Path) -> None:
    path = _write(tmp_path, "short.csv", "x,z,y\n1\n")
    assert list(csv_source(path)) == [Event("0", None, {"x": 1, "z": None, "y": None}, None)]


def test_csv_long_cell_is_read_and_a_broken_file_names_its_line(tmp_path: Path) -> None:
    long_text = "v" * 200_000
    path = _write(tmp_path, "long.csv", f"x,y\n{long_text},a\n")
    assert list(csv_source(path, label_col="y")) == [Event("0", None, {"x": long_text}, "a")]
    too_long = "v" * (MAX_CELL_CHARS + 1)
    broken = _write(tmp_path, "huge.csv", f"x,y\n1,a\n{too_long},b\n")
    with pytest.raises(ConfigError, match=r"huge\.csv line 3: not valid CSV: field larger than field limit"):
        list(csv_source(broken, label_col="y"))


def test_csv_header_only_file_has_no_events(tmp_path: Path) -> None:
    assert list(csv_source(_write(tmp_path, "h.csv", "id,x,y\n"), label_col="y", id_col="id")) == []


# -- ids: the cell's text, never a number's rendering ----------------------------------------------------------


def test_csv_ids_are_the_cells_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "ids.csv", "id,x\n007,1\n1e3,2\nnan,3\n 12 ,4\n")
    assert [e.id for e in csv_source(path, id_col="id")] == ["007", "1e3", "nan", "12"]


def test_csv_empty_id_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "ids.csv", "id,x\na,1\n,2\n")
    with pytest.raises(ConfigError, match=r"line 3: id column 'id' is empty"):
        list(csv_source(path, id_col="id"))


@pytest.mark.parametrize("value", [None, "", {"a": 1}, [1], True])
def test_jsonl_id_must_be_a_non_empty_string_or_number(tmp_path: Path, value: object) -> None:
    path = _write(tmp_path, "ids.jsonl", json.dumps({"id": value, "features": {"x": 1}}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: id"):
        list(jsonl_source(path))
    flat = _write(tmp_path, "flat.jsonl", json.dumps({"eid": value, "x": 1}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: id"):
        list(jsonl_source(flat, id_col="eid"))


def test_jsonl_numeric_ids_are_their_json_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "ids.jsonl", '{"id": 7, "features": {"x": 1}}\n{"id": 2.5, "features": {}}\n')
    assert [e.id for e in jsonl_source(path)] == ["7", "2.5"]


# -- values the contract cannot carry --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2]])
def test_jsonl_nested_feature_values_are_refused_naming_line_and_feature(
    tmp_path: Path, value: object
) -> None:
    shaped = _write(
        tmp_path, "n.jsonl", "\n" + json.dumps({"id": "f1", "features": {"x": 1, "n": value}}) + "\n"
    )
    with pytest.raises(ConfigError, match=r"line 2: feature 'n'.*null, boolean, number or string"):
        list(jsonl_source(shaped))
    flat = _write(tmp_path, "flat.jsonl", json.dumps({"x": 1, "n": value}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: feature 'n'"):
        list(jsonl_source(flat))


def test_jsonl_nested_label_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "l.jsonl", json.dumps({"x": 1, "y": {"a": 1}}) + "\n")
    with pytest.raises(ConfigError, match=r"line 1: label column 'y'"):
        list(jsonl_source(path, label_col="y"))


def test_csv_numbers_with_underscores_stay_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.csv", "x,z\n1_000,1e3\n")
    assert list(csv_source(path)) == [Event("0", None, {"x": "1_000", "z": 1000.0}, None)]


def test_open_source_refuses_a_negative_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "x\n1\n")
    with pytest.raises(ConfigError, match=r"--limit: must be at least 0, got -1"):
        open_source(str(path), n=-1)


# -- publish: options that used to be ignored ------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.keys: list[str | None] = []

    def send_feature(
        self, id: str, features: dict, ts: int | None = None, key: str | None = None, model: str | None = None
    ) -> None:
        self.keys.append(key)

    def poll(self, timeout: float = 0) -> None:
        pass

    def flush(self, timeout: float = 30) -> None:
        pass


def test_publish_refuses_a_key_column_the_event_lacks() -> None:
    sink = _Sink()
    events = [Event("a", None, {"user": "u1", "x": 1}, None), Event("b", None, {"x": 2}, None)]
    with pytest.raises(ConfigError, match=r"--key-col: no column 'user' in event b \(columns: x\)"):
        publish(sink, events, key_col="user")  # type: ignore[arg-type]
    assert sink.keys == ["u1"]


@pytest.mark.parametrize("rate", [0.0, -1.0, float("nan")])
def test_publish_refuses_a_rate_that_is_not_positive(rate: float) -> None:
    with pytest.raises(ConfigError, match=r"--rate: must be positive"):
        publish(_Sink(), [], rate=rate)  # type: ignore[arg-type]


def test_jsonl_feature_events_keep_their_key_and_model() -> None:
    """A FeatureEvent-shaped line's ``key`` (the entity, the Kafka key) and ``model`` (the model that answers)
    were dropped: the event went out keyed by its id and routed to the default model."""
    import tempfile

    line = {"id": "e1", "ts": 5, "key": "u1", "model": "m2", "features": {"x": 1.5}, "label": True}
    with tempfile.TemporaryDirectory() as folder:
        path = _write(
            Path(folder), "fe.jsonl", json.dumps(line) + "\n" + json.dumps({"id": "e2", "features": {}})
        )
        events = list(jsonl_source(path))
    assert events[0] == Event("e1", 5, {"x": 1.5}, True, key="u1", model="m2")
    assert (events[1].key, events[1].model) == (None, None)

    class _Keys(_Sink):
        def send_feature(
            self,
            id: str,
            features: dict,
            ts: int | None = None,
            key: str | None = None,
            model: str | None = None,
        ) -> None:
            self.keys.append(f"{key}/{model}")

    sink = _Keys()
    publish(sink, events)  # type: ignore[arg-type]
    assert sink.keys == ["u1/m2", "None/None"]


def test_publish_counts_the_rows_it_sent_no_label_for() -> None:
    """An empty, NaN or inf label cell sends no Label; the summary says how many (it was silent)."""

    class _Labels(_Sink):
        def send_label(self, id: str, label: object, ts: int | None = None) -> None:
            self.keys.append(f"label:{id}")

    events = [Event("a", None, {}, 1), Event("b", None, {}, None), Event("c", None, {}, 0)]
    summary = publish(_Labels(), events, labels=True)  # type: ignore[arg-type]
    assert (summary.features, summary.labels, summary.unlabelled) == (3, 2, 1)
    assert "1 row(s) without a label" in summary.line()
    assert summary.as_dict()["unlabelled"] == 1
    assert "without a label" not in publish(_Labels(), events[:1], labels=True).line()  # type: ignore[arg-type]


def test_jsonl_duplicate_keys_are_refused_naming_the_line(tmp_path: Path) -> None:
    """Python's json keeps the last of two equal keys; the input topics refuse such objects (parsers disagree on
    which value wins), so the producer does too instead of sending one of them."""
    path = _write(tmp_path, "dup.jsonl", '{"x": 1}\n{"id": "a", "features": {"x": 1, "x": 2}}\n')
    with pytest.raises(ConfigError, match=r"line 2: duplicate key 'x'"):
        list(jsonl_source(path))


@pytest.mark.parametrize("encoding", ["avro", "json"])
def test_produce_refuses_a_record_the_wire_format_refuses_before_sending_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], encoding: str
) -> None:
    """A 2 MB cell passed the file checks and failed at send time (exit 1, no row named, the rows before it sent).
    Checked with the rest of the file, before the broker is even asked (127.0.0.1:1 answers nothing)."""
    from streams.cli import main

    path = _write(
        tmp_path, "big.jsonl", '{"id": "ok", "x": 1}\n' + json.dumps({"id": "big", "t": "x" * 2_000_000})
    )
    args = ["--bootstrap", "127.0.0.1:1", "produce", "features", "--file", str(path), "--id-col", "id"]
    assert main([*args, "--encoding", encoding]) == 2
    err = capsys.readouterr().err
    assert "event big cannot be sent" in err and "exceeds the limit of 1048576 bytes" in err


def test_a_long_id_is_named_by_its_start_and_size_in_produce_s_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id over the codec's limit is refused before sending (exit 2); the error printed the whole id (a 900 KB
    id printed 900 KB), now its first 60 characters and its length."""
    from schemas.codec import MAX_ID_BYTES
    from streams.cli import main

    long_id = "q" * (MAX_ID_BYTES + 76)
    path = _write(tmp_path, "long.jsonl", json.dumps({"id": long_id, "x": 1}))
    args = ["--bootstrap", "127.0.0.1:1", "produce", "features", "--file", str(path), "--id-col", "id"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert long_id not in err and f"event {'q' * 60}... ({len(long_id):,} characters) cannot be sent" in err
    assert f"over the limit of {MAX_ID_BYTES} bytes" in err


def test_synthetic_drift_options_that_would_be_ignored_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--position -5`` drifted before the first event (the whole stream the second concept), and ``--position``
    or ``--width`` on a stream without ``-drift`` did nothing; both were accepted silently."""
    from streams.cli import main

    with pytest.raises(ConfigError, match=r"position: must be at least 0, got -5"):
        open_source("sea-drift", n=3, position=-5)
    for extra in (["--position", "100"], ["--width", "50"]):
        args = [
            "--bootstrap",
            "127.0.0.1:1",
            "produce",
            "synthetic",
            "--stream",
            "sea",
            "--events",
            "3",
            *extra,
        ]
        assert main(args) == 2
        assert "only for a *-drift stream" in capsys.readouterr().err


def test_flat_jsonl_lines_use_their_id_field_as_the_event_id(tmp_path: Path) -> None:
    """A labels file of ``{"id": "e17", "label": true}`` lines (the README's Label) sent its labels with ids
    "0", "1", ... (the line index) unless --id-col id was given, answering other events than the ones named."""
    path = _write(
        tmp_path, "labels.jsonl", '{"id": "e17", "label": true}\n{"id": 5, "label": false}\n{"label": 1}\n'
    )
    assert [(e.id, e.label, e.features) for e in jsonl_source(path, label_col="label")] == [
        ("e17", True, {}),
        ("5", False, {}),
        ("2", 1, {}),
    ]
    other = _write(tmp_path, "other.jsonl", '{"eid": "a", "id": "ignored-as-id", "x": 1}\n')
    (event,) = jsonl_source(other, id_col="eid")
    assert (event.id, event.features) == ("a", {"id": "ignored-as-id", "x": 1})


def test_a_column_named_id_is_the_events_id_by_default(tmp_path: Path) -> None:
    # Found from outside (session 28): without --id-col the id column was learned as a feature (a new one-hot
    # weight per event for a linear model) and the events were numbered by row, so labels sent from another file
    # answered rows, not ids. Now it is the id, as a JSONL line's `id` field already was; --id-col still chooses.
    path = _write(tmp_path, "ids.csv", "id,x,y\nu7,1.5,a\n007,2.5,b\n")
    events = list(csv_source(path, label_col="y"))
    assert [e.id for e in events] == ["u7", "007"] and events[0].features == {"x": 1.5}
    assert [e.id for e in csv_source(path, label_col="y", id_col="x")] == ["1.5", "2.5"]
    assert [e.id for e in csv_source(path, label_col="id")] == ["0", "1"]  # the label is not the id
    rows = list(read_rows(path, "y"))
    assert [(r[0], r[2]) for r in rows] == [("u7", {"x": 1.5}), ("7", {"x": 2.5})]


def test_an_id_column_that_is_the_label_column_is_refused(tmp_path: Path) -> None:
    """`produce`/`demo --id-col y --label-col y` gave every event its label as id: two ids for a whole file."""
    path = tmp_path / "e.csv"
    path.write_text("x,y\n0.1,0\n0.2,1\n0.3,0\n")
    with pytest.raises(ConfigError, match="label column"):
        list(open_source(str(path), label_col="y", id_col="y"))


@pytest.mark.parametrize("name", ["junk.csv", "junk.jsonl"])
def test_a_file_that_is_not_utf8_text_is_refused_naming_file_and_line(tmp_path: Path, name: str) -> None:
    """outside10: binary junk (or a Latin-1 export) ended ``produce`` in a UnicodeDecodeError traceback."""
    path = tmp_path / name
    good = b"x,y\n1,a\n" if name.endswith(".csv") else b'{"x": 1, "y": "a"}\n{"x": 2, "y": "b"}\n'
    path.write_bytes(good + bytes([0x88, 0xFF, 0x00, 0xC3]) + b",b\n" + b"2,b\n" * 5000)
    with pytest.raises(ConfigError, match=rf"{name} line 3: not UTF-8 text \(byte 0x88 at column 1\)"):
        list(open_source(str(path), label_col="y"))


@pytest.mark.parametrize(
    ("kind", "name", "text"),
    [("features", "e.csv", ""), ("labels", "h.csv", "id,x,y\n"), ("features", "b.jsonl", "\n\n")],
)
def test_produce_of_a_file_without_events_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, name: str, text: str
) -> None:
    """outside10: an empty or header-only file printed ``sent 0 records`` and exited 0, as if it had worked
    (``--label-col`` not even checked). Refused before the broker is asked (127.0.0.1:1 answers nothing)."""
    from streams.cli import main

    path = _write(tmp_path, name, text)
    args = ["--bootstrap", "127.0.0.1:1", "produce", kind, "--file", str(path), "--label-col", "y"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{path}: no events" in err and "Traceback" not in err, err


def test_produce_refuses_a_record_the_kafka_client_refuses_before_sending_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """outside10: a ~1,040,000-byte record is under ``serving.max_record_bytes`` (1 MiB), so it passed the file
    check, then the Kafka client refused it (librdkafka's ``message.max.bytes``, 1,000,000) after the rows before
    it were sent: exit 1, no row named, the file half on the topic. Refused up front (127.0.0.1:1 answers nothing).
    """
    from connectors.producer import CLIENT_MESSAGE_MAX_BYTES
    from streams.cli import main

    path = _write(
        tmp_path,
        "near.jsonl",
        '{"id": "ok", "x": 1}\n'
        + json.dumps({"id": "near", "t": "x" * (CLIENT_MESSAGE_MAX_BYTES + 100)})
        + "\n",
    )
    assert CLIENT_MESSAGE_MAX_BYTES + 100 < 1 << 20  # under the codec's limit: only the client's refuses it
    args = ["--bootstrap", "127.0.0.1:1", "produce", "features", "--file", str(path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        "event near cannot be sent" in err and f"message.max.bytes ({CLIENT_MESSAGE_MAX_BYTES:,})" in err
    ), err


@pytest.mark.parametrize(("delimiter", "shown"), [(";", "';'"), ("\t", "'\\\\t'"), ("|", "'\\|'")])
def test_csv_with_another_delimiter_is_refused_naming_it(tmp_path: Path, delimiter: str, shown: str) -> None:
    """outside10: a semicolon- or tab-separated file was read as one column (``{"a;b;class": "1;2;0"}``) and
    published without a word, unless a --label-col happened to be given."""
    path = _write(
        tmp_path, "semi.csv", delimiter.join(["a", "b", "class"]) + "\n" + delimiter.join("120") + "\n"
    )
    with pytest.raises(ConfigError, match=rf"semi\.csv line 1: .*separated by {shown}"):
        list(csv_source(path))


def test_csv_with_one_column_is_still_read(tmp_path: Path) -> None:
    assert list(csv_source(_write(tmp_path, "one.csv", "x\n1\n"))) == [Event("0", None, {"x": 1}, None)]


def test_produce_sizes_a_record_with_the_time_it_will_be_stamped_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """review30: the up-front size check encoded a row without a ts as ts 0, while the producer stamps the time now
    (a 6-byte varint, not 1): a record a few bytes under the limit as checked went over it when sent."""
    from connectors.producer import CLIENT_MESSAGE_MAX_BYTES
    from schemas.codec import default_codec
    from streams.cli import main

    def size(text: str, ts: int) -> int:
        value = {"id": "near", "ts": ts, "key": None, "model": None, "features": {"t": text}}
        return len(default_codec().encode("FeatureEvent", value)) + len(b"near")

    text = "x" * (CLIENT_MESSAGE_MAX_BYTES - 100)
    text += "x" * (CLIENT_MESSAGE_MAX_BYTES - size(text, 0))  # exactly at the limit with ts 0
    assert size(text, 0) == CLIENT_MESSAGE_MAX_BYTES < size(text, int(time.time() * 1000))
    path = _write(tmp_path, "edge.jsonl", json.dumps({"id": "near", "t": text}) + "\n")
    assert main(["--bootstrap", "127.0.0.1:1", "produce", "features", "--file", str(path)]) == 2
    assert "event near cannot be sent" in capsys.readouterr().err
