"""Security settings without a broker: secrets from the environment and files, masking, and how TLS/SASL settings
reach every client (confluent-kafka, Faust/aiokafka, the local broker's own config)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import ssl
from contextlib import redirect_stdout
from pathlib import Path

import faust
import pytest
from aiokafka.protocol.admin import SaslAuthenticateRequest_v1
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from connectors.kafka_client import (
    SaslPayloadFilter,
    client_config,
    faust_credentials,
    hide_sasl_payloads,
    redacted,
)
from connectors.localkafka import BrokerSecurity, render_server_properties
from driftline.errors import ConfigError, StackError
from driftline.settings import load_settings, mask_url
from streams.cli import main
from tests.test_security_transport import make_pki

SASL_PASSWORD = "sasl-Pw-from-file-91c2"
SIGNING_KEY = "signing-Key-from-file-44aa-0f1e2d3c4b5a69788796a5b4"
REDIS_PASSWORD = "redis-Pw-in-url-77b1"
KEY_PASSWORD = "key-Pw-3e9d"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"), key_password=KEY_PASSWORD)


# ---------------------------------------------------------------- secrets in, masked out


def test_config_show_masks_secrets_read_from_files_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sasl").write_text(SASL_PASSWORD + "\n")
    (tmp_path / "key").write_text(SIGNING_KEY + "\n")
    for var in [v for v in os.environ if v.startswith("DRIFTLINE")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("DRIFTLINE_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "sasl"))
    monkeypatch.setenv("DRIFTLINE_SIGNING_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("DRIFTLINE_KAFKA_SSL_KEY_PASSWORD", KEY_PASSWORD)
    monkeypatch.setenv(
        "DRIFTLINE_REDIS_URL", f"rediss://:{REDIS_PASSWORD}@127.0.0.1:6380/2?ssl_ca_certs=/etc/ca.pem"
    )
    monkeypatch.setenv("DRIFTLINE__KAFKA__SECURITY_PROTOCOL", "SASL_SSL")

    settings = load_settings()
    assert settings.kafka.sasl_password.get() == SASL_PASSWORD  # read from the file, newline stripped
    assert settings.model.signing_key.get() == SIGNING_KEY

    for args in (["config", "show", "--json"], ["config", "show"]):
        out = io.StringIO()
        with redirect_stdout(out):
            assert main(args) == 0
        text = out.getvalue()
        for secret in (SASL_PASSWORD, SIGNING_KEY, REDIS_PASSWORD, KEY_PASSWORD):
            assert secret not in text
    shown = json.loads(_show_json())
    assert shown["redis"]["url"] == "rediss://:***@127.0.0.1:6380/2?ssl_ca_certs=/etc/ca.pem"
    assert shown["kafka"]["sasl_password"] == "********"
    assert shown["kafka"]["ssl_key_password"] == "********"
    assert shown["model"]["signing_key"] == "********"
    assert shown["kafka"]["security_protocol"] == "SASL_SSL"


def _show_json() -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        main(["config", "show", "--json"])
    return out.getvalue()


def test_an_unreadable_secret_file_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DRIFTLINE_KAFKA_SASL_PASSWORD_FILE: cannot read"):
        load_settings(environ={"DRIFTLINE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "rediss://user:p%40ss@host:6380/1?ssl_ca_certs=/ca.pem",
            "rediss://user:***@host:6380/1?ssl_ca_certs=/ca.pem",
        ),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://user@127.0.0.1/0", "redis://user@127.0.0.1/0"),
        ("not a url with a secret", "********"),
    ],
)
def test_mask_url_hides_only_the_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


# ---------------------------------------------------------------- confluent-kafka


def test_client_config_carries_sasl_ssl_settings_and_redacts_them() -> None:
    settings = load_settings(
        environ={},
        overrides={
            "kafka.security_protocol": "SASL_SSL",
            "kafka.sasl_mechanism": "SCRAM-SHA-512",
            "kafka.sasl_username": "alice",
            "kafka.sasl_password": SASL_PASSWORD,
            "kafka.ssl_cafile": "/etc/ca.pem",
            "kafka.ssl_certfile": "/etc/client.pem",
            "kafka.ssl_keyfile": "/etc/client.key",
            "kafka.ssl_key_password": KEY_PASSWORD,
        },
    )
    conf = client_config(settings)
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("alice", SASL_PASSWORD)
    assert conf["ssl.ca.location"] == "/etc/ca.pem"
    assert (conf["ssl.certificate.location"], conf["ssl.key.location"]) == (
        "/etc/client.pem",
        "/etc/client.key",
    )
    assert conf["ssl.key.password"] == KEY_PASSWORD
    assert "ssl.endpoint.identification.algorithm" not in conf  # librdkafka's default: verify the host name
    shown = json.dumps(redacted(conf))
    assert SASL_PASSWORD not in shown and KEY_PASSWORD not in shown


def test_client_config_hostname_check_can_be_turned_off_and_plaintext_gets_no_tls_keys() -> None:
    conf = client_config(load_settings(environ={}, overrides={"kafka.security_protocol": "SSL",
                                                              "kafka.ssl_check_hostname": "false"}))  # fmt: skip
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    plain = client_config(load_settings(environ={}, overrides={"kafka.ssl_cafile": "/etc/ca.pem"}))
    assert not any(key.startswith(("ssl.", "sasl.")) for key in plain)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kafka.security_protocol": "SASL_PLAINTEXT", "kafka.sasl_username": "a"}, "kafka.sasl_mechanism"),
        ({"kafka.security_protocol": "SASL_SSL", "kafka.sasl_mechanism": "PLAIN"}, "kafka.sasl_username"),
        ({"kafka.security_protocol": "SSL", "kafka.ssl_certfile": "/c.pem"}, "kafka.ssl_certfile"),
    ],
)
def test_incomplete_security_settings_are_config_errors(overrides: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        client_config(load_settings(environ={}, overrides=overrides))


def test_unknown_protocol_or_mechanism_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=re.escape("kafka.security_protocol")):
        load_settings(environ={}, overrides={"kafka.security_protocol": "TLS"})
    with pytest.raises(ConfigError, match=re.escape("kafka.sasl_mechanism")):
        load_settings(environ={}, overrides={"kafka.sasl_mechanism": "GSSAPI"})


# ---------------------------------------------------------------- Faust / aiokafka


def test_faust_credentials_for_each_protocol(pki: dict[str, Path]) -> None:
    assert faust_credentials(load_settings(environ={})) is None

    sasl = credentials_to_aiokafka_auth(
        faust_credentials(
            load_settings(
                environ={},
                overrides={
                    "kafka.security_protocol": "SASL_PLAINTEXT",
                    "kafka.sasl_mechanism": "SCRAM-SHA-256",
                    "kafka.sasl_username": "alice",
                    "kafka.sasl_password": SASL_PASSWORD,
                },
            )
        )
    )
    assert sasl["security_protocol"] == "SASL_PLAINTEXT"
    assert sasl["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (sasl["sasl_plain_username"], sasl["sasl_plain_password"]) == ("alice", SASL_PASSWORD)
    assert sasl["ssl_context"] is None

    sasl_ssl_settings = load_settings(
        environ={},
        overrides={
            "kafka.security_protocol": "SASL_SSL",
            "kafka.sasl_mechanism": "PLAIN",
            "kafka.sasl_username": "alice",
            "kafka.sasl_password": SASL_PASSWORD,
            "kafka.ssl_cafile": str(pki["ca"]),
        },
    )
    auth = credentials_to_aiokafka_auth(faust_credentials(sasl_ssl_settings))
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "PLAIN"
    context = auth["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "driftline test CA"),),)]

    mtls = load_settings(
        environ={},
        overrides={
            "kafka.security_protocol": "SSL",
            "kafka.ssl_cafile": str(pki["ca"]),
            "kafka.ssl_certfile": str(pki["client_cert"]),
            "kafka.ssl_keyfile": str(pki["client_key"]),  # encrypted
            "kafka.ssl_key_password": KEY_PASSWORD,
            "kafka.ssl_check_hostname": "false",
        },
    )
    creds = faust_credentials(mtls)
    assert isinstance(creds, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SSL" and not auth["ssl_context"].check_hostname
    assert KEY_PASSWORD not in repr(creds) and SASL_PASSWORD not in repr(faust_credentials(sasl_ssl_settings))

    wrong = load_settings(environ={}, overrides={**{f"kafka.{k}": v for k, v in {
        "security_protocol": "SSL", "ssl_certfile": str(pki["client_cert"]), "ssl_keyfile": str(pki["client_key"]),
        "ssl_key_password": "not-the-key-password"}.items()}})  # fmt: skip
    with pytest.raises(ssl.SSLError):
        faust_credentials(wrong)


def test_aiokafka_sasl_payloads_are_redacted_in_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    hide_sasl_payloads()
    hide_sasl_payloads()  # idempotent
    logger = logging.getLogger("aiokafka.conn")
    assert sum(isinstance(f, SaslPayloadFilter) for f in logger.filters) == 1
    request = SaslAuthenticateRequest_v1(sasl_auth_bytes=b"\0alice\0" + SASL_PASSWORD.encode())
    assert SASL_PASSWORD in str(request)  # what aiokafka would print without the filter
    with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
        logger.debug("Request to %s:%d %d: %s", "127.0.0.1", 9092, 3, request)
        logger.debug("Request to %s:%d %d: %s", "127.0.0.1", 9092, 4, "MetadataRequest_v5(topics=[])")
    messages = [r.getMessage() for r in caplog.records if r.name == "aiokafka.conn"]
    assert messages == [
        "Request to 127.0.0.1:9092 3: SaslAuthenticateRequest_v1(sasl_auth_bytes=<redacted>)",
        "Request to 127.0.0.1:9092 4: MetadataRequest_v5(topics=[])",
    ]


# ---------------------------------------------------------------- the local broker's secured listeners


def test_broker_security_renders_listeners_logins_and_tls(tmp_path: Path) -> None:
    plain = render_server_properties("127.0.0.1", 9092, 9093, tmp_path)
    assert render_server_properties("127.0.0.1", 9092, 9093, tmp_path, BrokerSecurity()) == plain
    sec = BrokerSecurity(sasl_port=9192, ssl_port=9193, sasl_ssl_port=9194, users=(("alice", "pw1"), ("bob", "pw2")),
                         keystore=tmp_path / "ks.pem", truststore=tmp_path / "ca.pem")  # fmt: skip
    props = dict(
        line.split("=", 1) for line in render_server_properties("127.0.0.1", 9092, 9093, tmp_path, sec).splitlines()
        if "=" in line and not line.startswith("#")
    )  # fmt: skip
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,SASL_PLAINTEXT://127.0.0.1:9192,"
                                  "SSL://127.0.0.1:9193,SASL_SSL://127.0.0.1:9194")  # fmt: skip
    assert props["advertised.listeners"].startswith("PLAINTEXT://127.0.0.1:9092,")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
    jaas = props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert 'user_alice="pw1"' in jaas and 'user_bob="pw2"' in jaas
    assert props["listener.name.ssl.ssl.client.auth"] == "required"
    assert props["ssl.keystore.type"] == "PEM" and props["ssl.keystore.location"] == str(tmp_path / "ks.pem")
    assert sec.scram_args()[:2] == ["--add-scram", "SCRAM-SHA-256=[name=alice,password=pw1]"]
    assert len(sec.scram_args()) == 8  # 2 users x 2 SCRAM mechanisms x (flag, value)
    assert "pw1" not in repr(sec)
    assert "authorizer.class.name" not in props  # ACLs only when asked for
    acl = BrokerSecurity(
        sasl_port=9192, users=(("alice", "pw1"),), authorizer=True, super_users=("User:alice",)
    )
    text = render_server_properties("127.0.0.1", 9092, 9093, tmp_path, acl)
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n" in text
    assert "super.users=User:ANONYMOUS;User:alice\n" in text
    assert "allow.everyone.if.no.acl.found=false\n" in text


@pytest.mark.parametrize(
    ("sec", "message"),
    [
        (BrokerSecurity(ssl_port=9193), "needs a keystore"),
        (BrokerSecurity(sasl_port=9192), "needs at least one user"),
        (BrokerSecurity(sasl_port=9192, users=(("alice", 'p"w'),)), "user 'alice'"),
        (BrokerSecurity(sasl_port=9192, users=(("alice", "a,b"),)), "user 'alice'"),
    ],
)
def test_broker_security_refuses_what_it_cannot_configure(
    sec: BrokerSecurity, message: str, tmp_path: Path
) -> None:
    with pytest.raises(StackError, match=message):
        render_server_properties("127.0.0.1", 9092, 9093, tmp_path, sec)
