"""One typed, frozen settings object, validated at start and passed down explicitly.

Precedence: command-line flag > environment > YAML file (``DRIFTLINE_CONFIG``) > default.
Unknown keys and wrong types raise :class:`ConfigError` naming the field (``guard.alpha``).
Secrets are :class:`Secret` values: masked wherever they are printed.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import reprlib
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit, urlunsplit

import yaml

from driftline.config import (
    DriftConfig,
    GuardConfig,
    LearnerSpec,
    check_drift_numbers,
    check_guard_config,
    check_sentinel_config,
)
from driftline.errors import ConfigError
from driftline.util import one_line


class Secret:
    """A string that never prints itself: ``str()`` and ``repr()`` show ``'********'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('********')" if self._value else "Secret('')"

    __str__ = __repr__


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "driftline."
    partitions: int = 4
    # training, control and changelog (keyed by model): how many trainers can share the learning
    training_partitions: int = 6
    # A trainer silent this long (crashed, frozen) loses its models to the other trainers of the group.
    trainer_session_timeout_s: float = 10.0
    # A score or join worker silent this long loses its partitions to the others of its group (Faust's own
    # default, 60 s, stalled a killed scorer's partitions for a minute). The client heartbeats from its own
    # thread, so a busy Python loop is not silence; the broker accepts 6 s to 30 min by default.
    session_timeout_s: float = 10.0
    replication_factor: int = 1
    retention_ms: int | None = None  # retention.ms of the delete-policy topics; None = the cluster's default
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str | None = None  # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: Secret = field(default_factory=lambda: Secret(""))
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: Secret = field(default_factory=lambda: Secret(""))  # for an encrypted ssl_keyfile
    ssl_check_hostname: bool = True  # verify the broker certificate names the host dialled (keep on)
    client_id: str = "driftline"


@dataclass(frozen=True)
class RedisSettings:
    # TLS: rediss://:PASSWORD@host:port/0?ssl_ca_certs=/path/ca.pem (also ssl_certfile, ssl_keyfile; redis-py)
    url: Secret = field(default_factory=lambda: Secret("redis://127.0.0.1:6379/0"))
    pending_ttl_s: int = 3600
    key_prefix: str = "driftline"


@dataclass(frozen=True)
class ModelSettings:
    name: str = "default"
    task: str = "classification"  # classification | regression
    # "auto": a pool of cheap learners (LR + Hoeffding tree, by task); the best recent one answers (learners/pool.py).
    learner: LearnerSpec = field(default_factory=lambda: LearnerSpec("auto"))
    challenger: LearnerSpec | None = None  # defaults to the same kind as the champion
    signing_key: Secret = field(default_factory=lambda: Secret(""))
    # During a key rotation verifiers also accept releases signed with the previous key; signing uses signing_key.
    previous_signing_key: Secret = field(default_factory=lambda: Secret(""))
    # Control commands are signed (HMAC) with operator_key, or with signing_key when it is empty.
    operator_key: Secret = field(default_factory=lambda: Secret(""))
    control_max_age_s: int = 600  # a command older (or further in the future) than this is refused as stale
    max_inline_bytes: int = 900_000  # Kafka refuses messages over ~1 MB by default; larger go by reference
    artifact_store: str = "~/.driftline/artifacts"
    segment_feature: str | None = None
    reference_file: str | None = None
    label_col: str = "label"
    release_every: int = (
        25  # at least this many labels between incremental releases (the guard's test decides)
    )
    # Add a per-feature explanation (learners/explain.py) to every Prediction; off by default (it costs scoring time).
    explain: bool = False


@dataclass(frozen=True)
class ServingSettings:
    output_encoding: str = "avro"  # avro | json
    # Input records larger than this are dead-lettered unparsed (Kafka's default message limit is 1 MiB).
    max_record_bytes: int = 1 << 20
    batch_size: int = 500
    batch_timeout_s: float = 0.05
    # Loaded models a scorer keeps, by their artifact size; past it the least recently used one is unloaded and
    # loaded again (verified) from its newest release when its next event comes.
    model_memory_mb: int = 512


# A model name goes into record keys, Redis keys and file names: letters, digits, ``.``, ``_``, ``-``.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_model_name(name: str, where: str = "model") -> str:
    """``name`` if it can name a model, else :class:`ConfigError` naming ``where``."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name) or ".." in name:
        # A name from a record may be as long as the record: quote a prefix, so the reason (dead letter, log
        # line) stays short and keeps its explanation.
        if not isinstance(name, str):  # from YAML: str() of a value built by aliases never ended (session 42)
            shown = _shown(name)
        else:
            shown = repr(name) if len(name) <= 80 else f"{name[:64]!r}... ({len(name)} characters)"
        raise ConfigError(
            f"{where}: {shown} cannot name a model (1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, no '..')"
        )
    return name


@dataclass(frozen=True)
class RoutingSettings:
    """Which model answers a FeatureEvent: its own ``model`` field first, then ``feature`` (the value of that
    feature names the model), then the record key when ``by_key``, else ``default`` (``model.name`` when unset)."""

    feature: str | None = None
    by_key: bool = False
    default: str | None = None
    # Models whose trainer publishes v1 as soon as it owns them (others start with their first label).
    models: list[str] = field(default_factory=list)
    # Distinct models one scorer answers and one trainer process creates (the default model and ``models`` always
    # count as known). An event or example naming a new model past it is dead-lettered with the reason. Why: a
    # model is a trainer with its own lifecycle, releases and checkpoint, and a scorer keeps monitors per model,
    # so a producer that puts an id in ``model`` (or an adversary) would otherwise grow every process without bound.
    max_models: int = 1000


@dataclass(frozen=True)
class MetricsSettings:
    port: int = 9108
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    drift: DriftConfig = field(default_factory=DriftConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    serving: ServingSettings = field(default_factory=ServingSettings)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    state_dir: str = "~/.driftline"

    @property
    def default_model(self) -> str:
        """The model answering an event no routing rule names."""
        return self.routing.default or self.model.name

    def for_model(self, name: str) -> Settings:
        """These settings for model ``name`` (its lineage, metrics, audit chain and status keys)."""
        return (
            self
            if name == self.model.name
            else dataclasses.replace(self, model=dataclasses.replace(self.model, name=name))
        )

    def topic(self, name: str) -> str:
        """Full topic name for a contract topic (``features`` -> ``driftline.features``)."""
        return f"{self.kafka.topic_prefix}{name}"


CHOICES: dict[str, tuple[str, ...]] = {
    "kafka.security_protocol": ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    "kafka.sasl_mechanism": ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    "model.task": ("classification", "regression"),
    "serving.output_encoding": ("avro", "json"),
}

# The contract's environment variables, mapped to setting paths.
ENV_VARS: dict[str, str] = {
    "DRIFTLINE_KAFKA_BOOTSTRAP": "kafka.bootstrap",
    "DRIFTLINE_REDIS_URL": "redis.url",
    "DRIFTLINE_TOPIC_PREFIX": "kafka.topic_prefix",
    "DRIFTLINE_SIGNING_KEY": "model.signing_key",
    "DRIFTLINE_PREVIOUS_SIGNING_KEY": "model.previous_signing_key",
    "DRIFTLINE_OPERATOR_KEY": "model.operator_key",
    "DRIFTLINE_METRICS_PORT": "metrics.port",
    "DRIFTLINE_MODEL": "model.name",
    "DRIFTLINE_STATE_DIR": "state_dir",
    "DRIFTLINE_KAFKA_SASL_PASSWORD": "kafka.sasl_password",
    "DRIFTLINE_KAFKA_SSL_KEY_PASSWORD": "kafka.ssl_key_password",
}
# The contract's variables for which an empty value is refused, and what to give instead: an empty one counted as
# unset, so `DRIFTLINE_KAFKA_BOOTSTRAP=$KAFKA` with KAFKA unset silently reached the default 127.0.0.1:9092, another
# stack on a shared machine (session 42). A secret's empty variable still counts as unset (its `_FILE` is read):
# `KEY=${KEY:-}` in a compose file next to `KEY_FILE` is common, and an empty secret is never a valid one.
EMPTY_REFUSED: dict[str, str] = {
    "DRIFTLINE_KAFKA_BOOTSTRAP": "give host:port (several: comma-separated)",
    "DRIFTLINE_REDIS_URL": "give a URL such as redis://host:6379/0",
    "DRIFTLINE_TOPIC_PREFIX": "give a prefix (no prefix at all: kafka.topic_prefix: '' in the config file)",
    "DRIFTLINE_METRICS_PORT": "give a TCP port",
    "DRIFTLINE_MODEL": "give a model name",
    "DRIFTLINE_STATE_DIR": "give a directory",
}
# Any setting also from DRIFTLINE__SECTION__FIELD (double underscores), e.g. DRIFTLINE__GUARD__ALPHA=0.01.
# A secret may come from a file: DRIFTLINE_SIGNING_KEY_FILE=/run/secrets/key (any ENV_VARS name + _FILE).

# The other DRIFTLINE_ variables driftline reads (not settings): the config file, the JIT switches, the console's
# token, the local stack's JVM, the worker's restart count, the benchmarks' and tests' own (DRIFTLINE_TEST_*).
OTHER_VARS = frozenset(
    {
        "DRIFTLINE_CONFIG",
        "DRIFTLINE_NO_JIT",
        "DRIFTLINE_JIT",
        "DRIFTLINE_CONSOLE_TOKEN",
        "DRIFTLINE_KAFKA_JVM_OPTS",
        "DRIFTLINE_KAFKA_HEAP",
        "DRIFTLINE_WORKER_START_ATTEMPT",
        "DRIFTLINE_BENCH_SPLIT",
        "DRIFTLINE_ELEC",
        "DRIFTLINE_SCREENSHOTS",
    }
)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``DRIFTLINE_`` variable driftline does not read, with the known name it resembles.

    ``DRIFTLINE_KAFKA_BOOSTRAP=host:9093`` was ignored without a word, and every command went to the default
    127.0.0.1:9092 (session 39). Not an error: another tool may own a name that starts the same way.

    >>> print(*unknown_variables({"DRIFTLINE_KAFKA_BOOSTRAP": "h:1", "DRIFTLINE_MODEL": "m"}))
    DRIFTLINE_KAFKA_BOOSTRAP is not a driftline variable and is ignored (did you mean DRIFTLINE_KAFKA_BOOTSTRAP?)
    """
    known = set(ENV_VARS) | {f"{v}_FILE" for v in ENV_VARS} | OTHER_VARS
    out = []
    for var in sorted(environ):
        if (
            not var.startswith("DRIFTLINE_")
            or var.startswith(("DRIFTLINE__", "DRIFTLINE_TEST_"))
            or var in known
        ):
            continue
        close = difflib.get_close_matches(var, sorted(known), n=1, cutoff=0.8)
        hint = (
            f" (did you mean {close[0]}?)" if close else " (settings: DRIFTLINE__SECTION__FIELD; see README)"
        )
        out.append(f"{var} is not a driftline variable and is ignored{hint}")
    return out


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = tree
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def nested_path(var: str) -> str | None:
    """The setting a ``DRIFTLINE__SECTION__FIELD`` variable sets (``section.field``, lower case), else None."""
    if not var.startswith("DRIFTLINE__"):
        return None
    return ".".join(p.lower() for p in var[len("DRIFTLINE__") :].split("__"))


