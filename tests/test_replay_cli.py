"""``driftline replay``: determinism, --json keys, --out lines, files, reference sets and reports."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.lifecycle import ModelLifecycle
from learners.replay import read_rows, replay
from learners.synthetic import synthetic_stream
from streams.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["replay", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _lifecycle(seed: int) -> ModelLifecycle:
    return ModelLifecycle(
        "m",
        "classification",
        LearnerSpec("hoeffding_adaptive_tree"),
        None,
        DriftConfig(),
        GuardConfig(),
        release_every=100,
        seed=seed,
    )


def test_replay_is_deterministic_for_a_seed() -> None:
    outputs = []
    for _ in range(2):
        rows, _ = synthetic_stream("agrawal-abrupt", 3000, seed=7)
        seen: list[dict] = []
        result = replay(rows, _lifecycle(7), delay=5, on_prediction=seen.append)
        outputs.append((seen, result.summary()))
    assert outputs[0] == outputs[1]
    assert len(outputs[0][0]) == 3000


def test_cli_json_summary_keys_and_out_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "preds.jsonl"
    argv = ("--stream", "sea-abrupt", "--n", "1500", "--delay", "10", "--seed", "3", "--out", str(out))
    summary = _run(capsys, *argv)
    for key in ("n", "accuracy", "alarms", "promotions", "rollbacks"):
        assert key in summary
    assert summary["n"] == 1500 and 0.5 < summary["accuracy"] <= 1.0
    assert all(set(p) == {"index", "version", "reason"} for p in summary["promotions"] + summary["rollbacks"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 1500 and set(lines[0]) == {"index", "id", "prediction", "proba", "version"}
    assert [r["index"] for r in lines] == list(range(1500))
    versions = [r["version"] for r in lines]
    assert versions == sorted(versions)
    assert _run(capsys, *argv) == summary  # same seed, same summary


def _write_csv(path: Path, n: int, seed: int, flip: bool = False) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["event", "a", "b", "colour", "label"])
        for i in range(n):
            a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
            y = "up" if (a + b > 0) != flip else "down"
            w.writerow([f"e{i}", a, "" if i % 7 == 0 else b, rng.choice(["red", "blue"]), y])


def test_cli_over_a_csv_file_with_reference_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, ref = tmp_path / "events.csv", tmp_path / "ref.csv"
    _write_csv(data, 2000, 1)
    _write_csv(ref, 300, 2)
    report = tmp_path / "report"
    summary = _run(
        capsys,
        "--file",
        str(data),
        "--label-col",
        "label",
        "--id-col",
        "event",
        "--delay",
        "20",
        "--reference",
        str(ref),
        "--report",
        str(report),
        "--release-every",
        "100",
    )
    assert summary["n"] == 2000 and summary["accuracy"] > 0.85
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and (report / "accuracy.png").stat().st_size > 1000


def test_read_rows_jsonl_and_missing_label(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(
        '{"id": "x1", "ts": 5, "a": 1.5, "label": true}\n\n{"id": "x2", "a": null, "label": false}\n'
    )
    rows = list(read_rows(path, "label", "id"))
    assert rows == [("x1", 5, {"a": 1.5}, True), ("x2", None, {"a": None}, False)]
    from driftline.errors import ConfigError

    with pytest.raises(ConfigError, match="no label column 'nope'"):
        list(read_rows(path, "nope"))


def test_read_rows_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    # Found from outside (session 28): a spreadsheet's BOM made the first column '\ufefflabel', so
    # `--label-col label` said there was no such column.
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefflabel,x\n1,2.5\n".encode())
    assert list(read_rows(path, "label")) == [("0", None, {"x": 2.5}, 1)]


def test_read_rows_csv_refuses_extra_cells_and_duplicate_columns(tmp_path: Path) -> None:
    # Found from outside (session 28): a row with more cells than the header was a traceback (AttributeError),
    # and of two columns with one name the last silently replaced the first.
    from driftline.errors import ConfigError

    extra = tmp_path / "extra.csv"
    extra.write_text("a,y\n1,0\n2,1,EXTRA\n")
    with pytest.raises(ConfigError, match=r"extra\.csv: row 2 has 3 cells, the header 2 columns"):
        list(read_rows(extra, "y"))
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a,y\n1,5,0\n")
    with pytest.raises(ConfigError, match=r"dup\.csv: duplicate column name 'a'"):
        list(read_rows(dup, "y"))


def test_cli_human_output_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--stream", "hyperplane-gradual", "--n", "800", "--learner", "gaussian_nb"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "promotions" in text
    assert main(["replay", "--file", str(tmp_path / "missing.csv"), "--label-col", "y"]) == 2
    # An empty file or a header alone is an error that says so, not a summary of nothing.
    for name, text in (("empty.csv", ""), ("header.csv", "a,b,y\n"), ("blank.jsonl", "\n\n")):
        (tmp_path / name).write_text(text)
        capsys.readouterr()
        assert main(["replay", "--file", str(tmp_path / name), "--label-col", "y"]) == 2
        assert "no rows to replay" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("cut.jsonl", '{"x": 1, "y": 0}\n{"x": 2, "y": 1\n', "row 2 is not valid JSON"),
        ("array.jsonl", '{"x": 1, "y": 0}\n[1, 2]\n', "row 2 is not a JSON object"),
        (
            "mixed.csv",
            "x,y\n1,0\n2,zzz\n3,1\n",
            "row 2: label 'zzz' is text, the labels before it are numbers",
        ),
        ("mixed.jsonl", '{"x": 1, "y": "no"}\n{"x": 2, "y": 1}\n', "row 2: label 1 is a number, the labels"),
        ("list.jsonl", '{"x": 1, "y": [1]}\n{"x": 2, "y": 1}\n', "row 1: label [1] is not a number or text"),
    ],
)
def test_a_file_a_learner_cannot_take_is_refused_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, error: str
) -> None:
    """Exit 2 with the row, not a traceback: a label of the other kind (text among numbers) made River's sorted
    classes raise TypeError mid-replay; a cut JSON line or a list label raised from the reader."""
    (tmp_path / name).write_text(text)
    assert main(["replay", "--file", str(tmp_path / name), "--label-col", "y", "--no-plain"]) == 2
    assert error in capsys.readouterr().err


def test_replay_scores_a_plain_learner_on_the_same_events_and_reports_the_guard_tax() -> None:
    import collections

    from learners.specs import build_learner

    rows = list(synthetic_stream("sea-abrupt", 2000, seed=5)[0])
    result = replay(rows, _lifecycle(5), delay=20, plain=build_learner(LearnerSpec("logistic_regression")))
    summary = result.summary()
    # The same learner alone, learning every label 20 events late: the plain record must match it exactly.
    model, pending, outcomes = build_learner(LearnerSpec("logistic_regression")), collections.deque(), []
    for _, _, x, y in rows:
        outcomes.append(int(model.predict_one(x) == y))
        pending.append((x, y))
        if len(pending) > 20:
            model.learn_one(*pending.popleft())
    assert list(result.plain_outcomes) == outcomes
    assert summary["plain"] == {"learner": "logistic_regression", "accuracy": sum(outcomes) / 2000}
    assert summary["guard_tax"] == pytest.approx(summary["plain"]["accuracy"] - summary["accuracy"])
    assert "plain" not in replay(rows[:100], _lifecycle(5), delay=20).summary()


def test_a_file_with_a_continuous_target_is_replayed_as_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(3)
    path = tmp_path / "target.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "y"])
        for _ in range(400):
            a, b = rng.random(), rng.random()
            w.writerow([a, b, 3.0 * a - b + rng.gauss(0, 0.1)])
    assert main(["replay", "--file", str(path), "--label-col", "y", "--delay", "5", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["task"] == "regression" and summary["mae"] < 1.0
    assert "replaying as regression" in captured.err
    # Said explicitly, the task is not second-guessed: a classifier refuses a numeric target, with the fix.
    assert main(["replay", "--file", str(path), "--label-col", "y", "--task", "classification"]) != 0
    assert "set model.task to 'regression'" in capsys.readouterr().err
    # Integer class labels stay classification.
    rows = [("0", None, {"a": float(i % 7)}, i % 3) for i in range(300)]
    from learners.replay import infer_task

    task, again = infer_task(iter(rows), "classification")
    assert task == "classification" and list(again) == rows


def test_accuracy_and_mae_count_only_labelled_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event without a label (null, empty, NaN) is scored but cannot be right or wrong: it stays out of the
    accuracy's and the MAE's denominator (and a null prediction does not 'match' a null label), and a NaN label
    never makes the summary NaN (invalid JSON)."""
    rng = random.Random(5)
    rows = [(rng.uniform(-1, 1), rng.uniform(-1, 1)) for _ in range(400)]
    labelled = tmp_path / "all.jsonl"
    holes = tmp_path / "holes.jsonl"
    with labelled.open("w") as full, holes.open("w") as gaps:
        for i, (a, b) in enumerate(rows):
            y = int(a + b > 0)
            full.write(json.dumps({"id": f"e{i}", "a": a, "b": b, "y": y}) + "\n")
            if i % 4 != 0:  # every fourth event answered by nothing, then learned as nothing
                gaps.write(json.dumps({"id": f"e{i}", "a": a, "b": b, "y": y}) + "\n")
            else:
                gaps.write(json.dumps({"id": f"e{i}", "a": a, "b": b, "y": None}) + "\n")
    summary = _run(capsys, "--file", str(holes), "--label-col", "y", "--no-plain")
    assert summary["n"] == 400 and summary["n_learned"] == 300
    out = tmp_path / "p.jsonl"
    _run(capsys, "--file", str(holes), "--label-col", "y", "--no-plain", "--out", str(out))
    served = [json.loads(line)["prediction"] for line in out.read_text().splitlines()]
    truth = [json.loads(line)["y"] for line in holes.read_text().splitlines()]
    scored = [(p, y) for p, y in zip(served, truth, strict=True) if y is not None]
    assert summary["accuracy"] == pytest.approx(sum(p == y for p, y in scored) / len(scored))
    assert summary["accuracy"] > 0.75  # 300 labelled events of a linearly separable stream

    reg = tmp_path / "reg.jsonl"
    reg.write_text(
        "".join(
            f'{{"a": {a!r}, "t": {"NaN" if i == 51 else "null" if i % 5 == 0 else repr(2 * a + b)}}}\n'
            for i, (a, b) in enumerate(rows)
        )
    )
    out_reg = tmp_path / "r.jsonl"
    summary = _run(
        capsys, "--file", str(reg), "--label-col", "t", "--task", "regression", "--out", str(out_reg)
    )
    assert summary["n_learned"] == 400 - 80 - 1
    served = [json.loads(line)["prediction"] for line in out_reg.read_text().splitlines()]
    errors = [
        abs(p - (2 * a + b))
        for i, (p, (a, b)) in enumerate(zip(served, rows, strict=True))
        if i != 51 and i % 5 != 0 and p is not None
    ]
    assert summary["mae"] == pytest.approx(sum(errors) / len(errors))
    assert summary["plain_mae"] == summary["plain_mae"]  # not NaN


