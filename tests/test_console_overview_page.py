"""The overview page in a real browser (Debian's chromium) over the console application with its sources stubbed:
what the page shows of the trainer's status, without a pipeline (fixes34, item 4: the page showed no withheld
release, and its held card read a field the trainer's status lacks)."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import streams.console.overview as overview_mod
from connectors.localproc import free_port
from driftline.settings import load_settings
from streams.console import sources
from streams.console import tail as tail_mod
from streams.console.server import build_app

pytestmark = pytest.mark.slow

WITHHELD = {
    "problem": "too_large",
    "message": "payload of 9000 bytes exceeds model.max_inline_bytes=6000",
    "served_version": 3,
    "count": 4,
    "at": 1_700_000_000_000,
}


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, Any]]]:
    """The console on a free loopback port; ``live`` is the trainer's status it reads (change it to change the
    page)."""
    settings = load_settings(environ={})
    live: dict[str, Any] = {
        "served_version": 3,
        "n_learned": 40,
        "paused": False,
        "updated_at": 1,
        "metrics": {},
    }
    status = {
        "topic_prefix": "driftline.",
        "stack": {"kafka": {"up": True, "address": "x"}, "redis": {"up": True, "address": "y"}},
        "workers": [],
        "models": [{"model": settings.model.name, "served_version": 3, "scorers": None, "joins": {}}],
        "drift_last_hour": {"total": 0, "by_signal": {}},
    }
    monkeypatch.setattr(sources, "status", lambda s: status)
    monkeypatch.setattr(sources, "trainer", lambda s: dict(live))
    monkeypatch.setattr(overview_mod.Overview, "_served_by_partition", lambda self: [])
    monkeypatch.setattr(overview_mod.Overview, "_rates", lambda self: {})
    monkeypatch.setattr(tail_mod.TopicTail, "start", lambda self: self)  # no topics to follow here
    monkeypatch.setattr(tail_mod.TopicTail, "stop", lambda self: None)
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(settings, "t" * 32, "127.0.0.1"))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/", live
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver_path, "install Debian's chromium and chromium-driver (make system-deps does)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _card(driver: webdriver.Chrome, id_: str, expect: str) -> Any:
    def shown(d: webdriver.Chrome) -> Any:
        found = d.find_elements(By.ID, id_)
        return found[0] if found and expect in found[0].text else None

    return WebDriverWait(driver, 30).until(shown, f"#{id_} never showed {expect!r}")


def test_the_overview_shows_the_withheld_releases_and_the_held_candidate(
    console: tuple[str, dict[str, Any]], browser: webdriver.Chrome
) -> None:
    url, live = console
    live.update(withheld=WITHHELD, metrics={"held": 1.0})
    browser.get(url)
    card = _card(browser, "withheld", "4 release(s) WITHHELD by the trainer")
    assert "fix: set model.artifact_store or raise model.max_inline_bytes" in card.text
    assert "v3 stays the champion" in card.text and "bad" in (card.get_attribute("class") or "")
    assert _card(browser, "held", "yes: see Actions").text == "yes: see Actions"
    # Published again (the trainer cleared it), nothing held: the live page says so.
    live.update(withheld=None, metrics={})
    assert _card(browser, "withheld", "none").text == "none"
    assert _card(browser, "held", "none").text == "none"
