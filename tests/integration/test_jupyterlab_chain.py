"""A real JupyterLab through the whole three-hop chain in a real headless Chromium.

Browser → hub (TLS, session cookie) → host → project (``port/P/``: the full
path reaches the app) → JupyterLab served at base URL ``/<project>/port/P/``.
The test opens ``…/lab``, creates a notebook from the launcher, types
``print(6*7)`` into its first cell, runs it with Shift+Enter and waits for
``42``: the kernel's WebSocket is the browser's own and crosses every hop.
Without the cookie the same URL is the hub's 401 page.

JupyterLab runs with its own temporary root, config, data, runtime, settings
and IPython directories (the user's config is never read), in its own process
group, stopped by PID at the end.  Chromium comes from Debian's ``chromium``
package (``.ci/run`` installs it); under ``CI`` a missing Chromium or
JupyterLab fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.support.cdp import Browser, find_chromium
from tests.support.chain import PROJECT, Chain
from tests.support.procs import free_port
from tests.support.waiting import wait_until


def _require(what: str, present: bool) -> None:
    if not present:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is not installed (the test extras / .ci/run install it)")
        pytest.skip(f"{what} is not installed here; CI installs it")


# ---------------------------------------------------------------- JupyterLab

class JupyterLab:
    """``python -m jupyterlab`` on 127.0.0.1:port with base URL ``base``, no token, no password."""

    def __init__(self, tmp: Path, port: int, base: str, timeout: float = 60.0, extra: tuple = ()) -> None:
        self.port, self.base = port, base
        dirs = {name: tmp / name for name in ("root", "config", "data", "runtime", "settings", "workspaces",
                                                "ipython", "home")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        # no "would you like news?" toast and no update check over the UI
        notification = dirs["settings"] / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = dict(os.environ)
        for key in list(env):
            if key.startswith(("JUPYTER", "IPYTHON")):
                del env[key]
        env.update({
            "HOME": str(dirs["home"]),
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        })
        self.log_path = tmp / "jupyterlab.log"
        self.log = open(self.log_path, "wb")
        self.cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--ServerApp.base_url={base}", f"--ServerApp.root_dir={dirs['root']}",
            "--IdentityProvider.token=", "--ServerApp.password=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--ServerApp.shutdown_no_activity_timeout=0", "--KernelSpecManager.ensure_native_kernel=True",
            "--LabApp.extension_manager=readonly",  # no look-ups on PyPI
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: to see when the kernel is ready
        ]
        if os.geteuid() == 0:  # CI containers
            self.cmd.append("--allow-root")
        self.cmd += list(extra)
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     cwd=dirs["root"], start_new_session=True)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterlab exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        try:
            ok = wait_until(up, timeout, 0.1)
        except Exception:
            self.stop()
            raise
        if not ok:
            self.stop()
            raise TimeoutError(f"jupyterlab did not answer in {timeout}s:\n{self.log_text()}")

    def url(self, rest: str) -> str:
        return f"http://127.0.0.1:{self.port}{self.base}{rest}"

    def api(self, method: str, rest: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(rest), data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_text(self, tail: int = 6000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-tail:]

    def _children(self) -> list[int]:
        """PIDs whose parent is the server: the kernels (each in its own session)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                pids.append(int(entry))
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            kernels = self._children()
            try:
                for k in self.api("GET", "api/kernels"):
                    self.api("DELETE", f"api/kernels/{k['id']}")
            except OSError:
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            for pid in kernels:  # the kernels it started, should the shutdown have missed one
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.log.close()


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def chromium():
    exe = find_chromium()
    _require("chromium", exe is not None)
    return exe


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        import ipykernel  # noqa: F401
        import jupyterlab  # noqa: F401
    except ImportError:
        _require("jupyterlab and ipykernel", False)
    port = free_port()
    j = JupyterLab(tmp_path_factory.mktemp("jupyterlab"), port, f"/{PROJECT}/port/{port}/")
    yield j
    j.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory, lab):
    c = Chain(tmp_path_factory.mktemp("chain"))
    yield c
    c.close()


@pytest.fixture
def browser(chromium):
    b = Browser(chromium)
    yield b
    b.close()


