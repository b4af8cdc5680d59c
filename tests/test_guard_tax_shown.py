"""Users see the guard tax: ``driftline replay`` prints the plain learner next to the served model (``--json`` and
human output, and its report draws both), and the demo report draws the served accuracy next to a plain learner's
on the same events (issue 13)."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from driftline.config import LearnerSpec
from driftline.settings import load_settings
from learners.specs import build_learner
from learners.synthetic import synthetic_stream
from streams.cli import main
from streams.demo.baseline import plain_correct
from streams.demo.collect import RunData
from streams.demo.runner import DemoResult
from streams.demo.stream import demo_stream
from streams.reporting.demo import write_report

ARGV = ("--stream", "sea-abrupt", "--n", "2000", "--delay", "20", "--seed", "4")


def _plain_accuracy(spec: LearnerSpec, rows: list[Any], delay: int, seed: int) -> float:
    """Written out here rather than taken from learners.replay: predict, then learn each label ``delay`` late."""
    model = build_learner(spec, "classification", seed)
    pending: collections.deque[tuple[Any, Any]] = collections.deque()
    correct = 0
    for x, y in rows:
        correct += model.predict_one(x) == y
        pending.append((x, y))
        if len(pending) > delay:
            model.learn_one(*pending.popleft())
    return correct / len(rows)


def _orange_pixels(png: Path) -> int:
    """Pixels of the plain learner's line (#e67e22 on white, drawn slightly transparent)."""
    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int(((r > 200) & (g > 100) & (g < 170) & (b < 90)).sum())


def test_replay_json_has_plain_accuracy_and_guard_tax(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", *ARGV, "--plain", "logistic_regression", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("n", "accuracy", "alarms", "promotions", "rollbacks"):  # the contract's keys stay
        assert key in summary
    rows, _ = synthetic_stream("sea-abrupt", 2000, seed=4)
    expected = _plain_accuracy(LearnerSpec("logistic_regression"), [(x, y) for _, _, x, y in rows], 20, 4)
    assert summary["plain_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert summary["plain"]["learner"] == "logistic_regression"
    assert summary["guard_tax"] == pytest.approx(summary["plain_accuracy"] - summary["accuracy"])


def test_replay_plain_defaults_to_the_served_learner_and_can_be_skipped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["replay", *ARGV, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["plain"]["learner"] == summary["learner"]
    assert 0.5 < summary["plain_accuracy"] <= 1.0
    assert main(["replay", *ARGV, "--json", "--no-plain"]) == 0
    skipped = json.loads(capsys.readouterr().out)
    assert "guard_tax" not in skipped and "plain_accuracy" not in skipped
    assert skipped["accuracy"] == summary["accuracy"]  # the plain learner changes nothing served


def test_replay_human_output_shows_plain_and_tax(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", *ARGV, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert main(["replay", *ARGV]) == 0
    text = capsys.readouterr().out
    plain = re.search(r"^plain accuracy\s+([0-9.]+)", text, re.M)
    tax = re.search(r"^guard tax\s+([-+][0-9.]+) points", text, re.M)
    assert plain and tax, text
    assert float(plain.group(1)) == pytest.approx(summary["plain_accuracy"], abs=1e-4)
    assert float(tax.group(1)) == pytest.approx(100 * summary["guard_tax"], abs=0.01)


def test_replay_report_draws_the_plain_learner(tmp_path: Path) -> None:
    assert main(["replay", *ARGV, "--report", str(tmp_path / "with")]) == 0
    assert main(["replay", *ARGV, "--no-plain", "--report", str(tmp_path / "without")]) == 0
    assert _orange_pixels(tmp_path / "with" / "accuracy.png") > 500
    assert _orange_pixels(tmp_path / "without" / "accuracy.png") == 0
    assert "guard_tax" in (tmp_path / "with" / "report.html").read_text()


def _demo_run(tmp_path: Path, n: int, delay: int) -> tuple[DemoResult, RunData, list[Any]]:
    """A finished demo run's records as collect() returns them: labels joined in a shuffled order."""
    settings = load_settings(
        environ={}, overrides={"kafka.topic_prefix": "t-tax.", "state_dir": str(tmp_path)}
    )
    events, drifts = demo_stream(n, seed=2)
    events = list(events)
    data = RunData()
    t0 = 1_700_000_000_000
    for i, e in enumerate(events):
        # A served model that is right on 70 % of the events (every answer after the cold start).
        pred = None if i < 100 else (e.label if i % 10 < 7 else not e.label)
        data.predictions.append(
            {"id": e.id, "version": 1, "ts": t0 + i, "scored_at": t0 + i + 3, "prediction": pred}
        )
        data.training.append({"id": e.id, "label": e.label, "prediction": pred, "version": 1, "event_ts": t0 + i,
                              "label_ts": t0 + i + delay})  # fmt: skip
    data.training = data.training[::-1]  # the baseline lines up by id, not by position
    result = DemoResult(settings, tmp_path / "run", features_sent=n, labels_sent=n, produce_s=1.0,
                        drifts=drifts, label_delay=delay)  # fmt: skip
    return result, data, events


def test_demo_baseline_is_the_plain_learner_on_the_same_events(tmp_path: Path) -> None:
    result, data, events = _demo_run(tmp_path, 1500, 50)
    spec = LearnerSpec("logistic_regression")
    plain = plain_correct(iter(events), data.training, 50, spec, seed=2)
    # Independently: the learner over the events in produced order, scored per event, then lined up by id.
    model = build_learner(spec, "classification", 2)
    pending: collections.deque[tuple[Any, Any]] = collections.deque()
    right = {}
    for e in events:
        right[e.id] = model.predict_one(e.features) == e.label
        pending.append((e.features, e.label))
        if len(pending) > 50:
            model.learn_one(*pending.popleft())
    assert plain == [right[r["id"]] for r in data.training]

    path, summary = write_report(result, data, tmp_path / "report", plain, "logistic_regression")
    answered = [(r["prediction"] == r["label"], p) for r, p in zip(data.training, plain, strict=True)
                if r["prediction"] is not None]  # fmt: skip
    served = sum(s for s, _ in answered) / len(answered)
    base = sum(p for _, p in answered) / len(answered)
    assert summary["plain_learner"] == "logistic_regression"
    assert summary["plain_accuracy"] == pytest.approx(base, abs=1e-4)
    assert summary["served_accuracy_same_events"] == pytest.approx(served, abs=1e-4)
    assert summary["guard_tax"] == pytest.approx(base - served, abs=2e-4)
    assert "guard tax" in path.read_text()
    assert _orange_pixels(tmp_path / "report" / "accuracy.png") > 500


def test_demo_report_without_baseline_draws_no_plain_line(tmp_path: Path) -> None:
    result, data, _ = _demo_run(tmp_path, 900, 50)
    _, summary = write_report(result, data, tmp_path / "report")
    assert "guard_tax" not in summary
    assert _orange_pixels(tmp_path / "report" / "accuracy.png") == 0
