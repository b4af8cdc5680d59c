"""Processes and ports on loopback: pid files, ``/proc`` command-line checks, protocol probes, careful stops.

The local stack (:mod:`connectors.stack`) starts servers as detached processes; these helpers let it find them
again by pid file and stop them without ever signalling a process it did not start (pids get recycled).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import random
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from driftline.errors import StackError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install it (Debian: sudo apt-get install openjdk-17-jre-headless maven redis-server; "
    "`make setup` does it as root) or run the stack with `docker compose up`"
)


TOOLS = {
    "java": "to run Apache Kafka (Java 17 or newer)",
    "mvn": "once, to fetch Apache Kafka's jars from Maven Central",
    "redis-server": "to run Redis",
}


def check_tools(names: list[str]) -> None:
    """Raise one StackError naming every missing program, why it is needed and how to install it."""
    missing = [name for name in names if not shutil.which(name)]
    if missing:
        needs = "; ".join(f"{name} {TOOLS[name]}" for name in missing)
        raise StackError(f"{', '.join(missing)} not found on PATH ({needs}). Please {INSTALL_HINT}.")


def require_tool(name: str) -> str:
    """Path of ``name`` on PATH, or a StackError saying what to install."""
    check_tools([name])
    return shutil.which(name) or name


def read_pid(path: Path) -> int | None:
    """The pid in ``path``, or None when the file is missing or garbled."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def process_cmdline(pid: int) -> list[str]:
    """The argv of a live process (empty when it is gone, a zombie, or not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def owned_pid(pid_file: Path, check: Callable[[list[str]], bool]) -> int | None:
    """The pid in ``pid_file`` if that process is alive and ``check`` recognises its command line."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    return pid if check(process_cmdline(pid)) else None


def process_stopped(pid: int) -> bool:
    """True when ``pid`` is stopped by a signal (SIGSTOP, SIGTSTP, a debugger): alive, holding its sockets open,
    answering nothing, and no wait makes it answer (helper fault40, session 40: a frozen Redis and a frozen
    broker were called ``starting``, and ``stack up`` said the port was taken)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows its last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("T", "t")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_bindable(host: str, port: int) -> bool:
    """True when a server could listen on ``host:port`` now.

    A port can be free of listeners and still taken: as the local end of an outgoing connection (ports above
    32768 are handed out to clients), which :func:`port_open` does not see but a server's bind fails on.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def redis_ping(host: str, port: int, password: str = "", timeout: float = 1.0) -> str | None:
    """First reply line to PING (after AUTH when given): ``+PONG``, ``-NOAUTH ...``; None if no answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            file = sock.makefile("rb")
            if password:
                sock.sendall(
                    b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password.encode()), password.encode())
                )
                file.readline()
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return file.readline().decode(errors="replace").strip() or None
    except OSError:
        return None


def kafka_answers(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when a Kafka broker at ``host:port`` answers a metadata request."""
    address = f"{host}:{port}"
    if not port_open(host, port):
        return False  # don't let librdkafka log connection errors for a closed port
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger(__name__ + ".librdkafka")
    conf: dict[str, Any] = {
        "bootstrap.servers": address,
        "logger": quiet,
        "socket.timeout.ms": int(timeout * 1000),
    }
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=timeout)
        return True
    except Exception:  # KafkaException, or anything librdkafka throws: the broker does not answer
        return False


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` of a log, preceded by its first ERROR lines (the cause is rarely at the end)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    errors = [line for line in text if " ERROR " in line or line.startswith("Caused by")][:4]
    head = ["first errors:", *errors, "last lines:"] if errors else []
    return "\n".join(head + text[-lines:]) or f"({path} is empty)"


def stop_pid(pid: int, is_ours: Callable[[], bool], grace_s: float = 30.0) -> bool:
    """SIGTERM ``pid`` if ``is_ours()``, wait up to ``grace_s``, then SIGKILL. False when it was not ours."""
    if not is_ours():
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not is_ours():
            return True
        time.sleep(0.2)
    if is_ours():  # re-checked right before the kill, so a recycled pid is never hit
        log.warning("pid %d ignored SIGTERM for %.0fs; sending SIGKILL", pid, grace_s)
        os.kill(pid, signal.SIGKILL)
    return True


def stop_pidfile(pid_file: Path, check: Callable[[list[str]], bool], grace_s: float = 30.0) -> bool:
    """Stop the process named in ``pid_file`` if ``check`` recognises its command line; remove the file."""
    pid = read_pid(pid_file)
    stopped = False
    if pid is not None:
        try:
            stopped = stop_pid(pid, lambda: check(process_cmdline(pid)), grace_s)
        except ProcessLookupError:
            stopped = False
    pid_file.unlink(missing_ok=True)
    return stopped


STOP_WITH_PARENT = "DRIFTLINE_STOP_WITH_PARENT"


def stop_with_parent_env() -> dict[str, str]:
    """Environment for a child that should stop when this process dies, however it dies (see
    :func:`stop_with_parent`); empty where that cannot be asked for: Linux signals the child when the *thread* that
    started it ends, so only the main thread asks."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {STOP_WITH_PARENT: str(os.getpid())}


def stop_with_parent() -> None:
    """Called first by the command line: a process started with :func:`stop_with_parent_env` asks Linux for SIGTERM
    when its parent dies.

    Workers and the console are started in their own session (``start_new_session``: a Ctrl-C is for the parent,
    which drains them in order), so nothing else stops them when the parent is killed (SIGKILL, an out-of-memory
    kill, a closed terminal's SIGHUP): `driftline demo` killed half way left its three workers and its console
    running for good (session 41, docs/experiments/first41.md). The child asks for itself (a ``preexec_fn`` would
    run Python between fork and exec in a parent with librdkafka's threads), then checks its parent once more, for
    a parent that died before it asked. The variable is removed, so the child's own children do not inherit it.
    """
    parent = os.environ.pop(STOP_WITH_PARENT, None)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG, <linux/prctl.h>
    except (OSError, AttributeError):
        return
    if str(os.getppid()) != parent:
        os.kill(os.getpid(), signal.SIGTERM)


_HANDED_OUT: set[int] = set()


def _client_port_floor() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux: ``ip_local_port_range``, else 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port a server can listen on now, never handed out before by this process (tests, second stacks).

    Ports come from just below the range the kernel gives to outgoing connections, so a client connecting
    somewhere cannot take the port before the server that was told it binds it; and a port is handed out once,
    so two workers started together are never told the same one (``bind(0)`` gave the same closed port twice).
    """
    floor = _client_port_floor()
    low = max(1024, floor - 10_000)
    for _ in range(200):
        port = random.randrange(low, floor)
        if port not in _HANDED_OUT and port_bindable(host, port):
            _HANDED_OUT.add(port)
            return port
    raise StackError(f"no free TCP port on {host} in {low}-{floor - 1} (tried 200 at random)")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``: two test runs starting the same stack take turns."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as exc:  # a state dir under a file, or not writable: an error naming it, not a traceback
        raise StackError(f"state directory {path.parent}: cannot use it: {exc.strerror or exc}") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
