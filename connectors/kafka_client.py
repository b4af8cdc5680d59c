"""confluent-kafka client configuration built from the one settings object, security included.

Every producer, consumer and admin client in driftline gets its configuration here, so TLS and SASL are set in
one place. The SASL password lives in a :class:`~driftline.settings.Secret` until the dict is built; nothing
here logs it.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from driftline.errors import ConfigError, StackError
from driftline.settings import Settings

# librdkafka's own log lines (connection refused, retries) go through Python logging under this name
# instead of straight to stderr, so the CLI's -v decides what is shown. Pass it as ``logger=LIBRDKAFKA_LOG``.
LIBRDKAFKA_LOG = logging.getLogger("connectors.librdkafka")


class _Repeats(logging.Filter):
    """Keep a librdkafka line once per ``every_s`` seconds: it logs each failed connection attempt, dozens a second
    while a broker is down (a console left running wrote 400 identical lines in 20 s). The next one let through
    says how many like it were dropped. Lines differing only in librdkafka's "(after N ms in state S)" are alike."""

    _TIMING = re.compile(r" ?\(after \d+ms in state \w+[^)]*\)")

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._seen: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = self._TIMING.sub("", record.getMessage())[:300]
        now = time.monotonic()
        first, dropped = self._seen.get(key, (None, 0))
        if first is not None and now - first < self.every_s:
            self._seen[key] = (first, dropped + 1)
            return False
        if len(self._seen) > 1000:  # many distinct lines: forget them rather than grow
            self._seen.clear()
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more like it in the last {self.every_s:g} s)"
            record.args = ()
        return True


LIBRDKAFKA_LOG.addFilter(_Repeats())

# Keys whose values must never be printed (see ``redacted``).
SECRET_KEYS = frozenset({"sasl.password", "ssl.key.password"})


def client_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for ``settings.kafka`` plus ``extra`` (dots as underscores, or a real key).

    ``extra`` keys may be written as Python names: ``linger_ms=5`` becomes ``linger.ms``.

    >>> from driftline.settings import load_settings
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
        if k.ssl_key_password:
            conf["ssl.key.password"] = k.ssl_key_password.get()
        if not k.ssl_check_hostname:
            conf["ssl.endpoint.identification.algorithm"] = "none"
    for key, value in extra.items():
        conf[key.replace("_", ".") if "." not in key else key] = value
    return conf


class SaslPayloadFilter(logging.Filter):
    """Blank the SASL payload of requests that aiokafka logs at DEBUG.

    aiokafka's connection logger prints every request it sends, and a SASL PLAIN ``SaslAuthenticateRequest``
    carries ``\\0user\\0password`` in clear: with DEBUG logging on, the password would reach the log (found by
    ``tests/test_security_transport.py``). The request object is replaced, not the formatted text, so a password
    cut short by the request's own truncated repr is hidden too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(
            type(a).__name__.startswith("SaslAuthenticateRequest") for a in args
        ):
            record.args = tuple(
                f"{type(a).__name__}(sasl_auth_bytes=<redacted>)"
                if type(a).__name__.startswith("SaslAuthenticateRequest")
                else a
                for a in args
            )
        return True


def hide_sasl_payloads(logger_name: str = "aiokafka.conn") -> None:
    """Attach :class:`SaslPayloadFilter` to aiokafka's connection logger (once; safe to call again)."""
    target = logging.getLogger(logger_name)
    if not any(isinstance(f, SaslPayloadFilter) for f in target.filters):
        target.addFilter(SaslPayloadFilter())


def redacted(conf: dict[str, Any]) -> dict[str, Any]:
    """A copy of a client config that is safe to log or print (secret values masked)."""
    return {
        key: ("********" if key in SECRET_KEYS and value else value)
        for key, value in conf.items()
        if key != "logger"
    }


def check_reachable(settings: Settings, timeout: float = 5) -> set[str]:
    """Raise :class:`StackError` unless the Kafka cluster answers a metadata request within ``timeout``
    seconds; returns the names of the topics it lists.

    Refused credentials and failed TLS handshakes raise at once, naming the settings to check, instead of
    waiting out the timeout (librdkafka itself retries them forever).
    """
    errors: list[KafkaError] = []
    conf = client_config(settings, logger=LIBRDKAFKA_LOG)
    # "error_cb" and "log_level" have no dotted form, so they cannot go through client_config's keyword extras.
    conf["error_cb"] = errors.append
    # Syslog level 2: librdkafka logs every failed connection attempt at level 3, dozens a second, before the
    # one message below that names the address and what to do; error_cb still sees every error.
    conf["log_level"] = 2
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            metadata = admin.list_topics(timeout=min(remaining, 1.0))
            if metadata.brokers:
                return set(metadata.topics)
        except KafkaException as exc:
            last = exc
        admin.poll(0)  # serves error_cb
        _raise_security_error(settings, errors)
    reason = ""
    detail = next((e for e in reversed(errors) if e.code() != KafkaError._ALL_BROKERS_DOWN), None)
    if detail is not None:
        reason = f" (last error: {detail.str()})"
    elif last is not None and last.args:
        err = last.args[0]
        reason = f" (last error: {err.str() if hasattr(err, 'str') else err})"
    raise StackError(
        f"cannot reach Kafka at {settings.kafka.bootstrap} (tried for {timeout:g} s): "
        f"is the stack up? run `driftline stack up`{reason}"
    )


def _raise_security_error(settings: Settings, errors: list[KafkaError]) -> None:
    k = settings.kafka
    for err in errors:
        text = err.str()
        if err.code() == KafkaError._AUTHENTICATION:
            raise StackError(
                f"Kafka at {k.bootstrap} refused the SASL {k.sasl_mechanism} login of user {k.sasl_username!r} "
                "(check kafka.sasl_username and kafka.sasl_password / DRIFTLINE_KAFKA_SASL_PASSWORD[_FILE]): "
                f"{text}"
            )
        if k.security_protocol.endswith("SSL") and ("SSL" in text or "certificate" in text):
            raise StackError(
                f"TLS with Kafka at {k.bootstrap} failed (check kafka.ssl_cafile, and kafka.ssl_certfile / "
                f"ssl_keyfile when the broker requires client certificates): {text}"
            )


def faust_credentials(settings: Settings) -> Any:
    """Faust (aiokafka) credentials for ``settings.kafka``: the same TLS and SASL settings as ``client_config``."""
    import faust  # only the worker's Faust app needs it (a heavy import)

    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return None
    context = None
    if k.security_protocol in ("SSL", "SASL_SSL"):
        # Without a CA file the system trust store is used, as librdkafka does.
        context = ssl.create_default_context(cafile=k.ssl_cafile)
        if not k.ssl_check_hostname:
            context.check_hostname = False
        if k.ssl_certfile:
            context.load_cert_chain(k.ssl_certfile, k.ssl_keyfile, password=k.ssl_key_password.get() or None)
    if k.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    hide_sasl_payloads()  # aiokafka logs SASL PLAIN's password at DEBUG otherwise
    if not k.sasl_mechanism or not k.sasl_username:
        raise ConfigError(
            f"kafka.sasl_mechanism and kafka.sasl_username: required with security_protocol {k.security_protocol}"
        )
    return faust.SASLCredentials(
        username=k.sasl_username,
        password=k.sasl_password.get(),
        ssl_context=context,
        mechanism=k.sasl_mechanism,
    )