def _default_shown(path: str) -> str:
    """A setting's default as an error shows it (``kafka.bootstrap`` -> ``'127.0.0.1:9092'``); a secret's (the
    Redis URL's) is not shown: the CLI masks any text equal to a secret's value."""
    value: Any = Settings()
    for part in path.split("."):
        value = getattr(value, part)
    return "" if isinstance(value, Secret) else f" ({_shown(value)})"


def _env_overrides(environ: Mapping[str, str], names: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings the environment gives, as a tree; ``names`` (when given) receives each setting's variable."""
    tree: dict[str, Any] = {}
    given: dict[str, tuple[str, str]] = {}  # setting path -> (the contract variable that set it, its value)
    for var, path in ENV_VARS.items():
        if var in EMPTY_REFUSED and environ.get(var) == "":
            raise ConfigError(
                f"{path}: {var} is set but empty: unset it for the default{_default_shown(path)}, "
                f"or {EMPTY_REFUSED[var]}"
            )
        if environ.get(var):
            _set_path(tree, path, environ[var])
            given[path] = (var, environ[var])
        elif environ.get(var + "_FILE"):
            file = Path(environ[var + "_FILE"])
            try:
                value = _read_bounded(file, MAX_SECRET_FILE_BYTES).strip()
            except OSError as exc:
                raise ConfigError(f"{var}_FILE: cannot read {file}: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{var}_FILE: {file} is not UTF-8 text ({exc.reason})") from None
            except ConfigError as exc:
                raise ConfigError(f"{var}_FILE: {exc}") from None
            _set_path(tree, path, value)
            given[path] = (var + "_FILE", value)
    for var, value in environ.items():
        nested = nested_path(var)
        if nested is not None:
            first = given.get(nested)
            if first is not None and first[1].strip() != value.strip():
                # Two spellings of one setting that disagree: which one wins would be a guess (the nested one
                # silently did until session 34), so neither does. The values may be secrets: not printed.
                raise ConfigError(
                    f"{nested}: set twice in the environment with different values, by {first[0]} and {var}; "
                    "unset one of them"
                )
            _set_path(tree, nested, value)
            given.setdefault(nested, (var, value))  # and two nested spellings (names differ in case only)
    if names is not None:
        names.update({path: var for path, (var, _) in given.items()})
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


# How a wrong value is shown in an error: bounded, since YAML aliases can make a value of 9**9 elements from a few
# lines ("billion laughs"), whose plain repr never ended (session 42).
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxother = 2, 4, 4, 80, 80


def _shown(value: Any) -> str:
    return _SHOWN.repr(value)


def _not_utf8(value: str) -> bool:
    """Whether ``value`` holds bytes that were not UTF-8: Python reads the environment and argv with
    surrogateescape, so ``\\xff`` arrives as ``\\udcff`` and failed far away (confluent-kafka's SystemError, Redis's
    idna error, a signing key's UnicodeEncodeError) with a traceback (session 42)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        is_null = value is None or (isinstance(value, str) and value.lower() in ("null", "none", ""))
        if is_null and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {_shown(value)}")
    if dataclasses.is_dataclass(tp):
        if isinstance(tp, type) and isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_shown(value)}")
        return _build(tp, value, path)
    if tp is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__}")
        if _not_utf8(value):  # a secret: not shown
            raise ConfigError(f"{path}: not UTF-8 text (it holds bytes that are not UTF-8): set it as UTF-8")
        return Secret(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{path}: expected true or false, got {_shown(value)}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected an integer, got {_shown(value)}") from None
        if not -(2**63) <= number < 2**63:  # numpy, numba, librdkafka and Kafka's configs take 64 bits
            raise ConfigError(f"{path}: expected an integer within 64 bits, got {value!r}")
        return number
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path}: expected a number, got {_shown(value)}") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return out
    if tp is str:
        if (
            value is None
        ):  # YAML null / ~: str(None) was the text "None" (artifact_store: null wrote to ./None)
            raise ConfigError(f"{path}: expected a string, got null; write '' for an empty value")
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{path}: expected a string, got {_shown(value)}")
        if isinstance(value, bool | float):
            # YAML reads an unquoted no/yes/on/off as a boolean and 1.10 as 1.1: `name: no` named the model
            # "False" without a word (session 42).
            raise ConfigError(
                f"{path}: expected a string, got the {type(value).__name__} {value!r}: quote the value (YAML reads "
                "an unquoted no, yes, on, off, true or false as a boolean, and 1.10 as the number 1.1)"
            )
        if isinstance(value, str) and _not_utf8(value):
            raise ConfigError(
                f"{path}: not UTF-8 text ({_shown(value)} holds bytes that are not UTF-8): set it as UTF-8"
            )
        return str(value)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_shown(value)}")
        return dict(value)
    if origin is list:
        if isinstance(value, str):  # from the environment: "a,b,c"
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {_shown(value)}")
        return list(value)
    return value


def _build(cls: Any, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{where}: unknown setting (known: {', '.join(sorted(names))})")
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        kwargs[key] = _coerce(hints[key], value, path)
        if path in CHOICES and kwargs[key] is not None and kwargs[key] not in CHOICES[path]:
            raise ConfigError(f"{path}: must be one of {', '.join(CHOICES[path])}, got {kwargs[key]!r}")
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or 'settings'}: {exc}") from exc
    return obj


# Kafka names a topic with at most 249 of these characters; a prefix of 100 leaves room for the contract's names and
# the worker's internal topics (``driftline-<prefix><model>-<roles>-__assignor-__leader``, model names up to 64).
TOPIC_PREFIX = re.compile(r"[A-Za-z0-9._-]{0,100}")

# Partitions of one topic: far above what one topic needs (Kafka's guidance is a few thousand per broker).
MAX_PARTITIONS = 10_000

# HMAC-SHA256 keys shorter than this are guessable offline from one signed release.
MIN_SIGNING_KEY_BYTES = 32


def _check_signing_keys(model: ModelSettings) -> None:
    # The operator key signs control commands as the signing key signs releases: a short one was accepted until
    # session 34, and a key of a few bytes is guessed from one signed command on `control`.
    for name in ("signing_key", "previous_signing_key", "operator_key"):
        key = getattr(model, name).get()
        if key and len(key.encode()) < MIN_SIGNING_KEY_BYTES:
            raise ConfigError(
                f"model.{name}: the key is {len(key.encode())} bytes, it must be at least {MIN_SIGNING_KEY_BYTES}; "
                f"make one with `openssl rand -hex 32` (64 characters) and put it in DRIFTLINE_{name.upper()}_FILE"
            )


def _validate(settings: Settings) -> None:
    _check_signing_keys(settings.model)
    check_model_name(settings.model.name, "model.name")
    if settings.routing.default is not None:
        check_model_name(settings.routing.default, "routing.default")
    for name in settings.routing.models:
        check_model_name(name, "routing.models")
    if settings.routing.max_models < 1 + len(settings.routing.models):
        raise ConfigError(
            f"routing.max_models: must be at least 1 + the {len(settings.routing.models)} routing.models, "
            f"got {settings.routing.max_models}"
        )
    check_guard_config(settings.guard)
    check_drift_numbers(settings.drift)
    check_sentinel_config(settings.drift)
    # The ranges the trainer's live `set` gives release_every (learners.lifecycle_control), and what the others need:
    # a command is stale once older than control_max_age_s (0 would refuse every one), and a negative budget or wait
    # means nothing.
    if settings.model.release_every < 1:
        raise ConfigError(f"model.release_every: must be at least 1, got {settings.model.release_every}")
    if settings.model.control_max_age_s < 1:
        raise ConfigError(
            f"model.control_max_age_s: must be at least 1, got {settings.model.control_max_age_s}"
        )
    for name, value in (
        ("model.max_inline_bytes", settings.model.max_inline_bytes),
        ("serving.batch_timeout_s", settings.serving.batch_timeout_s),
        ("serving.model_memory_mb", settings.serving.model_memory_mb),
    ):
        if value < 0:
            raise ConfigError(f"{name}: must be >= 0, got {value}")
    # Upper bounds: what the clients accept (librdkafka's consume() takes at most 1,000,000 records, Redis an
    # expiry within int64 milliseconds, Kafka a replication factor within int16) and, for partitions, a topic a
    # broker can hold (a huge count overflowed NewTopic, or reached the broker and left the topics half made).
    for name, value, low, high in (
        ("kafka.partitions", settings.kafka.partitions, 1, MAX_PARTITIONS),
        ("kafka.training_partitions", settings.kafka.training_partitions, 1, MAX_PARTITIONS),
        ("kafka.replication_factor", settings.kafka.replication_factor, 1, 32767),
        ("serving.batch_size", settings.serving.batch_size, 1, 1_000_000),
        ("redis.pending_ttl_s", settings.redis.pending_ttl_s, 1, 10**15),
    ):
        if not low <= value <= high:
            raise ConfigError(f"{name}: must be {low} to {high}, got {value}")
    for name in ("session_timeout_s", "trainer_session_timeout_s"):
        value = getattr(settings.kafka, name)
        if not 6 <= value <= 1800:  # the broker's group.min/max.session.timeout.ms defaults
            raise ConfigError(f"kafka.{name}: must be 6 to 1800 seconds (the broker's bounds), got {value}")
    if not 0 <= settings.metrics.port < 65536:
        raise ConfigError(f"metrics.port: must be a TCP port, got {settings.metrics.port}")
    if settings.serving.max_record_bytes < 131072:  # a dead letter carries up to 64 KiB of the record
        raise ConfigError(
            f"serving.max_record_bytes: must be at least 131072, got {settings.serving.max_record_bytes}"
        )
    prefix = settings.kafka.topic_prefix
    if not TOPIC_PREFIX.fullmatch(prefix):
        shown = repr(prefix) if len(prefix) <= 80 else f"{prefix[:40]!r}... ({len(prefix)} characters)"
        raise ConfigError(
            f"kafka.topic_prefix: {shown} cannot start Kafka topic names (at most 100 of ASCII letters, digits, "
            "'.', '_' and '-')"
        )
    if not settings.kafka.bootstrap.strip():  # librdkafka would dial its own default, 127.0.0.1:9092
        raise ConfigError("kafka.bootstrap: must name at least one host:port, got an empty string")
    if not settings.state_dir.strip():  # "" was the working directory of whatever command ran
        raise ConfigError("state_dir: must name a directory, got an empty string")
    url = settings.redis.url.get()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in (
        "redis",
        "rediss",
        "unix",
    ):  # what redis-py opens; the URL is a secret: name the scheme only
        raise ConfigError(
            "redis.url: must start with redis://, rediss:// or unix://, "
            + (f"got {scheme[:20]}://..." if scheme else "got no scheme")
        )
    if scheme in ("redis", "rediss"):
        _check_redis_url(url)


def _check_redis_url(url: str) -> None:
    """Refuse a redis:// URL whose host:port cannot be read, naming no part of it: a password holding ``/``, ``?``
    or ``#`` unescaped ends the URL's userinfo early, so the rest of the password became the host, the port or the
    path, and Python's URL parser (in redis-py or here) raised with the text it read as the port in a traceback
    (``Port could not be cast to integer value as 'Zx9'``, the start of the password), from every command."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
        readable = "@" not in url[len(parts.scheme) + 3 + len(parts.netloc) :] or "@" in parts.netloc
    except ValueError:
        readable = False
    if not readable:
        raise ConfigError(
            "redis.url: its host:port cannot be read (not shown: it may hold the password). A port must be a "
            "number, and a password must percent-encode / ? # @ and : (as %2F %3F %23 %40 %3A), e.g. "
            "urllib.parse.quote(password, safe='')"
        )


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping: PyYAML keeps the last one silently, so a
    second `kafka:` section dropped every setting of the first (session 34)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class names it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice in one mapping (lines {first} and {line}); keep one",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, name: str) -> Any:
    """``yaml.load`` whose error marks name the file (a str stream is named "<unicode string>" otherwise)."""
    loader = _UniqueKeyLoader(text)  # a SafeLoader: no arbitrary objects
    loader.name = name
    try:
        return loader.get_single_data() or {}
    finally:
        loader.dispose()


# A settings file is a few KB and a secret file a few hundred bytes: a larger one is the wrong file, and
# /dev/zero (or a stream that never ends) was read until memory ran out (session 42).
MAX_CONFIG_FILE_BYTES = 1 << 20
MAX_SECRET_FILE_BYTES = 1 << 16


def _read_bounded(path: Path, limit: int) -> str:
    """The UTF-8 text of ``path``, refused (:class:`ConfigError`) past ``limit`` bytes without reading on."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(
            f"{path}: larger than {limit:,} bytes, too large for this file: is it the right one?"
        )
    return data.decode("utf-8")


#: Values a settings file may hold once its aliases are expanded (a file is a few hundred). Why: ten lines of
#: aliases, each naming the one above ten times, are 10^9 values to walk, and `config validate` (and a worker's
#: start) hung on them; an alias inside the mapping it names made an endless one (a RecursionError traceback;
#: session 45).
MAX_CONFIG_VALUES = 100_000


def _check_expanded(data: Any, name: str) -> None:
    """Refuse (:class:`ConfigError`) a tree of more than :data:`MAX_CONFIG_VALUES` values with its aliases expanded,
    or one that contains itself."""
    count = 0
    inside: set[int] = set()

    def walk(node: Any) -> None:
        nonlocal count
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{name}: more than {MAX_CONFIG_VALUES:,} values once its aliases (*name) are expanded: "
                "write the settings out (a settings file holds a few hundred)"
            )
        if not isinstance(node, (dict, list)):
            return
        if id(node) in inside:
            raise ConfigError(f"{name}: an alias (*name) stands inside the mapping or list it names: endless")
        inside.add(id(node))
        for child in node.values() if isinstance(node, dict) else node:
            walk(child)
        inside.discard(id(node))

    walk(data)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML settings file; errors name the file (and a key written twice)."""
    p = Path(path).expanduser()
    try:
        data = _load_yaml(_read_bounded(p, MAX_CONFIG_FILE_BYTES), str(p))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    except RecursionError:  # PyYAML composes recursively: 20,000 nested [ gave a traceback (session 42)
        raise ConfigError(f"{p}: nested too deeply to read (a settings file is a few levels deep)") from None
    _check_expanded(data, str(p))
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return data


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    name_source: bool = True,
) -> Settings:
    """Build the effective settings: defaults < YAML file < environment < ``overrides`` (flags).

    ``overrides`` maps dotted paths to values, e.g. ``{"kafka.bootstrap": "127.0.0.1:9093"}``. A
    :class:`ConfigError` about a value names where it was set (the file, the variable, the command line) unless
    ``name_source`` is false (a caller that names the only source itself).

    >>> load_settings(environ={}, overrides={"guard.alpha": "0.01"}).guard.alpha
    0.01
    """
    env = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    path = config_file or env.get("DRIFTLINE_CONFIG")
    if path:
        tree = read_yaml(path)
    file_paths = _node_paths(tree)
    env_names: dict[str, str] = {}
    tree = _merge(tree, _env_overrides(env, env_names))
    flags: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_path(flags, dotted, value)
    tree = _merge(tree, flags)
    try:
        settings: Settings = _build(Settings, tree)
        _validate(settings)
    except ConfigError as exc:
        # "guard.alpha: expected a number" did not say where the value came from: a worker started with a file
        # and a dozen variables left its operator to guess (session 39). Flags win over variables over the file.
        named = _FIELD.match(str(exc))
        source = (
            _source_of(named.group(1), _node_paths(flags), env_names, file_paths, path) if named else None
        )
        if source and name_source:
            raise ConfigError(f"{exc} (from {source})") from exc
        raise
    return settings


