"""docker-compose.yml, the Dockerfile and the Prometheus scrape config stay in step with the local stack."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

from connectors.localkafka import packaged
from driftline.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
WORKERS = ("score", "join", "train")
# Properties that differ on purpose: addresses and paths (containers listen on other names than loopback).
PLACE_DEPENDENT = {"controller.quorum.voters", "listeners", "advertised.listeners", "log.dirs",
                   "listener.security.protocol.map"}  # fmt: skip


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _template_properties() -> dict[str, str]:
    lines = [line for line in packaged("server.properties").splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_compose_kafka_matches_local_broker_settings() -> None:
    env = _compose()["services"]["kafka"]["environment"]
    compose = {key[len("KAFKA_") :].lower().replace("_", "."): str(value) for key, value in env.items()
               if key.startswith("KAFKA_") and key != "KAFKA_HEAP_OPTS"}  # fmt: skip
    local = _template_properties()
    for key, value in local.items():
        if key not in PLACE_DEPENDENT:
            assert compose.get(key) == value, (
                f"docker-compose kafka {key}={compose.get(key)!r}, local {value!r}"
            )
    assert compose["auto.create.topics.enable"] == "false"
    assert compose["offsets.topic.replication.factor"] == "1"


def test_compose_redis_persists_like_the_local_stack() -> None:
    command = _compose()["services"]["redis"]["command"]
    joined = " ".join(command)
    assert "--appendonly yes" in joined and "--appendfsync everysec" in joined


def test_workers_reach_services_by_name_and_expose_metrics() -> None:
    services = _compose()["services"]
    for role in WORKERS:
        worker = services[role]
        assert worker["command"] == ["worker", "--role", role]
        env = worker["environment"]
        # Every variable the workers get is one the settings understand.
        # (``${VAR:-default}`` as compose expands it with VAR unset.)
        expanded = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}
        settings = load_settings(environ={k: v for k, v in expanded.items() if not k.endswith("_FILE")})
        assert settings.kafka.bootstrap == "kafka:19092"
        assert settings.redis.url.get() == "redis://redis:6379/0"
        assert settings.metrics.port == 9108 and settings.metrics.host == "0.0.0.0"
        assert env["DRIFTLINE_SIGNING_KEY_FILE"].startswith("/run/secrets/")


def test_prometheus_scrapes_every_worker_service_on_the_metrics_port() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "driftline")
    (sd,) = job["dns_sd_configs"]
    assert sorted(sd["names"]) == sorted(WORKERS)
    assert sd["port"] == 9108
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make setup` (Debian package prometheus)"
    done = subprocess.run([promtool, "check", "config", "--syntax-only",
                           str(ROOT / "deploy" / "prometheus" / "prometheus.yml")],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_mounts_files_that_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_copies_every_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {p.split(".")[0].rstrip("*") for p in include}
    assert tops, "pyproject.toml finds no packages"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for top in tops:
        assert f"COPY {top}/ {top}/" in dockerfile
    assert "-c constraints.txt" in dockerfile
    assert dockerfile.splitlines()[2].startswith("FROM python:3.11-slim")
