"""`models show`'s live count line: the release's figure, and the labels learned in all when a rollback made the
lineage's count differ from them (no broker needed)."""

from __future__ import annotations

from streams.commands.models import _live_counts


def test_no_live_status_adds_nothing() -> None:
    assert _live_counts({"n_learned": 40}) == ""


def test_the_release_figure_is_shown_next_to_the_live_one() -> None:
    info = {"n_learned": 400, "n_learned_in_release": 350, "labels_learned": 400}
    assert _live_counts(info) == "  (live; 350 at release)"


def test_labels_learned_in_all_are_shown_when_a_rollback_made_them_differ() -> None:
    info = {"n_learned": 300, "n_learned_in_release": 155, "labels_learned": 400}
    text = _live_counts(info)
    assert "155 at release" in text and "400 labels learned in all" in text and "rollback" in text