# The setting an error names first: "guard.alpha: ..." (a file's own errors start with its path, not a field).
_FIELD = re.compile(r"([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*): ")


def _source_of(
    field: str,
    flag_paths: set[str],
    env_names: Mapping[str, str],
    file_paths: set[str],
    file: str | Path | None,
) -> str | None:
    """Where the value ``field`` names came from: the command line, its variable, or the file (in that order)."""
    if _covering(field, flag_paths) is not None:
        return "the command line"
    hit = _covering(field, set(env_names))
    if hit is not None:
        return env_names[hit]
    if file and _covering(field, file_paths) is not None:
        return str(Path(file).expanduser())
    return None


def _node_paths(tree: Mapping[str, Any], prefix: str = "") -> set[str]:
    """Every dotted path a settings tree sets, sections included (``guard``, ``guard.alpha``)."""
    out: set[str] = set()
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        out.add(dotted)
        if isinstance(value, Mapping):
            out |= _node_paths(value, dotted + ".")
    return out


def _covering(field: str, paths: set[str]) -> str | None:
    """The path of ``paths`` that set ``field``: the field itself, its nearest section that was set, or (for an
    error about a whole section, such as an unknown one) a setting under it."""
    parts = field.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in paths:
            return ".".join(parts[:n])
    return min((p for p in paths if p.startswith(field + ".")), default=None)


