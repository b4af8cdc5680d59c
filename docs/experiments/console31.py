"""Session 31 (outside16): every console route, table-driven, against its command-line counterpart and as an attacker.

Run against a console serving a running pipeline (score, join, train workers, a promotion, a rollback, a drift):

    DRIFTLINE_TOPIC_PREFIX=... DRIFTLINE_KAFKA_BOOTSTRAP=... DRIFTLINE_REDIS_URL=... DRIFTLINE_STATE_DIR=...
    DRIFTLINE_SIGNING_KEY=... DRIFTLINE_CONSOLE_TOKEN=... python docs/experiments/console31.py http://127.0.0.1:8765

Prints one line per row: PASS or FAIL, the row's name and what was seen. Exit 1 when a row fails. The command line is
run as ``driftline`` from the same environment (same prefix, model, state dir). ``TAMPERED_URL`` names a
second console whose prefix's audit topic has a tampered entry, ``TAMPERED_ENV`` the ``K=V`` settings of that
prefix. Rows that send an action send
``resume`` only (harmless on a running trainer) or actions that must be refused before anything is sent.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8765"
URL = urllib.parse.urlsplit(BASE)
HOST, PORT = URL.hostname or "127.0.0.1", URL.port or 80
TOKEN = os.environ["DRIFTLINE_CONSOLE_TOKEN"]
SECRETS = [
    v for v in (TOKEN, os.environ.get("DRIFTLINE_SIGNING_KEY"), os.environ.get("DRIFTLINE_OPERATOR_KEY")) if v
]
DRIFTLINE = os.environ.get("DRIFTLINE", "driftline")
LOG = os.environ.get("CONSOLE_LOG")  # the console's stdout/stderr file, searched for secrets at the end


def request(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    raw_host: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(HOST, PORT, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", raw_host if raw_host is not None else f"{HOST}:{PORT}")
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    resp = conn.getresponse()
    data = resp.read() if method != "HEAD" else b""
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def get_json(path: str) -> Any:
    status, _, data = request("GET", path)
    if status != 200:
        raise AssertionError(f"GET {path}: {status} {data[:200]!r}")
    return json.loads(data)


def cli_json(*args: str) -> Any:
    out = subprocess.run([DRIFTLINE, *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if len(lines) == 1:
        return json.loads(lines[0])
    return [json.loads(line) for line in lines]


def clean(value: Any, drop: tuple[str, ...]) -> Any:
    """Drop the keys that move between two reads (ages, lags, timestamps of the read itself)."""
    if isinstance(value, dict):
        return {k: clean(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [clean(v, drop) for v in value]
    return value


def served(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


MOVING = (
    "age_s",
    "updated_at",
    "lag",
    "total_lag",
    "since",
    "oldest_pending_age_s",
    "heartbeat_age_s",
    "ago_s",
    "trainer_updated_at",
)


def sane(status: int, data: bytes) -> str | None:
    """What is wrong with any answer: a 5xx, a traceback, a secret."""
    text = data.decode(errors="replace")
    if status >= 500:
        return f"status {status}: {text[:120]}"
    if "Traceback" in text or 'File "' in text:
        return "a traceback in the body"
    for secret in SECRETS:
        if secret in text:
            return "a secret in the body"
    return None


ROWS: list[tuple[str, Callable[[], str | None]]] = []


def row(name: str) -> Callable[[Callable[[], str | None]], Callable[[], str | None]]:
    def add(fn: Callable[[], str | None]) -> Callable[[], str | None]:
        ROWS.append((name, fn))
        return fn

    return add


# -- the console equals the command line ---------------------------------------------------------------------------
@row("/api/status == status --json (stable fields)")
def _status() -> str | None:
    api, cli = get_json("/api/status"), cli_json("status", "--json")
    a, c = clean(served(api), (*MOVING, "pid", "members")), clean(served(cli), (*MOVING, "pid", "members"))
    for k in ("default_model", "topic_prefix", "stack"):
        if a.get(k) != c.get(k):
            return f"{k}: api {a.get(k)!r} != cli {c.get(k)!r}"
    if sorted(a) != sorted(c):
        return f"keys differ: {sorted(set(a) ^ set(c))}"
    am = {
        m["model"]: m.get("served_version", m.get("latest_release", {}).get("version")) for m in a["models"]
    }
    cm = {
        m["model"]: m.get("served_version", m.get("latest_release", {}).get("version")) for m in c["models"]
    }
    return None if am == cm else f"models {am} != {cm}"


@row("/api/models == models list --model M --json")
def _models() -> str | None:
    api = served(get_json("/api/models"))
    cli = cli_json("models", "list", "--model", os.environ.get("DRIFTLINE_MODEL", "default"), "--json")
    cli = served(cli if isinstance(cli, list) else [cli])
    if len(cli) == 1 and isinstance(cli[0], list):
        cli = cli[0]
    a, c = clean(api, MOVING), clean(cli, MOVING)
    if a == c:
        return None
    diff = [i for i, (x, y) in enumerate(zip(a, c, strict=False)) if x != y]
    first = f"{a[diff[0]]} / {c[diff[0]]}" if diff else ""
    return f"{len(a)} vs {len(c)} rows; first differing row {diff[:1]}: {first}"


@row("/api/models/current == models show --json")
def _current() -> str | None:
    a = clean(served(get_json("/api/models/current")), (*MOVING, "trainer"))
    c = clean(served(cli_json("models", "show", "--json")), (*MOVING, "trainer"))
    return None if a == c else f"differs at keys {sorted(k for k in set(a) | set(c) if a.get(k) != c.get(k))}"


@row("/api/models/1 == models show 1 --json")
def _one() -> str | None:
    a = clean(served(get_json("/api/models/1")), MOVING)
    c = clean(served(cli_json("models", "show", "1", "--json")), MOVING)
    return None if a == c else f"differs at keys {sorted(k for k in set(a) | set(c) if a.get(k) != c.get(k))}"


@row("/api/models/999999 is a 404 naming the version (models show 999999 exits non-zero)")
def _missing() -> str | None:
    status, _, data = request("GET", "/api/models/999999")
    rc = subprocess.run([DRIFTLINE, "models", "show", "999999", "--json"], capture_output=True).returncode
    return (
        None
        if status == 404 and b"999999" in data and rc != 0
        else f"status {status}, cli rc {rc}: {data[:120]!r}"
    )


@row("/api/audit entries == audit show --json (same seq and hash, newest first)")
def _audit() -> str | None:
    api = get_json("/api/audit")["entries"]
    cli = cli_json(
        "audit", "show", "--model", os.environ.get("DRIFTLINE_MODEL", "default"), "--json", "-n", "500"
    )
    cli = cli if isinstance(cli, list) else [cli]
    a = [(e.get("seq"), e.get("hash")) for e in api]
    c = [(e.get("seq"), e.get("hash")) for e in reversed(cli)]
    return None if a == c else f"api {len(a)} entries (first {a[:1]}), cli {len(c)} (first {c[:1]})"


@row("/api/audit says whether the chain verifies, as audit verify does")
def _audit_verified() -> str | None:
    api = get_json("/api/audit")
    rc = subprocess.run([DRIFTLINE, "audit", "verify", "--json"], capture_output=True, text=True)
    verdict = json.loads(rc.stdout)["ok"] if rc.stdout.strip() else None
    shown = api.get("verified", {}).get("ok") if isinstance(api.get("verified"), dict) else None
    if shown is None:
        return f"no verdict in /api/audit (keys {sorted(api)}); audit verify says ok={verdict}"
    return None if shown == verdict else f"console ok={shown}, audit verify ok={verdict}"


TAMPERED = os.environ.get("TAMPERED_URL")  # a console on a prefix whose audit topic has a tampered entry
TAMPERED_ENV = dict(item.split("=", 1) for item in os.environ.get("TAMPERED_ENV", "").split() if "=" in item)


@row("a tampered audit topic: /api/audit shows the problems audit verify names (set TAMPERED_URL)")
def _audit_tampered() -> str | None:
    if not TAMPERED:
        return "TAMPERED_URL not set"
    with urllib.request.urlopen(TAMPERED.rstrip("/") + "/api/audit", timeout=60) as resp:
        shown = json.loads(resp.read())["verified"]
    env = {**os.environ, **TAMPERED_ENV}
    out = subprocess.run([DRIFTLINE, "audit", "verify", "--json"], capture_output=True, text=True, env=env)
    cli = json.loads(out.stdout)
    texts = [[p["text"] for p in c["problems"]] for c in shown["checks"]]
    if out.returncode == 0 or shown["ok"] is not False:
        return f"cli rc {out.returncode}, console ok={shown['ok']}"
    return None if texts == [[p["text"] for p in c["problems"]] for c in cli["checks"]] else f"{texts} != cli"


@row("/api/lineage versions == the registry's versions")
def _lineage() -> str | None:
    nodes = get_json("/api/lineage")["releases"]
    versions = sorted(r["version"] for r in get_json("/api/models"))
    mine = sorted(n["version"] for n in nodes)
    return None if mine == versions else f"lineage {len(mine)} versions, models {len(versions)}"


for _path in ("/api/overview", "/api/quality", "/api/deadletters", "/api/deadletters?limit=x&reason=%00"):

    @row(f"GET {_path}: 200 JSON, no secret")
    def _plain(path: str = _path) -> str | None:
        status, _, data = request("GET", path)
        bad = sane(status, data)
        if bad:
            return bad
        json.loads(data)
        return None if status == 200 else f"status {status}"


@row("GET /api/actions/<unknown id>: not answered, not applied")
def _unknown_action() -> str | None:
    body = get_json("/api/actions/nope-" + "x" * 40)
    return None if body.get("answered") is False and body.get("applied") is False else str(body)


# -- as an attacker ------------------------------------------------------------------------------------------------
JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {TOKEN}", **JSON}


def refused(
    method: str, path: str, body: bytes | None, headers: dict[str, str], want: tuple[int, ...], **kw: Any
) -> str | None:
    status, _, data = request(method, path, body, headers, **kw)
    bad = sane(status, data)
    if bad:
        return bad
    return None if status in want else f"status {status}: {data[:120]!r}"


ACTION = json.dumps({"action": "pause"}).encode()
for _name, _headers, _want in (
    ("no token", JSON, (401,)),
    ("wrong token", {"Authorization": "Bearer " + "x" * len(TOKEN), **JSON}, (401,)),
    ("token as Basic", {"Authorization": f"Basic {TOKEN}", **JSON}, (401,)),
    ("token in a cookie only", {"Cookie": f"driftline_console={TOKEN}", **JSON}, (401,)),
    ("Origin of another site", {**AUTH, "Origin": "http://evil.example"}, (403,)),
    ("Origin null", {**AUTH, "Origin": "null"}, (403,)),
    ("Sec-Fetch-Site cross-site", {**AUTH, "Sec-Fetch-Site": "cross-site"}, (403,)),
    ("form body (CSRF shape)", {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"}, (415,)),
):

    @row(f"POST /api/actions pause, {_name}: refused")
    def _post(headers: dict[str, str] = _headers, want: tuple[int, ...] = _want) -> str | None:
        return refused("POST", "/api/actions", ACTION, headers, want)


@row("POST /api/actions?token=<token> without the header: refused")
def _post_query_token() -> str | None:
    return refused("POST", f"/api/actions?token={TOKEN}", ACTION, JSON, (401,))


for _host in (
    "evil.example",
    "evil.example:80",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "[::1",
    "",
):

    @row(f"GET /api/status with Host {_host!r} (DNS rebinding): refused")
    def _rebind(host: str = _host) -> str | None:
        return refused("GET", "/api/status", None, {}, (400, 403), raw_host=host)


for _path in (
    "/static/../../etc/passwd",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%252f..%252fetc%252fpasswd",
    "/static/app.js%00.css",
    "/static/__init__.py",
    "/static/../server.py",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/static//etc/passwd",
):

    @row(f"GET {_path}: no file outside the package")
    def _traversal(path: str = _path) -> str | None:
        status, _, data = request("GET", path)
        bad = sane(status, data)
        if bad:
            return bad
        if b"root:" in data or b"import " in data:
            return f"served a file: {data[:60]!r}"
        return None if status in (400, 403, 404) or data.startswith(b"<!doctype") else f"status {status}"


for _method in ("HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE"):

    @row(f"{_method} /api/actions: no action, no 5xx")
    def _method_row(method: str = _method) -> str | None:
        return refused(method, "/api/actions", ACTION, JSON, (200, 204, 401, 403, 405, 415))


@row("HEAD /api/status: no body, no 5xx")
def _head() -> str | None:
    status, _, data = request("HEAD", "/api/status")
    return None if status < 500 and not data else f"status {status}"


for _name, _body in (
    ("2 MB body", b'{"action":"pause","x":"' + b"a" * 2_000_000 + b'"}'),
    ("deep nesting", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("not JSON", b"\xff\xfe{"),
    ("JSON list", b"[1,2]"),
    ("unknown action", b'{"action":"drop_tables"}'),
    ("set of a secret", b'{"action":"set","key":"model.signing_key","value":"x"}'),
    ("set, key with newline", b'{"action":"set","key":"guard.alpha\\nx","value":"0.1"}'),
    ("promote a path", b'{"action":"promote","target":"../../etc/passwd"}'),
    ("pause discard=maybe", b'{"action":"pause","discard":"maybe"}'),
    ("NaN", b'{"action":"set","key":"guard.alpha","value":NaN}'),
):

    @row(f"POST /api/actions with the token, {_name}: 4xx, nothing sent")
    def _body_row(body: bytes = _body) -> str | None:
        return refused("POST", "/api/actions", body, AUTH, (400, 413, 415))


@row("GET a 60 kB URL: no 5xx")
def _long_url() -> str | None:
    try:
        status, _, data = request("GET", "/api/deadletters?reason=" + "a" * 60_000)
    except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        return f"connection: {exc!r}"
    return sane(status, data) if status != 414 and status != 400 else None


@row("GET /?token=<wrong>: 401; /?token=<right>: 303 to a URL without the token")
def _query_token() -> str | None:
    status, _, _ = request("GET", "/?token=wrong")
    if status != 401:
        return f"wrong token: {status}"
    status, headers, _ = request("GET", f"/?token={TOKEN}&x=1")
    loc = headers.get("location", "")
    return None if status == 303 and TOKEN not in loc else f"{status} location {loc!r}"


@row("50 parallel GETs of every API route: no 5xx")
def _parallel() -> str | None:
    paths = [
        "/api/status",
        "/api/overview",
        "/api/models",
        "/api/models/current",
        "/api/lineage",
        "/api/quality",
    ]
    paths += ["/api/deadletters", "/api/audit", "/", "/static/app.js"]

    def one(i: int) -> str | None:
        status, _, data = request("GET", paths[i % len(paths)])
        return sane(status, data)

    with ThreadPoolExecutor(50) as pool:
        bad = [b for b in pool.map(one, range(50)) if b]
    return None if not bad else f"{len(bad)} bad: {bad[:2]}"


@row("a harmless action with the token: sent and answered (resume)")
def _resume() -> str | None:
    status, _, data = request("POST", "/api/actions", b'{"action":"resume"}', AUTH)
    if status != 200:
        return f"status {status}: {data[:200]!r}"
    sent = json.loads(data)["sent"]
    return None if "signature" not in sent else "the signature is echoed"


@row("the console's log carries no secret")
def _log() -> str | None:
    if not LOG or not os.path.exists(LOG):
        return None
    with open(LOG, errors="replace") as fh:
        text = fh.read()
    return next((f"secret in {LOG}" for s in SECRETS if s in text), None)


def main() -> int:
    failed = 0
    for name, fn in ROWS:
        try:
            why = fn()
        except Exception as exc:  # a row that cannot run is a failed row, with its reason
            why = f"error: {exc!r}"[:300]
        failed += why is not None
        print(
            f"{'PASS' if why is None else 'FAIL'}  {name}" + ("" if why is None else f"\n      {why[:400]}")
        )
    print(f"{len(ROWS) - failed}/{len(ROWS)} rows pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
