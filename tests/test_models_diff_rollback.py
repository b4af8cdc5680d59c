"""``driftline models diff`` across a rollback: the rollback release restores an older version's model, and its
own header carries no data range, so the diff said "learned from nothing yet" for a model that had learned
thousands of examples. It now gives the restored version's range and says where it comes from."""

from __future__ import annotations

from pathlib import Path

from learners.artifacts import build_release
from streams.commands.models_diff import render
from streams.model_diff import diff_releases
from tests.test_explain import KEY, releases_for_diff, trained


def test_a_rollback_release_learned_what_the_version_it_restored_learned(tmp_path: Path) -> None:
    records, settings = releases_for_diff(tmp_path)  # v3 (examples 0..1499), v5 (0..2999)
    restored = trained("logistic_regression", "classification", 1500, weight_b=0.0)
    records.append(
        build_release(
            restored, name="default", version=6, parent=3, reason="rollback", metrics={"accuracy": 0.7},
            key=KEY.encode(), n_learned=1500,
        )
    )  # fmt: skip
    diff = diff_releases(records, settings, "default", 5, 6)
    assert diff["b"]["reason"] == "rollback"
    assert diff["b"]["data_range"] == {"first_index": 0, "last_index": 1499}
    assert diff["b"]["data_range_from"] == 3
    text = render(diff)
    assert "nothing yet" not in text and "examples 0..1499 (restored from v3)" in text


def test_a_feature_name_with_escapes_and_a_newline_is_shown_on_its_line(tmp_path: Path) -> None:
    """Found from outside (session 46, adv46): feature names come from the events, and ``models diff`` printed them
    raw: ``evil ESC]0;PWNED BEL ESC[2J`` set the terminal's title and cleared the screen, a newline started a line of
    its own (hostile40 had fixed ``tail``, ``status`` and ``explain`` only)."""
    records, settings = releases_for_diff(tmp_path)
    diff = diff_releases(records, settings, "default", 3, 5)
    diff["weights"]["top"][0]["feature"] = "evil\x1b]0;PWNED\x07\x1b[2J\nFAKE \u202e"
    text = render(diff)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "  evil\\x1b]0;PWNED\\x07\\x1b[2J\\nFAKE \\u202e" in text
    assert not [line for line in text.splitlines() if line.startswith("FAKE")]
