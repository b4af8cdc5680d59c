"""``driftline explain ID`` when several models answered the same event id (ids are the producer's: two tenants'
events may share one). It picked whichever partition was read last, said nothing of the others, and ``--model``
was ignored. Now ``--model M`` chooses, the configured model is preferred, and the others are named (no broker:
the read of ``predictions`` is replaced)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from driftline.settings import Settings, load_settings
from streams import explanations
from streams.commands.explain import render
from streams.explanations import NotFound, explain_prediction


class _Msg:
    def __init__(self, value: dict[str, Any], partition: int, offset: int) -> None:
        self._value, self._partition, self._offset = json.dumps(value).encode(), partition, offset

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def _prediction(model: str, version: int, label: str) -> dict[str, Any]:
    return {
        "id": "e-1",
        "ts": 1_000,
        "model": model,
        "version": version,
        "prediction": label,
        "proba": {label: 0.9},
        "explanation": {"x": 0.5, "_intercept": 0.1},
        "explanation_method": "linear_contribution",
    }


@pytest.fixture
def predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    # default's prediction is on partition 0, m2's on partition 3, read last
    messages = [
        _Msg(_prediction("default", 4, "yes"), 0, 10),
        _Msg({**_prediction("default", 4, "no"), "id": "e-10"}, 0, 11),
        _Msg(_prediction("m2", 9, "no"), 3, 5),
    ]

    def read(*args: Any, **kwargs: Any) -> Iterator[_Msg]:
        yield from messages

    monkeypatch.setattr(explanations, "read_to_end", read)


def _settings(model: str = "default") -> Settings:
    return load_settings(environ={}, overrides={"model.name": model})


@pytest.mark.usefixtures("predictions")
def test_the_configured_model_is_explained_and_the_others_are_named() -> None:
    result = explain_prediction(_settings(), "e-1")
    assert (result["model"], result["version"], result["prediction"]) == ("default", 4, "yes")
    assert result["also_answered_by"] == [{"model": "m2", "version": 9}]
    assert "also answered by m2 v9" in render(result) and "--model m2" in render(result)


@pytest.mark.usefixtures("predictions")
def test_model_chooses_among_the_models_that_answered() -> None:
    result = explain_prediction(_settings(), "e-1", model="m2")
    assert (result["model"], result["version"], result["prediction"]) == ("m2", 9, "no")
    assert result["also_answered_by"] == [{"model": "default", "version": 4}]


@pytest.mark.usefixtures("predictions")
def test_a_model_that_did_not_answer_the_id_is_a_clear_not_found() -> None:
    with pytest.raises(NotFound, match=r"'e-1'.* model 'm3'.*answered by default, m2"):
        explain_prediction(_settings(), "e-1", model="m3")


@pytest.mark.usefixtures("predictions")
def test_one_answer_names_no_other() -> None:
    result = explain_prediction(_settings("m2"), "e-10")
    assert (result["model"], result["prediction"], result["also_answered_by"]) == ("default", "no", [])
    assert "also answered" not in render(result)


def test_a_search_cut_short_says_so_rather_than_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # The read of `predictions` gave up silently at --timeout, and explain answered "no prediction with id ..."
    # although it had not read the whole window: the id may well be there.
    from connectors.consumer import IncompleteRead

    def read(*args: Any, **kwargs: Any) -> Iterator[_Msg]:
        assert kwargs.get("strict") is True
        yield _Msg({**_prediction("default", 4, "no"), "id": "other"}, 0, 1)
        raise IncompleteRead("could not read p.predictions to its end within 30 s")

    monkeypatch.setattr(explanations, "read_to_end", read)
    with pytest.raises(NotFound, match=r"searched only part .* to its end within 30 s.*--timeout"):
        explain_prediction(_settings(), "e-1")

    # found before the read gave up: the answer stands, marked as from a partial search
    def found_first(*args: Any, **kwargs: Any) -> Iterator[_Msg]:
        yield _Msg(_prediction("default", 4, "yes"), 0, 10)
        yield from read(*args, **kwargs)

    monkeypatch.setattr(explanations, "read_to_end", found_first)
    result = explain_prediction(_settings(), "e-1")
    assert result["prediction"] == "yes" and result["search_complete"] is False


@pytest.mark.usefixtures("predictions")
def test_not_found_says_since_when_it_searched_as_a_time() -> None:
    """Session 34: the window was printed as "since 1796444934527 ms"."""
    with pytest.raises(NotFound) as error:
        explain_prediction(_settings(), "no-such-id", since_ms=1_796_444_934_527)
    assert "since 2026-12-05 04:28:54 UTC" in str(error.value) and " ms " not in str(error.value)
