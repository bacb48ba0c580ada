"""A commit's recursive tree listed over the REST API, with listings GitHub truncated completed."""

from __future__ import annotations

import logging
from typing import Literal

from skillmeat_pipeline.lib.core.retry import FailureKind
from skillmeat_pipeline.lib.core.untrusted import check_tree_size
from skillmeat_pipeline.lib.fetch.github.errors import ApiError
from skillmeat_pipeline.lib.fetch.github.http import ApiModel, ApiSession, ScanStats, parse_body

logger = logging.getLogger(__name__)


class TreeItem(ApiModel):
    path: str
    mode: str
    type: Literal["blob", "tree", "commit"]
    sha: str
    size: int | None = None


class _Tree(ApiModel):
    sha: str
    tree: list[TreeItem]
    truncated: bool = False


def list_tree(
    session: ApiSession, scan: ScanStats, repo: str, sha: str, limit: int
) -> list[TreeItem]:
    """Every item below tree `sha`, at most `limit` (else `TreeTooLargeError`)."""
    return _list_recursive(session, scan, repo, sha, "", limit)


def _tree(session: ApiSession, scan: ScanStats, repo: str, sha: str, *, recursive: bool) -> _Tree:
    what = f"listing tree {sha[:12]}"
    query = "?recursive=1" if recursive else ""
    body = session.rest(scan, f"/repos/{repo}/git/trees/{sha}{query}", what, immutable=True)
    return parse_body(_Tree, body, repo, what)


def _list_recursive(
    session: ApiSession,
    scan: ScanStats,
    repo: str,
    sha: str,
    prefix: str,
    limit: int,
    listed: int = 0,
) -> list[TreeItem]:
    """The items below tree `sha`; `listed` entries of the whole listing came before them."""
    tree = _tree(session, scan, repo, sha, recursive=True)
    # GitHub bounds one answer (100,000 entries, 7 MB); `limit` bounds the whole listing
    check_tree_size(listed + len(tree.tree), limit, f"tree {sha[:12]}")
    items = (
        [item.model_copy(update={"path": prefix + item.path}) for item in tree.tree]
        if prefix
        else tree.tree
    )
    if not tree.truncated:
        return items
    logger.info(
        "GitHub truncated the tree listing of %s%s after %d entries; completing it by subtree",
        repo,
        f" under {prefix.rstrip('/')}" if prefix else "",
        len(items),
    )
    return _complete_truncated(session, scan, repo, sha, prefix, items, limit, listed)


def _complete_truncated(
    session: ApiSession,
    scan: ScanStats,
    repo: str,
    sha: str,
    prefix: str,
    partial: list[TreeItem],
    limit: int,
    listed: int,
) -> list[TreeItem]:
    """Fill in what a truncated recursive listing of tree `sha` (at `prefix`) left out.

    GitHub lists a recursive tree depth first, each tree right before its contents, and cuts
    the list at its limit, so the answer is a prefix of the full listing: every subtree in it is
    complete except the one still open at the cut (the child on the way to the last entry).
    One non-recursive listing of this tree (1 call) shows the children the cut dropped; each of
    those, and the open child, is then listed recursively (1 call each, more only when it is
    itself truncated; each retry starts deeper, so the listing always progresses). The budget
    check on every call stops a tree that cannot be completed within the scan's budget.
    """
    known = {item.path: item for item in partial}
    cut = known.get(prefix + partial[-1].path[len(prefix) :].split("/", 1)[0]) if partial else None
    open_child = cut.path if cut is not None and cut.type == "tree" else None
    result = [
        item for item in partial if open_child is None or not item.path.startswith(open_child + "/")
    ]
    children = _tree(session, scan, repo, sha, recursive=False)
    if children.truncated:
        raise ApiError(
            f"{repo}: directory {prefix.rstrip('/') or '/'} has more entries than GitHub lists "
            "in one response; the source needs a clone",
            kind=FailureKind.PERMANENT,
            repo=repo,
        )
    for child in children.tree:
        path = prefix + child.path
        if path in known and path != open_child:
            continue
        if path not in known:
            result.append(child.model_copy(update={"path": path}))
        if child.type == "tree":
            result.extend(
                _list_recursive(
                    session, scan, repo, child.sha, path + "/", limit, listed + len(result)
                )
            )
    check_tree_size(listed + len(result), limit, f"tree {sha[:12]}")
    return result
