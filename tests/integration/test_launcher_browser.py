"""The launcher page (``GET B``) in a real headless Chromium: load it, click a
server, see that server's content (SPEC §4).  Chromium comes from Debian's
``chromium`` package (``.ci/run`` installs it)."""

from __future__ import annotations

import os

import pytest

from tests.support.cdp import Browser, find_chromium
from tests.support.procs import REPO, ProxyProcess

PROJECT = "0c9a7b3e-5d2f-4e1a-9b8c-7d6e5f4a3b2c"
CONFIG = str(REPO / "tests" / "support" / "servers_config.py")


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed here; CI installs it")
    b = Browser(exe)
    b.send("Target.setDiscoverTargets", {"discover": True})
    yield b
    b.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    state = tmp_path_factory.mktemp("launcher")
    (state / "index.html").write_text("<!DOCTYPE html><title>Served by http.server</title><h1>It works</h1>")
    p = ProxyProcess("project", ["--project-id", PROJECT, "--config", CONFIG, "--no-entry-points", "--kill-grace", "1"],
                     env={"TOY_STATE": str(state)})
    yield p
    p.stop()


def test_launcher_page_click_opens_server_in_new_tab(browser, proxy):
    page = browser.new_page()
    page.send("Page.enable")
    page.navigate(proxy.url(f"/{PROJECT}/"))
    assert page.wait_for("document.readyState === 'complete' && document.title") == "Servers"
    titles = page.evaluate("[...document.querySelectorAll('li.server a')].map(a => a.textContent)")
    assert "Python HTTP" in titles and "toy" in titles and "callable" not in titles
    status = page.evaluate("document.querySelector('#server-pyhttp .status').textContent")
    assert status == "not started"
    assert page.wait_for("(() => { const i = document.querySelector('#server-pyhttp img');"
                         " return i && i.complete && i.naturalWidth; })()") == 32  # the icon loaded
    page.click("#server-pyhttp a")  # target=_blank: a new tab
    created = browser.wait_event(lambda ev: ev.get("method") == "Target.targetCreated"
                                 and ev["params"]["targetInfo"]["type"] == "page"
                                 and "/pyhttp/" in ev["params"]["targetInfo"]["url"]
                                 or (ev.get("method") == "Target.targetInfoChanged"
                                     and "/pyhttp/" in ev["params"]["targetInfo"]["url"]))
    tab = browser.attach(created["params"]["targetInfo"]["targetId"])
    assert tab.wait_for("document.readyState === 'complete' && document.title") == "Served by http.server"
    assert tab.evaluate("document.querySelector('h1').textContent") == "It works"
    assert tab.evaluate("location.pathname") == f"/{PROJECT}/pyhttp/"
    page.navigate(proxy.url(f"/{PROJECT}/"))  # reload: the server now shows as running
    assert page.wait_for("document.readyState === 'complete' && "
                         "document.querySelector('#server-pyhttp .status').textContent") == "running"


def test_launcher_same_tab_link(browser, proxy):
    page = browser.new_page()
    page.navigate(proxy.url(f"/{PROJECT}/"))
    page.send("Page.enable")
    page.wait_for("document.readyState === 'complete' && !!document.querySelector('#server-toy a')")
    assert page.evaluate("document.querySelector('#server-toy a').target") == ""  # new_browser_tab: false
    page.click("#server-toy a")
    body = page.wait_for("location.pathname.endsWith('/toy/') && document.body && document.body.innerText")
    assert '"path": "/"' in body
