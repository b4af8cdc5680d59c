"""The one report generator (streams/reporting/): its marks are really drawn, its page escapes and opens offline, and
the replay and demo reports are both written with it."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from streams.reporting.page import grid_table, kv_table, write_html
from streams.reporting.plots import accuracy_plot
from streams.reporting.replay import write_replay_report


def _pixels(png: Path, kind: str, rows: tuple[float, float] = (0.0, 0.78)) -> int:
    """Pixels of one mark's hue (blended by alpha and antialiasing, so told apart by hue, not exact colour), in a
    band of the image's rows (by default the axes only: the legend below them names every mark in its colour)."""
    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB")).astype(int)
    rgb = rgb[int(rows[0] * len(rgb)) : int(rows[1] * len(rgb))]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    hues = {
        "alarm": (r - g > 25) & (b - g > 50),  # purple #8e44ad
        "promote": (g - r > 40) & (g - b > 40),  # green #2e7d32
        "rollback": (r - g > 80) & (r - b > 80),  # red #c62828
        # The known drift: mid grey #9e9e9e at alpha 0.6, darker than the grid lines, lighter than the text.
        "drift": (abs(r - g) < 6) & (abs(g - b) < 6) & (r > 185) & (r < 205),
    }
    return int(hues[kind].sum())


@pytest.mark.parametrize(
    "name", ["streams.reporting.page", "streams.reporting.demo", "streams.demo.stream", "streams.demo.probe"]
)
def test_doctests(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_accuracy_plot_draws_each_mark_only_when_there_is_one(tmp_path: Path) -> None:
    correct = [None] * 50 + [i % 4 != 0 for i in range(950)]
    bare = accuracy_plot(tmp_path / "bare.png", correct, window=100)
    marked = accuracy_plot(
        tmp_path / "marked.png",
        correct,
        window=100,
        alarms=[300, 620],
        releases=[(400, 2, "challenger"), (700, 3, "rollback")],
        drifts=[(500, 1)],
    )
    for kind in ("alarm", "promote", "rollback", "drift"):
        assert _pixels(marked, kind) > _pixels(bare, kind) + 40, kind
    with Image.open(marked) as im:
        assert im.format == "PNG" and im.width >= 800


def test_accuracy_plot_leaves_unanswered_events_out_of_both_curves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # session 35: after the first answered event, the events of partitions whose scorer still served the untrained
    # v1 (prediction null) counted as wrong: the demo's plot showed the served model at 0.2 where every answered
    # event was right 9 times in 10 (and the summary's accuracy, which leaves them out, said so).
    import matplotlib.axes

    drawn: dict[str, list[float]] = {}
    plot = matplotlib.axes.Axes.plot

    def spy(
        self: matplotlib.axes.Axes, xs: object, ys: list[float], *args: object, **kwargs: object
    ) -> object:
        drawn[str(kwargs.get("label"))] = list(ys)
        return plot(self, xs, ys, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    correct = [None] * 100 + [None if i % 2 else i % 20 != 0 for i in range(400)]  # answered: right 9 in 10
    plain = [i % 10 != 3 for i in range(500)]
    accuracy_plot(tmp_path / "a.png", correct, window=100, baselines={"plain lr": plain})
    served = drawn["served model accuracy (rolling 100)"][200:]
    assert min(served) == pytest.approx(0.9, abs=0.03), min(served)
    # the plain learner's curve is on the same (answered) events: every answered index is even, where it is right
    assert min(drawn["plain lr"][200:]) == 1.0


def test_page_escapes_text_and_embeds_nothing_remote(tmp_path: Path) -> None:
    page = write_html(
        tmp_path / "p.html",
        "a <title>",
        [("Facts", kv_table([("reason", "<script>x</script>")])), ("Rows", grid_table(("a",), []))],
        kpis=[("events", "1,000")],
    ).read_text()
    assert "<script" not in page and "&lt;script&gt;" in page and "a &lt;title&gt;" in page
    assert "http://" not in page and "https://" not in page
    assert "<b>1,000</b><span>events</span>" in page and '<p class="muted">none</p>' in page


def test_replay_report_marks_promotions_and_rollbacks_and_incremental_releases_as_a_rug(
    tmp_path: Path,
) -> None:
    outcomes = [1 if i % 5 else 0 for i in range(3000)]
    summary = {
        "n": 3000,
        "accuracy": 0.8,
        "alarms": [1200],
        "promotions": [{"index": 1500, "version": 3, "reason": "challenger"}],
        "rollbacks": [{"index": 2200, "version": 4, "reason": "rollback"}],
    }
    html = write_replay_report(tmp_path / "with", summary, outcomes, drift_points=[1000])
    assert html == tmp_path / "with" / "report.html"
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 1 and "promotions / rollbacks" in page
    png = tmp_path / "with" / "accuracy.png"
    bare = (
        write_replay_report(tmp_path / "bare", {"n": 3000, "accuracy": 0.8}, outcomes).parent / "accuracy.png"
    )
    assert _pixels(png, "promote") > _pixels(bare, "promote") + 40
    assert _pixels(png, "rollback") > _pixels(bare, "rollback") + 40
    # Carried evidence releases every ~50 labels: ticks along the bottom of the axes, no marker or version label
    # above the curve (58 of them would bury it).
    steps = [
        {"index": i, "version": k + 2, "reason": "incremental"} for k, i in enumerate(range(100, 3000, 50))
    ]
    write_replay_report(tmp_path / "inc", {**summary, "promotions": steps, "rollbacks": []}, outcomes)
    inc = tmp_path / "inc" / "accuracy.png"
    assert _pixels(inc, "promote", rows=(0.0, 0.7)) == _pixels(bare, "promote", rows=(0.0, 0.7))
    assert _pixels(inc, "promote", rows=(0.7, 0.85)) > _pixels(bare, "promote", rows=(0.7, 0.85)) + 200
