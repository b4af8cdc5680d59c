"""A value the trainer's live ``set`` refuses is refused by a config file and the environment too (session 31).

The live rule book (``learners.lifecycle_control.check_setting``) refuses negatives, NaN and shares outside (0, 1)
for every ``guard.*`` and ``drift.*`` number and ``release_every`` below 1; a file or ``DRIFTLINE__...`` variable
must not start a worker with a value an operator could not set live.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from driftline.config import DriftConfig, GuardConfig
from driftline.errors import ConfigError
from driftline.settings import load_settings
from learners.lifecycle_control import check_setting
from streams.commands.config import check_runtime


def _numeric_fields(cls: type) -> list[str]:
    return [
        f.name
        for f in dataclasses.fields(cls)
        if f.type in ("int", "float", "float | None") and f.name != "fairness_max_gap"
    ]


LIVE_KEYS = [f"guard.{n}" for n in _numeric_fields(GuardConfig)] + [
    f"drift.{n}" for n in _numeric_fields(DriftConfig)
]


@pytest.mark.parametrize("key", LIVE_KEYS)
@pytest.mark.parametrize("value", ["-1", "0"])
def test_the_file_and_the_environment_refuse_what_a_live_set_refuses(key: str, value: str) -> None:
    try:
        check_setting(key, value, GuardConfig(), DriftConfig())
    except ConfigError:
        refused_live = True
    else:
        refused_live = False
    section, name = key.split(".")
    environ = {f"DRIFTLINE__{section.upper()}__{name.upper()}": value}
    if refused_live:
        with pytest.raises(ConfigError) as error:
            load_settings(environ=environ)
        assert key in str(error.value)
    else:
        load_settings(environ=environ)  # what a live set accepts, a file accepts


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("model:\n  release_every: 0\n", "model.release_every"),
        ("model:\n  release_every: -5\n", "model.release_every"),
        ("model:\n  control_max_age_s: 0\n", "model.control_max_age_s"),
        ("model:\n  max_inline_bytes: -1\n", "model.max_inline_bytes"),
        ("kafka:\n  replication_factor: 0\n", "kafka.replication_factor"),
        ("serving:\n  batch_timeout_s: -1\n", "serving.batch_timeout_s"),
        ("serving:\n  model_memory_mb: -1\n", "serving.model_memory_mb"),
        ("drift:\n  adwin_delta: 0\n", "drift.adwin_delta"),
        ("drift:\n  max_features: -1\n", "drift.max_features"),
        ("guard:\n  max_predict_latency_ms: -1\n", "guard.max_predict_latency_ms"),
    ],
)
def test_out_of_range_values_in_a_file_are_errors_naming_the_field(
    tmp_path: Path, text: str, named: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(cfg, environ={})
    assert named in str(error.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        # NewTopic raised OverflowError (a traceback from `topics create`); 10^8 partitions would be sent to the broker
        ("kafka:\n  partitions: 1000000000000000000000000000000\n", "kafka.partitions"),
        ("kafka:\n  partitions: 100000000\n", "kafka.partitions"),
        ("kafka:\n  training_partitions: 100000000\n", "kafka.training_partitions"),
        ("kafka:\n  replication_factor: 40000\n", "kafka.replication_factor"),
        # librdkafka's consume() refuses more than 1,000,000 records (ValueError in the trainer's fetch)
        ("serving:\n  batch_size: 1000001\n", "serving.batch_size"),
        # Redis refuses an expiry past int64 milliseconds (ResponseError on the join store's SET PX)
        ("redis:\n  pending_ttl_s: 100000000000000000000\n", "redis.pending_ttl_s"),
    ],
)
def test_huge_values_in_a_file_are_errors_naming_the_field(tmp_path: Path, text: str, named: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings(cfg, environ={})
    assert named in str(error.value)


def test_an_empty_bootstrap_in_a_file_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    # `config validate` said valid, `config show` printed "" and `status` probed 127.0.0.1:9092 (librdkafka's own
    # default for an empty bootstrap.servers): three different answers for one setting.
    cfg = tmp_path / "c.yaml"
    cfg.write_text('kafka:\n  bootstrap: ""\n')
    with pytest.raises(ConfigError) as error:
        load_settings(cfg, environ={})
    assert "kafka.bootstrap" in str(error.value)
    # an empty variable is an error too (session 42: it counted as unset and reached the default 127.0.0.1:9092)
    with pytest.raises(ConfigError, match="DRIFTLINE_KAFKA_BOOTSTRAP is set but empty"):
        load_settings(environ={"DRIFTLINE_KAFKA_BOOTSTRAP": ""})


@pytest.mark.parametrize(
    ("detector", "params", "named"),
    [
        # River's ADWIN takes delta=-1 and then never alarms (a clear 30% -> 90% error step went unseen)
        ("adwin", '{"delta": -1}', "delta"),
        ("adwin", '{"delta": 0}', "delta"),
        ("adwin", '{"delta": 1.5}', "delta"),
        ("page_hinkley", '{"threshold": -5}', "threshold"),
        ("fhddm", '{"confidence_level": 2}', "confidence_level"),
        ("hddm_a", '{"drift_confidence": -0.1}', "drift_confidence"),
    ],
)
def test_a_detector_parameter_out_of_its_range_is_refused_live_and_in_a_file(
    tmp_path: Path, detector: str, params: str, named: str
) -> None:
    drift = dataclasses.replace(DriftConfig(), error_detector=detector)
    with pytest.raises(ConfigError) as error:
        check_setting("drift.error_detector_params", params, GuardConfig(), drift)
    assert "drift.error_detector_params" in str(error.value) and named in str(error.value)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"drift:\n  error_detector: {detector}\n  error_detector_params: {params}\n")
    with pytest.raises(ConfigError) as error:
        check_runtime(load_settings(cfg, environ={}))
    assert "drift.error_detector_params" in str(error.value) and named in str(error.value)


def test_a_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    # `config validate` printed a UnicodeDecodeError traceback
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"kafka:\n  bootstrap: \xff\xfe\n")
    with pytest.raises(ConfigError) as error:
        load_settings(cfg, environ={})
    assert str(cfg) in str(error.value)


@pytest.mark.parametrize(
    "key",
    ["DRIFTLINE__DRIFT__MAX_FEATURES", "DRIFTLINE__GUARD__MAX_EXAMPLES", "DRIFTLINE__KAFKA__RETENTION_MS"],
)
def test_an_integer_beyond_64_bits_is_refused_naming_the_field(key: str) -> None:
    # Python takes any integer; numpy, numba, librdkafka and Kafka's configs take 64 bits (an OverflowError later)
    with pytest.raises(ConfigError) as error:
        load_settings(environ={key: str(10**30)})
    assert key.split("__", 1)[1].replace("__", ".").lower() in str(error.value)
    load_settings(environ={key: str(2**62)})  # within 64 bits: a count that is never reached is a choice


@pytest.mark.parametrize("prefix", ["a b/", "tenant:1.", "p" * 240 + "."])
def test_a_topic_prefix_kafka_cannot_name_topics_with_is_refused(prefix: str) -> None:
    # `config validate` said valid; `topics create` then failed at the broker ("Topic name is invalid") and a
    # worker only at its first topic
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"DRIFTLINE_TOPIC_PREFIX": prefix})
    assert "kafka.topic_prefix" in str(error.value)
    load_settings(environ={"DRIFTLINE_TOPIC_PREFIX": "ok-prefix_1."})


INT_LIVE_KEYS = ["release_every"] + [
    f"{section}.{f.name}"
    for section, cls in (("guard", GuardConfig), ("drift", DriftConfig))
    for f in dataclasses.fields(cls)
    if f.type == "int"
]


@pytest.mark.parametrize("key", INT_LIVE_KEYS)
def test_a_live_set_refuses_an_integer_beyond_64_bits_as_a_file_does(key: str) -> None:
    """Session 39: `driftline models set release_every=99999999999999999999` was sent and applied ("set done")
    while the same value in a file or a variable is refused."""
    with pytest.raises(ConfigError, match=f"{key} must be an integer within 64 bits"):
        check_setting(key, str(10**20), GuardConfig(), DriftConfig())
    with pytest.raises(ConfigError, match="within 64 bits"):
        check_setting(key, str(2**63), GuardConfig(), DriftConfig())