# ------------------------------------------------------------------- helpers

class Tab:
    """A page with what a failure message needs: console errors, exceptions, failed requests."""

    def __init__(self, browser: Browser, context: str | None = None) -> None:
        params = {"url": "about:blank"}
        if context:
            params["browserContextId"] = context
        target = browser.send("Target.createTarget", params)["targetId"]
        self.browser = browser
        self.page = browser.attach(target)
        self.page.send("Security.setIgnoreCertificateErrors", {"ignore": True})  # the chain's test CA
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.page.send(f"{domain}.enable")

    def events(self, method: str) -> list[dict]:
        return [ev["params"] for ev in self.browser.events
                if ev.get("sessionId") == self.page.session and ev.get("method") == method]

    def report(self) -> str:
        lines = []
        for p in self.events("Runtime.consoleAPICalled"):
            if p["type"] in ("error", "warning"):
                lines.append(f"console.{p['type']}: " + " ".join(str(a.get("value", a.get("description", "")))
                                                                   for a in p["args"]))
        for p in self.events("Runtime.exceptionThrown"):
            d = p["exceptionDetails"]
            lines.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        for p in self.events("Log.entryAdded"):
            if p["entry"]["level"] == "error":
                lines.append(f"log: {p['entry']['text']} {p['entry'].get('url', '')}")
        for p in self.events("Network.responseReceived"):
            if p["response"]["status"] >= 400:
                lines.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
        for p in self.events("Network.loadingFailed"):
            lines.append(f"failed: {p.get('errorText')} ({p['requestId']})")
        try:
            text = self.page.evaluate("document.location.href + '\\n' + (document.body ? document.body.innerText : '')")
        except Exception as e:  # noqa: BLE001 - a report must not raise
            text = f"(no page text: {e})"
        return "page:\n" + str(text)[:3000] + "\n" + "\n".join(lines[-60:])

    def wait_for(self, expression: str, timeout: float, what: str, lab: JupyterLab | None = None):
        try:
            return self.page.wait_for(expression, timeout)
        except TimeoutError:
            extra = f"\n--- jupyterlab log ---\n{lab.log_text()}" if lab else ""
            raise AssertionError(f"{what} within {timeout}s\n{self.report()}{extra}") from None

    def press(self, key: str, code: str, key_code: int, modifiers: int = 0) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            self.page.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code, "modifiers": modifiers,
                                                      "windowsVirtualKeyCode": key_code,
                                                      "nativeVirtualKeyCode": key_code})


SHIFT = 8
LAUNCHER_OR_ERROR = """(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  if (nav && nav.responseStatus && nav.responseStatus !== 200) return 'HTTP ' + nav.responseStatus;
  return document.querySelector('.jp-LauncherCard[data-category="Notebook"]') ? 'launcher' : null;
})()"""
KERNEL_READY = """(() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const c = w && w.sessionContext;
  const k = c && c.session && c.session.kernel;
  return !!k && c.isReady && k.connectionStatus === 'connected' && k.status === 'idle';
})()"""


def set_session_cookie(tab: Tab, chain: Chain) -> None:
    name, value = chain.cookie().split("=", 1)
    ok = tab.page.send("Network.setCookie", {"name": name, "value": value, "domain": "localhost", "path": "/",
                                             "secure": True, "httpOnly": True})
    assert ok.get("success", True), ok


def hub_url(chain: Chain, rest: str) -> str:
    return f"https://localhost:{chain.hub.port}{chain.path(rest)}"


# --------------------------------------------------------------------- tests