def test_bad_paths_counts_and_text_regression_targets_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of these was a traceback (exit 1), or a meaningless summary (text labels as regression: mae 0.0)."""
    data = tmp_path / "e.csv"
    _write_csv(data, 60, seed=1)
    a_file = tmp_path / "taken"
    a_file.write_text("")
    cases = [
        (["--file", str(data), "--label-col", "label", "--out", str(tmp_path)], "--out"),
        (["--file", str(data), "--label-col", "label", "--report", str(a_file)], "--report"),
        (["--stream", "sea-drift", "--n", "-5"], "--n"),
        (["--file", str(data), "--label-col", "label", "--limit", "-1"], "--limit"),
        (["--file", str(data), "--label-col", "label", "--task", "regression"], "not a number"),
    ]
    for argv, needle in cases:
        assert main(["replay", *argv, "--no-plain", "--json"]) == 2, argv
        captured = capsys.readouterr()
        assert needle in captured.err and "Traceback" not in captured.err, (argv, captured.err)
        assert captured.out == "", argv


def test_replay_over_a_river_data_set(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 3: replay runs over River's built-in data sets as well as its synthetic streams (`produce` already
    took `river:<DataSet>`; replay's --stream refused it)."""
    summary = _run(capsys, "--stream", "river:Phishing", "--n", "400", "--delay", "5", "--no-plain")
    assert summary["n"] == 400 and summary["task"] == "classification" and summary["accuracy"] > 0.6
    summary = _run(capsys, "--stream", "river:TrumpApproval", "--n", "300", "--no-plain")
    assert summary["task"] == "regression" and summary["n"] == 300  # a continuous target, as from a file
    assert main(["replay", "--stream", "river:Nope", "--json"]) == 2
    assert "unknown River data set" in capsys.readouterr().err


