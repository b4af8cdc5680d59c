"""Transport security against real servers: a second local broker with SASL and TLS listeners, Redis with AUTH and TLS.

One broker (started once for the module, on free ports; the dev stack on 9092/6379 is never touched) serves
PLAINTEXT plus SASL_PLAINTEXT (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), SSL with required client certificates, and
SASL_SSL. A test CA made here with the ``openssl`` CLI signs the broker's, Redis's and the client's certificates.
Every client is exercised: confluent-kafka admin/producer/consumer through ``client_config``, Faust/aiokafka through
real ``driftline worker`` processes, and ``driftline produce`` / ``tail`` configured from YAML and the environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from connectors.kafka_client import check_reachable
from connectors.localkafka import BrokerSecurity
from connectors.localproc import free_port
from connectors.producer import DeliveryError, EventProducer
from connectors.stack import StackConfig, stack_down, stack_up
from connectors.tail import assign_tail, read_until_end
from connectors.topics import ALL_TOPICS, ensure_topics
from driftline.errors import StackError
from driftline.settings import Settings, load_settings
from schemas.codec import default_codec
from streams.join import build_join_store
from streams.trainer_status import trainer_status
from tests.pipeline_helpers import labels_learned, metric_value
from tests.waiting import wait_until

USER = "alice"
# Distinctive values, so grepping a log for them cannot match anything by accident.
SASL_PASSWORD = "sasl-Pw-7f3a9c2e41d8"
REDIS_PASSWORD = "redis-Pw-0b5e8d6a93c1"
SIGNING_KEY = "signing-Key-5c1f0e7b2a94d3-9e8d7c6b5a4f3e2d1c0b"
# A second SASL user that is not a super user: it gets only the ACLs a test grants.
PRODUCER = "producer"
PRODUCER_PASSWORD = "producer-Pw-2d7c"


# ---------------------------------------------------------------- a test PKI, made with the openssl CLI


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path, *, key_password: str | None = None) -> dict[str, Path]:
    """A CA and server/client certificates for 127.0.0.1 and localhost, in ``directory``.

    Returns paths: ``ca``, ``server_cert``, ``server_key``, ``keystore`` (server key + chain, for Kafka's PEM
    keystore), ``client_cert``, ``client_key`` (encrypted with ``key_password`` when given) and ``other_ca`` (a CA
    that signed nothing here, for "untrusted" cases).
    """
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    for name, subject in (("ca", "driftline test CA"), ("other_ca", "some other CA")):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
                 "-days", "2", "-subj", f"/CN={subject}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    ext = d / "leaf.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    for who in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out", f"{who}.csr",
                 "-subj", f"/CN=driftline-{who}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{who}.pem", "-days", "2", "-extfile", "leaf.ext", cwd=d)  # fmt: skip
    if key_password:
        _openssl("pkcs8", "-topk8", "-in", "client.key", "-out", "client.enc.key", "-passout",
                 f"pass:{key_password}", cwd=d)  # fmt: skip
    (d / "keystore.pem").write_text((d / "server.key").read_text() + (d / "server.pem").read_text())
    return {
        "ca": d / "ca.pem",
        "other_ca": d / "other_ca.pem",
        "server_cert": d / "server.pem",
        "server_key": d / "server.key",
        "keystore": d / "keystore.pem",
        "client_cert": d / "client.pem",
        "client_key": d / ("client.enc.key" if key_password else "client.key"),
    }


# ---------------------------------------------------------------- the secured servers


@dataclass(frozen=True)
class Secured:
    """Addresses and files of the module's secured servers."""

    pki: dict[str, Path]
    plaintext: str  # the broker's own PLAINTEXT listener (User:ANONYMOUS, a super user): admin only
    sasl: str  # SASL_PLAINTEXT bootstrap
    ssl: str  # SSL (client certificate required)
    sasl_ssl: str  # SASL_SSL
    redis_auth_url: str  # redis:// with AUTH
    redis_tls_url: str  # rediss:// with AUTH and the test CA
    root: Path

    def kafka(self, kind: str, **changes: Any) -> dict[str, Any]:
        """``kafka`` settings for one listener/mechanism (``plain``, ``scram256``, ``scram512``, ``ssl``,
        ``sasl_ssl``)."""
        conf: dict[str, Any] = {
            "plain": {"bootstrap": self.sasl, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"},
            "scram256": {"bootstrap": self.sasl, "security_protocol": "SASL_PLAINTEXT",
                         "sasl_mechanism": "SCRAM-SHA-256"},
            "scram512": {"bootstrap": self.sasl, "security_protocol": "SASL_PLAINTEXT",
                         "sasl_mechanism": "SCRAM-SHA-512"},
            "ssl": {"bootstrap": self.ssl, "security_protocol": "SSL", "ssl_cafile": str(self.pki["ca"]),
                    "ssl_certfile": str(self.pki["client_cert"]), "ssl_keyfile": str(self.pki["client_key"])},
            "sasl_ssl": {"bootstrap": self.sasl_ssl, "security_protocol": "SASL_SSL",
                         "sasl_mechanism": "SCRAM-SHA-512", "ssl_cafile": str(self.pki["ca"])},
        }[kind]  # fmt: skip
        if "sasl_mechanism" in conf:
            conf["sasl_username"] = USER
        conf.update(changes)
        return conf

    def settings(self, kind: str, prefix: str, password: str = SASL_PASSWORD, **changes: Any) -> Settings:
        overrides = {f"kafka.{k}": v for k, v in self.kafka(kind, **changes).items()}
        if kind not in ("ssl",):
            overrides["kafka.sasl_password"] = password
        overrides.update(
            {
                "kafka.topic_prefix": prefix,
                "kafka.partitions": 1,
                "redis.url": self.redis_tls_url,
                "redis.key_prefix": prefix.rstrip("."),
            }
        )
        return load_settings(environ={}, overrides=overrides)


def _start_tls_redis(pki: dict[str, Path], directory: Path, port: int) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "redis-tls.conf"
    conf.touch(mode=0o600)
    conf.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                "port 0",  # TLS only
                f"tls-port {port}",
                f"tls-cert-file {pki['server_cert']}",
                f"tls-key-file {pki['server_key']}",
                f"tls-ca-cert-file {pki['ca']}",
                "tls-auth-clients no",
                f'requirepass "{REDIS_PASSWORD}"',
                'save ""',
                "appendonly no",
                f"dir {directory}",
                "daemonize no",
                "",
            ]
        )
    )
    with (directory / "redis-tls.log").open("ab") as log:
        proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", str(conf)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    url = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={pki['ca']}"

    def exited() -> str | None:
        return None if proc.poll() is None else f"redis-server exited with status {proc.poll()}"

    try:
        wait_until(
            "TLS redis to answer",
            lambda: redis.Redis.from_url(url, socket_timeout=1).ping(),
            15,
            0.1,
            abort=exited,
            context=lambda: (directory / "redis-tls.log").read_text(),
        )
    except AssertionError:
        proc.kill()
        raise
    return proc


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("secured")
    pki = make_pki(root / "pki")
    ports = {name: free_port() for name in ("plain", "controller", "sasl", "ssl", "sasl_ssl", "redis", "tls")}
    security = BrokerSecurity(
        sasl_port=ports["sasl"],
        ssl_port=ports["ssl"],
        sasl_ssl_port=ports["sasl_ssl"],
        users=((USER, SASL_PASSWORD), (PRODUCER, PRODUCER_PASSWORD)),
        keystore=pki["keystore"],
        truststore=pki["ca"],
        authorizer=True,
        super_users=(f"User:{USER}", "User:CN=driftline-client"),
    )
    home = os.environ.get("KAFKA_HOME")
    cfg = StackConfig(
        state_dir=root / "stack",
        kafka_port=ports["plain"],
        controller_port=ports["controller"],
        redis_port=ports["redis"],
        redis_password=REDIS_PASSWORD,
        kafka_home=Path(home) if home else None,
        kafka_security=security,
    )
    tls_redis = None
    try:
        stack_up(cfg, timeout_s=120)
        tls_redis = _start_tls_redis(pki, root / "redis-tls", ports["tls"])
        yield Secured(
            pki=pki,
            plaintext=f"127.0.0.1:{ports['plain']}",
            sasl=f"127.0.0.1:{ports['sasl']}",
            ssl=f"127.0.0.1:{ports['ssl']}",
            sasl_ssl=f"127.0.0.1:{ports['sasl_ssl']}",
            redis_auth_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{ports['redis']}/0",
            redis_tls_url=f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{ports['tls']}/0?ssl_ca_certs={pki['ca']}",
            root=root,
        )
    finally:
        if tls_redis is not None:
            tls_redis.terminate()
            try:
                tls_redis.wait(10)
            except subprocess.TimeoutExpired:
                tls_redis.kill()
                tls_redis.wait(5)
        stack_down(cfg, grace_s=20)


