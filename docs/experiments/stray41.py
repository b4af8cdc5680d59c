"""A pytest plugin that finds the tests that start or reach the default stack (127.0.0.1:9092 / 6379) while the test
variables name another (session 41, helper arch41; loose end "a stray default stack" of session 40).

It writes one JSON line per finding to ``$STRAY41_LOG`` (default /tmp/stray41.log), naming the test:
- ``start``: ``connectors.stack.stack_up`` asked for a broker or Redis on a default port. It is refused (raised)
  here, so running this plugin never starts anything there;
- ``kafka``: a confluent-kafka Producer, Consumer or AdminClient built with no ``bootstrap.servers`` or one on 9092;
- ``socket``: a Python socket (redis-py) connecting to port 9092 or 6379;
- ``subprocess``: a ``driftline``/``streams.cli`` child whose environment has no ``DRIFTLINE_KAFKA_BOOTSTRAP``
  (or ``DRIFTLINE_REDIS_URL``) and no ``--bootstrap``/``--redis-url`` flag: it would use the defaults.

Run with the test variables set and the runtime ones unset (a helper's or CI's shell that sets only the former)::

    env -u DRIFTLINE_KAFKA_BOOTSTRAP -u DRIFTLINE_REDIS_URL DRIFTLINE_TEST_KAFKA=127.0.0.1:15092 \\
        DRIFTLINE_TEST_REDIS=redis://127.0.0.1:15379/15 PYTHONPATH=$PWD:$PWD/docs/experiments \\
        /work/main/.venv/bin/python -m pytest -p stray41 -q tests/...
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

LOG = os.environ.get("STRAY41_LOG", "/tmp/stray41.log")
KAFKA_PORTS = {9092, 9093}
REDIS_PORTS = {6379}
_current = {"test": "(collection)"}


def _note(kind: str, detail: Any) -> None:
    with open(LOG, "a") as f:
        f.write(json.dumps({"test": _current["test"], "kind": kind, "detail": detail}, default=str) + "\n")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and len(address) >= 2 and address[1] in KAFKA_PORTS | REDIS_PORTS:
            _note("socket", address)
    elif event == "subprocess.Popen":
        _executable, argv, _cwd, env = args
        words = [str(a) for a in (argv if isinstance(argv, (list, tuple)) else [argv])]
        if not any(w.endswith("driftline") or w in ("streams.cli", "driftline") for w in words):
            return
        seen = os.environ if env is None else env
        for var, flag in (
            ("DRIFTLINE_KAFKA_BOOTSTRAP", "--bootstrap"),
            ("DRIFTLINE_REDIS_URL", "--redis-url"),
        ):
            if var not in seen and flag not in words:
                _note("subprocess", {"missing": var, "argv": words[-8:]})


sys.addaudithook(_audit)


def _patch() -> None:
    import confluent_kafka
    import confluent_kafka.admin

    import connectors.stack as stack

    def wrap(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        class Watched(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                conf = args[0] if args and isinstance(args[0], dict) else kwargs
                servers = str(conf.get("bootstrap.servers", ""))
                if not servers or any(servers.endswith(f":{p}") or f":{p}," in servers for p in KAFKA_PORTS):
                    _note("kafka", {"client": name, "bootstrap.servers": servers})
                super().__init__(*args, **kwargs)

        Watched.__name__ = name
        setattr(owner, name, Watched)

    for owner, name in ((confluent_kafka, "Producer"), (confluent_kafka, "Consumer")):
        wrap(owner, name)
    # AdminClient is a Python class whose __init__ names itself in super(): patched in place, not subclassed.
    admin = confluent_kafka.admin.AdminClient
    admin_init = admin.__init__

    def watched_init(self: Any, conf: dict[str, Any], **kwargs: Any) -> None:
        servers = str(conf.get("bootstrap.servers", ""))
        if not servers or any(servers.endswith(f":{p}") or f":{p}," in servers for p in KAFKA_PORTS):
            _note("kafka", {"client": "AdminClient", "bootstrap.servers": servers})
        admin_init(self, conf, **kwargs)

    admin.__init__ = watched_init  # type: ignore[method-assign]

    original_up = stack.stack_up

    def stack_up(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(cfg, "kafka_port", None) in KAFKA_PORTS or getattr(cfg, "redis_port", None) in REDIS_PORTS:
            _note("start", {"kafka_port": cfg.kafka_port, "redis_port": cfg.redis_port, "dir": cfg.state_dir})
            raise RuntimeError("stray41: refused to start a stack on a default port")
        return original_up(cfg, *args, **kwargs)

    stack.stack_up = stack_up


_patch()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _current["test"] = item.nodeid
    yield
    _current["test"] = "(between tests)"
