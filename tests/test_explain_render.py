"""``driftline explain`` text: a one-hot indicator's line shows the event's value of its feature (found from outside,
session 28: ``country=de  -0.0496  (value None)`` for an event whose country was 'de')."""

from __future__ import annotations

from streams.commands.explain import render


def test_indicator_lines_show_the_features_value() -> None:
    result = {
        "id": "e1",
        "model": "default",
        "version": 3,
        "prediction": "no",
        "proba": {"no": 0.9, "yes": 0.1},
        "ts": 0,
        "method": "linear_contribution",
        "source": "recorded",
        "features": {"country": "de", "x": 4.5, "flag": True},
        "contributions": {
            "_intercept": 0.1,
            "country=de": -0.5,
            "country=us": 0.2,
            "x": 1.5,
            "flag": 0.3,
            "gone": 0.01,
        },
    }
    lines = render(result).splitlines()
    shown = {line.split()[0]: line for line in lines[2:]}
    assert shown["x"].endswith("(value 4.5)")
    assert shown["flag"].endswith("(value True)")
    assert shown["country=de"].endswith("(country='de')")
    assert shown["country=us"].endswith("(country='de')")
    assert shown["gone"].endswith("(absent)")
    assert shown["_intercept"].endswith("+0.1000")


def test_an_interaction_line_shows_the_values_it_multiplies() -> None:
    # A model with interactions (a feature `0*1`, the product of `0` and `1`) showed `0*1 +1.4758 (absent)` for
    # an event that had both (found by outside16).
    result = {
        "id": "e1",
        "model": "default",
        "version": 3,
        "prediction": False,
        "proba": {False: 0.9, True: 0.1},
        "ts": 0,
        "method": "linear_contribution",
        "source": "recorded",
        "features": {"0": 0.5, "1": 2.0, "c": "x"},
        "contributions": {"0*1": 1.0, "0*0": 0.2, "0*gone": 0.1, "0*c=x": 0.3},
    }
    shown = {line.split()[0]: line for line in render(result).splitlines()[2:]}
    assert shown["0*1"].endswith("(value 0.5 * 2.0)")
    assert shown["0*0"].endswith("(value 0.5 * 0.5)")
    assert shown["0*gone"].endswith("(absent)")
    assert shown["0*c=x"].endswith("(value 0.5 * c='x')")


def test_newlines_and_bidi_overrides_chosen_by_the_event_stay_on_their_line() -> None:
    """Found from outside (session 46, adv46): an event id, a feature name or a class holding a newline printed a
    line of its own that reads as explain's (``FAKE +9.0000``); a bidi override reordered the line shown."""
    result = {
        "id": "e1\nmethod: forged",
        "model": "default",
        "version": 3,
        "prediction": "no",
        "proba": {"no\nFAKE": 0.9, "yes": 0.1},
        "ts": 0,
        "method": "linear_contribution",
        "source": "recorded",
        "features": {"x\nFAKE +9.0000": 1.0, "\u202ey": 2.0},
        "contributions": {"x\nFAKE +9.0000": 1.5, "\u202ey": 0.5},
    }
    lines = render(result).splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("prediction e1\\nmethod: forged: default v3") and "no\\nFAKE=0.900" in lines[0]
    assert lines[2].split()[0] == "x\\nFAKE" and lines[2].endswith("(value 1.0)")
    assert lines[3].split()[0] == "\\u202ey" and "\u202e" not in "".join(lines)