def _read_all(settings: Settings, topic: str) -> list[dict[str, Any]]:
    consumer, ends = assign_tail(settings, topic, None)
    try:
        records = read_until_end(consumer, default_codec(), topic, ends)
    finally:
        consumer.close()
    return [r.value for r in records if r.ok and r.value is not None]


# ---------------------------------------------------------------- confluent-kafka: admin, producer, consumer


@pytest.mark.kafka
@pytest.mark.parametrize("kind", ["plain", "scram256", "scram512", "ssl", "sasl_ssl"])
def test_confluent_clients_work_over_each_listener(secured: Secured, prefix: str, kind: str) -> None:
    settings = secured.settings(kind, prefix)
    check_reachable(settings, timeout=20)
    ensure_topics(settings)  # admin client
    with EventProducer(settings) as producer:
        for i in range(5):
            producer.send_feature(f"{kind}-{i}", {"x": float(i)})
    values = _read_all(settings, "features")  # consumer
    assert [v["id"] for v in values] == [f"{kind}-{i}" for i in range(5)]
    assert [v["features"]["x"] for v in values] == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("kind", "changes", "expected"),
    [
        (
            "scram256",
            {"sasl_password": "wrong-password"},
            "refused the SASL SCRAM-SHA-256 login of user 'alice'",
        ),
        ("plain", {"sasl_username": "mallory"}, "refused the SASL PLAIN login of user 'mallory'"),
        ("sasl_ssl", {"ssl_cafile": "other_ca"}, "TLS with Kafka"),
        ("ssl", {"ssl_certfile": None, "ssl_keyfile": None}, "TLS with Kafka"),
    ],
    ids=["wrong-password", "unknown-user", "untrusted-broker", "no-client-cert"],
)
def test_refused_credentials_fail_fast_with_a_clear_error(
    secured: Secured, prefix: str, kind: str, changes: dict[str, Any], expected: str
) -> None:
    password = changes.pop("sasl_password", SASL_PASSWORD)
    if changes.get("ssl_cafile") == "other_ca":
        changes["ssl_cafile"] = str(secured.pki["other_ca"])
    settings = secured.settings(kind, prefix, password=password, **changes)
    started = time.monotonic()
    with pytest.raises(StackError) as err:
        check_reachable(settings, timeout=30)
    # Refused, not waited out: the error arrives long before the 30 s reachability timeout.
    assert time.monotonic() - started < 20
    assert expected in str(err.value)
    assert SASL_PASSWORD not in str(err.value) and "wrong-password" not in str(err.value)


