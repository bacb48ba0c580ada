"""The GitHub emulator answers like GitHub, from the same bare repositories a clone would read."""

from __future__ import annotations

import base64
import io
import socket
import tarfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pygit2
import pytest

from skillmeat_pipeline.lib.core.models import MODE_EXECUTABLE, TreeEntry
from skillmeat_pipeline.lib.fetch.git.tree import snapshot_commit
from skillmeat_pipeline.testing.github_emulator import GitHubEmulator, layout_bundle
from skillmeat_pipeline_tests.fixtures_github import TOKEN, layout_corpus, make_repo, open_bare

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = layout_corpus(
        tmp_path_factory.mktemp("github"),
        ["obra+superpowers", "anthropics+claude-plugins-official", "miethe+skillmeat"],
    )
    repo = make_repo(
        root / "octo" / "odd.git",
        {
            "docs/a b#c?.md": b"# odd\n",
            "caf\u00e9.md": "\u00e9t\u00e9\n".encode(),
            "x/y.json": b"{}",
        },
        symlinks={"link.md": "docs/a b#c?.md", "dirlink": "x"},
    )
    head = repo.head.peel(pygit2.Commit)
    repo.references.create("refs/heads/feature/slash", head.id)
    repo.references.create("refs/tags/v1", head.id)
    signature = pygit2.Signature("Test", "test@example.com", 1_700_000_000, 0)
    repo.create_tag("v2", head.id, pygit2.enums.ObjectType.COMMIT, signature, "annotated")
    return root


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def _entries(tree_json: dict) -> list[TreeEntry]:
    return sorted(
        (TreeEntry(i["path"], int(i["mode"], 8), i["sha"]) for i in tree_json["tree"]),
        key=lambda e: e.path,
    )


@pytest.mark.parametrize(
    "full_name",
    ["obra/superpowers", "anthropics/claude-plugins-official", "miethe/skillmeat", "octo/odd"],
)
def test_recursive_tree_equals_snapshot_commit(
    root: Path, http: httpx.Client, full_name: str
) -> None:
    git = open_bare(root, full_name)
    expected = snapshot_commit(git)
    with GitHubEmulator(root) as emulator:
        commit = http.get(f"{emulator.api_url}/repos/{full_name}/commits/HEAD").json()
        assert commit["sha"] == expected.commit_sha
        assert commit["commit"]["tree"]["sha"] == expected.tree_sha
        url = f"{emulator.api_url}/repos/{full_name}/git/trees/{expected.tree_sha}?recursive=1"
        tree = http.get(url).json()
    assert tree["sha"] == expected.tree_sha
    assert tree["truncated"] is False
    assert _entries(tree) == expected.entries
    for item in tree["tree"]:
        entry = TreeEntry(item["path"], int(item["mode"], 8), item["sha"])
        assert len(item["mode"]) == 6
        expected_type = "tree" if entry.is_tree else "commit" if entry.is_gitlink else "blob"
        assert item["type"] == expected_type
        if item["type"] == "blob":
            # inflating all 5,000 blobs of the biggest repository would dominate the test's time
            if item["path"].endswith((".md", ".json")):
                assert item["size"] == len(git[item["sha"]].data)
            assert item["size"] >= 0
        else:
            assert "size" not in item


