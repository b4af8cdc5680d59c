"""``driftline doctor``: a healthy deployment passes, a wrong Kafka port fails naming the address, a short key fails."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import pytest

from connectors.topics import ALL_TOPICS, ensure_topics
from driftline.settings import Secret, load_settings
from streams.commands.doctor import check_signing_key, java_major
from tests.conftest import REDIS_URL
from tests.pipeline_helpers import KAFKA_BOOTSTRAP, Pipeline, running

GOOD_KEY = "0123456789abcdef" * 4  # 64 bytes, as `openssl rand -hex 32` prints


def _checks(proc_stdout: str) -> dict[str, dict]:
    data = json.loads(proc_stdout)
    return {c["name"]: c for c in data["checks"]} | {"_ok": data["ok"]}


@pytest.mark.kafka
@pytest.mark.slow
def test_doctor_passes_on_a_healthy_deployment_and_sees_the_worker(
    prefix: str, redis_url: str, tmp_path: Path
) -> None:
    pipeline = Pipeline(prefix, tmp_path, redis_url, extra_env={"DRIFTLINE_SIGNING_KEY": GOOD_KEY})
    ensure_topics(pipeline.settings(), names=ALL_TOPICS)
    with running(pipeline):
        pipeline.start("all")
        proc = pipeline.cli("doctor", "--json", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = _checks(proc.stdout)
    assert checks.pop("_ok") is True
    expected = ("python", "config", "java", "kafka jars", "ports", "redis-server", "kafka", "redis", "signing key",
                "replication", "topics", "workers")  # fmt: skip
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(expected, "ok")
    assert KAFKA_BOOTSTRAP in checks["kafka"]["detail"]
    assert "(64 bytes)" in checks["signing key"]["detail"]
    assert f"driftline-{prefix}" in checks["workers"]["detail"]  # the worker's consumer group


@pytest.mark.kafka
def test_doctor_fails_on_a_port_that_is_not_kafka_and_says_what_to_do(prefix: str, tmp_path: Path) -> None:
    # Something listens (the kernel accepts) but never answers the Kafka protocol: a wrong port in the settings.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(8)
        address = f"127.0.0.1:{squatter.getsockname()[1]}"
        pipeline = Pipeline(prefix, tmp_path, REDIS_URL)
        proc = pipeline.cli("--bootstrap", address, "doctor", "--json", "--timeout", "2", check=False)
        text = pipeline.cli("--bootstrap", address, "doctor", "--timeout", "2", check=False)
    assert proc.returncode == 1, proc.stderr
    checks = _checks(proc.stdout)
    assert checks.pop("_ok") is False
    assert checks["kafka"]["status"] == "fail" and address in checks["kafka"]["detail"]
    assert "DRIFTLINE_KAFKA_BOOTSTRAP" in checks["kafka"]["fix"]
    assert checks["ports"]["status"] == "fail" and address in checks["ports"]["detail"]
    assert checks["redis"]["status"] == "ok"  # the rest is still checked
    assert "topics" not in checks  # nothing to ask a broker that is not there
    assert text.returncode == 1
    assert "problem(s) block the main job: ports, kafka" in text.stdout
    assert "-> start the broker" in text.stdout


def test_signing_key_length_is_checked_and_the_fix_named() -> None:
    base = load_settings(environ={})
    for key, status in (("", "warn"), ("short-key", "fail"), ("x" * 31, "fail"), ("x" * 32, "ok")):
        # Built around load_settings, which may itself refuse short keys: this checks doctor's own rule.
        settings = dataclasses.replace(base, model=dataclasses.replace(base.model, signing_key=Secret(key)))
        check = check_signing_key(settings)
        assert check.status == status, (key, check)
        if status != "ok":
            assert "openssl rand -hex 32" in check.fix


def test_java_version_parsing() -> None:
    assert java_major('openjdk version "21.0.5" 2024-10-15') == 21
    assert java_major('java version "1.8.0_392"') == 8
    assert java_major("no version here") is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_down_broker_at_an_address_no_local_stack_serves_fails(tmp_path: Path) -> None:
    # Found from outside: DRIFTLINE_KAFKA_BOOTSTRAP=127.0.0.1:1 (nothing there, no stack ever set up there) was
    # a warning and doctor exited 0; only a down *local stack* is something `stack up` / `make demo` will start.
    from connectors.stack import stack_status
    from connectors.stack_config import StackConfig
    from streams.commands.doctor import check_kafka, check_redis

    port, rport = _free_port(), _free_port()
    env = {
        "DRIFTLINE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{rport}/0",
        "DRIFTLINE_STATE_DIR": str(tmp_path),
    }
    settings = load_settings(environ=env)
    cfg = StackConfig.from_settings(settings)
    status = stack_status(cfg)
    assert status.kafka.state == "down" and status.redis.state == "down"
    kafka = check_kafka(settings, cfg, status, 0.5)
    redis_check = check_redis(settings, cfg, status, 0.5)
    assert kafka.status == "fail" and f"127.0.0.1:{port}" in kafka.detail
    assert "DRIFTLINE_KAFKA_BOOTSTRAP" in kafka.fix and "`driftline stack up`" in kafka.fix
    assert redis_check.status == "fail" and f"127.0.0.1:{rport}" in redis_check.detail
    # Once a local stack was set up on these ports in this state directory, down is what `stack up` fixes.
    (cfg.kafka_dir).mkdir(parents=True)
    (cfg.kafka_dir / "server.properties").write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://x\n"
    )
    (cfg.redis_dir).mkdir(parents=True)
    (cfg.redis_dir / "redis.conf").write_text(f"bind 127.0.0.1\nport {rport}\n")
    assert check_kafka(settings, cfg, status, 0.5).status == "warn"
    assert check_redis(settings, cfg, status, 0.5).status == "warn"
