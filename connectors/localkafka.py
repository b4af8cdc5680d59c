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
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template

from connectors.localproc import require_tool
from driftline.errors import StackError

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
KAFKA_HEAP = "1g"
# A node of a local multi-broker cluster: three JVMs share a developer machine (or a CI runner).
CLUSTER_NODE_HEAP = "384m"
# Overrides the maximum heap of every local broker (e.g. ``512m``), for small machines.
HEAP_ENV = "DRIFTLINE_KAFKA_HEAP"
#: The JVM options of Kafka's own start scripts (kafka-run-class.sh): G1 aiming at 20 ms pauses. G1's default
#: aim is 200 ms, and each such pause stalls every produce and fetch on the broker at once.
#:
#: Then the JIT compiler threads (and the code cache sweeper) at nice 19, every other thread of the broker at 0
#: as before. A fresh broker's C2 compiler still takes 0.1-0.2 of a core, in bursts to 0.5-0.7, through the first
#: minutes of traffic even after ``connectors.warmup``; it keeps compiling while a GC pause has stopped every other
#: thread, and on a small machine it took that CPU from the broker's request and GC threads. At nice 19 it runs on
#: what they leave. On fresh brokers, alternated with the old options under load 2-5 (BENCHMARKS.md, session 26),
#: the bench's first latency phase (LR) read p99 median 112 ms against 218 ms over eight runs each (0.51x); the
#: tree's, later on a warmer broker, no clear change; broker CPU per record none; the warm-up that waits for the
#: compiler to go quiet took 2.9 s longer. A broker that has run for minutes compiles nothing: no change there.
#: With CPU autogroups (most desktop Linux) nice only divides the broker's own share: it gives no CPU to a worker.
#: ``ThreadPriorityPolicy=1`` makes the JVM apply thread priorities at all; without root it prints a one-line
#: warning into the broker's log (raising a thread's nice needs no privilege). As root it would also give threads
#: of Java priority 6-10 (GC, VM thread, reference handler) a negative nice and 1-4 a positive one: the
#: ``JavaPriorityN_To_OSPriority=0`` options keep them all at 0, so root and non-root brokers run alike. (The JVM
#: sets these values absolutely: a root broker started under ``nice`` runs its threads at 0, not the launcher's.)
KAFKA_JVM_OPTS = " ".join(
    (
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:ThreadPriorityPolicy=1",
        "-XX:CompilerThreadPriority=19",
        *(f"-XX:JavaPriority{p}_To_OSPriority=0" for p in range(1, 11) if p != 5),
    )
)
JVM_OPTS_ENV = "DRIFTLINE_KAFKA_JVM_OPTS"


def packaged(name: str) -> str:
    """Text of a file shipped in ``connectors/kafka/`` (pom, properties templates)."""
    return resources.files("connectors").joinpath("kafka", name).read_text()


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Characters that would break the JAAS line, the properties file or the StorageTool's --add-scram syntax.
_UNSAFE_SECRET = frozenset("\"\\,[]='") | frozenset(" \t\r\n")


