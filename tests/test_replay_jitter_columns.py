"""``driftline replay``: ``--delay-jitter`` draws each label's delay (labels out of order, from ``--seed``), and
``--id-col``/``--ts-col`` apply to ``--stream`` too (they were ignored there) (fixes33, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftline.config import DriftConfig, GuardConfig, LearnerSpec
from learners.lifecycle import ModelLifecycle
from learners.replay import replay
from learners.synthetic import synthetic_stream
from streams.cli import main
from streams.commands.replay import _produced_rows


def _lifecycle() -> ModelLifecycle:
    return ModelLifecycle(
        "m", "classification", LearnerSpec("logistic_regression"), None, DriftConfig(), GuardConfig()
    )


def _order(delay: int, jitter: int, seed: int) -> list[tuple[int, int]]:
    """(event index of the label, events scored when it was learned), in the order labels were learned."""
    lc = _lifecycle()
    seen: list[int] = []
    learned: list[tuple[int, int]] = []
    real = lc.learn_one

    def learn_one(x, y, **kw):  # type: ignore[no-untyped-def]
        learned.append((kw["index"], len(seen)))
        return real(x, y, **kw)

    lc.learn_one = learn_one  # type: ignore[method-assign]
    rows, _ = synthetic_stream("sea-abrupt", 400, seed=3)
    replay(
        rows,
        lc,
        delay=delay,
        delay_jitter=jitter,
        seed=seed,
        on_prediction=lambda r: seen.append(r["index"]),
    )
    return learned


def test_jittered_delays_are_drawn_in_range_out_of_order_and_repeatable() -> None:
    learned = _order(delay=5, jitter=3, seed=1)
    indices = [j for j, _ in learned]
    assert sorted(indices) == list(range(400))  # every label learned once
    assert indices != sorted(indices)  # out of order
    lags = {now - 1 - j for j, now in learned if now < 400}  # learned while the stream ran
    assert lags <= set(range(2, 9)) and len(lags) > 3  # drawn from [delay - J, delay + J]
    assert learned == _order(delay=5, jitter=3, seed=1)  # from the seed
    assert learned != _order(delay=5, jitter=3, seed=2)


def test_no_jitter_reveals_every_label_exactly_delay_events_late() -> None:
    learned = _order(delay=5, jitter=0, seed=1)
    assert [j for j, _ in learned] == list(range(400))
    assert {now - 1 - j for j, now in learned if now < 400} == {5}


def test_cli_delay_jitter_in_help_summary_and_refused_negative(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    assert "--delay-jitter" in capsys.readouterr().out
    argv = ["replay", "--stream", "sea", "--n", "300", "--delay", "4", "--no-plain", "--json"]
    assert main([*argv, "--delay-jitter", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["delay_jitter"] == 3 and summary["n"] == 300
    assert main([*argv, "--delay-jitter", "-1"]) != 0
    assert "--delay-jitter must be >= 0" in capsys.readouterr().err


def test_stream_id_and_ts_columns_are_taken_from_its_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    argv = ["replay", "--stream", "sea", "--n", "50", "--seed", "1", "--no-plain", "--json"]
    assert main([*argv, "--id-col", "0", "--ts-col", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    rows, _ = _produced_rows("sea", 50, 1)
    expected = [str(x["0"]) for _, _, x, _ in rows]
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == expected
    assert main([*argv, "--id-col", "nope"]) != 0
    assert "no feature 'nope' for --id-col" in capsys.readouterr().err
