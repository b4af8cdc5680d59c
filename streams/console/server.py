"""The console's HTTP server (aiohttp): the pages, the JSON API under ``/api/``, a live event stream, actions.

The pages are static files of this package (no build step, nothing fetched from the network); they draw what the
API returns. Blocking work (Kafka, Redis, files) runs in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from importlib import resources
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaException
from redis.exceptions import RedisError

from driftline.errors import ArtifactError, ConfigError, DriftlineError, StackError
from driftline.settings import Settings
from driftline.util import json_depth
from streams.console import sources
from streams.console.auth import ConsoleAuth, security_headers
from streams.console.overview import Overview
from streams.console.tail import TopicTail, deadletter_view, quality_view

__all__ = ["PAGES", "build_app", "console_url"]

PAGES = ("/", "/lineage", "/drift", "/deadletters", "/actions")
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
LIVE_INTERVAL_S = 2.0
# An action body is a flat object; deeper nesting is refused before parsing (json.loads recursed into a 500).
MAX_BODY_DEPTH = 8
# What an operator may send, and the ControlCommand each becomes (the trainer's vocabulary).
ACTIONS = {
    "pause": "pause_learning",
    "resume": "resume_learning",
    "rollback": "rollback",
    "promote": "promote",
    "set": "set",
}
#: The fields each action takes besides ``action``: any other one is refused, not ignored (adv46: ``{"action":
#: "rollback", "model": "m2"}`` rolled back the console's own model, ``{"action": "promote", "version": 5}``
#: promoted the held candidate).
ACTION_FIELDS = {
    "pause": ("discard",),
    "resume": (),
    "rollback": (),
    "promote": ("target",),
    "set": ("key", "value"),
}


def console_url(host: str = "127.0.0.1", port: int = 8765) -> str:
    """The address to open in a browser.

    >>> console_url(), console_url("::1", 9000)
    ('http://127.0.0.1:8765/', 'http://[::1]:9000/')
    """
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def _asset(name: str) -> bytes:
    return resources.files("streams.console").joinpath("static", name).read_bytes()


class Console:
    """State shared by the handlers: settings, the topic tail, the overview cache, the releases cache."""

    def __init__(self, settings: Settings, tail: TopicTail) -> None:
        self.settings = settings
        self.tail = tail
        self.overview = Overview(settings, records=lambda: self.tail.counts())
        self._releases: tuple[float, sources.Releases] | None = None
        self._audit: tuple[float, list[dict[str, Any]], str] | None = None
        self._audit_lock = threading.Lock()
        self._topic: tuple[float, list[Any]] | None = None  # the model's chain on the audit topic, when read
        self._verified: tuple[float, dict[str, Any]] | None = None
        self._verify_lock = threading.Lock()
        self._lock = threading.Lock()
        # Until a read has found Kafka answering (and again after one failed), a read of a topic is preceded by a
        # 3 s probe: with the stack down a page says so in 3 s, not after the read's own 10-15 s timeout.
        self._kafka_doubted = True

    def _from_kafka(self, read: Any) -> Any:
        """``read()``, a blocking read of a topic; raises :class:`StackError` (the address, what to do) at once
        when a probe finds Kafka unreachable."""
        if self._kafka_doubted:
            from connectors.kafka_client import check_reachable

            check_reachable(self.settings, timeout=3)
        try:
            value = read()
        except BaseException:
            self._kafka_doubted = True
            raise
        self._kafka_doubted = False
        return value

    def releases(self) -> sources.Releases:
        """The verified registry as ``driftline models`` reads it (re-read at most every 2 s)."""
        with self._lock:
            if self._releases is None or time.monotonic() - self._releases[0] > 2.0:
                self._releases = (
                    time.monotonic(),
                    self._from_kafka(lambda: sources.read_registry(self.settings)),
                )
            return self._releases[1]

    def audit(self) -> tuple[list[dict[str, Any]], str]:
        """The model's audit trail (last 2,000 entries) and where it was read: the chain file, read each time
        (cheap, and a decision just filed shows at once), then what the ``audit`` topic holds after it (another
        trainer of the group may have the model now); where the state dir has none, the topic alone. The whole
        topic is re-read at most every 5 s."""
        if sources.audit_path(self.settings).exists():
            return sources.audit_trail(self.settings, topic_chain=self._topic_chain)
        with self._audit_lock:
            if self._audit is None or time.monotonic() - self._audit[0] > 5.0:
                self._audit = (time.monotonic(), *sources.audit_trail(self.settings))
            return self._audit[1], self._audit[2]

    def _topic_chain(self) -> list[Any]:
        with self._audit_lock:
            if self._topic is None or time.monotonic() - self._topic[0] > 5.0:
                from streams.audit import read_topic

                try:
                    chain = self._from_kafka(lambda: read_topic(self.settings)).get(
                        self.settings.model.name, []
                    )
                except DriftlineError:  # the broker away: the file alone until the next try, 5 s on
                    chain = []
                self._topic = (time.monotonic(), chain)
            return self._topic[1]

    def verified(self) -> dict[str, Any]:
        """``driftline audit verify``'s verdict on the model's chain (file and topic), re-checked at most every
        5 s (it reads the whole topic)."""
        with self._verify_lock:
            if self._verified is None or time.monotonic() - self._verified[0] > 5.0:
                self._verified = (time.monotonic(), sources.audit_verification(self.settings))
            return self._verified[1]

    # -- API bodies (blocking; called in a thread) ---------------------------------------------------------------
    def lineage(self) -> dict[str, Any]:
        return sources.lineage(self.settings, self.releases(), self.audit()[0])

    def quality(self) -> dict[str, Any]:
        live = sources.trainer(self.settings)
        registry = self.releases().registry
        training, dropped = self.tail.training()
        view = quality_view(
            self.settings,
            training,
            self.tail.snapshot("drift"),
            [dict(registry.get(v)) for v in registry.versions()],
            live["metrics"] if live else None,
            dropped=dropped.get(self.settings.model.name, 0),
        )
        view["trainer"] = None if live is None else {k: v for k, v in live.items() if k != "metrics"}
        view["live_metrics"] = (
            {k: v for k, v in live["metrics"].items() if not k.startswith(("segment.", "overall.segment."))}
            if live
            else {}
        )
        return view

    def act(self, body: dict[str, Any], remote: str) -> dict[str, Any]:
        """Turn a page's action into the ControlCommand ``driftline models`` would send, and send it the same way
        (validated with the trainer's rules, signed); note who asked in the console's action log."""
        action = body.get("action")
        # a list or an object is not hashable: `in ACTIONS` raised TypeError (a 500) before this test
        if not isinstance(action, str) or action not in ACTIONS:
            raise ConfigError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        extra = sorted(str(k) for k in body if k != "action" and k not in ACTION_FIELDS[action])
        if extra:
            takes = ", ".join(repr(f) for f in ACTION_FIELDS[action]) or "no other field"
            raise ConfigError(
                f"{action}: unknown field(s) {', '.join(map(repr, extra))} (it takes {takes}; this console acts "
                f"on model {self.settings.model.name!r} only: start one with --model M for another)"
            )
        args: dict[str, str] = {}
        if action == "promote":
            target = body.get("target", "held")
            if isinstance(target, bool) or not isinstance(target, (str, int)):
                raise ConfigError(
                    f"promote: target must be held, challenger, champion or a version, got {target!r}"
                )
            target = str(target).strip()
            args = {"version": target} if target.isascii() and target.isdigit() else {"candidate": target}
        elif action == "set":
            args = {str(body.get("key", "")).strip(): str(body.get("value", "")).strip()}
        elif action == "pause" and body.get("discard") is not None:
            # Spelled out for the shared rules (yes/no, true/false, 1/0, on/off; anything else is refused):
            # a truthy test made {"discard": "no"} a pause that drops every label.
            flag = body["discard"]
            args = {
                "discard": str(flag).strip().lower() if isinstance(flag, (bool, int, str)) else repr(flag)
            }
        record = sources.send_control(self.settings, ACTIONS[action], args)
        shown = {k: v for k, v in record.items() if k != "signature"}
        sources.note_action(
            self.settings,
            {
                "action": action,
                "command": record["command"],
                "args": args,
                "id": record["id"],
                "remote": remote,
            },
        )
        return shown

    def outcome(self, command_id: str) -> dict[str, Any]:
        """The trainer's answer: ``answered`` once it filed one, ``applied`` only when that answer is ok."""
        reply = sources.answer(self.settings, command_id)
        if reply is None:
            return {"id": command_id, "answered": False, "applied": False}
        ok = reply.get("outcome") == "ok"
        return {
            "id": command_id,
            "answered": True,
            "applied": ok,
            "outcome": "ok" if ok else f"refused: {reply.get('message', reply.get('outcome'))}",
            "answer": reply,
        }


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(value, sort_keys=True, default=str), status=status, content_type="application/json"
    )


