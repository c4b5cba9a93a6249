"""Headless Chromium over the DevTools protocol on a pipe: render a page, measure, screenshot.

Chromium's ``--remote-debugging-pipe`` reads DevTools commands from file
descriptor 3 and writes replies and events to descriptor 4, each message one
JSON document ended by a NUL byte: no port, no WebSocket library, nothing on
the network. The page under test has no script (its Content-Security-Policy
allows none); measurements are evaluated through the protocol, as DevTools
does, outside the page's own scripts.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         "--remote-debugging-pipe"]


class DevToolsError(RuntimeError):
    pass


class Browser:
    """One headless Chromium, one page (``session``), driven over the pipe."""

    def __init__(self, executable: str = CHROMIUM, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="survey-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds() -> None:           # in the child: the protocol's descriptors 3 and 4
            high_r, high_w = os.dup(to_child_r) + 100, os.dup(from_child_w) + 100
            os.dup2(to_child_r, high_r)     # out of the way of 3 and 4 first
            os.dup2(from_child_w, high_w)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [shutil.which(executable) or executable, *FLAGS,
             f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    # -- the protocol --------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise DevToolsError("no reply from chromium")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise DevToolsError("chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == ident:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.call(method, self.session, **params)

    def wait_for(self, event: str) -> dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("method") == event:
                return self.events.pop(i)
        while True:
            message = self._read()
            if message.get("method") == event:
                return message
            self.events.append(message)

    # -- what a test does ------------------------------------------------------------------

    def open(self, path: Path, width: int = 1280, height: int = 900) -> None:
        self.page("Page.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.page("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise DevToolsError(str(result["exceptionDetails"]))
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1280) -> Path:
        """The whole page (not only the viewport) as a PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        data = self.page("Page.captureScreenshot", format="png",
                         captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (DevToolsError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Measured in the page: every image's drawn and natural size and position, every table
# cell whose content is wider than the cell, the page's width, and any script at all.
MEASURE = """(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const view = document.documentElement.clientWidth;
  const images = Array.from(document.images).map(img => {
    const r = img.getBoundingClientRect();
    return {alt: img.alt, width: r.width, height: r.height, left: r.left, right: r.right,
            natural_width: img.naturalWidth, natural_height: img.naturalHeight,
            complete: img.complete};
  });
  const overflowing = Array.from(document.querySelectorAll('td, th, caption, figcaption, p'))
    .filter(el => el.scrollWidth > el.clientWidth + 1)
    .map(el => el.textContent.slice(0, 100));
  let handlers = 0;
  document.querySelectorAll('*').forEach(el => {
    for (const a of el.attributes) { if (a.name.toLowerCase().startsWith('on')) handlers++; }
  });
  return {view: view, page_width: document.documentElement.scrollWidth, images: images,
          overflowing: overflowing, scripts: document.scripts.length, handlers: handlers,
          iframes: document.querySelectorAll('iframe, object, embed').length};
})()"""