def test_an_id_column_that_is_not_there_is_refused(tmp_path: Path) -> None:
    """--id-col naming no column fell back to the row number silently (and the file's own id column was then
    learned as a feature); naming the label column did the same."""
    from driftline.errors import ConfigError

    path = tmp_path / "e.csv"
    _write_csv(path, 5, seed=2)
    assert [r[0] for r in read_rows(path, "label", "event")] == [f"e{i}" for i in range(5)]
    with pytest.raises(ConfigError, match="no id column 'nope'"):
        list(read_rows(path, "label", "nope"))
    with pytest.raises(ConfigError, match="the label column"):
        list(read_rows(path, "label", "label"))


def test_a_regression_replay_report_draws_the_rolling_mae(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report's plot was empty for regression (right/wrong outcomes exist only for classification)."""
    import numpy as np
    from PIL import Image

    rng = random.Random(4)
    data = tmp_path / "reg.csv"
    data.write_text(
        "a,t\n" + "".join(f"{a},{2 * a + rng.gauss(0, 0.1)}\n" for a in (rng.random() for _ in range(600)))
    )
    report = tmp_path / "report"
    summary = _run(capsys, "--file", str(data), "--label-col", "t", "--report", str(report), "--no-plain")
    assert summary["task"] == "regression"
    pixels = np.asarray(Image.open(report / "accuracy.png").convert("RGB"))
    served_line = int((pixels == (0x1F, 0x4E, 0x79)).all(axis=-1).sum())  # COLORS["accuracy"]
    assert served_line > 500  # the curve itself, not only its legend entry
    assert "MAE" in (report / "report.html").read_text()


def test_every_stream_produce_publishes_replays_as_the_same_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`driftline replay --stream` knew other names than `driftline produce synthetic` (`sea`, `sine-drift` were
    refused; its `sea-drift` was another stream): a user could not replay offline what they had streamed. Now
    every produce name is accepted, with produce's defaults (--events 10000 -> --n, --seed 42), and replays the
    events produce publishes: here the same as replaying a file of them."""
    from connectors.sources import SYNTHETIC_NAMES, open_source

    for name in SYNTHETIC_NAMES:
        assert main(["replay", "--stream", name, "--n", "50", "--no-plain", "--json"]) == 0, name
        assert json.loads(capsys.readouterr().out)["n"] == 50
    path = tmp_path / "produced.csv"
    # What `driftline produce synthetic --stream sine-drift --events 800` publishes:
    events = list(open_source("sine-drift", n=800, seed=42))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", *events[0].features, "label"])
        for e in events:
            w.writerow([e.id, *e.features.values(), e.label])
    common = ("--delay", "20", "--no-plain", "--seed", "42")
    streamed = _run(capsys, "--stream", "sine-drift", "--n", "800", *common)
    from_file = _run(capsys, "--file", str(path), "--label-col", "label", *common)
    assert streamed["drift_points"] == [400]
    for key in ("n", "accuracy", "alarms", "promotions"):
        assert streamed[key] == from_file[key], key


def test_a_replay_with_no_labelled_event_has_no_accuracy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--limit 0` reported accuracy 0.0 for nothing scored (audit34, found; fixed by the lead): null in --json, n/a
    in the text, and the report is still written."""
    assert main(["replay", "--stream", "sea-abrupt", "--limit", "0", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 0 and summary["accuracy"] is None and "guard_tax" not in summary
    assert main(["replay", "--stream", "sea-abrupt", "--limit", "0", "--report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy      n/a (no event was labelled)" in out and (tmp_path / "report.html").exists()


def test_a_file_named_neither_csv_nor_jsonl_replays_as_what_it_starts_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Session 42: `replay --file data` was refused ("expected a .csv or .jsonl file") while `produce` read the
    same file; it replays as the same file with its suffix does, and a directory is refused naming it."""
    rng = random.Random(5)
    rows = [(rng.random(), rng.random()) for _ in range(300)]
    (tmp_path / "a.csv").write_text("a,b,y\n" + "".join(f"{a},{b},{int(a + b > 1)}\n" for a, b in rows))
    lines = "".join(json.dumps({"a": a, "b": b, "y": int(a > b)}) + "\n" for a, b in rows)
    (tmp_path / "a.jsonl").write_text(lines)
    (tmp_path / "data").write_bytes((tmp_path / "a.csv").read_bytes())
    (tmp_path / "events.txt").write_text("\n" + lines)
    for plain, named in (("data", "a.csv"), ("events.txt", "a.jsonl")):
        got = _run(capsys, "--file", str(tmp_path / plain), "--label-col", "y")
        want = _run(capsys, "--file", str(tmp_path / named), "--label-col", "y")
        assert got["n"] == 300 and got == want, plain
    assert main(["replay", "--file", str(tmp_path), "--label-col", "y"]) == 2
    assert "not a file; expected a CSV or JSON-lines file" in capsys.readouterr().err


def test_a_regression_label_too_large_to_square_is_not_learned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Session 42: one target of 1e200 (finite) in a regression file ended replay in River's OverflowError
    traceback. It is not learned, as the trainer dead-letters it (streams.watch), and the replay goes on."""
    rng = random.Random(0)
    path = tmp_path / "r.csv"
    rows = ["a,b,y"]
    for i in range(600):
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        rows.append(f"{a},{b},{1e200 if i == 300 else 3 * a + b}")
    path.write_text("\n".join(rows) + "\n")
    summary = _run(capsys, "--file", str(path), "--label-col", "y", "--task", "regression", "--no-plain")
    assert summary["n"] == 600 and summary["mae"] < 1.0


@pytest.mark.parametrize("learner", ["linear_regression", "hoeffding_tree"])
def test_three_absurd_labels_never_reach_what_is_served(
    learner: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Session 43, from outside: three labels of 1e99 (under the label cap) among events of y = 3a - 2b + noise
    were learned, the poisoned models passed the guard and were served: MAE on the clean labels 0.08 -> 1.5e9
    (linear regression) and 0.29 -> 2e95 (Hoeffding tree) for the 900 events after the first one."""
    rng = random.Random(3)
    path = tmp_path / "poisoned.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["a", "b", "c", "y"])
        for i in range(2500):
            a, b, c = rng.random(), rng.random(), rng.random()
            out.writerow([a, b, c, 1e99 if i in (600, 900, 1200) else 3 * a - 2 * b + rng.gauss(0, 0.1)])
    preds = tmp_path / "out.jsonl"
    _run(capsys, "--file", str(path), "--label-col", "y", "--delay", "20", "--task", "regression",
         "--learner", learner, "--no-plain", "--out", str(preds))  # fmt: skip
    labels = [float(r["y"]) for r in csv.DictReader(path.open())]
    served = [json.loads(line) for line in preds.read_text().splitlines()]
    errors = [
        abs(float(p["prediction"]) - labels[p["index"]]) for p in served[600:] if labels[p["index"]] < 1e90
    ]
    before = [abs(float(p["prediction"]) - labels[p["index"]]) for p in served[300:600]]
    assert max(errors) < 20 * max(before), f"served answers {max(errors):.3g} off after the poison"


def test_a_new_class_past_the_class_bound_is_not_learned_as_the_trainer_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replay learns what the trainer learns: the trainer dead-letters a label of a new class past
    ``MAX_MODEL_CLASSES`` (streams.watch), so replay leaves it unlearned and counts it (session 44: a burst of
    1,000 one-off labels replayed as learned, and froze a tree's releases, where the trainer refused most)."""
    from learners.specs import MAX_MODEL_CLASSES

    rng = random.Random(5)
    path = tmp_path / "burst.jsonl"
    with path.open("w") as f:
        for i in range(600):
            a, b = rng.random(), rng.random()
            y = f"id-{i}" if 100 <= i < 400 else ("yes" if a + b > 1 else "no")
            f.write(json.dumps({"id": f"e{i}", "a": a, "b": b, "y": y}) + "\n")
    out = _run(capsys, "--file", str(path), "--label-col", "y", "--delay", "5", "--no-plain")
    refused = 300 - (MAX_MODEL_CLASSES - 2)
    assert out["refused_labels"] == refused
    assert out["n_learned"] == 600 - refused


def _inline_config(tmp_path: Path, limit: int) -> str:
    path = tmp_path / "inline.yaml"
    path.write_text(
        f"model:\n  max_inline_bytes: {limit}\n  artifact_store: ''\n  learner: {{name: hoeffding_tree}}\n"
    )
    return str(path)


def test_replay_withholds_a_release_no_record_could_carry_as_the_trainer_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replay published every release while the live trainer withheld those over ``model.max_inline_bytes`` with no
    artifact store (or outside the loader's allow-list): it showed users a model the scorers would never serve.
    (``YOUNG_MARGIN`` off: at 0.05 this stream's releases come at other labels and none is withheld; session
    46.)"""
    monkeypatch.setattr("learners.policies.YOUNG_MARGIN", 0.0)
    argv = ["--stream", "sea-abrupt", "--n", "5000", "--no-plain"]
    free = _run(capsys, *argv)
    assert "withheld" not in free
    config = _inline_config(tmp_path, 2500)
    assert main(["--config", config, "replay", *argv, "--json"]) == 0
    limited = json.loads(capsys.readouterr().out)
    assert limited["withheld"] >= 1, limited
    assert limited["withheld_first"]["problem"] == "too_large"
    assert "model.max_inline_bytes=2500" in limited["withheld_first"]["message"]
    assert limited["final_version"] < free["final_version"]
    assert main(["--config", config, "replay", *argv]) == 0
    assert "releases, as the trainer would (first at event" in capsys.readouterr().out


def test_replay_refuses_a_config_a_worker_refuses_at_start_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A limit under the untrained learner's artifact: `config validate` and a worker refuse it; replay ran it and
    reported accuracy 0.0 from a stream of withheld releases."""
    code = main(
        ["--config", _inline_config(tmp_path, 1000), "replay", "--stream", "sea-abrupt", "--n", "100"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "model.max_inline_bytes: 1000 bytes cannot carry even the untrained model.learner's artifact" in err
    )
