"""``driftline console [--host 127.0.0.1] [--port 8765]``: the web console for the configured deployment.

The token for actions comes from ``DRIFTLINE_CONSOLE_TOKEN``, or is generated and printed at start. Read-only pages
are open on loopback; bound to another address, every request needs the token.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys

from driftline.errors import ConfigError
from streams.cli import port_number, settings_from_args

TOKEN_ENV = "DRIFTLINE_CONSOLE_TOKEN"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "console",
        help="web console: overview, model lineage, drift and quality, dead letters, actions",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)"
    )
    p.add_argument("--port", type=port_number, default=8765, help="port (default 8765)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from streams.console import build_app, console_url
    from streams.console.auth import AccessLog, is_loopback

    settings = settings_from_args(args)
    token = os.environ.get(TOKEN_ENV) or ""
    generated = not token
    if generated:
        token = secrets.token_urlsafe(24)
    if len(token) < 16:
        print(f"driftline console: {TOKEN_ENV} must be at least 16 characters", file=sys.stderr)
        return 2
    _check_port(args.host, args.port)
    app = build_app(settings, token, args.host)
    url = console_url(args.host, args.port)
    print(
        f"driftline console for prefix {settings.kafka.topic_prefix!r}, model {settings.model.name!r}: {url}"
    )
    if generated:
        print(f"action token (set {TOKEN_ENV} to choose one): {token}")
    else:
        print(f"action token: from {TOKEN_ENV}")
    if not is_loopback(args.host):
        print(f"listening beyond loopback: every page needs the token (open {url}?token=...)")
    sys.stdout.flush()
    try:
        web.run_app(
            app, host=args.host, port=args.port, print=None, shutdown_timeout=3.0, access_log_class=AccessLog
        )
    except OSError as exc:  # taken between the check and here
        raise ConfigError(f"--port: cannot listen on {args.host}:{args.port} ({exc.strerror})") from exc
    return 0


def _check_port(host: str, port: int) -> None:
    """One line naming the address when it cannot be bound (the server binds the same way: SO_REUSEADDR),
    before the URL and token are printed; aiohttp would raise its OSError from inside the event loop."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(info[0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(info[4])
    except OSError as exc:
        raise ConfigError(
            f"--port: cannot listen on {host}:{port} ({exc.strerror}); is another console running? "
            "choose another --port"
        ) from exc