# userinfo of any URL (redis://:pw@h, redis://user:pw@h, sasl_ssl://user:pw@broker), up to the last "@" of the
# token that "@" is in: a password may hold "/", "?", "#" or "@" unescaped (base64 ones hold "/"), which ended the
# match early, or a space (session 36: "sasl_ssl://u:my pw@h" was printed whole) ...
# The scheme and the password are bounded (no scheme is 32 characters, no password 2,048): unbounded, each "x://" or
# word start scanned to the end of the line, and 300 KB of "a://b:" in a log line took 86 s to mask (session 36).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+._-]{0,31}://[^:@/\s]*):(?P<pw>[^\n]{0,2048}?)@(?=[^\s@]*(?:\s|$))"
)
# ... unless what follows the ":" is a port (and a path) that a separator ends before that "@": in
# "redis://host:6379/0,x@y" or "redis://h:6379/0 for bob@example.com" the "@" is not the URL's (session 36).
_PORT_THEN_TEXT = re.compile(r"\d{1,5}(?:[/?#][^\s,;@]*)?[\s,;)\]]")
# A port needs a host before it, and an "@" followed by a host *and a port* ends a URL's userinfo, not an e-mail
# address: "redis://:12345/x y@h" and "redis://u:12345/x y@h:6379/0" carry a password that starts with digits
# (until session 37 both were shown whole, taken for a port). The port ends wherever its digits do: a quote, a "."
# or a ":" after it ("invalid URL 'redis://u:2024;pw@h:6379'", review37: that password was shown), and the host may
# be an IPv6 literal ("[::1]", "[fe80::1%eth0]"). Bounded (a host name is at most 253 characters).
_AUTHORITY = re.compile(r"(?:\[[0-9A-Za-z:.%_-]{2,64}\]|[A-Za-z0-9._~%!$&'*+=-]{1,253}):\d{1,5}(?!\d)")
# ... secret-named query parameters (?password=, &sasl.password=, &token=) and key=value settings in text
# (sasl.password=..., ssl_key_password: ...), as librdkafka or redis-py may echo them in an error.
_SECRET_NAME = r"[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)[a-z0-9_.-]*"
_QUERY_SECRET = re.compile(rf"(?i)(?P<head>[?&;]{_SECRET_NAME}=)(?P<value>[^&#\s]*)")
_TEXT_SECRET = re.compile(
    rf"(?i)(?P<head>(?<![?&;\w.-]){_SECRET_NAME}['\"]?\s*[=:]\s*['\"]?)(?P<value>[^\s'\",}}&]+)"
)


