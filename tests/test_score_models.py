"""The scorer with many models (no Kafka: a recording producer and a fake release follower): routing precedence,
refused model names, one swap per model, and the memory budget (least recently used unloaded, then reloaded)."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.settings import load_settings
from schemas.codec import default_codec
from streams.metrics import build_metrics
from streams.releases import LoadedModel
from streams.runtime import RawRecord, WorkerContext
from streams.score import Scorer
from tests.test_fuzz_stages import FakeProducer

CODEC = default_codec()


class Constant:
    """A model that always answers its own name (so a prediction shows which model made it)."""

    def __init__(self, answer: str) -> None:
        self.answer = answer

    def predict_with_proba(self, x: dict[str, Any]) -> tuple[str, dict[str, float]]:
        return self.answer, {self.answer: 1.0}

    def predict_one(self, x: dict[str, Any]) -> str:
        return self.answer


class Follower:
    """Releases handed over on ``take``; ``reload`` serves the newest one again (counted)."""

    def __init__(self) -> None:
        self.pending: list[LoadedModel] = []
        self.newest: dict[str, LoadedModel] = {}
        self.reloads: list[str] = []
        self.reported: dict[str, int] = {}  # what the scorer reported as served (ServingReport)

    def release(self, name: str, version: int, size: int = 100) -> None:
        loaded = LoadedModel(
            version, Constant(f"{name}@{version}"), {"model": name, "artifact": b"x" * size}, 0.0
        )
        self.pending.append(loaded)
        self.newest[name] = loaded

    def take(self) -> LoadedModel | None:
        return self.pending.pop(0) if self.pending else None

    def served(self, model: str, version: int) -> None:
        self.reported[model] = version

    def reload(self, name: str) -> LoadedModel | None:
        self.reloads.append(name)
        return self.newest.get(name)


def _scorer(follower: Follower, **overrides: Any) -> tuple[Scorer, FakeProducer]:
    settings = load_settings(environ={}, overrides={"kafka.topic_prefix": "m.", **overrides})
    producer = FakeProducer()
    ctx = WorkerContext(settings, CODEC, build_metrics(), producer)  # type: ignore[arg-type]
    return Scorer(ctx, follower, store=None), producer  # type: ignore[arg-type]


def _event(i: int, features: dict[str, Any], model: str | None = None, key: bytes | None = None) -> RawRecord:
    value = {"id": f"e{i}", "ts": i, "key": None, "features": features, "model": model}
    return RawRecord("m.features", 0, i, key, CODEC.encode("FeatureEvent", value))


def test_routing_precedence_model_field_then_feature_then_key_then_default() -> None:
    follower = Follower()
    for name in ("default", "a", "b", "c"):
        follower.release(name, 1)
    scorer, producer = _scorer(follower, **{"routing.feature": "tenant", "routing.by_key": True})
    scorer.process(
        [
            _event(0, {"tenant": "b"}, model="a"),  # the event's own model wins
            _event(1, {"tenant": "b"}, key=b"c"),  # then the routing feature
            _event(2, {"x": 1.0}, key=b"c"),  # then the record key
            _event(3, {"x": 1.0}),  # else the default model
        ]
    )
    got = {p["id"]: (p["model"], p["prediction"], p["version"]) for p in producer.on("predictions")}
    assert got == {
        "e0": ("a", "a@1", 1),
        "e1": ("b", "b@1", 1),
        "e2": ("c", "c@1", 1),
        "e3": ("default", "default@1", 1),
    }
    # What each model is served with is reported (streams.serving), so no view calls a refused release served.
    assert follower.reported == {"default": 1, "a": 1, "b": 1, "c": 1}


def test_a_whole_number_routing_value_names_one_model_whether_sent_as_int_or_float() -> None:
    follower = Follower()
    follower.release("7", 1)
    scorer, producer = _scorer(follower, **{"routing.feature": "region"})
    scorer.process([_event(0, {"region": 7}), _event(1, {"region": 7.0}), _event(2, {"region": 7.5})])
    got = {p["id"]: (p["model"], p["version"]) for p in producer.on("predictions")}
    assert got == {"e0": ("7", 1), "e1": ("7", 1), "e2": ("7.5", 0)}


def test_a_boolean_routing_value_names_one_model_whether_sent_as_boolean_or_string() -> None:
    """JSON true and Avro's boolean (True in Python, str() "True") route with the string "true" and "True"."""
    follower = Follower()
    follower.release("true", 1)
    follower.release("false", 2)
    scorer, producer = _scorer(follower, **{"routing.feature": "flag"})
    as_json = b'{"id": "e4", "ts": 4, "features": {"flag": true}}'
    scorer.process(
        [
            _event(0, {"flag": True}),  # Avro boolean
            _event(1, {"flag": "true"}),
            _event(2, {"flag": "True"}),
            _event(3, {"flag": "TRUE"}),
            RawRecord("m.features", 0, 4, None, as_json),  # a JSON producer's true
            _event(5, {"flag": False}),
            _event(6, {"flag": "False"}),
            _event(7, {"flag": "truthy"}),  # only the word itself: other strings name their own model
        ]
    )
    got = {p["id"]: (p["model"], p["version"]) for p in producer.on("predictions")}
    assert got == {
        **{f"e{i}": ("true", 1) for i in range(5)},
        "e5": ("false", 2),
        "e6": ("false", 2),
        "e7": ("truthy", 0),
    }


