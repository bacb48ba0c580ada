"""The demo's Dagster UI: `dagster dev` on the demo's instance until Ctrl-C, then stopped in order.

`dagster dev` runs in its own process group, so that Ctrl-C reaches the demo first, and the demo
stops the UI, its daemon and code server with bounded waits before the sample servers go down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
UI_READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 30.0
ASSET_PATH = "/assets/marketplace_index?view=partitions"

Echo = Callable[[str], None]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _code_location_loaded(base_url: str) -> bool:
    """Does the webserver answer, with the code location loaded?"""
    import httpx

    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    try:
        response = httpx.post(f"{base_url}/graphql", json={"query": query}, timeout=5.0)
        entries = response.json()["data"]["workspaceOrError"]["locationEntries"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return False
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


def _stop_process_group(process: subprocess.Popen[bytes], echo: Echo) -> None:
    """What Ctrl-C in a terminal does to `dagster dev` and its children, with bounded waits."""
    group = process.pid
    for sig, wait_s in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, 10.0)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            echo(f"dagster dev did not stop within {wait_s:.0f} s of {sig.name}")
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        process.wait()
    # children (webserver, daemon, code server) leave shortly after their parent
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def serve_ui(
    environment: Mapping[str, str],
    unset: Sequence[str],
    *,
    port: int,
    log_path: Path,
    index_url: str,
    echo: Echo,
) -> int:
    """`dagster dev` on the demo's instance until Ctrl-C (or SIGTERM); 0 after a clean stop.

    It runs in this process's environment with `environment` set and `unset` removed; its output
    goes to `log_path`; `index_url` is the catalog the closing hint searches.
    """
    base_url = f"http://{HOST}:{port}"
    env = {**os.environ, **environment}
    for name in unset:
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "skillmeat_pipeline.definitions",
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    echo(f"Starting the Dagster UI (dagster dev) on {base_url}; its log: {log_path}")
    # Ctrl-C, and SIGTERM or SIGHUP, stop everything in order. Set before the child starts: a
    # SIGINT that this process ignores (a background job of a script) would be ignored there too.
    previous = {
        sig: signal.signal(sig, _raise_keyboard_interrupt)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    with log_path.open("wb") as log:
        # its own process group: Ctrl-C reaches the demo, which then stops dagster dev in order
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + UI_READY_TIMEOUT_S
        while not _code_location_loaded(base_url):
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").splitlines()[-15:]
                echo("dagster dev exited before the UI was up:\n" + "\n".join(tail))
                return 1
            if time.monotonic() > deadline:
                echo(f"the Dagster UI did not come up within {UI_READY_TIMEOUT_S:.0f} s")
                return 1
            time.sleep(0.25)
        echo("")
        echo(f"Dagster UI: {base_url}{ASSET_PATH}")
        echo("  One partition per source: pick one to see its metadata (strategy,")
        echo("  artifact_count, api_calls, clone_ms, ...), its asset checks and its runs.")
        echo("  Numeric metadata is plotted on the asset's pages; 'Materialize...' with a")
        echo("  selection of partitions starts a backfill. Search the catalog from a shell:")
        echo(f"  SKILLMEAT_INDEX_URL={index_url} skillmeat-pipeline search review")
        echo("Press Ctrl-C to stop the UI and the sample servers.")
        while process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1.0)
        echo(f"dagster dev exited with code {process.returncode}; see {log_path}")
        return 1
    except KeyboardInterrupt:
        echo("Stopping the Dagster UI ...")
        return 0
    finally:
        # a second Ctrl-C must not cut the (bounded) stop short and leave processes behind
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        _stop_process_group(process, echo)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