def mask_secrets(text: str) -> str:
    """``text`` with every password it carries in a URL or a ``name=value`` replaced by ``***``.

    >>> mask_secrets("redis://user:pw@h:6379/0?password=x&db=0 and sasl.password=s3cret")
    'redis://user:***@h:6379/0?password=***&db=0 and sasl.password=***'
    """
    if "://" not in text and not any(w in text.lower() for w in ("pass", "pwd", "secret", "token", "key")):
        return text  # the common log line: nothing to look for
    text = _URL_PASSWORD.sub(_mask_userinfo, text)
    text = _QUERY_SECRET.sub(r"\g<head>***", text)
    return _TEXT_SECRET.sub(r"\g<head>***", text)


def _mask_userinfo(match: re.Match[str]) -> str:
    host = match["head"].partition("://")[2]
    if host and _PORT_THEN_TEXT.match(match["pw"]) and not _AUTHORITY.match(match.string, match.end()):
        return match[0]
    return match["head"] + ":***@"


class MaskSecrets(logging.Filter):
    """A log filter that passes every record through :func:`mask_secrets` (installed on the CLI's handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Text put into a message (a feature name, an id: chosen by whoever wrote a record) stays on the record's
        # line and its escapes are shown, not obeyed by the terminal that reads the log (adv46: a feature named
        # "x ESC]0;title BEL ESC[2J" + newline set the title and cleared the screen of `tail -f worker.log`).
        if isinstance(record.args, tuple) and any(isinstance(a, str) for a in record.args):
            record.args = tuple(one_line(a) if isinstance(a, str) else a for a in record.args)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's business, not ours
            return True
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        # A traceback is formatted after the filters ran, from exc_info: format it here, masked (the formatter then
        # uses exc_text as it is). `logger.exception(...)` of an error carrying a URL printed its password.
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_secrets(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def mask_excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: types.TracebackType | None
) -> None:
    """``sys.excepthook`` that prints an uncaught error's traceback through :func:`mask_secrets`."""
    sys.stderr.write(mask_secrets(_FORMATTER.formatException((exc_type, exc, tb))) + "\n")