def unreachable_reason(settings: Settings, exc: BaseException) -> str:
    """What a page or script is told when Kafka or Redis failed a read: the address and what to do, as the command
    line says it (``driftline models``: "cannot reach Kafka at ...: is the stack up?"), not a traceback.
    Blocking (it probes Kafka for up to 3 s); called in a thread."""
    from connectors.kafka_client import check_reachable
    from connectors.redis_store import redis_address

    if isinstance(exc, RedisError):
        return (
            f"cannot reach Redis at {redis_address(settings)} ({type(exc).__name__}: {exc}): is the stack up? "
            "run `driftline stack up`"
        )
    if isinstance(exc, KafkaException):
        try:
            check_reachable(settings, timeout=3)
        except StackError as down:
            return str(down)
        return f"Kafka at {settings.kafka.bootstrap} failed the read: {exc}"
    return str(exc)


def _unreachable_middleware(settings: Settings) -> Any:
    """``/api/`` answers 503 with the reason in JSON when Kafka or Redis failed it (it was a bare 500 after
    10 s with the stack down, and the page said "cannot load: Internal Server Error")."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except (KafkaException, RedisError, StackError) as exc:
            if not request.path.startswith("/api/"):
                raise
            return _json({"error": await _in_thread(unreachable_reason, settings, exc)}, 503)

    return middleware


def _routes(console: Console) -> web.RouteTableDef:
    routes = web.RouteTableDef()
    s = console.settings

    for path in PAGES:

        @routes.get(path)
        async def page(request: web.Request) -> web.Response:
            return web.Response(body=_asset("index.html"), content_type="text/html")

    @routes.get("/static/{name}")
    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_asset(name), content_type=STATIC[name])

    @routes.get("/api/status")
    async def status(request: web.Request) -> web.Response:
        return _json(await _in_thread(sources.status, s))

    @routes.get("/api/overview")
    async def overview(request: web.Request) -> web.Response:
        return _json(await _in_thread(console.overview.get))

    @routes.get("/api/models")
    async def models(request: web.Request) -> web.Response:
        return _json(await _in_thread(lambda: sources.models_list(s, console.releases())))

    @routes.get("/api/models/{version}")
    async def model(request: web.Request) -> web.Response:
        raw = request.match_info["version"]
        if raw != "current" and not (raw.isascii() and raw.isdigit()):
            return _json({"error": f"version must be a number or 'current', got {raw!r}"}, 400)
        version = None if raw == "current" else int(raw)
        try:
            return _json(await _in_thread(lambda: sources.models_show(s, console.releases(), version)))
        except ArtifactError as exc:
            return _json({"error": str(exc)}, 404)

    @routes.get("/api/lineage")
    async def lineage(request: web.Request) -> web.Response:
        return _json(await _in_thread(console.lineage))

    @routes.get("/api/quality")
    async def quality(request: web.Request) -> web.Response:
        return _json(await _in_thread(console.quality))

    @routes.get("/api/deadletters")
    async def deadletters(request: web.Request) -> web.Response:
        q = request.query
        view = deadletter_view(
            console.tail.snapshot("deadletter"),
            reason=q.get("reason") or None,
            source=q.get("source") or None,
            limit=min(
                int(limit) if (limit := q.get("limit", "200")).isascii() and limit.isdigit() else 200, 2000
            ),
            prefix=s.kafka.topic_prefix,
        )
        # An empty list because Kafka cannot be read is not "no dead letters": say so.
        view["error"] = console.tail.error or None
        return _json(view)

    @routes.get("/api/audit")
    async def audit(request: web.Request) -> web.Response:
        entries, where = await _in_thread(console.audit)
        verified = await _in_thread(console.verified)
        return _json({"path": where, "entries": list(reversed(entries[-500:])), "verified": verified})

    @routes.get("/api/events")
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the page went away
            while True:
                try:
                    data = {"overview": await _in_thread(console.overview.get), "tail": console.tail.version}
                except DriftlineError as exc:
                    data = {"error": str(exc), "tail": console.tail.version}
                await response.write(f"event: update\ndata: {json.dumps(data, default=str)}\n\n".encode())
                await asyncio.sleep(LIVE_INTERVAL_S)
        return response

    @routes.post("/api/actions")
    async def act(request: web.Request) -> web.Response:
        try:
            text = await request.text()
        except UnicodeDecodeError:
            return _json({"error": "the body is not UTF-8"}, 400)
        if json_depth(text, MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
            return _json({"error": f"the body nests deeper than {MAX_BODY_DEPTH} levels"}, 400)
        try:
            body = json.loads(text)
        except ValueError:
            return _json({"error": "the body is not JSON"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "the body must be a JSON object"}, 400)
        try:
            record = await _in_thread(console.act, body, str(request.remote))
        except ConfigError as exc:  # refused before sending, by the same rules as the command line
            return _json({"error": str(exc)}, 400)
        except DriftlineError as exc:
            return _json({"error": str(exc)}, 502)
        return _json({"sent": record})

    @routes.get("/api/actions/{id}")
    async def action_outcome(request: web.Request) -> web.Response:
        return _json(await _in_thread(console.outcome, request.match_info["id"]))

    return routes


def build_app(settings: Settings, token: str, host: str) -> web.Application:
    """The console application for ``settings``; starts (and on cleanup stops) the background topic tail."""
    auth = ConsoleAuth(token, host)
    app = web.Application(middlewares=[auth.middleware, _unreachable_middleware(settings)])
    app.on_response_prepare.append(security_headers)
    tail = TopicTail(settings)
    console = Console(settings, tail)
    app.add_routes(_routes(console))

    async def start(app: web.Application) -> None:
        tail.start()

    async def stop(app: web.Application) -> None:
        await asyncio.to_thread(tail.stop)
        console.overview.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app
