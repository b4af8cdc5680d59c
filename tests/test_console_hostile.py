"""The console's API under hostile requests, in-process (no broker): bodies it cannot read are answered with a
clear 4xx, never a 500 with a traceback in the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from driftline.settings import load_settings
from streams.console.auth import ConsoleAuth
from streams.console.server import _routes

TOKEN = "t" * 12 + "secret-token"
BEARER = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}


class _NoSend:
    """A console whose actions fail the test: nothing below may be sent."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})

    def act(self, body: Any, remote: str) -> Any:
        raise AssertionError(f"an unreadable body reached act(): {body!r:.80}")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    app = web.Application(middlewares=[ConsoleAuth(TOKEN, "127.0.0.1").middleware])
    app.add_routes(_routes(_NoSend(tmp_path)))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # past the recursion limit of json.loads: was a 500 and a traceback
        '{"action": ' * 5_000 + '"pause"' + "}" * 5_000,
        '{"action": "pause"',
        "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
    ],
    ids=["deep-array", "deep-object", "truncated", "bad-utf8"],
)
async def test_an_unreadable_action_body_is_a_400_that_says_so(client: TestClient, body: str) -> None:
    response = await client.post("/api/actions", data=body.encode("utf-8", "surrogatepass"), headers=BEARER)
    assert response.status == 400
    assert "error" in await response.json()


@pytest.mark.parametrize(
    "version", ["%C2%B2", "%EF%BC%95", "%D9%A5"], ids=["superscript", "fullwidth", "arabic"]
)
async def test_a_version_not_in_ascii_digits_is_a_400(client: TestClient, version: str) -> None:
    """Found from outside (session 46, adv46): ``str.isdigit`` let ``²`` through to ``int()``: a 500 and a traceback
    in the log; a fullwidth 5 answered v5."""
    response = await client.get(f"/api/models/{version}")
    assert response.status == 400
    assert "version must be a number" in (await response.json())["error"]


async def test_a_dead_letter_limit_not_in_ascii_digits_is_the_default(tmp_path: Path) -> None:
    """Found from outside (session 46, adv46): ``/api/deadletters?limit=²`` was a 500 and a traceback in the log."""

    class _Tail:
        error = None

        def snapshot(self, topic: str) -> list[Any]:
            return []

    console = _NoSend(tmp_path)
    console.tail = _Tail()  # type: ignore[attr-defined]
    app = web.Application(middlewares=[ConsoleAuth(TOKEN, "127.0.0.1").middleware])
    app.add_routes(_routes(console))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as c:
        for limit in ("%C2%B2", "%EF%BC%95", "5"):
            response = await c.get(f"/api/deadletters?limit={limit}")
            assert response.status == 200, limit
            assert (await response.json())["items"] == []


@pytest.mark.parametrize(
    "target",
    [
        f"/?token={TOKEN}",
        f"/?%74oken={TOKEN}",  # the key percent-encoded: the log's masking regex did not see it
        f"/?TOKEN={TOKEN}&a=1",
        "/?token=" + "".join(f"%{b:02x}" for b in TOKEN.encode()),  # the value percent-encoded
        f"/api/status?a=1&token={TOKEN}&token={TOKEN}",
    ],
)
def test_the_access_log_never_carries_the_token(target: str, caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp.test_utils import make_mocked_request

    from streams.console.auth import AccessLog

    request = make_mocked_request("GET", target)
    response = web.Response(status=303)
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        AccessLog(logging.getLogger("aiohttp.access"), "").log(request, response, 0.001)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "GET" in logged and "303" in logged
    assert TOKEN not in logged and TOKEN[-12:] not in logged
    assert "%" + f"{ord(TOKEN[-1]):02x}" not in logged.lower()


def test_lineage_names_the_operator_key_that_signed_a_rollback() -> None:
    # The trainer audits a control command with the signer's key id as `signed_by` (streams/train_control.py);
    # the lineage looked for `key_id` and said "operator key ?".
    from streams.console.sources import _promoted_by

    record = {"args": {}, "command": "rollback", "id": "c1", "outcome": "ok", "signed_by": "k-dd136ade6315"}
    entry = {"kind": "control", "ts": 1_000_500, "model": "default", "record": record, **record}
    who = _promoted_by(
        {"reason": "rollback", "created_at": 1_000_000}, {}, [entry], {"c1": {"remote": "::1"}}
    )
    assert who == "operator key k-dd136ade6315 via the console from ::1, command c1"


def test_lineage_says_what_changed_in_each_audited_release() -> None:
    # Issue 19: every release records what changed from its parent, and "the console shows it": the lineage
    # carried the guard's evidence but not the changes nor the data range.
    from streams.console.sources import release_changes

    record = {
        "version": 5,
        "parent": 4,
        "reason": "incremental",
        "data_range": {"first_index": 0, "last_index": 99},
        "changes": {
            "method": "linear_contribution",
            "unit": "coef (standardized features)",
            "top": [{"feature": "age", "before": 0.1, "after": 0.4, "delta": 0.3}],
        },
        "decision": {"evidence": {"baseline_accuracy": 0.6, "candidate_accuracy": 0.7, "n": 50}},
    }
    audit = [
        {"kind": "release", "record": record},
        {"kind": "release", "record": {"version": 1, "reason": "initial"}},
        {"kind": "release", "record": {"version": "not a number"}},  # unreadable: left out, no crash
        {"kind": "control", "record": {"command": "pause_learning"}},
    ]
    changed = release_changes(audit)
    assert sorted(changed) == [1, 5]
    assert changed[5]["changes"] == "age +0.3 (coef (standardized features))"
    assert changed[5]["learned_from"] == "examples 0..99"
    assert changed[5]["top"][0]["feature"] == "age"
    assert changed[1]["changes"] == "first release"


async def test_a_refusal_page_shows_the_request_s_words_as_text() -> None:
    # The HTML refusal quotes the request (its Host or Origin header); those words went into the page unescaped.
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="page")

    app = web.Application(middlewares=[ConsoleAuth(TOKEN, "127.0.0.1").middleware])
    app.router.add_post("/", page)
    async with TestClient(TestServer(app)) as c:
        evil = "http://x<script>alert(1)</script>"
        response = await c.post("/", data=b"{}", headers={**BEARER, "Origin": evil})
        assert response.status == 403
        text = await response.text()
        assert "<script>" not in text and "&lt;script&gt;" in text


