"""``driftline explain ID`` for a prediction a model made before its first release (version 0, prediction null).

It said the release "v0 ... is no longer on <prefix>models (compacted away)": there never was a v0, and nothing was
compacted; the event was not answered. Found by outside16 (the same id under a second, new model).
"""

from __future__ import annotations

from typing import Any

import pytest

from driftline.errors import ArtifactError
from driftline.settings import load_settings
from streams import explanations

UNANSWERED = {
    "id": "e1",
    "ts": 1,
    "model": "m2",
    "version": 0,
    "prediction": None,
    "proba": None,
    "features": {"a": 0.3},
    "explanation": None,
    "explanation_method": None,
    "partition": 0,
    "offset": 7,
}


def test_a_prediction_made_before_the_first_release_is_not_called_compacted_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def found(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"m2": dict(UNANSWERED)}

    def no_releases(*args: Any, **kwargs: Any) -> list[Any]:
        raise AssertionError("no release to look for: version 0 was never released")

    monkeypatch.setattr(explanations, "find_predictions", found)
    monkeypatch.setattr(explanations, "read_releases", no_releases)
    settings = load_settings(environ={})
    with pytest.raises(ArtifactError) as err:
        explanations.explain_prediction(settings, "e1", model="m2")
    text = str(err.value)
    assert "compacted" not in text and "no released model" in text and "'m2'" in text, text
