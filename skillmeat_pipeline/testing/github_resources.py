"""The GitHub emulator's REST resources over one repository: the repository, a commit, a tree
(truncated at GitHub's limits), a blob and the contents API, as GitHub's JSON shapes them.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_GITLINK, MODE_SYMLINK, MODE_TREE
from skillmeat_pipeline.testing.github_replies import (
    DOCS,
    HEX_SHA,
    Reply,
    Repo,
    commit_of,
    github_error,
    json_name,
    json_reply,
    resolve_spec,
)

# GitHub's documented limits for one recursive tree response
GITHUB_TREE_ENTRY_LIMIT = 100_000
GITHUB_TREE_BYTE_LIMIT = 7 * 1024 * 1024
# the contents API inlines files up to 1 MB; larger ones come back with encoding "none"
CONTENTS_INLINE_LIMIT = 1024 * 1024


def _b64_wrapped(data: bytes) -> str:
    # GitHub wraps base64 content at 60 characters per line
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class RestResources:
    """The REST answers about one repository, with the emulator's addresses and limits."""

    api_url: str
    raw_url: str
    html_base_url: str
    git_base_url: str
    private: Collection[str]  # lower-case `owner/repo` names
    tree_entry_limit: int
    tree_byte_limit: int

    @staticmethod
    def _disk_kb(repo: Repo) -> int:
        objects = repo.path / "objects"
        total = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
        return total // 1024

    def repository_json(self, repo: Repo, git: pygit2.Repository) -> dict[str, Any]:
        try:
            target = git.references["HEAD"].target
        except KeyError:
            target = None
        # a detached HEAD (an object id, not a ref name) names no branch
        default_branch = target.removeprefix("refs/heads/") if isinstance(target, str) else "main"
        api = f"{self.api_url}/repos/{repo.full_name}"
        private = repo.full_name.lower() in self.private
        owner_id = zlib.crc32(repo.owner.lower().encode()) & 0x7FFFFFFF
        return {
            "id": repo.id,
            "node_id": base64.b64encode(f"010:Repository{repo.id}".encode()).decode(),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {"login": repo.owner, "id": owner_id, "type": "User"},
            "private": private,
            "visibility": "private" if private else "public",
            "html_url": f"{self.html_base_url}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
            "git_url": f"git://{urlsplit(self.html_base_url).netloc}/{repo.full_name}.git",
            "ssh_url": f"git@{urlsplit(self.html_base_url).netloc}:{repo.full_name}.git",
            "clone_url": f"{self.git_base_url}/{repo.full_name}.git",
            "size": self._disk_kb(repo),
            "default_branch": default_branch,
            "archived": False,
            "disabled": False,
        }

    def commit(self, repo: Repo, git: pygit2.Repository, ref: str) -> Reply:
        commit = commit_of(git, ref)
        if commit is None:
            raise github_error(
                422, f"No commit found for SHA: {ref}", f"{DOCS}/commits/commits#get-a-commit"
            )
        api = f"{self.api_url}/repos/{repo.full_name}"
        sha, tree_sha = str(commit.id), str(commit.tree_id)

        def person(signature: pygit2.Signature) -> dict[str, str]:
            return {"name": signature.name, "email": signature.email, "date": _iso(signature.time)}

        return json_reply(
            200,
            {
                "sha": sha,
                "node_id": base64.b64encode(f"04:Commit{sha}".encode()).decode(),
                "commit": {
                    "author": person(commit.author),
                    "committer": person(commit.committer),
                    "message": commit.message,
                    "tree": {"sha": tree_sha, "url": f"{api}/git/trees/{tree_sha}"},
                    "url": f"{api}/git/commits/{sha}",
                    "comment_count": 0,
                },
                "url": f"{api}/commits/{sha}",
                "html_url": f"{self.html_base_url}/{repo.full_name}/commit/{sha}",
                "author": None,
                "committer": None,
                "parents": [
                    {"sha": str(p), "url": f"{api}/commits/{p}"} for p in commit.parent_ids
                ],
            },
        )

    def tree(self, repo: Repo, git: pygit2.Repository, treeish: str, recursive: bool) -> Reply:
        obj = resolve_spec(git, treeish)
        try:
            tree = obj.peel(pygit2.Tree) if obj is not None else None
        except (ValueError, pygit2.GitError):
            tree = None
        if tree is None:
            raise github_error(404, "Not Found", f"{DOCS}/git/trees#get-a-tree")
        api = f"{self.api_url}/repos/{repo.full_name}"
        items: list[dict[str, Any]] = []
        size = 0
        truncated = False
        # depth-first in git's own entry order, each tree right before its contents: the order
        # GitHub lists a recursive tree in, so a truncated answer is a prefix of the full one
        stack: list[tuple[str, Any]] = [("", iter(tree))]
        while stack:
            prefix, children = stack[-1]
            obj = next(children, None)
            if obj is None:
                stack.pop()
                continue
            mode = int(obj.filemode)
            path, sha = prefix + json_name(obj), str(obj.id)
            item: dict[str, Any] = {"path": path, "mode": f"{mode:06o}"}
            if mode == MODE_TREE:
                item |= {"type": "tree", "sha": sha, "url": f"{api}/git/trees/{sha}"}
            elif mode == MODE_GITLINK:
                item |= {"type": "commit", "sha": sha}
            else:
                # the object header holds the size: no need to inflate every blob
                blob_size = git.odb.read_header(obj.id)[1]
                item |= {"type": "blob", "sha": sha, "size": blob_size}
                item["url"] = f"{api}/git/blobs/{sha}"
            item_bytes = len(json.dumps(item)) + 1
            if len(items) >= self.tree_entry_limit or size + item_bytes > self.tree_byte_limit:
                truncated = True
                break
            items.append(item)
            size += item_bytes
            if recursive and mode == MODE_TREE:
                stack.append((path + "/", iter(obj)))
        tree_sha = str(tree.id)
        return json_reply(
            200,
            {
                "sha": tree_sha,
                "url": f"{api}/git/trees/{tree_sha}",
                "tree": items,
                "truncated": truncated,
            },
        )

    def blob(self, repo: Repo, git: pygit2.Repository, sha: str) -> Reply:
        try:
            blob = git[sha] if HEX_SHA.fullmatch(sha) else None
        except (KeyError, ValueError):
            blob = None
        if not isinstance(blob, pygit2.Blob):
            raise github_error(404, "Not Found", f"{DOCS}/git/blobs#get-a-blob")
        api = f"{self.api_url}/repos/{repo.full_name}"
        return json_reply(
            200,
            {
                "sha": str(blob.id),
                "node_id": base64.b64encode(f"04:Blob{blob.id}".encode()).decode(),
                "size": blob.size,
                "url": f"{api}/git/blobs/{blob.id}",
                "content": _b64_wrapped(blob.data),
                "encoding": "base64",
            },
        )

    def contents(self, repo: Repo, git: pygit2.Repository, path: str, ref: str | None) -> Reply:
        ref_name = ref or self.repository_json(repo, git)["default_branch"]
        commit = commit_of(git, ref_name)
        if commit is None:
            raise github_error(
                404, f"No commit found for the ref {ref_name}", f"{DOCS}/repos/contents"
            )
        if not path:
            return json_reply(200, self._listing(repo, commit.tree, "", ref_name))
        try:
            obj: pygit2.Object = commit.tree[path]
        except KeyError:
            raise github_error(
                404, "Not Found", f"{DOCS}/repos/contents#get-repository-content"
            ) from None
        mode = int(obj.filemode)
        if mode == MODE_TREE:
            return json_reply(200, self._listing(repo, obj, path + "/", ref_name))
        if mode == MODE_SYMLINK:
            target = obj.read_raw().decode(errors="replace")
            pointee = self._symlink_target(commit.tree, path, target)
            # GitHub serves the target file for a symlink to a file, else describes the link
            if pointee is not None:
                return json_reply(200, self._file_json(repo, pointee[1], pointee[0], ref_name))
            item = self._item_json(repo, obj, path, ref_name)
            item["target"] = target
            return json_reply(200, item)
        return json_reply(200, self._file_json(repo, obj, path, ref_name))

    @staticmethod
    def _symlink_target(tree: pygit2.Tree, path: str, target: str) -> tuple[str, Any] | None:
        """(path, blob) of the regular file a symlink points at inside the repository, if any."""
        resolved: list[str] = []
        for part in [*path.split("/")[:-1], *target.split("/")]:
            if part == "..":
                if not resolved:
                    return None
                resolved.pop()
            elif part and part != ".":
                resolved.append(part)
        try:
            obj = tree["/".join(resolved)]
        except KeyError:
            return None
        if int(obj.filemode) in (MODE_TREE, MODE_GITLINK, MODE_SYMLINK) or target.startswith("/"):
            return None
        return "/".join(resolved), obj

    def _item_json(self, repo: Repo, obj: Any, path: str, ref: str) -> dict[str, Any]:
        mode = int(obj.filemode)
        kind = {MODE_TREE: "dir", MODE_SYMLINK: "symlink", MODE_GITLINK: "submodule"}.get(
            mode, "file"
        )
        api = f"{self.api_url}/repos/{repo.full_name}"
        sha = str(obj.id)
        quoted = quote(path)
        git_kind = "trees" if kind == "dir" else "blobs"
        return {
            "type": kind,
            "size": obj.size if kind in ("file", "symlink") else 0,
            "name": json_name(obj),
            "path": path,
            "sha": sha,
            "url": f"{api}/contents/{quoted}?ref={quote(ref, safe='')}",
            "git_url": None if kind == "submodule" else f"{api}/git/{git_kind}/{sha}",
            "html_url": f"{self.html_base_url}/{repo.full_name}/blob/{ref}/{quoted}",
            "download_url": (
                f"{self.raw_url}/{repo.full_name}/{quote(ref)}/{quoted}" if kind == "file" else None
            ),
        }

    def _file_json(self, repo: Repo, blob: Any, path: str, ref: str) -> dict[str, Any]:
        item = self._item_json(repo, blob, path, ref)
        item["type"] = "file"
        if blob.size <= CONTENTS_INLINE_LIMIT:
            item |= {"content": _b64_wrapped(blob.data), "encoding": "base64"}
        else:
            item |= {"content": "", "encoding": "none"}
        return item

    def _listing(self, repo: Repo, tree: Any, prefix: str, ref: str) -> list[dict[str, Any]]:
        return [self._item_json(repo, obj, prefix + json_name(obj), ref) for obj in tree]
