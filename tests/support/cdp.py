"""A minimal Chrome DevTools Protocol client over ``websockets`` for browser tests.

``Browser`` starts headless Chromium (its own profile, port chosen by Chromium
and read from ``DevToolsActivePort``), in its own process group, and kills that
group on ``close``.  ``Page`` is one tab driven through a flattened session.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from websockets.sync.client import connect

from .waiting import wait_until


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, executable: str, timeout: float = 30.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="cocalcproxy-chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        found: list[str] = []

        def devtools_port() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            try:
                with open(port_file) as f:
                    found[:] = f.read().split()[:2]
            except OSError:
                return False
            return len(found) == 2

        if not wait_until(devtools_port, timeout, 0.05):
            self.close()
            raise TimeoutError("chromium did not open its DevTools port")
        port, path = found
        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=timeout).__enter__()
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 20.0) -> dict:
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if predicate(ev):
                    return self.events.pop(i)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching DevTools event")
            try:
                self.events.append(json.loads(self.ws.recv(timeout=remaining)))
            except TimeoutError:
                raise TimeoutError("no matching DevTools event") from None

    def new_page(self, url: str = "about:blank") -> "Page":
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return self.attach(target)

    def attach(self, target_id: str) -> "Page":
        session = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        return Page(self, session)

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(10)
            shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def wait_for(self, expression: str, timeout: float = 20.0):
        """Poll ``expression`` until it is truthy; return its value."""
        value: list = [None]

        def truthy():
            try:
                value[0] = self.evaluate(expression)
            except RuntimeError:
                value[0] = None
            return value[0]

        if not wait_until(truthy, timeout, 0.05):
            raise TimeoutError(f"never true: {expression}")
        return value[0]

    def click(self, selector: str) -> None:
        """A real mouse click (a user gesture, so target=_blank may open a tab)."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})
