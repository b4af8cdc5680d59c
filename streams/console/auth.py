"""Who may look and who may act.

- Actions (``POST``) always need ``Authorization: Bearer <token>``. A browser never adds that header by itself, and
  a cross-site page cannot add it without a CORS preflight this server never answers, so a forged request from
  another site cannot carry it: that is the CSRF protection. On top, an ``Origin`` or ``Sec-Fetch-Site`` header
  that says the request comes from another site is refused, and the body must be JSON.
- Reads are open when the console listens on loopback only; bound to any other address, every request needs the
  token: the bearer header, or a cookie set by opening ``/?token=...`` once (HttpOnly, SameSite=Strict; it allows
  reads only, never actions).
- On loopback the ``Host`` header must name a loopback host, so a web page reached through DNS rebinding cannot
  read the console from the operator's own browser.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

__all__ = ["COOKIE", "SECURITY_HEADERS", "AccessLog", "ConsoleAuth", "is_loopback", "security_headers"]

log = logging.getLogger(__name__)

COOKIE = "driftline_console"
LOOPBACK_NAMES = ("localhost",)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Scripts and data only from the console itself (a payload can never load or run one), no framing (a page of
# another site cannot overlay the Actions buttons), no sniffing, and no address leaking to links.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: the headers above on every response, refusals included."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


class AccessLog(AbstractAccessLogger):
    """The console's access log line: address, request line, status, seconds; the value of every ``token``
    query parameter replaced by ``***``, found by its decoded name (``?%74oken=`` too), and no Referer.

    aiohttp's own line logs the raw ``path_qs``, whose ``token=`` only the text filter of the log handlers masked,
    and that filter cannot see a percent-encoded name.
    """

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        query = [(k, "***" if k.lower() == "token" else v) for k, v in request.query.items()]
        target = request.rel_url.with_query(query) if query else request.rel_url
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %s %.3fs',
            request.remote,
            request.method,
            target,
            request.version.major,
            request.version.minor,
            response.status,
            time,
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name, maybe ``[v6]``) means this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("[::1]"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, True, False, True)
    """
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without its port. A bracketed address must close and be followed by
    nothing or ``:port``; otherwise there is no name (so no loopback name): ``[::1`` and ``[::1]x.evil.example``
    were read as ``[::1]``.

    >>> _host_name("[::1]:8765"), _host_name("[::1"), _host_name("[::1]x.evil.example"), _host_name("localhost:1")
    ('[::1]', '', '', 'localhost')
    """
    if host_header.startswith("["):
        name, bracket, rest = host_header.partition("]")
        if bracket and (not rest or (rest[0] == ":" and rest[1:].isdigit())):
            return name + "]"
        return ""
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class ConsoleAuth:
    """The token check and the CSRF rules as an aiohttp middleware (see the module docstring)."""

    def __init__(self, token: str, bind_host: str) -> None:
        if len(token) < 16:
            raise ValueError("the console token must be at least 16 characters")
        self.token = token
        self.loopback = is_loopback(bind_host)

    def _matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def bearer(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self._matches(value.strip())

    def _cookie(self, request: web.Request) -> bool:
        return self._matches(request.cookies.get(COOKIE))

    @staticmethod
    def _cross_site(request: web.Request) -> str | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return f"origin {origin!r} is not this console"
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request ({site})"
        return None

    @staticmethod
    def _refuse(request: web.Request, status: int, why: str) -> web.Response:
        log.warning("console: refused %s %s from %s: %s", request.method, request.path, request.remote, why)
        if request.path.startswith("/api/"):
            return web.json_response({"error": why}, status=status)
        page = (
            "<!doctype html><meta charset=utf-8><title>driftline console</title>"
            f"<h1>{status}</h1><p id=refused>{html.escape(why)}</p>"
            "<form method=get action=/><label>Token <input name=token type=password autocomplete=off></label>"
            "<button>Open</button></form>"
        )
        return web.Response(text=page, status=status, content_type="text/html")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.loopback and not is_loopback(_host_name(request.host)):
            return self._refuse(request, 403, f"host {request.host!r} is not a loopback name")
        if request.method in ("GET", "HEAD"):
            token = request.query.get("token")
            if token is not None:
                if not self._matches(token):
                    return self._refuse(request, 401, "wrong token")
                # Trade the token in the URL for a cookie, and drop it from the address bar (and history).
                rest = [(k, v) for k, v in request.query.items() if k != "token"]
                location = str(request.rel_url.with_query(rest))
                response = web.Response(status=303, headers={"Location": location})
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
                return response
            if self.loopback or self.bearer(request) or self._cookie(request):
                return await handler(request)
            return self._refuse(
                request, 401, "this console needs the token (Authorization: Bearer, or ?token=)"
            )
        if not self.bearer(request):
            return self._refuse(request, 401, "actions need the header Authorization: Bearer <token>")
        cross = self._cross_site(request)
        if cross is not None:
            return self._refuse(request, 403, cross)
        if request.content_type != "application/json":
            return self._refuse(request, 415, "actions take a JSON body (Content-Type: application/json)")
        return await handler(request)