def test_gitlinks_and_symlinks_keep_their_modes(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as emulator:
        tree = http.get(f"{emulator.api_url}/repos/miethe/skillmeat/git/trees/main?recursive=1")
    by_path = {i["path"]: i for i in tree.json()["tree"]}
    assert by_path[".claude/skills/skill-builder"] | {"sha": ""} == {
        "path": ".claude/skills/skill-builder",
        "mode": "160000",
        "type": "commit",
        "sha": "",
    }
    assert by_path["AGENT.md"]["mode"] == "120000"
    assert by_path["AGENT.md"]["type"] == "blob"


def test_tree_above_the_entry_limit_is_a_truncated_prefix(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as full, GitHubEmulator(root, tree_entry_limit=50) as cut:
        path = "/repos/obra/superpowers/git/trees/HEAD?recursive=1"
        complete = http.get(full.api_url + path).json()
        truncated = http.get(cut.api_url + path).json()
        flat = http.get(cut.api_url + path.replace("?recursive=1", "")).json()
    assert complete["truncated"] is False
    assert truncated["truncated"] is True
    assert len(truncated["tree"]) == 50
    strip = [{k: v for k, v in i.items() if k != "url"} for i in complete["tree"][:50]]
    assert [{k: v for k, v in i.items() if k != "url"} for i in truncated["tree"]] == strip
    # the top level alone fits: a non-recursive listing is not cut
    assert flat["truncated"] is False
    assert all("/" not in i["path"] for i in flat["tree"])


def test_tree_byte_limit_truncates_too(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root, tree_byte_limit=4000) as emulator:
        tree = http.get(f"{emulator.api_url}/repos/obra/superpowers/git/trees/HEAD?recursive=1")
    assert tree.json()["truncated"] is True
    assert 0 < len(tree.json()["tree"]) < 40


@pytest.mark.parametrize("ref", ["HEAD", "main", "feature/slash", "v1", "v2", "SHA", "SHORT"])
def test_commit_endpoint_resolves_every_kind_of_ref(
    root: Path, http: httpx.Client, ref: str
) -> None:
    head = open_bare(root, "octo/odd").head.peel(pygit2.Commit)
    ref = {"SHA": str(head.id), "SHORT": str(head.id)[:7]}.get(ref, ref)
    with GitHubEmulator(root) as emulator:
        answer = http.get(f"{emulator.api_url}/repos/octo/odd/commits/{ref}")
    assert answer.status_code == 200
    assert answer.json()["sha"] == str(head.id)
    assert answer.json()["commit"]["tree"]["sha"] == str(head.tree_id)


def test_unknown_ref_is_422_like_github(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as emulator:
        answer = http.get(f"{emulator.api_url}/repos/octo/odd/commits/nope")
    assert answer.status_code == 422
    assert answer.json()["message"] == "No commit found for SHA: nope"


def test_repository_metadata(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root, git_base_url="http://127.0.0.1:9/git") as emulator:
        # GitHub matches names case-insensitively and answers with the canonical spelling
        answer = http.get(f"{emulator.api_url}/repos/OBRA/SuperPowers")
    body = answer.json()
    assert answer.status_code == 200
    assert body["full_name"] == "obra/superpowers"
    assert body["default_branch"] == "main"
    assert body["private"] is False
    assert body["html_url"] == "https://github.com/obra/superpowers"
    assert body["clone_url"] == "http://127.0.0.1:9/git/obra/superpowers.git"
    objects = root / "obra" / "superpowers.git" / "objects"
    disk = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
    assert body["size"] == disk // 1024 > 0
    assert isinstance(body["id"], int)


def test_unknown_repository_and_path_are_404(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as emulator:
        missing_repo = http.get(f"{emulator.api_url}/repos/obra/nope")
        missing_path = http.get(f"{emulator.api_url}/repos/obra/superpowers/contents/nope.md")
        escape = http.get(f"{emulator.api_url}/repos/obra/..%2F..%2Fetc/commits/HEAD")
        raw = http.get(f"{emulator.raw_url}/obra/superpowers/main/nope.md")
    assert missing_repo.status_code == 404
    assert missing_repo.json()["message"] == "Not Found"
    assert missing_path.status_code == 404
    assert escape.status_code == 404
    assert (raw.status_code, raw.text) == (404, "404: Not Found")


def test_contents_file_and_directory(root: Path, http: httpx.Client) -> None:
    git = open_bare(root, "octo/odd")
    tree = git.head.peel(pygit2.Tree)
    with GitHubEmulator(root) as emulator:
        file = http.get(f"{emulator.api_url}/repos/octo/odd/contents/docs/a%20b%23c%3F.md").json()
        listing = http.get(f"{emulator.api_url}/repos/octo/odd/contents/?ref=v1").json()
        link_to_file = http.get(f"{emulator.api_url}/repos/octo/odd/contents/link.md").json()
        link_to_dir = http.get(f"{emulator.api_url}/repos/octo/odd/contents/dirlink").json()
        downloaded = http.get(file["download_url"]).content
    assert file["type"] == "file"
    assert file["encoding"] == "base64"
    assert base64.b64decode(file["content"]) == b"# odd\n" == downloaded
    assert file["sha"] == str(tree["docs/a b#c?.md"].id)
    assert file["size"] == 6
    assert {i["name"]: i["type"] for i in listing} == {
        "caf\u00e9.md": "file",
        "dirlink": "symlink",
        "docs": "dir",
        "link.md": "symlink",
        "x": "dir",
    }
    # GitHub serves the file a symlink points at, and describes a link to a directory
    assert link_to_file["path"] == "docs/a b#c?.md"
    assert base64.b64decode(link_to_file["content"]) == b"# odd\n"
    assert (link_to_dir["type"], link_to_dir["target"]) == ("symlink", "x")


def test_git_blob_endpoint(root: Path, http: httpx.Client) -> None:
    git = open_bare(root, "obra/superpowers")
    blob = git.head.peel(pygit2.Tree)["README.md"]
    with GitHubEmulator(root) as emulator:
        body = http.get(f"{emulator.api_url}/repos/obra/superpowers/git/blobs/{blob.id}").json()
    assert body["encoding"] == "base64"
    assert base64.b64decode(body["content"]) == blob.data
    assert body["size"] == blob.size


@pytest.mark.parametrize("ref", ["main", "SHA", "feature/slash"])
def test_raw_host_serves_exact_bytes(root: Path, http: httpx.Client, ref: str) -> None:
    git = open_bare(root, "octo/odd")
    ref = str(git.head.target) if ref == "SHA" else ref
    with GitHubEmulator(root) as emulator:
        assert emulator.raw_url != emulator.api_url
        odd = http.get(f"{emulator.raw_url}/octo/odd/{ref}/docs/a%20b%23c%3F.md")
        accent = http.get(f"{emulator.raw_url}/octo/odd/{ref}/caf%C3%A9.md")
        link = http.get(f"{emulator.raw_url}/octo/odd/{ref}/link.md")
        directory = http.get(f"{emulator.raw_url}/octo/odd/{ref}/docs")
        calls = emulator.calls
    assert odd.content == b"# odd\n"
    assert accent.content == "\u00e9t\u00e9\n".encode()
    # a symlink's bytes are its target path, as in the object database
    assert link.content == b"docs/a b#c?.md"
    assert directory.status_code == 404
    assert {c.host for c in calls} == {"raw"}
    assert not any(c.counted for c in calls)
    assert "x-ratelimit-remaining" not in odd.headers


def test_raw_host_reads_a_whole_corpus_file(root: Path, http: httpx.Client) -> None:
    git = open_bare(root, "anthropics/claude-plugins-official")
    blob = git.head.peel(pygit2.Tree)["README.md"]
    with GitHubEmulator(root) as emulator:
        answer = http.get(f"{emulator.raw_url}/anthropics/claude-plugins-official/main/README.md")
        again = http.get(answer.url, headers={"If-None-Match": answer.headers["etag"]})
    assert answer.content == blob.data
    assert again.status_code == 304


def test_etag_304_is_free_when_authenticated(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as emulator:
        url = f"{emulator.api_url}/repos/obra/superpowers/commits/HEAD"
        first = http.get(url, headers=AUTH)
        before = emulator.rate_limit_remaining(TOKEN)
        again = http.get(url, headers=AUTH | {"If-None-Match": first.headers["etag"]})
        after = emulator.rate_limit_remaining(TOKEN)
        changed = http.get(url, headers=AUTH | {"If-None-Match": 'W/"other"'})
        calls = emulator.calls
    assert first.headers["etag"].startswith('W/"')
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert before == after == 4999
    assert int(again.headers["x-ratelimit-remaining"]) == 4999
    assert changed.status_code == 200
    assert [(c.status, c.counted, c.authenticated) for c in calls] == [
        (200, True, True),
        (304, False, True),
        (200, True, True),
    ]


def test_etag_304_counts_for_anonymous_requests(root: Path, http: httpx.Client) -> None:
    # GitHub documents that only a correctly authorised conditional request is free
    with GitHubEmulator(root) as emulator:
        url = f"{emulator.api_url}/repos/obra/superpowers"
        first = http.get(url)
        again = http.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert int(again.headers["x-ratelimit-remaining"]) == 58


def test_rate_limit_headers_and_exhaustion(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root, anonymous_rate_limit=2, rate_limit=3) as emulator:
        url = f"{emulator.api_url}/repos/obra/superpowers"
        answers = [http.get(url) for _ in range(3)]
        authenticated = http.get(url, headers=AUTH)
        calls = emulator.calls
    first, _, exhausted = answers
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert first.headers["x-ratelimit-used"] == "1"
    assert first.headers["x-ratelimit-resource"] == "core"
    assert int(first.headers["x-ratelimit-reset"]) > time.time()
    assert exhausted.status_code == 403
    assert exhausted.headers["x-ratelimit-remaining"] == "0"
    assert exhausted.json()["message"].startswith("API rate limit exceeded for 127.0.0.1.")
    assert "rate-limits" in exhausted.json()["documentation_url"]
    # a token has its own, larger budget
    assert authenticated.status_code == 200
    assert authenticated.headers["x-ratelimit-remaining"] == "2"
    assert [c.counted for c in calls] == [True, True, False, True]


def test_rate_limit_can_answer_429_and_reset(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root, rate_limit_status=429) as emulator:
        url = f"{emulator.api_url}/repos/obra/superpowers"
        emulator.set_rate_limit(0, token=TOKEN, reset_in_s=120)
        exhausted = http.get(url, headers=AUTH)
        emulator.set_rate_limit(0, token=TOKEN, reset_in_s=-1)
        after_reset = http.get(url, headers=AUTH)
    assert exhausted.status_code == 429
    assert exhausted.json()["message"] == "API rate limit exceeded for user ID 1."
    assert abs(int(exhausted.headers["x-ratelimit-reset"]) - (time.time() + 120)) < 5
    assert after_reset.status_code == 200
    assert after_reset.headers["x-ratelimit-remaining"] == "4999"


def test_secondary_rate_limit_has_retry_after(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as emulator:
        emulator.inject_secondary_rate_limit(30, times=1)
        limited = http.get(f"{emulator.api_url}/repos/obra/superpowers")
        fine = http.get(f"{emulator.api_url}/repos/obra/superpowers")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"
    assert "secondary rate limit" in limited.json()["message"]
    assert fine.status_code == 200


def test_bad_credentials_and_private_repositories(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root, tokens=[TOKEN], private=["obra/superpowers"]) as emulator:
        api = f"{emulator.api_url}/repos/obra/superpowers"
        raw = f"{emulator.raw_url}/obra/superpowers/main/README.md"
        wrong = http.get(api, headers={"Authorization": "token ghp_wrong"})
        anonymous = http.get(api)
        allowed = http.get(api, headers=AUTH)
        raw_anonymous = http.get(raw)
        raw_allowed = http.get(raw, headers=AUTH)
        calls = emulator.calls
    assert wrong.status_code == 401
    assert wrong.json()["message"] == "Bad credentials"
    assert anonymous.status_code == 404
    assert allowed.status_code == 200
    assert allowed.json()["private"] is True
    assert raw_anonymous.status_code == 404
    assert raw_allowed.status_code == 200
    assert [c.authenticated for c in calls] == [True, False, True, False, True]
    assert TOKEN not in repr(calls)
    assert "ghp_wrong" not in repr(calls)


def test_injected_faults_are_per_repository(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as emulator:
        emulator.inject_fault("obra/superpowers", 502, times=2)
        emulator.inject_fault("octo/odd", 500, host="raw")
        api = f"{emulator.api_url}/repos/obra/superpowers"
        statuses = [http.get(api).status_code for _ in range(3)]
        other = http.get(f"{emulator.api_url}/repos/octo/odd").status_code
        raw = http.get(f"{emulator.raw_url}/octo/odd/main/x/y.json").status_code
        emulator.clear_faults()
        raw_after = http.get(f"{emulator.raw_url}/octo/odd/main/x/y.json").status_code
    assert statuses == [502, 502, 200]
    assert (other, raw, raw_after) == (200, 500, 200)


def test_renamed_repository_redirects_to_its_id(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root, renames={"obra/old-name": "obra/superpowers"}) as emulator:
        moved = http.get(f"{emulator.api_url}/repos/obra/old-name/commits/HEAD")
        followed = http.get(moved.headers["location"])
        by_id = http.get(f"{emulator.api_url}/repos/obra/superpowers").json()["id"]
        raw = http.get(f"{emulator.raw_url}/obra/old-name/main/README.md", follow_redirects=True)
    assert moved.status_code == 301
    assert moved.headers["location"].endswith(f"/repositories/{by_id}/commits/HEAD")
    assert followed.status_code == 200
    assert followed.json()["sha"] == str(open_bare(root, "obra/superpowers").head.target)
    assert raw.status_code == 200


def test_call_log_records_each_request(root: Path, http: httpx.Client) -> None:
    with GitHubEmulator(root) as emulator:
        http.get(f"{emulator.api_url}/repos/obra/superpowers/git/trees/HEAD?recursive=1")
        http.get(f"{emulator.raw_url}/obra/superpowers/main/README.md", headers=AUTH)
        log = emulator.calls
        emulator.clear_calls()
        assert emulator.calls == []
    assert [(c.host, c.method, c.path, c.query, c.status, c.counted, c.repo) for c in log] == [
        (
            "rest",
            "GET",
            "/repos/obra/superpowers/git/trees/HEAD",
            "recursive=1",
            200,
            True,
            "obra/superpowers",
        ),
        ("raw", "GET", "/obra/superpowers/main/README.md", "", 200, False, "obra/superpowers"),
    ]


def test_concurrent_requests_are_all_logged_and_counted(root: Path) -> None:
    with GitHubEmulator(root) as emulator:
        url = f"{emulator.api_url}/repos/obra/superpowers/commits/HEAD"

        def fetch() -> None:
            with httpx.Client(timeout=5) as client:
                for _ in range(5):
                    assert client.get(url, headers=AUTH).status_code == 200

        threads = [threading.Thread(target=fetch) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(emulator.api_calls(counted_only=True)) == 20
        assert emulator.rate_limit_remaining(TOKEN) == 4980


def test_close_ends_keepalive_connections_and_frees_ports(root: Path) -> None:
    before = set(threading.enumerate())
    client = httpx.Client(timeout=5)
    with GitHubEmulator(root) as emulator:
        port = int(emulator.api_url.rsplit(":", 1)[1])
        # keep-alive: the connection stays open inside the server when the context closes
        assert client.get(f"{emulator.api_url}/repos/obra/superpowers").status_code == 200
    client.close()
    assert set(threading.enumerate()) <= before
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.api_url


def test_layout_bundle_needs_owner_plus_repo_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="owner\\+repo"):
        layout_bundle(tmp_path / "noplus.bundle", tmp_path)


# -- archives -------------------------------------------------------------------------------------


def _members(archive: bytes) -> tuple[dict[str, tarfile.TarInfo], dict[str, bytes], dict[str, str]]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        data = {m.name: tar.extractfile(m).read() for m in members.values() if m.isreg()}  # type: ignore[union-attr]
        return members, data, dict(tar.pax_headers)


@pytest.mark.parametrize("full_name", ["obra/superpowers", "octo/odd"])
def test_tarball_redirects_to_an_archive_of_the_tree_like_github(
    root: Path, http: httpx.Client, full_name: str
) -> None:
    bare = open_bare(root, full_name)
    snapshot = snapshot_commit(bare)
    sha, owner, name = snapshot.commit_sha, *full_name.split("/")
    with GitHubEmulator(root) as emulator:
        moved = http.get(f"{emulator.api_url}/repos/{full_name}/tarball/HEAD")
        archive = http.get(moved.headers["location"])
        assert moved.status_code == 302
        assert moved.headers["location"] == (
            f"{emulator.archive_url}/{owner}/{name}/legacy.tar.gz/{sha}"
        )
        assert (len(emulator.api_calls(counted_only=True)), len(emulator.archive_calls())) == (
            1,
            1,
        )
        assert emulator.raw_calls() == []
        assert emulator.archive_calls()[0].counted is False
        assert emulator.rate_limit_remaining() == 59
    folder = f"{owner}-{name}-{sha[:7]}"
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/x-gzip"
    assert archive.headers["content-disposition"] == f"attachment; filename={folder}.tar.gz"
    members, data, pax = _members(archive.content)
    assert pax == {"comment": sha}
    assert members[folder].isdir()
    assert set(members) == {folder} | {f"{folder}/{e.path}" for e in snapshot.entries}
    for entry in snapshot.entries:
        found = members[f"{folder}/{entry.path}"]
        if entry.is_tree or entry.is_gitlink:
            assert found.isdir(), entry
        elif entry.is_symlink:
            assert found.issym() and found.linkname.encode() == snapshot.read_blob(entry)
        else:
            assert data[found.name] == snapshot.read_blob(entry)
            assert bool(found.mode & 0o111) == (entry.mode == MODE_EXECUTABLE)
    bare.free()


def test_private_archives_need_the_signed_link_and_unknown_refs_are_404(
    root: Path, http: httpx.Client
) -> None:
    with GitHubEmulator(root, private=["octo/odd"]) as emulator:
        anonymous = http.get(f"{emulator.api_url}/repos/octo/odd/tarball/main")
        moved = http.get(f"{emulator.api_url}/repos/octo/odd/tarball/main", headers=AUTH)
        signed = http.get(moved.headers["location"])
        unsigned = http.get(moved.headers["location"].split("?")[0])
        unknown = http.get(f"{emulator.api_url}/repos/octo/odd/tarball/no-such-ref", headers=AUTH)
    assert anonymous.status_code == 404
    assert moved.status_code == 302 and "?token=" in moved.headers["location"]
    assert TOKEN not in moved.headers["location"]
    assert (signed.status_code, unsigned.status_code, unknown.status_code) == (200, 404, 404)


def test_archive_faults_statuses_cuts_endless_streams_and_own_bytes(
    root: Path, http: httpx.Client
) -> None:
    with GitHubEmulator(root) as emulator:
        url = http.get(f"{emulator.api_url}/repos/octo/odd/tarball/main").headers["location"]
        whole = http.get(url).content

        emulator.inject_fault("octo/odd", 503, host="archive", times=1)
        statuses = [http.get(url).status_code for _ in range(2)]

        emulator.inject_fault("octo/odd", host="archive", stream="cut", times=1)
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(url)

        emulator.inject_fault("octo/odd", host="archive", stream="endless", times=1)
        start = b""
        with httpx.Client(timeout=5) as client, client.stream("GET", url) as endless:
            for chunk in endless.iter_raw():
                start += chunk
                if len(start) > 4 * tarfile.BLOCKSIZE:
                    break
        assert endless.status_code == 200

        emulator.inject_fault("octo/odd", host="archive", body=b"not a tarball", times=1)
        own = http.get(url).content
        again = http.get(url).content
        # faults are for the archive host only; the REST host still answers
        assert http.get(f"{emulator.api_url}/repos/octo/odd").status_code == 200
    assert statuses == [503, 200]
    assert (own, again) == (b"not a tarball", whole)
    # the endless archive is a valid start of a stream that never ends: a file of 1 TiB
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    unpacked = inflate.decompress(start)
    assert not inflate.eof
    assert b"octo-odd-" in unpacked and b"size=1099511627776" in unpacked
    with pytest.raises(ValueError, match="archive host"):
        GitHubEmulator(root).inject_fault("octo/odd", host="raw", stream="cut")