@pytest.mark.kafka
def test_acls_keep_a_producer_principal_to_its_own_topics(secured: Secured, prefix: str) -> None:
    """SECURITY.md's table, enforced by the broker: producers write features and labels, never models or control."""
    admin_settings = secured.settings("scram512", prefix)  # alice, a super user
    ensure_topics(admin_settings)
    admin = AdminClient({"bootstrap.servers": secured.plaintext})
    grants = [
        AclBinding(ResourceType.TOPIC, admin_settings.topic(name), ResourcePatternType.LITERAL, f"User:{PRODUCER}",
                   "*", AclOperation.WRITE, AclPermissionType.ALLOW)
        for name in ("features", "labels")
    ]  # fmt: skip
    for future in admin.create_acls(grants).values():
        future.result()
    # ACLs reach the broker's authorizer through the metadata log, a moment after create_acls returns.
    anything: Any = None  # matches any name / host (confluent-kafka's stubs say str)
    mine = AclBindingFilter(ResourceType.TOPIC, anything, ResourcePatternType.ANY, f"User:{PRODUCER}", anything,
                            AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    wait_until(
        "the ACLs at the broker", lambda: len(admin.describe_acls(mine).result()) >= len(grants), 30, 0.2
    )
    producer = secured.settings("scram512", prefix, password=PRODUCER_PASSWORD, sasl_username=PRODUCER)

    with EventProducer(producer) as out:
        out.send_feature("allowed-1", {"x": 1.0})
        out.send_label("allowed-1", True)
    assert [v["id"] for v in _read_all(admin_settings, "features")] == ["allowed-1"]
    for topic in ("models", "control", "training"):
        with (
            pytest.raises(DeliveryError, match=r"TOPIC_AUTHORIZATION_FAILED"),
            EventProducer(producer) as out,
        ):
            out.produce_bytes(admin_settings.topic(topic), b"forged", b"default")
        assert _read_all(admin_settings, topic) == []


# ---------------------------------------------------------------- Redis: AUTH and TLS


@pytest.mark.kafka
def test_join_store_over_redis_auth_and_tls(secured: Secured, prefix: str) -> None:
    for url in (secured.redis_auth_url, secured.redis_tls_url):
        settings = load_settings(
            environ={}, overrides={"redis.url": url, "redis.key_prefix": prefix.rstrip(".")}
        )
        store = build_join_store(settings)
        try:
            store.ping()
            assert store.put_predictions([("e1", b"context")], 1_000) == []
            lookups = store.lookup_labels([("e1", b"label")], 1_001)
            assert [(x.status, x.context) for x in lookups] == [("ctx", b"context")]
        finally:
            store.close()
    wrong = secured.redis_tls_url.replace(REDIS_PASSWORD, "not-the-password")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(wrong, socket_timeout=3).ping()
    untrusted = secured.redis_tls_url.replace(str(secured.pki["ca"]), str(secured.pki["other_ca"]))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        redis.Redis.from_url(untrusted, socket_timeout=3).ping()
    plaintext_to_auth = secured.redis_auth_url.replace(f":{REDIS_PASSWORD}@", "")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(plaintext_to_auth, socket_timeout=3).ping()


# ---------------------------------------------------------------- real workers, the CLI, and no secret in any log


def _yaml_config(path: Path, secured: Secured, kind: str, prefix: str) -> Path:
    """A settings file as an operator would write it: no secrets in it (they come from files via the env)."""
    data = {
        "kafka": {**secured.kafka(kind), "topic_prefix": prefix, "partitions": 1,
                  "client_id": f"driftline-{prefix.rstrip('.')}-{kind}"},
        "redis": {"key_prefix": prefix.rstrip(".")},
        "model": {"artifact_store": str(path.parent / "artifacts")},
        "state_dir": str(path.parent / "state"),
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data))
    return path