def test_notebook_cell_runs_through_three_hops(chain, lab, browser):
    started = time.monotonic()
    tab = Tab(browser)
    set_session_cookie(tab, chain)
    url = hub_url(chain, f"port/{lab.port}/lab")
    tab.page.navigate(url)
    # the launcher: JupyterLab's whole front end (hundreds of requests) came through the chain
    shown = tab.wait_for(LAUNCHER_OR_ERROR, 40, "JupyterLab's launcher did not show a Notebook tile", lab)
    assert shown == "launcher", f"{url}: {shown}\n{tab.report()}"
    doc = [p for p in tab.events("Network.responseReceived") if p["response"]["url"] == url]
    assert doc and doc[0]["response"]["status"] == 200, doc
    tab.page.click('.jp-LauncherCard[data-category="Notebook"]')
    editor = ".jp-NotebookPanel .jp-Cell .cm-content"
    tab.wait_for(f"!!document.querySelector('{editor}')", 30, "no notebook with a cell editor opened", lab)
    # Ready means connected over its WebSocket and idle: a cell run while the session is still starting makes
    # JupyterLab start a second kernel and drop the first (seen without any proxy too).
    tab.wait_for(KERNEL_READY, 30, "the notebook's kernel never connected and went idle", lab)
    tab.page.click(editor)
    tab.wait_for(f"document.activeElement === document.querySelector('{editor}')", 10,
                 "the cell editor did not take the focus", lab)
    tab.page.send("Input.insertText", {"text": "print(6*7)"})
    tab.wait_for(f"document.querySelector('{editor}').textContent === 'print(6*7)'", 10,
                 "the cell did not show what was typed", lab)
    tab.press("Enter", "Enter", 13, SHIFT)
    out = tab.wait_for("(() => { const o = document.querySelector("
                       "'.jp-NotebookPanel .jp-Cell .jp-OutputArea-output');"
                       " return o && o.textContent; })()", 30, "the cell printed nothing", lab)
    assert out.strip() == "42", tab.report()
    kernels = lab.api("GET", "api/kernels")
    assert len(kernels) == 1 and kernels[0]["connections"] >= 1, kernels
    # the kernel's WebSocket was the browser's own, opened through the hub and upgraded across every hop
    channels = f"wss://localhost:{chain.hub.port}/{PROJECT}/port/{lab.port}/api/kernels/{kernels[0]['id']}/channels"
    created = {p["requestId"]: p["url"] for p in tab.events("Network.webSocketCreated")}
    mine = {rid for rid, u in created.items() if u.startswith(channels + "?")}
    assert mine, sorted(created.values())
    upgraded = [p["response"]["status"] for p in tab.events("Network.webSocketHandshakeResponseReceived")
                if p["requestId"] in mine]
    assert 101 in upgraded, upgraded
    assert not [p for p in tab.events("Network.webSocketClosed") if p["requestId"] in mine], "the kernel socket closed"
    print(f"JupyterLab through the chain: 42 in {time.monotonic() - started:.1f}s")


def test_without_the_cookie_the_lab_is_the_hubs_401_page(chain, lab, browser):
    context = browser.send("Target.createBrowserContext", {"disposeOnDetach": True})["browserContextId"]
    tab = Tab(browser, context)  # incognito-like: no cookie at all
    url = hub_url(chain, f"port/{lab.port}/lab")
    tab.page.navigate(url)
    tab.wait_for("document.readyState === 'complete' && document.body && document.body.innerText.length > 0", 20,
                 "the page did not load")
    doc = [p for p in tab.events("Network.responseReceived") if p["response"]["url"] == url]
    assert doc, tab.report()
    assert doc[0]["response"]["status"] == 401, tab.report()
    assert doc[0]["response"]["mimeType"] == "text/html"
    assert "Sign in" in tab.page.evaluate("document.body.innerText"), tab.report()
    assert not tab.page.evaluate("!!document.querySelector('.jp-LabShell, #jupyter-config-data')")
    # nor does a kernel WebSocket open without the cookie: the hub answers the upgrade with 401, JupyterLab
    # never sees it
    kernel = str(uuid.uuid4())
    channels = url.replace("https://", "wss://").replace("/lab", f"/api/kernels/{kernel}/channels")
    tab.page.evaluate(f"window.__ws = new WebSocket({json.dumps(channels)});"
                      " window.__wsOpened = false; window.__ws.onopen = () => { window.__wsOpened = true; };")
    tab.wait_for("window.__ws.readyState === WebSocket.CLOSED", 20, "the kernel WebSocket did not close")
    assert tab.page.evaluate("window.__wsOpened") is False
    errors = [p["errorMessage"] for p in tab.events("Network.webSocketFrameError")]
    assert any("401" in e or "Authentication failed" in e for e in errors), errors  # Chromium: 401 + WWW-Authenticate
    assert kernel not in lab.log_text(10**7)
