"""How the local stack runs Apache Kafka from plain jars: fetch, render the config, format, build the command.

Debian does not package Kafka, so the broker (``org.apache.kafka:kafka_2.13``) and its runtime dependencies
come from Maven Central through ``connectors/kafka/pom.xml``, once, into
``~/.cache/driftline/kafka-<version>/libs`` (or from ``$KAFKA_HOME/libs``).
:mod:`connectors.stack` decides when to start and stop it.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path
from string import Template

from connectors.localproc import require_tool
from driftline.errors import StackError

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
KAFKA_HEAP = "1g"


def packaged(name: str) -> str:
    """Text of a file shipped in ``connectors/kafka/`` (pom, properties templates)."""
    return resources.files("connectors").joinpath("kafka", name).read_text()


def render_server_properties(host: str, kafka_port: int, controller_port: int, data_dir: Path) -> str:
    """The broker's ``server.properties`` (from the ``connectors/kafka/server.properties`` template)."""
    return Template(packaged("server.properties")).substitute(
        host=host, kafka_port=kafka_port, controller_port=controller_port, data_dir=data_dir
    )


def kafka_cluster_id() -> str:
    """A random KRaft cluster id (base64url of 16 bytes); Kafka rejects ids starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def is_kafka_process(cmdline: list[str], properties: Path) -> bool:
    """The broker we started runs ``kafka.Kafka`` with our properties file."""
    return "kafka.Kafka" in cmdline and str(properties) in cmdline


def libs_cached(cache_dir: Path) -> bool:
    """True when a complete set of jars is in the cache (the marker is written last)."""
    return (cache_dir / f"kafka-{KAFKA_VERSION}" / "libs.complete").exists()


def kafka_libs(cache_dir: Path, kafka_home: Path | None = None) -> Path:
    """The broker's jars: ``kafka_home/libs`` when given, else fetched once with Maven into ``cache_dir``."""
    if kafka_home is not None:
        libs = kafka_home / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise StackError(
                f"KAFKA_HOME={kafka_home} is not a Kafka distribution (no libs/kafka_2.13-*.jar)"
            )
        return libs
    home = cache_dir / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    if libs_cached(cache_dir):
        return libs
    mvn = require_tool("mvn")
    home.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{libs}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    with resources.as_file(resources.files("connectors").joinpath("kafka", "pom.xml")) as pom:
        cmd = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
               f"-DoutputDirectory={partial}", f"-Dkafka.version={KAFKA_VERSION}"]  # fmt: skip
        log.info("fetching Apache Kafka %s jars into %s", KAFKA_VERSION, libs)
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
        shutil.rmtree(partial, ignore_errors=True)
        output = (done.stdout + done.stderr)[-2000:]
        raise StackError(f"mvn could not fetch Apache Kafka {KAFKA_VERSION} from Maven Central:\n{output}")
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)  # a rename, so a half-fetched cache is never used
    (home / "libs.complete").write_text(KAFKA_VERSION + "\n")
    return libs


def java_command(libs: Path, kafka_dir: Path, main: str, *args: str) -> list[str]:
    """``java ... -cp libs/* main args`` with the local broker's heap, log directory and log4j2 config."""
    java = require_tool("java")
    return [java, f"-Xmx{KAFKA_HEAP}", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            # Kafka's own shutdown hook logs the shutdown; log4j's hook would close the log file under it.
            "-Dlog4j2.shutdownHookEnabled=false", f"-Dkafka.logs.dir={kafka_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={kafka_dir / 'log4j2.properties'}",
            "-cp", f"{libs}/*", main, *args]  # fmt: skip


def prepare(libs: Path, kafka_dir: Path, properties: str) -> Path:
    """Write config files into ``kafka_dir``, format KRaft storage the first time; return the props path."""
    (kafka_dir / "logs").mkdir(parents=True, exist_ok=True)
    props = kafka_dir / "server.properties"
    props.write_text(properties)
    (kafka_dir / "log4j2.properties").write_text(packaged("log4j2.properties"))
    if not (kafka_dir / "data" / "meta.properties").exists():
        # A static quorum (controller.quorum.voters), so the format takes no --standalone.
        fmt = java_command(libs, kafka_dir, "kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(),
                           "-c", str(props))  # fmt: skip
        done = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"formatting KRaft storage failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return props