def test_a_name_no_model_may_have_is_dead_lettered_and_an_unreleased_model_answers_null() -> None:
    follower = Follower()
    follower.release("default", 1)
    scorer, producer = _scorer(follower, **{"routing.feature": "tenant"})
    scorer.process(
        [
            _event(0, {"tenant": "../../etc"}),
            _event(1, {"x": 1.0}, model="x" * 65),
            _event(2, {"tenant": "new"}),
        ]
    )
    dead = producer.on("deadletter")
    assert len(dead) == 2 and all("cannot name a model" in d["error"] for d in dead)
    (p,) = producer.on("predictions")
    assert (p["id"], p["model"], p["prediction"], p["version"]) == ("e2", "new", None, 0)


def test_each_model_swaps_on_its_own_and_an_old_version_is_not_adopted() -> None:
    follower = Follower()
    follower.release("a", 2)
    follower.release("b", 5)
    scorer, producer = _scorer(follower)
    assert scorer.maybe_swap()
    follower.release("a", 1)  # older than the one served: ignored
    follower.release("b", 6)
    scorer.process([_event(0, {"x": 1.0}, model="a"), _event(1, {"x": 1.0}, model="b")])
    assert {p["model"]: p["prediction"] for p in producer.on("predictions")} == {"a": "a@2", "b": "b@6"}