def mask_url(url: str) -> str:
    """``url`` with its password (in the userinfo or a secret-named query parameter) replaced by ``***``, or
    ``********`` if it is not a URL.

    >>> mask_url("rediss://:s3cret@127.0.0.1:6380/0?ssl_ca_certs=/ca.pem")
    'rediss://:***@127.0.0.1:6380/0?ssl_ca_certs=/ca.pem'
    >>> mask_url("redis://127.0.0.1:6379/0?password=s3cret")
    'redis://127.0.0.1:6379/0?password=***'
    >>> mask_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    """
    try:
        parts = urlsplit(url)
        password, host = parts.password, parts.hostname
    except ValueError:
        return "********"
    if not parts.scheme or not host:
        return "********"
    if password is not None:
        user = parts.username or ""
        host_port = parts.netloc.rpartition("@")[2]
        url = urlunsplit(parts._replace(netloc=f"{user}:***@{host_port}"))
    return _QUERY_SECRET.sub(r"\g<head>***", url)


def to_dict(obj: Any, mask: bool = True) -> Any:
    """Plain dict of the settings; secrets masked unless ``mask`` is false.

    A secret URL (``redis.url``) keeps everything but its password, so operators can still see where it points.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name), mask) for f in dataclasses.fields(obj)}
    if isinstance(obj, Secret):
        if not mask or not obj:
            return obj.get()
        return mask_url(obj.get()) if "://" in obj.get() else "********"
    if mask and isinstance(obj, str):
        return mask_secrets(obj)  # a plain setting may still carry one (a bootstrap URL with user:password@)
    if isinstance(obj, dict):
        return {k: to_dict(v, mask) for k, v in obj.items()}
    return obj
