"""serve_metrics: a real HTTP scrape parsed with prometheus_client's parser."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.errors import ConfigError
from streams.metrics import METRIC_DOCS, build_metrics, serve_metrics


def family_name(name: str, kind: str) -> str:
    # The parser names counter families without their _total suffix.
    return name.removesuffix("_total") if kind == "counter" else name


def test_scrape_has_every_documented_family() -> None:
    m = build_metrics()
    m.events.labels(stage="score", outcome="ok").inc(5)
    m.end_to_end_latency.observe(0.02)
    m.set_served_version("default", 4)
    server = serve_metrics(m, port=0)
    try:
        assert server.port > 0
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for doc in METRIC_DOCS:
        fam = families.get(family_name(doc.name, doc.kind))
        assert fam is not None, f"{doc.name} missing from the scrape"
        assert fam.type == doc.kind, doc.name
    events = {
        (s.name, s.labels["stage"], s.labels["outcome"]): s.value
        for s in families["driftline_events"].samples
    }
    assert events[("driftline_events_total", "score", "ok")] == 5
    served = families["driftline_served_model_version"].samples
    assert [(s.labels, s.value) for s in served] == [({"model": "default"}, 4.0)]


def test_close_releases_the_port() -> None:
    server = serve_metrics(build_metrics(), port=0)
    port = server.port
    server.close()
    # Binding fails with EADDRINUSE while the server still listens.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_port_in_use_is_a_config_error_naming_the_setting() -> None:
    first = serve_metrics(build_metrics(), port=0)
    try:
        with pytest.raises(ConfigError, match=rf"metrics.port: cannot listen on 127.0.0.1:{first.port}"):
            serve_metrics(build_metrics(), port=first.port)
    finally:
        first.close()