def test_dead_letters_filter_by_the_contract_s_topic_name_too() -> None:
    # `source=features` (the name `driftline tail` and `status` use) matched nothing: only `p.features` did.
    from streams.console.tail import deadletter_view

    rows = [
        {"_partition": 0, "_offset": i, "source_topic": src, "error": "SchemaError: x", "value": b"{}"}
        for i, src in enumerate(["p.features", "p.labels", "p.features"])
    ]
    short = deadletter_view(rows, source="features", prefix="p.")
    assert [i["dlq_offset"] for i in short["items"]] == [2, 0]
    assert (short["total"], short["matched"]) == (3, 2)
    assert deadletter_view(rows, source="p.features", prefix="p.")["matched"] == 2
    assert deadletter_view(rows, source="eatures", prefix="p.")["matched"] == 0


def test_the_audit_trail_comes_from_the_topic_where_the_state_dir_has_no_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A console on another machine than the trainer's (or another state dir) showed an empty audit trail, no
    # rejected or held candidates and no promoter, while the audit topic had all of it.
    import streams.audit
    from streams.console import sources

    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    chain = [
        {"seq": i, "kind": "control", "model": "default", "record": {"command": "pause"}} for i in range(3)
    ]
    topic = {"default": chain, "other": [{"seq": 0, "kind": "control", "model": "other"}]}
    monkeypatch.setattr(streams.audit, "read_topic", lambda settings: topic)
    entries, where = sources.audit_trail(settings, 2)
    assert [e["seq"] for e in entries] == [1, 2] and where == settings.topic("audit")
    path = sources.audit_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text('{"seq": 0, "kind": "release", "model": "default"}\n')
    entries, where = sources.audit_trail(settings, 2)
    assert [e["kind"] for e in entries] == ["release"] and where == str(path)


def test_a_decision_just_filed_in_the_chain_file_shows_at_once(tmp_path: Path) -> None:
    # Only the topic read is cached: a held candidate the trainer just filed must be on the next lineage answer
    # (the browser test waits for it without any other change that would redraw the page).
    from streams.console import sources
    from streams.console.server import Console

    settings = load_settings(environ={}, overrides={"state_dir": str(tmp_path)})
    console = Console(settings, None)  # type: ignore[arg-type]
    path = sources.audit_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text('{"seq": 0, "kind": "release", "model": "default"}\n')
    assert [e["kind"] for e in console.audit()[0]] == ["release"]
    with path.open("a") as fh:
        fh.write('{"seq": 1, "kind": "decision", "outcome": "hold", "model": "default"}\n')
    assert [e.get("outcome") for e in console.audit()[0]] == [None, "hold"]


def test_a_held_candidate_evaluated_again_and_again_is_one_row_with_a_count() -> None:
    """outside37: 103 identical ``hold`` rows for one held challenger. Consecutive identical decisions are one run
    (count, first and last time and index, the last evidence); another decision between starts a new run; the
    lineage keeps every decision under ``candidates`` too."""
    from streams.console import sources

    def decision(ts: int, outcome: str, candidate: str = "challenger", reason: str = "disagreement") -> dict:
        return {
            "kind": "decision",
            "outcome": outcome,
            "candidate": candidate,
            "reason": reason,
            "ts": ts,
            "index": 25 * ts,
            "evidence": {"disagreement": ts / 100},
        }

    audit = [decision(t, "hold") for t in range(1, 6)]
    audit += [{"kind": "release", "ts": 6}, decision(7, "hold")]  # not a decision: the run goes on
    audit += [decision(8, "reject", reason="worse"), decision(9, "reject", reason="worse")]
    audit += [decision(10, "promote"), decision(11, "hold")]  # a promotion between: a new run
    runs = sources.candidate_runs(audit)
    assert [(r["outcome"], r["count"], r["first_ts"], r["last_ts"]) for r in runs] == [
        ("hold", 6, 1, 7),
        ("reject", 2, 8, 9),
        ("hold", 1, 11, 11),
    ]
    assert (runs[0]["first_index"], runs[0]["last_index"]) == (25, 175)
    assert runs[0]["evidence"] == {"disagreement": 0.07}  # the last evaluation's
