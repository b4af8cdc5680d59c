"""confluent-kafka client configuration built from the one settings object, security included.

Every producer, consumer and admin client in driftline gets its configuration here, so TLS and SASL are set in
one place. The SASL password lives in a :class:`~streams.settings.Secret` until the dict is built; nothing
here logs it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from driftline.errors import ConfigError, StackError
from streams.settings import Settings

# librdkafka's own log lines (connection refused, retries) go through Python logging under this name
# instead of straight to stderr, so the CLI's -v decides what is shown. Pass it as ``logger=LIBRDKAFKA_LOG``.
LIBRDKAFKA_LOG = logging.getLogger("connectors.librdkafka")

# Keys whose values must never be printed (see ``redacted``).
SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password"})


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for ``settings.kafka`` plus ``extra`` (dots as underscores, or a real key).

    ``extra`` keys may be written as Python names: ``linger_ms=5`` becomes ``linger.ms``.

    >>> from streams.settings import load_settings
    >>> conf = client_config(load_settings(environ={}), linger_ms=5)
    >>> conf["bootstrap.servers"], conf["security.protocol"], conf["linger.ms"]
    ('127.0.0.1:9092', 'PLAINTEXT', 5)
    """
    k = settings.kafka
    conf: dict[str, Any] = {
        "bootstrap.servers": k.bootstrap,
        "client.id": k.client_id,
        "security.protocol": k.security_protocol,
    }
    if k.security_protocol.startswith("SASL"):
        if not k.sasl_mechanism:
            raise ConfigError(
                f"kafka.sasl_mechanism: required with security_protocol {k.security_protocol} "
                "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        if not k.sasl_username:
            raise ConfigError(f"kafka.sasl_username: required with security_protocol {k.security_protocol}")
        conf["sasl.mechanism"] = k.sasl_mechanism
        conf["sasl.username"] = k.sasl_username
        conf["sasl.password"] = k.sasl_password.get()
    if k.security_protocol.endswith("SSL"):
        for key, value in (
            ("ssl.ca.location", k.ssl_cafile),
            ("ssl.certificate.location", k.ssl_certfile),
            ("ssl.key.location", k.ssl_keyfile),
        ):
            if value:
                conf[key] = value
        if bool(k.ssl_certfile) != bool(k.ssl_keyfile):
            raise ConfigError("kafka.ssl_certfile and kafka.ssl_keyfile: give both (mutual TLS) or neither")
    for key, value in extra.items():
        conf[key.replace("_", ".") if "." not in key else key] = value
    return conf


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """A copy of a client config that is safe to log or print (secret values masked)."""
    return {
        key: ("********" if key in SECRET_KEYS and value else value)
        for key, value in conf.items()
        if key != "logger"
    }


def check_reachable(settings: Settings, timeout: float = 5) -> None:
    """Raise :class:`StackError` unless the Kafka cluster answers a metadata request within ``timeout``
    seconds."""
    admin = AdminClient(client_config(settings, logger=LIBRDKAFKA_LOG))
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            metadata = admin.list_topics(timeout=min(remaining, 1.0))
            if metadata.brokers:
                return
        except KafkaException as exc:
            last = exc
    reason = ""
    if last is not None and last.args:
        err = last.args[0]
        reason = f" (last error: {err.str() if hasattr(err, 'str') else err})"
    raise StackError(
        f"cannot reach Kafka at {settings.kafka.bootstrap} (tried for {timeout:g} s): "
        f"is the stack up? run `driftline stack up`{reason}"
    )
