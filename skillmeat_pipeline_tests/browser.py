"""Headless Chromium driven over the DevTools protocol, for end-to-end tests of the Dagster UI.

Debian's /usr/bin/chromium, started with a fresh profile, no network but loopback in use; the
protocol goes over a WebSocket with the `websockets` package (already installed with
dagster-webserver). No browser download, no Node.js.

    with Browser.launch() as browser:
        browser.navigate("http://127.0.0.1:3000/assets/...")
        text = browser.wait_for_text(["acme/tiny-tools"], timeout_s=60)
        browser.screenshot(path)
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
# flags for a sandboxed machine: no GPU, no background traffic, nothing outside loopback
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _poll(
    probe: Callable[[], Any], timeout_s: float, interval_s: float = 0.1, what: str = "condition"
) -> Any:
    """`probe()` until it returns something truthy, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BrowserError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, process: subprocess.Popen[bytes], profile: Path, page: ClientConnection):
        self.process = process
        self.profile = profile
        self.page = page
        self._ids = itertools.count(1)

    @classmethod
    @contextlib.contextmanager
    def launch(
        cls, executable: str | None = None, width: int = 1440, height: int = 900
    ) -> Iterator[Browser]:
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserError("Chromium is not installed (apt-get install chromium)")
        profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        process = subprocess.Popen(
            [
                executable,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = _poll(
                lambda: cls._devtools_port(profile, process),
                timeout_s=30,
                what="Chromium's DevTools port",
            )
            page_url = _poll(lambda: cls._page_socket(port), timeout_s=10, what="a page target")
            with connect(page_url, max_size=64 * 1024 * 1024, open_timeout=10) as page:
                browser = cls(process, profile, page)
                browser.call("Page.enable")
                browser.call("Runtime.enable")
                browser.call(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                )
                yield browser
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            shutil.rmtree(profile, ignore_errors=True)

    @staticmethod
    def _devtools_port(profile: Path, process: subprocess.Popen[bytes]) -> int | None:
        if process.poll() is not None:
            raise BrowserError(f"Chromium exited with code {process.returncode} at start")
        marker = profile / "DevToolsActivePort"
        with contextlib.suppress(OSError, ValueError):
            lines = marker.read_text().splitlines()
            if lines and lines[0].strip():
                return int(lines[0])
        return None

    @staticmethod
    def _page_socket(port: int) -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as answer:
            targets = json.load(answer)
        pages = [t for t in targets if t.get("type") == "page"]
        return pages[0]["webSocketDebuggerUrl"] if pages else None

    # -- protocol ---------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None, timeout_s: float = 30) -> Any:
        """Send one command and return its result; events that arrive meanwhile are dropped."""
        message_id = next(self._ids)
        self.page.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer within {timeout_s:.0f} s")
            answer = json.loads(self.page.recv(timeout=remaining))
            if answer.get("id") != message_id:
                continue
            if "error" in answer:
                raise BrowserError(f"{method}: {answer['error']}")
            return answer.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    # -- what tests use ---------------------------------------------------------------------------

    def navigate(self, url: str) -> None:
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"could not open {url}: {result['errorText']}")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_until(self, accept: Callable[[str], bool], what: str, timeout_s: float = 60) -> str:
        """The page's visible text once `accept(text)` holds (polled, at most `timeout_s`)."""
        last = ""

        def probe() -> str | None:
            nonlocal last
            last = self.text()
            return last if accept(last) else None

        try:
            return _poll(probe, timeout_s, interval_s=0.25, what=what)
        except BrowserError as exc:
            raise BrowserError(f"{exc}; the page shows:\n{last[:3000]}") from None

    def wait_for_text(self, needles: Sequence[str], timeout_s: float = 60) -> str:
        """The page's visible text once it holds every one of `needles`."""
        return self.wait_until(
            lambda text: all(n in text for n in needles), f"text {list(needles)}", timeout_s
        )

    def click_text(self, text: str, selector: str = "a, button, [role=button], td, div") -> bool:
        """Click the innermost element matching `selector` whose visible text is exactly `text`."""
        script = f"""
        (() => {{
          const wanted = {json.dumps(text)};
          const nodes = [...document.querySelectorAll({json.dumps(selector)})]
            .filter(n => n.innerText && n.innerText.trim() === wanted);
          const inner = nodes.filter(n => !nodes.some(m => m !== n && n.contains(m)));
          if (!inner.length) return false;
          inner[0].scrollIntoView({{block: "center"}});
          inner[0].click();
          return true;
        }})()
        """
        return bool(self.evaluate(script))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
