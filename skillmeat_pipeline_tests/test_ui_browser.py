"""The Dagster UI in a real browser: `skillmeat-pipeline demo --serve`, then headless Chromium
driven by Playwright.

Asserts that the asset's partitions page lists every source and shows a materialized source's
metadata, and that Ctrl-C stops the demo, `dagster dev` and the servers cleanly. Saves a
screenshot (to `SKILLMEAT_UI_SCREENSHOT` when set, e.g. docs/ui-marketplace-index.png).

Skipped only when Chromium is missing and CI is not set; CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from skillmeat_pipeline.testing.sample_marketplace import MARKET, build_sample_marketplace
from skillmeat_pipeline.testing.sample_repos import SAMPLE_UPDATE, apply_update, build_sample_repos
from skillmeat_pipeline_tests.browser import (
    chromium_page,
    find_chromium,
    wait_for_pattern,
    wait_for_text,
)
from skillmeat_pipeline_tests.test_demo import CLI, EXPECTED_KINDS, clean_environment

pytestmark = pytest.mark.skipif(
    find_chromium() is None and not os.environ.get("CI"),
    reason="Chromium is not installed (apt-get install chromium); CI installs it",
)

UI_START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DemoProcess:
    """`skillmeat-pipeline demo --serve` as a user runs it, its output read line by line."""

    def __init__(self, cwd: Path, port: int) -> None:
        self.process = subprocess.Popen(
            [str(CLI), "demo", "--serve", "--port", str(port)],
            cwd=cwd,
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {prefix!r} line within {timeout_s:.0f} s:\n" + self.text())
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                pytest.fail(f"the demo exited ({self.process.wait()}) early:\n" + self.text())
            self.output.append(line)
            if line.startswith(prefix):
                return line

    def text(self) -> str:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return "\n".join(self.output)
            if line is not None:
                self.output.append(line)

    def interrupt(self, timeout_s: float) -> int:
        """Ctrl-C; the exit code once the demo has stopped everything."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the demo did not stop within {timeout_s:.0f} s of SIGINT")
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def served_demo(tmp_path: Path) -> Iterator[tuple[DemoProcess, str]]:
    port = free_port()
    demo = DemoProcess(tmp_path, port)
    try:
        line = demo.wait_for_line("Dagster UI: ", UI_START_TIMEOUT_S)
        url = line.removeprefix("Dagster UI: ").strip()
        assert url.startswith(f"http://127.0.0.1:{port}/")
        yield demo, f"http://127.0.0.1:{port}"
    finally:
        if demo.process.poll() is None:
            demo.interrupt(STOP_TIMEOUT_S)


def expected_pushed_commit(root: Path) -> str:
    """The commit the demo's push makes: the sample repositories are deterministic."""
    build_sample_repos(root)
    return apply_update(root, SAMPLE_UPDATE)


def metadata_value(text: str, name: str) -> str | None:
    """The value beside a metadata entry's name in the page's visible text."""
    match = re.search(rf"^{re.escape(name)}\s*\n\s*(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def test_ui_shows_partitions_and_metadata_then_ctrl_c_stops_everything(
    served_demo: tuple[DemoProcess, str], tmp_path: Path
):
    demo, base_url = served_demo
    pushed = expected_pushed_commit(tmp_path / "expected")
    key = SAMPLE_UPDATE.slug
    page = f"{base_url}/assets/marketplace_index?view=partitions&partition={quote(key, safe='')}"
    shot = tmp_path / "ui-marketplace-index.png"
    with chromium_page() as browser:
        browser.goto(page)
        # the sample sources, the demo's marketplace and its plugin sources (step 7), of which
        # the unreachable entries failed
        market = build_sample_marketplace(tmp_path / "expected-market")
        materialized = len(EXPECTED_KINDS) + 1 + len(market.scanned)
        text = wait_for_text(
            browser,
            [
                *EXPECTED_KINDS,
                f"Materialized ({materialized})",
                f"Failed ({len(market.failed)})",
                "artifact_count",
                "strategy",
                pushed,
            ],
            timeout_s=90,
        )
        # the partition's own metadata: the second run re-indexed it with the known count
        assert metadata_value(text, "artifact_count") == str(sum(EXPECTED_KINDS[key].values()))
        assert metadata_value(text, "strategy") == "sparse_directory"
        assert metadata_value(text, "commit_sha") == pushed
        assert metadata_value(text, "scan_status") == "scanned"
        browser.screenshot(path=shot)
        if os.environ.get("SKILLMEAT_UI_SCREENSHOT"):
            browser.screenshot(path=Path(os.environ["SKILLMEAT_UI_SCREENSHOT"]))

        # another partition, picked in the list as a user would: its own metadata
        browser.get_by_text("acme/tiny-tools", exact=True).first.click()
        text = wait_for_pattern(browser, r"^strategy\s*\n\s*api$")
        assert metadata_value(text, "artifact_count") == "2"
        assert metadata_value(text, "scan_status") == "current"

        # a failed partition says why, not only "Failed"
        failed_key = f"gone@{MARKET}"
        browser.goto(
            f"{base_url}/assets/marketplace_index?view=partitions"
            f"&partition={quote(failed_key, safe='')}"
        )
        wait_for_text(browser, ["failed, and did not materialize this asset"], timeout_s=60)
        browser.get_by_text("View logs", exact=True).click()
        wait_for_text(browser, [f"{failed_key}: ", market.failed["gone"]], timeout_s=60)
        browser.get_by_text("Done", exact=True).click()
        browser.get_by_text("View all historical events", exact=False).click()
        wait_for_text(browser, [f"Historical events for {failed_key}", "Observation"])

        # the asset graph: the per-source index and what is computed across the catalog from it
        browser.goto(f"{base_url}/asset-groups/catalog")
        wait_for_text(
            browser,
            ["marketplace_index", "catalog_duplicates", "catalog_summary", "catalog_export"],
            timeout_s=60,
        )
        graph = tmp_path / "ui-asset-graph.png"
        browser.screenshot(path=graph)
        if os.environ.get("SKILLMEAT_UI_SCREENSHOT"):
            browser.screenshot(
                path=Path(os.environ["SKILLMEAT_UI_SCREENSHOT"]).with_name("ui-asset-graph.png")
            )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
    assert graph.read_bytes().startswith(b"\x89PNG")

    code = demo.interrupt(STOP_TIMEOUT_S)
    assert code == 0, demo.text()
    assert "Stopped: the Dagster UI and the sample servers are down." in demo.text()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base_url}/server_info", timeout=5)