def test_memory_budget_unloads_the_least_recently_used_and_reloads_it_on_demand() -> None:
    follower = Follower()
    mb = 1024 * 1024
    for name in ("a", "b", "c"):
        follower.release(name, 1, size=mb // 2)  # three half-MB models, a 1 MB budget: one must go
    scorer, producer = _scorer(follower, **{"serving.model_memory_mb": 1})
    scorer.maybe_swap()
    assert set(scorer.served) == {"b", "c"} and follower.reloads == []  # "a" was least recently used
    scorer.process([_event(0, {"x": 1.0}, model="a")])
    assert follower.reloads == ["a"] and set(scorer.served) == {"c", "a"}  # "b" made room now
    (p,) = producer.on("predictions")
    assert (p["model"], p["prediction"], p["version"]) == ("a", "a@1", 1)
    assert scorer.ctx.metrics.models_unloaded.labels(model="b")._value.get() == 1


@pytest.mark.parametrize("name", ["m-1", "tenant.eu_2", "A" * 64])
def test_valid_model_names_route(name: str) -> None:
    follower = Follower()
    follower.release(name, 3)
    scorer, producer = _scorer(follower)
    scorer.process([_event(0, {"x": 1.0}, model=name)])
    assert [p["model"] for p in producer.on("predictions")] == [name]


def test_new_models_past_max_models_are_dead_lettered_with_the_setting_named() -> None:
    """``routing.max_models`` bounds the models one scorer answers: an id in the ``model`` field would otherwise
    make one model (monitors, buffers) per event. Known models (configured, released, already answered) still
    route past the bound."""
    follower = Follower()
    follower.release("released", 1)
    scorer, producer = _scorer(follower, **{"routing.max_models": 3, "routing.models": ["configured"]})
    scorer.process([_event(0, {"x": 1.0}, model="a")])  # default + configured + a: the bound
    scorer.process(
        [
            _event(1, {"x": 1.0}, model="b"),  # new past the bound: dead-lettered
            _event(2, {"x": 1.0}, model="a"),  # known
            _event(3, {"x": 1.0}, model="configured"),
            _event(4, {"x": 1.0}),  # the default model
            _event(5, {"x": 1.0}, model="released"),  # it has a release: its events are answered
            *[_event(10 + i, {"x": 1.0}, model=f"id-{i}") for i in range(50)],
        ]
    )
    answered = [p["model"] for p in producer.on("predictions")]
    assert answered == ["a", "a", "configured", "default", "released"]
    dead = producer.on("deadletter")
    assert len(dead) == 51 and all("routing.max_models (3)" in d["error"] for d in dead)
    assert len(scorer._known) == 4  # the three allowed and the released one: nothing grew past them


def test_max_models_must_cover_the_configured_models() -> None:
    from driftline.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"routing\.max_models: must be at least 1 \+ the 2 routing\.models"
    ):
        load_settings(environ={}, overrides={"routing.max_models": 2, "routing.models": ["a", "b"]})


def test_a_refused_name_says_where_it_came_from() -> None:
    """A name taken from the routing feature or the record key was refused as "FeatureEvent.model", a field the
    event did not have: the operator looked for the wrong producer bug (outside12)."""
    follower = Follower()
    follower.release("default", 1)
    scorer, producer = _scorer(follower, **{"routing.feature": "tenant", "routing.by_key": True})
    scorer.process(
        [
            _event(0, {"tenant": "a b"}),
            _event(1, {"x": 1.0}, key=b"../k"),
            _event(2, {"tenant": "ok"}, model="m/1"),
        ]
    )
    errors = [d["error"] for d in producer.on("deadletter")]
    assert len(errors) == 3
    assert "feature 'tenant' (routing.feature): 'a b' cannot name a model" in errors[0]
    assert "record key (routing.by_key): '../k' cannot name a model" in errors[1]
    assert "FeatureEvent.model: 'm/1' cannot name a model" in errors[2]


def test_a_name_with_two_dots_is_refused_saying_why() -> None:
    """`a..b` is made of allowed characters; the refusal listed only those, so it read as a contradiction."""
    follower = Follower()
    follower.release("default", 1)
    scorer, producer = _scorer(follower)
    scorer.process([_event(0, {"x": 1.0}, model="a..b")])
    (dead,) = producer.on("deadletter")
    assert "'a..b' cannot name a model" in dead["error"] and "no '..'" in dead["error"]


def test_a_name_past_max_models_says_where_it_came_from() -> None:
    """The max_models refusal named "FeatureEvent.model" for a name the routing feature or the record key gave,
    as the bad-name refusal did before it said where the name came from."""
    follower = Follower()
    follower.release("default", 1)
    scorer, producer = _scorer(
        follower, **{"routing.feature": "tenant", "routing.by_key": True, "routing.max_models": 1}
    )
    scorer.process(
        [_event(0, {"tenant": "t1"}), _event(1, {"x": 1.0}, key=b"k1"), _event(2, {"x": 1.0}, model="m1")]
    )
    errors = [d["error"] for d in producer.on("deadletter")]
    assert len(errors) == 3 and all("past routing.max_models (1)" in e for e in errors), errors
    assert "feature 'tenant' (routing.feature) 't1' would be model number 2" in errors[0]
    assert "record key (routing.by_key) 'k1' would be model number 2" in errors[1]
    assert "FeatureEvent.model 'm1' would be model number 2" in errors[2]