@dataclass(frozen=True)
class BrokerSecurity:
    """Authenticated listeners added to the local broker next to its PLAINTEXT one.

    For trying and testing TLS and SASL clients, not for hardening: the PLAINTEXT listener stays open (the broker
    talks to itself over it) and no authorizer is configured. Each of ``users`` (name, password) gets a PLAIN
    login and SCRAM-SHA-256/512 credentials; SCRAM credentials are written when the KRaft storage is first
    formatted, so users added later need a fresh state directory. ``keystore`` is one PEM file holding the
    broker's unencrypted PKCS#8 private key and its certificate chain. With ``truststore`` (a CA PEM file) the
    SSL listener requires client certificates (mutual TLS); SASL_SSL clients authenticate with SASL instead.
    With ``authorizer`` the broker enforces ACLs (``User:<name>`` for SASL users, ``User:CN=...`` for
    certificates); ``super_users`` (e.g. ``"User:alice"``) bypass them.

    >>> sec = BrokerSecurity(sasl_port=9192, users=(("alice", "pw"),))
    >>> sec.listeners()
    [('SASL_PLAINTEXT', 9192)]
    """

    sasl_port: int | None = None
    ssl_port: int | None = None
    sasl_ssl_port: int | None = None
    users: Sequence[tuple[str, str]] = field(default=(), repr=False)
    keystore: Path | None = None
    truststore: Path | None = None
    # Kafka's StandardAuthorizer, deny by default: principals not in super_users need ACLs for everything.
    # User:ANONYMOUS (the PLAINTEXT and controller listeners: the broker itself, local admin) is always super.
    authorizer: bool = False
    super_users: Sequence[str] = ()

    def listeners(self) -> list[tuple[str, int]]:
        """(protocol, port) of every extra listener."""
        named = (("SASL_PLAINTEXT", self.sasl_port), ("SSL", self.ssl_port), ("SASL_SSL", self.sasl_ssl_port))
        return [(proto, port) for proto, port in named if port]

    def check(self) -> None:
        """Raise :class:`StackError` when the listeners cannot be configured as asked."""
        protocols = {proto for proto, _ in self.listeners()}
        if protocols & {"SSL", "SASL_SSL"} and self.keystore is None:
            raise StackError(
                "BrokerSecurity: an SSL or SASL_SSL listener needs a keystore (PEM key + certificate)"
            )
        if protocols & {"SASL_PLAINTEXT", "SASL_SSL"} and not self.users:
            raise StackError("BrokerSecurity: a SASL listener needs at least one user")
        for name, password in self.users:
            if not name or not password or _UNSAFE_SECRET & set(name + password):
                raise StackError(
                    f"BrokerSecurity: user {name!r}: name and password must be non-empty, without spaces or "
                    '" \\ , [ ] ='
                )

    def properties(self, host: str) -> dict[str, str]:
        """Broker properties for the extra listeners (merged over the PLAINTEXT template)."""
        props: dict[str, str] = {}
        protocols = {proto for proto, _ in self.listeners()}
        if protocols & {"SASL_PLAINTEXT", "SASL_SSL"}:
            props["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
            logins = " ".join(f'user_{name}="{password}"' for name, password in self.users)
            for proto in sorted(protocols & {"SASL_PLAINTEXT", "SASL_SSL"}):
                prefix = f"listener.name.{proto.lower()}"
                props[f"{prefix}.plain.sasl.jaas.config"] = (
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {logins};"
                )
                for mech in SASL_MECHANISMS[1:]:
                    props[f"{prefix}.{mech.lower()}.sasl.jaas.config"] = (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    )
        if self.keystore is not None:
            props["ssl.keystore.type"] = "PEM"
            props["ssl.keystore.location"] = str(self.keystore)
        if self.authorizer:
            props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            props["super.users"] = ";".join(["User:ANONYMOUS", *self.super_users])
            props["allow.everyone.if.no.acl.found"] = "false"
        if self.truststore is not None:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = str(self.truststore)
            if "SSL" in protocols:
                props["listener.name.ssl.ssl.client.auth"] = "required"
        return props

    def scram_args(self) -> list[str]:
        """``kafka-storage format`` arguments creating every user's SCRAM credentials."""
        if not ({"SASL_PLAINTEXT", "SASL_SSL"} & {proto for proto, _ in self.listeners()}):
            return []
        return [
            arg
            for name, password in self.users
            for mech in SASL_MECHANISMS[1:]
            for arg in ("--add-scram", f"{mech}=[name={name},password={password}]")
        ]


def render_server_properties(
    host: str, kafka_port: int, controller_port: int, data_dir: Path, security: BrokerSecurity | None = None
) -> str:
    """The broker's ``server.properties`` (from the ``connectors/kafka/server.properties`` template).

    With ``security``, its listeners are added after the PLAINTEXT one (which stays first, so the address the
    stack probes is unchanged) and its properties are appended.
    """
    text = Template(packaged("server.properties")).substitute(
        host=host, kafka_port=kafka_port, controller_port=controller_port, data_dir=data_dir
    )
    if security is None or not security.listeners():
        return text
    security.check()
    extra = security.listeners()
    lines = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("listeners", "advertised.listeners"):
            value += "".join(f",{proto}://{host}:{port}" for proto, port in extra)
        elif sep and key == "listener.security.protocol.map":
            value += "".join(f",{proto}:{proto}" for proto, _ in extra)
        lines.append(f"{key}{sep}{value}")
    lines.append("# Authenticated listeners (connectors.localkafka.BrokerSecurity).")
    lines += [f"{key}={value}" for key, value in security.properties(host).items()]
    return "\n".join(lines) + "\n"


def render_cluster_properties(
    host: str, node_id: int, kafka_port: int, controller_port: int, data_dir: Path, voters: Sequence[int]
) -> str:
    """``server.properties`` of node ``node_id`` (1-based) of a local KRaft cluster; every node is both broker
    and controller, ``voters`` are the controller ports of all nodes in node-id order.

    Data topics get ``default.replication.factor`` = min(3, nodes) and ``min.insync.replicas`` one less
    (at least 1), so acknowledged writes (``acks=all``) survive the loss of any one node.
    """
    nodes = len(voters)
    rf = min(3, nodes)
    isr = max(1, rf - 1)
    override = {
        "node.id": str(node_id),
        "controller.quorum.voters": ",".join(f"{i}@{host}:{port}" for i, port in enumerate(voters, 1)),
        "default.replication.factor": str(rf),
        "min.insync.replicas": str(isr),
        "offsets.topic.replication.factor": str(rf),
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(isr),
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(isr),
        # Never elect an out-of-sync replica: that would silently drop acknowledged records.
        "unclean.leader.election.enable": "false",
    }
    text = Template(packaged("server.properties")).substitute(
        host=host, kafka_port=kafka_port, controller_port=controller_port, data_dir=data_dir
    )
    lines = [f"# Node {node_id} of a local {nodes}-node KRaft cluster (connectors.localkafka)."]
    for line in text.splitlines():
        key, sep, _ = line.partition("=")
        if sep and key in override:
            line = f"{key}={override.pop(key)}"
        lines.append(line)
    lines += [f"{key}={value}" for key, value in override.items()]
    return "\n".join(lines) + "\n"


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


def java_command(libs: Path, kafka_dir: Path, main: str, *args: str, heap: str = KAFKA_HEAP) -> list[str]:
    """``java ... -cp libs/* main args`` with the local broker's heap (``$DRIFTLINE_KAFKA_HEAP`` wins), JVM
    options (``$DRIFTLINE_KAFKA_JVM_OPTS`` replaces :data:`KAFKA_JVM_OPTS`), log directory and log4j2 config."""
    java = require_tool("java")
    heap = os.environ.get(HEAP_ENV) or heap
    jvm = (os.environ.get(JVM_OPTS_ENV) or KAFKA_JVM_OPTS).split()
    return [java, f"-Xmx{heap}", "-Xms256m", *jvm, "-Djava.awt.headless=true",
            # Kafka's own shutdown hook logs the shutdown; log4j's hook would close the log file under it.
            "-Dlog4j2.shutdownHookEnabled=false", f"-Dkafka.logs.dir={kafka_dir / 'logs'}",
            f"-Dlog4j2.configurationFile={kafka_dir / 'log4j2.properties'}",
            "-cp", f"{libs}/*", main, *args]  # fmt: skip


def prepare(
    libs: Path,
    kafka_dir: Path,
    properties: str,
    scram_args: Sequence[str] = (),
    cluster_id: str | None = None,
) -> Path:
    """Write config files into ``kafka_dir``, format KRaft storage the first time; return the props path.

    ``scram_args`` (``--add-scram ...``, see :meth:`BrokerSecurity.scram_args`) create SCRAM users at format time.
    The nodes of one cluster must be formatted with the same ``cluster_id`` (default: a fresh one).
    """
    (kafka_dir / "logs").mkdir(parents=True, exist_ok=True)
    props = kafka_dir / "server.properties"
    props.touch(mode=0o600)  # it may hold PLAIN passwords
    props.write_text(properties)
    (kafka_dir / "log4j2.properties").write_text(packaged("log4j2.properties"))
    if not (kafka_dir / "data" / "meta.properties").exists():
        # A static quorum (controller.quorum.voters), so the format takes no --standalone.
        cid = cluster_id or kafka_cluster_id()
        fmt = java_command(libs, kafka_dir, "kafka.tools.StorageTool", "format", "-t", cid,
                           "-c", str(props), *scram_args)  # fmt: skip
        done = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"formatting KRaft storage failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return props
