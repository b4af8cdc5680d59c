"""The console's access rules, in-process (no broker): who may read, who may act, and what counts as forged."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from driftline.settings import load_settings
from streams.console.auth import COOKIE, SECURITY_HEADERS, ConsoleAuth, is_loopback, security_headers
from streams.console.overview import _role
from streams.console.tail import deadletter_view, quality_view

TOKEN = "t" * 12 + "secret-token"
JSON = {"Content-Type": "application/json"}
BEARER = {**JSON, "Authorization": f"Bearer {TOKEN}"}


async def _page(request: web.Request) -> web.Response:
    return web.Response(text="page")


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _app(bind: str) -> web.Application:
    app = web.Application(middlewares=[ConsoleAuth(TOKEN, bind).middleware])
    app.on_response_prepare.append(security_headers)
    app.router.add_get("/", _page)
    app.router.add_get("/api/status", _ok)
    app.router.add_post("/api/actions", _ok)
    return app


@pytest.fixture
async def loopback() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(_app("127.0.0.1"))) as client:
        yield client


@pytest.fixture
async def exposed() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(_app("0.0.0.0"))) as client:
        yield client


async def test_loopback_reads_are_open_but_actions_need_the_bearer_token(loopback: TestClient) -> None:
    assert (await loopback.get("/api/status")).status == 200
    assert (await loopback.get("/")).status == 200
    assert (await loopback.post("/api/actions", json={"action": "pause"})).status == 401
    wrong = {**JSON, "Authorization": "Bearer " + "x" * 24}
    assert (await loopback.post("/api/actions", json={"action": "pause"}, headers=wrong)).status == 401
    assert (await loopback.post("/api/actions", json={"action": "pause"}, headers=BEARER)).status == 200


async def test_forged_cross_site_actions_are_refused_even_with_the_token(loopback: TestClient) -> None:
    for extra in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        resp = await loopback.post("/api/actions", json={}, headers={**BEARER, **extra})
        assert resp.status == 403, extra
    # A form post (what a forged page can send without a preflight) is not JSON.
    form = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-www-form-urlencoded"}
    assert (await loopback.post("/api/actions", data="action=pause", headers=form)).status == 415
    same = {**BEARER, "Origin": f"http://{loopback.server.host}:{loopback.server.port}"}
    assert (await loopback.post("/api/actions", json={}, headers=same)).status == 200


async def test_the_read_cookie_never_authorizes_an_action(exposed: TestClient) -> None:
    resp = await exposed.get("/?token=" + TOKEN, allow_redirects=False)
    assert resp.status == 303 and "token" not in resp.headers["Location"]
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    exposed.session.cookie_jar.update_cookies({COOKIE: cookie.value})
    assert (await exposed.get("/api/status")).status == 200
    assert (await exposed.post("/api/actions", json={}, headers=JSON)).status == 401


async def test_bound_beyond_loopback_every_request_needs_the_token(exposed: TestClient) -> None:
    assert (await exposed.get("/api/status")).status == 401
    page = await exposed.get("/")
    assert page.status == 401 and "token" in (await page.text())
    assert (await exposed.get("/?token=wrong", allow_redirects=False)).status == 401
    assert (await exposed.get("/api/status", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200


async def test_every_response_forbids_framing_and_foreign_scripts(loopback: TestClient) -> None:
    for resp in (await loopback.get("/"), await loopback.post("/api/actions", json={})):
        assert {k: resp.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


async def test_on_loopback_a_foreign_host_header_is_refused(loopback: TestClient) -> None:
    # DNS rebinding: a page of evil.example resolved to 127.0.0.1 sends Host: evil.example.
    resp = await loopback.get("/api/status", headers={"Host": "evil.example:8765"})
    assert resp.status == 403


@pytest.mark.parametrize("host", ["[::1", "[::1:8765", "[127.0.0.1", "[::1]x.evil.example"])
async def test_on_loopback_a_malformed_bracketed_host_is_refused(loopback: TestClient, host: str) -> None:
    # "[::1" (no closing bracket) was read as the loopback name "[::1]" and answered (found by outside16).
    resp = await loopback.get("/api/status", headers={"Host": host})
    assert resp.status in (400, 403)


def test_short_tokens_are_refused_and_loopback_names_recognised() -> None:
    with pytest.raises(ValueError, match="16"):
        ConsoleAuth("short", "127.0.0.1")
    assert [is_loopback(h) for h in ("127.0.0.2", "::1", "localhost", "10.0.0.1", "example.org")] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_worker_roles_are_read_from_the_group_id() -> None:
    assert _role("driftline-t-1.my-model-score") == "score"
    assert _role("driftline-t-1.default-score-join-train") == "score+join+train"
    assert _role("driftline-other") == "?"


def test_deadlettter_view_filters_by_reason_and_source_and_keeps_payloads_as_text() -> None:
    rows = [
        {
            "_partition": 0,
            "_offset": i,
            "kafka_ts": i,
            "source_topic": src,
            "partition": 1,
            "offset": 10 + i,
            "key": None,
            "value": value,
            "error": error,
            "ts": 1000 + i,
        }
        for i, (src, value, error) in enumerate(
            [
                ("p.features", b"<script>x</script>", "SchemaError: not a map"),
                ("p.labels", b"\xff\xfe", "SchemaError: bad bytes"),
                ("p.features", b"{}", "LearnerError: refused"),
            ]
        )
    ]
    view = deadletter_view(rows)
    assert view["by_reason"] == {"SchemaError": 2, "LearnerError": 1}
    assert view["by_source"] == {"p.features": 2, "p.labels": 1}
    assert [i["dlq_offset"] for i in view["items"]] == [2, 1, 0]  # newest first
    assert view["items"][2]["value_preview"] == "<script>x</script>"
    assert view["items"][1]["value_preview"] == "\ufffd\ufffd" and view["items"][1]["value_bytes"] == 2
    only = deadletter_view(rows, reason="SchemaError", source="p.features")["items"]
    assert [(i["source_offset"], i["dlq_offset"]) for i in only] == [(10, 0)]


def test_quality_view_rolls_accuracy_and_places_marks_by_time(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    training = [
        {
            "model": "default",
            "label": 1,
            "prediction": 1 if i >= 4 else 0,
            "version": 1 + i // 4,
            "kafka_ts": 100 * i,
        }
        for i in range(8)
    ]
    drift = [
        {"model": "default", "signal": "error", "detector": "adwin", "ts": 350},
        {"model": "default", "signal": "feature:a", "detector": "adwin", "ts": 360},
    ]
    releases = [{"model": "default", "version": 2, "reason": "challenger", "created_at": 390}]
    q = quality_view(
        settings, training, drift, releases, {"segment.x.accuracy": 0.5, "segment.x.n": 3.0}, window=4
    )
    assert [p["value"] for p in q["series"]] == [0, 0, 0, 0, 0.25, 0.5, 0.75, 1.0]
    assert [(a["i"], a["signal"]) for a in q["alarms"]] == [(4, "error")]
    assert [(r["i"], r["reason"]) for r in q["releases"]] == [(4, "challenger")]
    assert q["features"][0]["feature"] == "a" and q["features"][0]["alarms"] == 1
    assert q["segments"] == {"x": {"accuracy": 0.5, "n": 3.0}}


def test_the_pages_fetch_nothing_from_the_network() -> None:
    static = Path(__file__).resolve().parent.parent / "streams" / "console" / "static"
    urls = set()
    for path in static.iterdir():
        urls |= set(re.findall(r"https?://[^\s\"'`)]+", path.read_text()))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace is a name, never fetched


def test_quality_view_does_not_count_a_cold_models_null_answers_as_wrong(tmp_path: Path) -> None:
    """The demo report skips examples whose prediction is null (a model with nothing learned); the console's
    rolling accuracy must too ("as in the demo report, but live"), not draw them as 0 % accuracy."""
    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    training = [
        {
            "model": "default",
            "label": 1,
            "prediction": None if i < 6 else 1,
            "version": 1,
            "kafka_ts": 100 * i,
        }
        for i in range(10)
    ]
    q = quality_view(settings, training, [], [], None, window=4)
    assert q["series"] and all(p["value"] == 1.0 for p in q["series"]), q["series"]
    assert [p["i"] for p in q["series"]] == [6, 7, 8, 9]