def _env(config: Path, secrets_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    base.update(
        {
            "DRIFTLINE_CONFIG": str(config),
            "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE": str(secrets_dir / "sasl_password"),
            "DRIFTLINE_SIGNING_KEY_FILE": str(secrets_dir / "signing_key"),
            "DRIFTLINE_REDIS_URL_FILE": str(secrets_dir / "redis_url"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return base


def _cli(env: Mapping[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class _Worker:
    role: str
    proc: subprocess.Popen[bytes]
    log: Path
    port: int


def _start_worker(role: str, env: Mapping[str, str], log: Path) -> _Worker:
    port = free_port()
    cmd = [sys.executable, "-m", "streams.cli", "-vv", "worker", "--role", role,
           "--metrics-port", str(port), "--loglevel", "debug"]  # fmt: skip
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            cmd, env=dict(env), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    return _Worker(role, proc, log, port)


def _served_version(worker: _Worker) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return metric_value(text, "driftline_served_model_version")


def _stop(workers: list[_Worker]) -> None:
    for w in workers:
        if w.proc.poll() is None:
            w.proc.terminate()
    for w in workers:
        try:
            w.proc.wait(30)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait(10)


def _wait(what: str, predicate: Any, workers: list[_Worker], timeout: float) -> Any:
    def dead() -> str | None:
        gone = [w.role for w in workers if w.proc.poll() is not None]
        return f"worker(s) {gone} died" if gone else None

    def tails() -> str:
        return "\n".join(f"--- {w.role}\n" + "\n".join(w.log.read_text().splitlines()[-25:]) for w in workers)

    return wait_until(what, predicate, timeout, 0.5, abort=dead, context=tails)


@pytest.mark.kafka
def test_workers_and_cli_over_sasl_and_tls_keep_secrets_out_of_logs(secured: Secured, prefix: str) -> None:
    """score over SASL_SSL/SCRAM-SHA-512, join over SASL_PLAINTEXT/PLAIN, train over mutual TLS; Redis over TLS
    with AUTH; every secret from a file; DEBUG logging everywhere; then no secret in any log."""
    root = secured.root / prefix.rstrip(".")
    secrets_dir = root / "secrets"
    secrets_dir.mkdir(parents=True)
    for name, value in (("sasl_password", SASL_PASSWORD), ("signing_key", SIGNING_KEY),
                        ("redis_url", secured.redis_tls_url)):  # fmt: skip
        (secrets_dir / name).write_text(value + "\n")
    envs = {
        kind: _env(_yaml_config(root / f"{kind}.yaml", secured, kind, prefix), secrets_dir)
        for kind in ("sasl_ssl", "plain", "ssl", "scram256")
    }
    n = 40
    ids = {f"e{i}" for i in range(n)}
    features = root / "features.jsonl"
    features.write_text("".join(json.dumps({"id": f"e{i}", "x": i % 7 / 7, "z": (i * 3) % 5 / 5}) + "\n"
                                for i in range(n)))  # fmt: skip
    labels = root / "labels.jsonl"
    labels.write_text("".join(json.dumps({"id": f"e{i}", "y": i % 7 > 3}) + "\n" for i in range(n)))

    logs = root / "logs"
    logs.mkdir()
    workers: list[_Worker] = []
    cli_output: list[str] = []
    try:
        workers = [
            _start_worker("train", envs["ssl"], logs / "train.log"),
            _start_worker("score", envs["sasl_ssl"], logs / "score.log"),
            _start_worker("join", envs["plain"], logs / "join.log"),
        ]
        settings = load_settings(environ=envs["scram256"])
        _wait("the trainer's first release", lambda: trainer_status(settings), workers, 120)
        # Features only once the scorer serves a model, so every prediction carries a version.
        _wait("the scorer to load the first release", lambda: _served_version(workers[1]) >= 1, workers, 120)

        done = _cli(
            envs["scram256"], "produce", "features", "--file", str(features), "--id-col", "id", "--json"
        )
        cli_output.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr
        _wait(
            "a prediction from a loaded model for every event",
            lambda: {p["id"] for p in _read_all(settings, "predictions") if p["version"]} >= ids,
            workers,
            120,
        )
        done = _cli(envs["sasl_ssl"], "produce", "labels", "--file", str(labels), "--id-col", "id",
                    "--label-col", "y", "--json")  # fmt: skip
        cli_output.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stderr
        status = _wait(
            f"{n} labels learned",
            lambda: (s := trainer_status(settings)) and labels_learned(s) >= n and s,
            workers,
            120,
        )
        assert labels_learned(status) == n

        tail = _cli(envs["ssl"], "tail", "predictions", "-n", str(n), "--json")
        cli_output.append(tail.stdout + tail.stderr)
        assert tail.returncode == 0, tail.stderr
        shown = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
        assert len(shown) == n
        shown_config = _cli(envs["sasl_ssl"], "config", "show", "--json")
        cli_output.append(shown_config.stdout + shown_config.stderr)
        effective = json.loads(shown_config.stdout)
        assert effective["redis"]["url"].startswith("rediss://:***@127.0.0.1:")
        assert effective["kafka"]["sasl_password"] == "********"
        assert effective["model"]["signing_key"] == "********"
    finally:
        _stop(workers)

    texts = {w.role: w.log.read_text(errors="replace") for w in workers}
    # DEBUG really was on, Faust's own lines included, so the check below means something.
    assert all(" DEBUG faust." in text for text in texts.values()), {r: t[-2000:] for r, t in texts.items()}
    # Faust's aiokafka client really logged in with SASL PLAIN (the join worker's mechanism). The score worker may
    # read features through confluent-kafka instead of aiokafka; either way it went through the SASL_SSL listener.
    assert f"Authenticated as {USER} via PLAIN" in texts["join"]
    texts.update({f"cli-{i}": text for i, text in enumerate(cli_output)})
    for name, text in texts.items():
        for secret in (SASL_PASSWORD, REDIS_PASSWORD, SIGNING_KEY):
            assert secret not in text, f"{secret[:8]}... leaked into the {name} log"


@pytest.mark.kafka
def test_cli_with_a_wrong_password_exits_with_a_clear_error(
    secured: Secured, prefix: str, tmp_path: Path
) -> None:
    config = _yaml_config(tmp_path / "c.yaml", secured, "scram512", prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE")}
    env.update({"DRIFTLINE_CONFIG": str(config), "DRIFTLINE_KAFKA_SASL_PASSWORD": "not-it",
                "DRIFTLINE_REDIS_URL": secured.redis_tls_url, "DRIFTLINE_SIGNING_KEY": SIGNING_KEY})  # fmt: skip
    rows = tmp_path / "f.jsonl"
    rows.write_text('{"id": "a", "x": 1}\n')
    commands = (("produce", "features", "--file", str(rows)), ("tail", "features"),
                ("worker", "--role", "score", "--metrics-port", "0"))  # fmt: skip
    for args in commands:
        started = time.monotonic()
        done = _cli(env, *args, timeout=60)
        assert done.returncode == 1
        assert "refused the SASL SCRAM-SHA-512 login of user 'alice'" in done.stderr
        assert time.monotonic() - started < 30


def _documented_acls(role: str, principal: str, prefix: str) -> list[AclBinding]:
    """SECURITY.md's example ACLs of one role (its `acl ...` lines and the consumer-group loop), for ``principal``
    and ``prefix`` instead of ``User:<role>`` and ``driftline.``."""
    text = (Path(__file__).resolve().parents[1] / "SECURITY.md").read_text()
    block = text.split("Example ACLs", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    kinds = {"--topic": ResourceType.TOPIC, "--group": ResourceType.GROUP,
             "--transactional-id": ResourceType.TRANSACTIONAL_ID}  # fmt: skip
    bindings = []
    for line in block.splitlines():
        line = line.strip().replace("User:$p", f"User:{role}")
        if "acl --allow-principal" not in line or f"User:{role} " not in line + " ":
            continue
        words = line[line.index("acl --allow-principal") :].split(";")[0].split()
        operations, resources = [], []
        pattern = ResourcePatternType.LITERAL
        for flag, value in zip(words[1::2], words[2::2], strict=False):
            if flag == "--operation":  # Read -> READ, DescribeConfigs -> DESCRIBE_CONFIGS
                operations.append(AclOperation[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", value).upper()])
            elif flag in kinds:
                resources.append((kinds[flag], value.replace("driftline.", prefix)))
            elif flag == "--resource-pattern-type":
                pattern = ResourcePatternType[value.upper()]
        bindings += [
            AclBinding(kind, name, pattern, f"User:{principal}", "*", op, AclPermissionType.ALLOW)
            for kind, name in resources
            for op in operations
        ]
    return bindings


ROLE_PRINCIPALS = {"score": "scorer", "join": "joiner", "train": "trainer", "operator": "operator"}


@pytest.mark.kafka
@pytest.mark.parametrize("role", list(ROLE_PRINCIPALS))
def test_each_worker_runs_with_the_acls_security_md_gives_it(
    secured: Secured, prefix: str, role: str
) -> None:
    """SECURITY.md's example ACLs of one role, granted to a principal that has nothing else, are enough for that
    worker; the other two run as a super user. Labels go first for the scorer (it joins a label parked before its
    prediction), features first otherwise (the joiner joins the labels); every label is learned, and the trainer's
    transactions commit its release, changelog record and audit entries. For the operator, every worker runs as
    the super user and the operator's commands (pause, resume, audit verify, models list) succeed."""
    admin_settings = secured.settings(
        "scram512", prefix
    )  # alice, a super user: creates the topics beforehand
    ensure_topics(admin_settings, ALL_TOPICS)  # as `driftline topics create` does
    grants = _documented_acls(ROLE_PRINCIPALS[role], PRODUCER, prefix)
    assert {b.restype for b in grants} >= {ResourceType.TOPIC, ResourceType.GROUP}
    admin = AdminClient({"bootstrap.servers": secured.plaintext})
    for future in admin.create_acls(grants).values():
        future.result()
    anything: Any = None
    mine = AclBindingFilter(ResourceType.ANY, anything, ResourcePatternType.ANY, f"User:{PRODUCER}", anything,
                            AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    wait_until(
        "the ACLs at the broker", lambda: len(admin.describe_acls(mine).result()) >= len(grants), 30, 0.2
    )

    root = secured.root / prefix.rstrip(".")
    envs = {}
    for who, password in ((USER, SASL_PASSWORD), (PRODUCER, PRODUCER_PASSWORD)):
        secrets_dir = root / who / "secrets"
        secrets_dir.mkdir(parents=True)
        for name, value in (("sasl_password", password), ("signing_key", SIGNING_KEY),
                            ("redis_url", secured.redis_tls_url)):  # fmt: skip
            (secrets_dir / name).write_text(value + "\n")
        config = _yaml_config(root / who / "config.yaml", secured, "scram512", prefix)
        data = yaml.safe_load(config.read_text())
        data["kafka"]["sasl_username"] = who
        data["state_dir"] = str(root / "state")  # one deployment: the trainer's audit file where status looks
        config.write_text(yaml.safe_dump(data))
        envs[who] = _env(config, secrets_dir)
    (root / "logs").mkdir()
    n = 30
    workers: list[_Worker] = []
    try:
        for r in ("train", "score", "join"):
            workers.append(
                _start_worker(r, envs[PRODUCER if r == role else USER], root / "logs" / f"{r}.log")
            )
        score = workers[1]
        _wait("the trainer's first release", lambda: trainer_status(admin_settings), workers, 120)
        _wait("the scorer to load the first release", lambda: _served_version(score) >= 1, workers, 120)
        with EventProducer(admin_settings) as out:
            for step in ("labels", "features") if role == "score" else ("features", "labels"):
                for i in range(n):
                    if step == "features":
                        out.send_feature(f"a{i}", {"x": i % 7 / 7})
                    else:
                        out.send_label(f"a{i}", i % 7 > 3)
                out.flush()
                if step == "features" and role != "score":
                    _wait(
                        "a prediction for every event",
                        lambda: len({p["id"] for p in _read_all(admin_settings, "predictions")}) >= n,
                        workers,
                        120,
                    )
        _wait(
            f"{n} labels learned",
            lambda: labels_learned(trainer_status(admin_settings) or {}) >= n,
            workers,
            120,
        )
        assert all(w.proc.poll() is None for w in workers)
        if role == "operator":  # the command line an operator runs, with the operator's lines only
            for args in (("models", "pause"), ("models", "resume"), ("audit", "verify"), ("models", "list")):
                done = _cli(envs[PRODUCER], *args)
                (root / "logs" / "operator.log").open("a").write(done.stdout + done.stderr)
                assert done.returncode == 0, (args, done.stdout + done.stderr)
    finally:
        _stop(workers)
    log = (root / "logs" / f"{role}.log").read_text(errors="replace")
    assert "AUTHORIZATION_FAILED" not in log, log[-3000:]
    assert [r["version"] for r in _read_all(admin_settings, "models")][:1] == [1]
    # The trainer's transactions committed records on changelog and audit too (not Avro: counted, not decoded).
    probe = Consumer({"bootstrap.servers": secured.plaintext, "group.id": f"{prefix}probe"})
    try:
        for name in ("changelog", "audit"):
            topic = admin_settings.topic(name)
            parts = probe.list_topics(topic, timeout=10).topics[topic].partitions
            ends = [probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts]
            assert sum(ends) > 0, name
    finally:
        probe.close()
