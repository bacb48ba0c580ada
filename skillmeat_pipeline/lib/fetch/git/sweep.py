"""Clone directories left behind by processes that were killed mid-clone, and their removal.

A parent that was killed cannot remove its clone directory; the directory's name holds the host and
pid of its owner, and the first clone of a later process removes those whose owner is gone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

CLONE_DIR_PREFIX = "skillmeat-clone-"
# skillmeat-clone-<host>-<pid>-<mkdtemp's random part, which never holds "-">
_CLONE_DIR_NAME = re.compile(re.escape(CLONE_DIR_PREFIX) + r"(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+")


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"


def clone_dir_prefix(pid: int | None = None) -> str:
    """How the clone directories of process `pid` (default: this one) on this host begin."""
    return f"{CLONE_DIR_PREFIX}{_host_tag()}-{os.getpid() if pid is None else pid}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale_clones(clone_dir: Path) -> list[Path]:
    """Remove the clone directories under `clone_dir` whose owner process is gone; return them.

    Only this program's: the name has the clone prefix, this host and the pid of a process that no
    longer runs, and the directory belongs to this user. A process killed mid-clone (SIGKILL, the
    OOM killer) leaves one behind; nothing else removes it.
    """
    removed: list[Path] = []
    host, uid = _host_tag(), os.getuid()
    try:
        candidates = list(os.scandir(clone_dir))
    except OSError:
        return removed
    for entry in candidates:
        match = _CLONE_DIR_NAME.fullmatch(entry.name)
        if match is None or match["host"] != host:
            continue
        pid = int(match["pid"])
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    if removed:
        logger.info(
            "removed %d clone directories of processes that ended mid-clone, under %s",
            len(removed),
            clone_dir,
            extra={"record": {"event": "stale_clones_removed", "count": len(removed)}},
        )
    return removed


_swept: set[Path] = set()
_swept_lock = threading.Lock()


def sweep_once(clone_dir: Path) -> None:
    """`sweep_stale_clones` at this process's first clone into `clone_dir`."""
    with _swept_lock:
        if clone_dir in _swept:
            return
        _swept.add(clone_dir)
    sweep_stale_clones(clone_dir)
