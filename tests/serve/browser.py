"""A real browser for the page test: Debian's chromium, headless, driven over the Chrome DevTools
Protocol (a websocket; `websockets` ships with Ray Serve's uvicorn). `make browser` installs
chromium when /usr/bin/chromium is missing; nothing is downloaded at test time."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--window-size=1000,640"]


class Chromium:
    """One headless chromium with a fresh profile in `profile`; .send(method, **params) -> result."""

    def __init__(self, profile: Path, timeout_s: float = 60.0):
        from websockets.sync.client import connect

        if not Path(CHROMIUM).exists():
            raise AssertionError(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
        profile.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.profile, self.timeout_s, self._id = profile, timeout_s, 0
        self._stack = contextlib.ExitStack()  # the websocket, closed by close()
        try:
            port = self._port(profile / "DevToolsActivePort")
            target = self._page_target(port)
            self.ws = self._stack.enter_context(connect(target["webSocketDebuggerUrl"], max_size=None,
                                                        open_timeout=timeout_s))
        except BaseException:
            self.close()
            raise

    def _port(self, path: Path) -> int:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with status {self.process.returncode}")
            if path.exists() and path.read_text().strip():
                return int(path.read_text().splitlines()[0])
            time.sleep(0.1)
        raise AssertionError("chromium did not open its DevTools port")

    def _page_target(self, port: int) -> dict:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]
            time.sleep(0.1)
        raise AssertionError("chromium has no page target")

    def send(self, method: str, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == self._id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
        raise AssertionError(f"{method}: no answer within {self.timeout_s} s")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (JSON-serialisable), evaluated in the page."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, clip: dict | None = None) -> bytes:
        """PNG bytes of the viewport, or of clip {x, y, width, height} (CSS pixels, scale 1)."""
        params = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])

    def close(self) -> None:
        self._stack.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.profile, ignore_errors=True)
