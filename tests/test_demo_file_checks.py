"""``driftline demo --file``: what is wrong with the file is said before anything starts (no broker needed)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import streams.demo.runner
from streams.cli import main


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing may start: no stack (an unused bootstrap and state dir besides), no DemoRun."""
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("DRIFTLINE_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DRIFTLINE_CONFIG", raising=False)
    monkeypatch.delenv("DRIFTLINE__MODEL__TASK", raising=False)

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("the demo started with a file it cannot learn")

    monkeypatch.setattr(streams.demo.runner, "DemoRun", refuse)


def test_a_continuous_target_is_refused_before_anything_starts(
    no_run: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A classifier given a continuous target dead-lettered every example (1,448 of 1,500) and the demo still
    said 'completed', accuracy 0.000, exit 0. Replay infers regression; the demo, whose report is about accuracy,
    says what to do instead."""
    rng = random.Random(2)
    path = tmp_path / "reg.csv"
    path.write_text("x,target\n" + "".join(f"{x:.4f},{3 * x + rng.gauss(0, 0.1):.4f}\n" for x in
                                           (rng.random() for _ in range(300))))  # fmt: skip
    assert main(["demo", "--file", str(path), "--label-col", "target", "--no-live", "--no-console"]) == 2
    err = capsys.readouterr().err
    assert "continuous" in err and "model.task" in err and "Traceback" not in err


def test_a_missing_label_column_is_refused_before_anything_starts(
    no_run: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bin.csv"
    path.write_text("x,y\n0.1,0\n0.9,1\n")
    assert main(["demo", "--file", str(path), "--label-col", "label", "--no-live", "--no-console"]) == 2
    assert "no label column 'label'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["", "x,y\n"])
def test_a_file_without_rows_is_refused_before_anything_starts(
    no_run: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """It started the stack and three workers, streamed nothing, and said 'completed' with exit 0."""
    path = tmp_path / "none.csv"
    path.write_text(text)
    assert main(["demo", "--file", str(path), "--label-col", "y", "--no-live", "--no-console"]) == 2
    assert "no rows" in capsys.readouterr().err


def test_models_spreads_a_files_events_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--file F --models 2` routed every event to the default model (only the built-in stream got a tenant):
    the run's two models stayed at v1 with nothing learned."""
    from driftline.settings import load_settings
    from streams.demo.runner import DemoOptions, DemoRun

    path = tmp_path / "bin.csv"
    path.write_text("x,y\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(10)))
    base = load_settings(environ={}, overrides={"state_dir": str(tmp_path / "state")})
    run = DemoRun(base, DemoOptions(events=10, file=str(path), label_col="y", models=2))
    tenants = [event.features.get("tenant") for event in run.events()]
    assert tenants == ["tenant-00", "tenant-01"] * 5


def test_a_file_shorter_than_events_is_announced_and_counted_by_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200-row file printed 'driftline demo: 12,000 events at 100/s' and a progress of 'produced 3/12000': the
    demo streams the file's rows, at most --events, and says so."""
    monkeypatch.setenv("DRIFTLINE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("DRIFTLINE_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DRIFTLINE_CONFIG", raising=False)
    monkeypatch.delenv("DRIFTLINE__MODEL__TASK", raising=False)
    seen: list[int] = []

    class Stop(Exception):
        pass

    def record(_base: object, options: streams.demo.runner.DemoOptions) -> None:
        seen.append(options.events)
        raise Stop

    monkeypatch.setattr(streams.demo.runner, "DemoRun", record)
    path = tmp_path / "bin.csv"
    path.write_text("x,y\n" + "".join(f"{i / 10},{i % 2}\n" for i in range(40)))
    flags = ["--label-col", "y", "--no-live", "--no-console"]
    for events in ("12000", "25"):
        with pytest.raises(Stop):
            main(["demo", "--file", str(path), "--events", events, *flags])
    assert seen == [40, 25]
