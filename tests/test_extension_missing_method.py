"""A learner registered from outside the package (README, "Extending") that lacks a method the task needs is
refused where the spec is checked, naming the method: by ``driftline config validate`` (exit 2, the field named)
and so by a worker at start. It was accepted as "valid", then failed on first use with an AttributeError traceback
(``replay``) or on every event (workers). Found from outside by docs/experiments/outside37.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftline.config import LearnerSpec
from driftline.errors import ConfigError, LearnerError
from driftline.settings import load_settings
from learners.detectors import DETECTORS, register_detector
from learners.specs import KINDS, build_learner
from streams.commands.config import check_runtime
from tests.learner_kinds import specs


class NoProba:
    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        pass

    def predict_one(self, x: dict[str, Any]) -> Any:
        return 0


class NoLearn:
    def predict_one(self, x: dict[str, Any]) -> Any:
        return 0.0


@pytest.fixture
def kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        KINDS, "no_proba", (lambda params, task, seed: NoProba(), ("classification", "regression"))
    )
    monkeypatch.setitem(KINDS, "no_learn", (lambda params, task, seed: NoLearn(), ("regression",)))


def test_a_classifier_without_predict_proba_one_is_refused_naming_it(kinds: None) -> None:
    with pytest.raises(LearnerError, match=r"'no_proba' built a NoProba without predict_proba_one"):
        build_learner(LearnerSpec("no_proba"), "classification")
    # A regressor needs no probabilities: the same class is a valid regressor.
    assert build_learner(LearnerSpec("no_proba"), "regression").predict_one({"x": 1.0}) is not None


def test_a_regressor_without_learn_one_is_refused_naming_it(kinds: None) -> None:
    with pytest.raises(LearnerError, match=r"without learn_one: a regression learner needs learn_one"):
        build_learner(LearnerSpec("no_learn"), "regression")


def test_config_validate_names_the_field_and_the_method(kinds: None, tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, overrides={"state_dir": str(tmp_path), "model": {"learner": {"name": "no_proba"}}}
    )
    with pytest.raises(ConfigError, match=r"model.learner: .*without predict_proba_one"):
        check_runtime(settings)


def test_every_built_in_kind_has_the_methods_of_its_tasks() -> None:
    built = [build_learner(spec, task) for _id, spec, task in specs()]
    assert len(built) > len(KINDS)


def _broken_builder(params: dict[str, Any], task: str, seed: int) -> Any:
    raise RuntimeError("plugin bug in build")


def test_a_builder_that_raises_is_a_learner_error_naming_the_learner(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """It was the builder's bare traceback (``driftline replay``, exit 1), with no word of which setting to fix
    (session 40, docs/experiments/hostile40.py)."""
    monkeypatch.setitem(KINDS, "broken", (_broken_builder, ("classification",)))
    with pytest.raises(LearnerError, match=r"learner 'broken': its builder failed: RuntimeError: plugin bug"):
        build_learner(LearnerSpec("broken"), "classification")
    settings = load_settings(
        environ={}, overrides={"state_dir": str(tmp_path), "model": {"learner": {"name": "broken"}}}
    )
    with pytest.raises(ConfigError, match=r"model.learner: learner 'broken': its builder failed"):
        check_runtime(settings)


class NoUpdate:
    drift_detected = False


def test_a_detector_without_update_is_refused_where_the_settings_are_checked(tmp_path: Path) -> None:
    """It passed ``config validate`` and failed at the first error value with an AttributeError traceback (session
    40, docs/experiments/hostile40.py)."""
    register_detector("no_update", NoUpdate)
    try:
        settings = load_settings(
            environ={}, overrides={"state_dir": str(tmp_path), "drift": {"error_detector": "no_update"}}
        )
        with pytest.raises(
            ConfigError, match=r"drift.error_detector: no_update built a NoUpdate without update"
        ):
            check_runtime(settings)
    finally:
        del DETECTORS["no_update"]


class NotAllowed:
    """A complete learner whose class is not in learners.pickle_allow.ALLOWED."""

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        pass

    def predict_one(self, x: dict[str, Any]) -> Any:
        return True

    def predict_proba_one(self, x: dict[str, Any]) -> dict[Any, float]:
        return {True: 1.0}


def test_a_learner_the_loader_would_refuse_is_refused_where_the_spec_is_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Registered in KINDS but not in ALLOWED: every release was withheld and the scorers served v0 (null
    predictions) while `config validate` said valid (session 40, docs/experiments/hostile40.md)."""
    monkeypatch.setitem(KINDS, "not_allowed", (lambda params, task, seed: NotAllowed(), ("classification",)))
    settings = load_settings(
        environ={}, overrides={"state_dir": str(tmp_path), "model": {"learner": {"name": "not_allowed"}}}
    )
    with pytest.raises(
        ConfigError, match=r"model.learner: the scorers' loader would refuse .*NotAllowed.*ALLOWED"
    ):
        check_runtime(settings)


class Leaf:
    """What :class:`GrowsLeaves` builds as it learns: not in ALLOWED either."""

    def __init__(self, y: Any) -> None:
        self.y = y


class GrowsLeaves(NotAllowed):
    """A learner that builds inner objects only once it learns (as a forest builds its trees and nodes)."""

    def __init__(self) -> None:
        self.leaves: list[Leaf] = []

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        if len(self.leaves) < 3:
            self.leaves.append(Leaf(y))


def test_a_class_the_learner_builds_only_once_it_learns_is_refused_where_the_spec_is_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """River's AMFClassifier with only its own class admitted passed `config validate` (the check ran on the
    untrained model, which holds no tree yet), and the trainer then withheld every release of the trained one: the
    scorers served v0 (session 41, docs/experiments/arch41.md)."""
    from learners.pickle_allow import ALLOWED

    monkeypatch.setitem(KINDS, "grows", (lambda params, task, seed: GrowsLeaves(), ("classification",)))
    monkeypatch.setitem(ALLOWED, (__name__, "GrowsLeaves"), "a test's learner: plain attributes")
    settings = load_settings(
        environ={}, overrides={"state_dir": str(tmp_path), "model": {"learner": {"name": "grows"}}}
    )
    with pytest.raises(
        ConfigError,
        match=r"model.learner: the scorers' loader would refuse its releases once it has learned .*Leaf is not allowed",
    ):
        check_runtime(settings)
    monkeypatch.setitem(ALLOWED, (__name__, "Leaf"), "a test's leaf: plain attributes")
    check_runtime(settings)  # both admitted: valid
