"""The address rules (lib/core/addresses.py): every notation of a non-public address is refused
unless allowed, the operator's GitHub hosts are trusted, and the check at connect time applies the
rules to what a name resolves to then."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from skillmeat_pipeline.lib.core.addresses import (
    ALLOWED_PRIVATE_HOSTS,
    AddressPolicy,
    ForbiddenAddressError,
    UnresolvedHostError,
    UrlError,
    credentials_problem,
    forbidden_kind,
    parse_ip,
    resolve_host,
    url_origin,
)
from skillmeat_pipeline.lib.fetch.git.worker import run_job

NOTHING_ALLOWED = AddressPolicy.from_env({})


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        # IPv4, every notation getaddrinfo reads
        ("127.0.0.1", "loopback"),
        ("127.1", "loopback"),
        ("0x7f000001", "loopback"),
        ("0X7F000001", "loopback"),
        ("2130706433", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("017700000001", "loopback"),
        ("0x7f.0.0.1", "loopback"),
        ("127.0.0.1.", "loopback"),
        ("169.254.169.254", "link-local"),
        ("0xa9fea9fe", "link-local"),  # 169.254.169.254
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("0", "unspecified"),
        ("100.64.0.1", "non-public"),  # shared address space (carrier-grade NAT)
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "private"),
        ("192.0.2.1", "private"),  # documentation
        # IPv6, with and without an IPv4 address inside
        ("[::1]", "loopback"),
        ("[0:0:0:0:0:0:0:1]", "loopback"),
        ("[::]", "unspecified"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[::ffff:7f00:1]", "loopback"),
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[::127.0.0.1]", "loopback"),  # IPv4-compatible
        ("[64:ff9b::10.0.0.1]", "private"),  # NAT64
        ("[2002:a9fe:a9fe::1]", "link-local"),  # 6to4 of 169.254.169.254
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "private"),  # unique local (ULA)
        ("[fd12:3456::1]", "private"),
        ("[fec0::1]", "site-local"),
        ("[ff02::1]", "multicast"),
        ("[2001:db8::1]", "private"),  # documentation
    ],
)
def test_every_notation_of_a_non_public_address_is_refused(host: str, kind: str) -> None:
    url = f"http://{host}/o/r.git"
    with pytest.raises(ForbiddenAddressError) as refused:
        NOTHING_ALLOWED.check(url)
    message = str(refused.value)
    assert f"a {kind} address" in message or f"an {kind} address" in message
    assert ALLOWED_PRIVATE_HOSTS in message
    # the same URL at connect time, without any DNS (an address is not resolved)
    with pytest.raises(ForbiddenAddressError):
        NOTHING_ALLOWED.check_connect(url, resolve=_no_dns)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/o/r.git",
        "https://8.8.8.8/o/r.git",
        "https://[2606:4700::1111]/o/r.git",
        "https://[::ffff:8.8.8.8]/o/r.git",
        "https://[64:ff9b::8.8.8.8]/o/r.git",
        "git@git.example.com:o/r.git",
        "ssh://git@git.example.com:2222/o/r.git",
        "git://git.example.com/o/r.git",
    ],
)
def test_public_addresses_and_names_pass_the_static_check(url: str) -> None:
    NOTHING_ALLOWED.check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/o/r.git",
        "http://LOCALHOST:8080/o/r.git",
        "http://git.localhost/o/r.git",
        "http://ip6-localhost/o/r.git",
    ],
)
def test_loopback_names_are_refused_without_resolving(url: str) -> None:
    with pytest.raises(ForbiddenAddressError, match="loopback"):
        NOTHING_ALLOWED.check(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://%31%32%37.0.0.1/o/r.git",  # a parser that decodes it connects to 127.0.0.1
        "http://exa mple.com/o/r.git",
        "http://\u0435xample.com/o/r.git",  # Cyrillic e
        "ftp://example.com/o/r.git",
        "http:///o/r.git",
        "http://example.com:99999/o/r.git",
    ],
)
def test_hosts_that_parsers_may_read_differently_are_refused(url: str) -> None:
    with pytest.raises(UrlError):
        NOTHING_ALLOWED.check(url)


def test_a_name_that_resolves_to_a_forbidden_address_is_refused_at_connect_time() -> None:
    url = "https://git.example.com/o/r.git"
    NOTHING_ALLOWED.check(url)  # a name: nothing to say before it is resolved
    for answer in (["169.254.169.254"], ["8.8.8.8", "10.1.2.3"], ["::ffff:127.0.0.1"]):
        with pytest.raises(ForbiddenAddressError, match=r"git\.example\.com resolves to"):
            NOTHING_ALLOWED.check_connect(url, resolve=_answers(*answer))
    assert NOTHING_ALLOWED.check_connect(url, resolve=_answers("8.8.8.8", "2606:4700::1111"))
    with pytest.raises(UnresolvedHostError):
        NOTHING_ALLOWED.check_connect(url, resolve=_answers())


def test_localhost_resolves_to_loopback_for_real_and_is_refused() -> None:
    addresses = resolve_host("localhost", 80)
    assert addresses and all(forbidden_kind(a) == "loopback" for a in addresses)
    with pytest.raises(ForbiddenAddressError, match="localhost resolves to"):
        NOTHING_ALLOWED.check_connect("http://localhost:9/o/r.git")


def test_the_worker_refuses_a_name_that_resolves_to_a_forbidden_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what a clone or head-lookup worker does with a job, in this process: the resolver answers
    # the metadata address for a name that passed validation
    def metadata(host: str, port: int, *_: object, **__: object) -> list[tuple]:  # type: ignore[type-arg]
        assert host == "git.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(socket, "getaddrinfo", metadata)
    job = {
        "op": "resolve",
        "url": "https://git.example.com/o/r.git",
        "ref": None,
        "token": None,
        "token_withheld": False,
        "addresses": NOTHING_ALLOWED.to_json(),
        "dest": None,
        "soft_deadline": 0,
        "connect_timeout_ms": 1000,
        "idle_timeout_ms": 1000,
    }
    reply = run_job(job)
    assert reply["ok"] is False
    assert (reply["reason"], reply["kind"]) == ("forbidden_address", "permanent")
    assert "resolves to 169.254.169.254, a link-local address" in reply["detail"]


def test_allowed_hosts_ports_and_networks() -> None:
    policy = AddressPolicy.from_env(
        {ALLOWED_PRIVATE_HOSTS: " git.internal , 10.20.0.0/16,127.0.0.1:8443, [::1]:9418,fd00::/8"}
    )
    for url in (
        "https://git.internal/o/r.git",
        "https://GIT.INTERNAL:444/o/r.git",
        "https://10.20.3.4/o/r.git",
        "https://127.0.0.1:8443/o/r.git",
        "https://0x7f000001:8443/o/r.git",  # the same address, another notation
        "git://[::1]:9418/o/r.git",
        "https://[fd00::5]/o/r.git",
    ):
        policy.check_connect(url, resolve=_answers("10.99.0.1"))
    for url in (
        "https://10.21.0.1/o/r.git",
        "https://127.0.0.1:8444/o/r.git",  # another port of an allowed host:port
        "https://[::1]/o/r.git",
        "https://[fc00::1]/o/r.git",
    ):
        with pytest.raises(ForbiddenAddressError):
            policy.check(url)
    # a name allowed by name is not resolved at all; another name must resolve into the allowed
    policy.check_connect("https://git.internal/x.git", resolve=_no_dns)
    policy.check_connect("https://mirror.example/x.git", resolve=_answers("10.20.9.9"))
    with pytest.raises(ForbiddenAddressError):
        policy.check_connect("https://mirror.example/x.git", resolve=_answers("10.30.9.9"))


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "host:port", "host:0", "[::1", "a b"])
def test_a_malformed_allowed_entry_is_a_clear_error(entry: str) -> None:
    with pytest.raises(ValueError, match=ALLOWED_PRIVATE_HOSTS):
        AddressPolicy.from_env({ALLOWED_PRIVATE_HOSTS: entry})


def test_the_operators_github_hosts_are_trusted_and_the_only_token_hosts() -> None:
    env = {
        "SKILLMEAT_GITHUB_GIT_URL": "http://127.0.0.1:8080",
        "SKILLMEAT_GITHUB_API_URL": "http://127.0.0.1:8081/api/v3",
    }
    policy = AddressPolicy.from_env(env)
    policy.check_connect("http://127.0.0.1:8080/o/r.git", resolve=_no_dns)
    assert policy.is_github("http://127.0.0.1:8080/o/r.git")
    assert policy.is_github("http://0x7f000001:8080/o/r.git")
    assert policy.is_github("https://raw.githubusercontent.com/o/r/main/x")  # the default raw
    assert not policy.is_github("http://127.0.0.1:8082/o/r.git")  # another port
    assert not policy.is_github("http://localhost:8080/o/r.git")  # another host name
    assert not policy.is_github("https://github.com/o/r.git")  # not the configured git host
    with pytest.raises(ForbiddenAddressError):
        policy.check("http://127.0.0.1:8082/o/r.git")
    default = AddressPolicy.from_env({})
    assert default.is_github("https://github.com/o/r.git")
    assert default.is_github("https://api.github.com/repos/o/r")
    assert not default.is_github("http://github.com/o/r.git")  # port 80 is not GitHub's git
    assert not default.is_github("https://github.com.evil.example/o/r.git")
    # the policy reaches a worker as JSON, unchanged
    assert AddressPolicy.from_json(policy.to_json()) == policy


@pytest.mark.parametrize(
    "url",
    [
        "https://ghp_abcdefghijklmnopqrstuvwxyz0123@git.example.com/o/r.git",
        "https://x-access-token:secret@git.example.com/o/r.git",
        "http://user@git.example.com/o/r.git",
        "ssh://user:hunter2@git.example.com/o/r.git",
        "git://token@git.example.com/o/r.git",
        "https://git.example.com/o/r.git?access_token=s3cr3t",
        "https://git.example.com/o/r.git?ref=main&private_token=s3cr3t",
        "https://git.example.com/o/r.git?X-Amz-Signature=abc",
        "https://git.example.com/o/r.git?api_key=abc",
        "https://git.example.com/o/r.git#token=abc",
        "https://git.example.com/github_pat_11ABCDEFG0123456789_abcdefghijkl/r.git",
    ],
)
def test_credentials_in_any_form_are_found_and_never_quoted(url: str) -> None:
    problem = credentials_problem(url)
    assert problem
    for secret in ("s3cr3t", "hunter2", "secret", "ghp_", "github_pat_", "abcdefghijkl"):
        assert secret not in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/o/r.git",
        "ssh://git@github.com/o/r.git",
        "git@github.com:o/r.git",
        "https://git.example.com/o/r.git?ref=main",
    ],
)
def test_urls_without_credentials_pass(url: str) -> None:
    assert credentials_problem(url) is None


def test_parse_ip_and_origin() -> None:
    assert parse_ip("0x7f000001") == ipaddress.ip_address("127.0.0.1")
    assert parse_ip("deadbeef.example") is None
    assert parse_ip("cafe") is None  # a name, not hex without 0x
    assert url_origin("git@GitHub.com:o/r.git").endpoint == ("github.com", 22)
    assert url_origin("HTTPS://[::FFFF:7F00:1]:8443/x").endpoint == ("::ffff:7f00:1", 8443)
    assert url_origin("git://h.example/x").port == 9418


def _no_dns(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    raise AssertionError(f"{host}:{port} must not be resolved")


def _answers(*addresses: str):  # type: ignore[no-untyped-def]
    def resolve(_host: str, _port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve
