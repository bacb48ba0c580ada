"""Where a URL may make the pipeline connect, and where the GitHub token may go (SPEC §2, §6.1).

Sources files and marketplace entries are written by strangers, and a URL in them decides which
host the pipeline connects to, from inside the operator's network. So a URL whose host is, or
resolves to, a loopback, private, link-local, unspecified or otherwise non-public address is
refused unless the operator lists it in `SKILLMEAT_ALLOWED_PRIVATE_HOSTS` (hosts, `host:port`s
or CIDRs, comma-separated). The hosts of the `SKILLMEAT_GITHUB_*_URL` variables are the
operator's own choice and trusted; they are also the only hosts the token goes to.

The rules run twice: when a URL is validated (`AddressPolicy.check`: the host as written, in every
notation a resolver accepts: `0x7f000001`, `2130706433`, `0177.0.0.1`, `127.1`,
`[::ffff:127.0.0.1]`...), and in the worker process right before libgit2 connects
(`AddressPolicy.check_connect`: every address the name resolves to then). libgit2 resolves the
name once more when it connects, so a DNS server that answers a public address to the check and a
private one a millisecond later (DNS rebinding) still wins that race; libgit2 offers no way to
connect to an address resolved beforehand.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from skillmeat_pipeline.lib.core.secrets import redact

ALLOWED_PRIVATE_HOSTS = "SKILLMEAT_ALLOWED_PRIVATE_HOSTS"
# The operator's GitHub hosts: trusted, and the only ones the token is sent to.
GITHUB_URLS = {
    "SKILLMEAT_GITHUB_GIT_URL": "https://github.com",
    "SKILLMEAT_GITHUB_API_URL": "https://api.github.com",
    "SKILLMEAT_GITHUB_RAW_URL": "https://raw.githubusercontent.com",
}
DEFAULT_PORTS = {"https": 443, "http": 80, "ssh": 22, "git": 9418}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Endpoint = tuple[str, int]  # (host, port): a host name or a canonical IP address
Resolver = Callable[[str, int], Sequence[IPAddress]]

# `git@host:owner/repo.git`, the scp-like form of an ssh URL
_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+)@(?P<host>[\w.-]+):(?P<path>\S+)$")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
# what inet_aton reads as IPv4: dotted, hex, octal, integer, short forms (`127.1`)
_INET_ATON = re.compile(r"^[0-9a-fx.]+$")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_LOOPBACK = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
# query parameters that carry a credential (`?access_token=`, `?private_token=`, `?sig=`...)
_CREDENTIAL_PARAM = re.compile(
    r"token|secret|passw|pwd|auth|credential|api[-_]?key|access[-_]?key|signature|session"
    r"|^sig$|^key$",
    re.IGNORECASE,
)
# GitHub token shapes, wherever they stand in a URL
_GITHUB_TOKEN = re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class UrlError(ValueError):
    """A URL the pipeline does not connect to; the message never quotes a credential."""


class ForbiddenAddressError(UrlError):
    """The URL's host is, or resolves to, a non-public address that is not allowed."""


class UnresolvedHostError(UrlError):
    """The URL's host name does not resolve (checked before libgit2 connects)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a URL connects: scheme, host (lowercase; IP addresses canonical) and port."""

    scheme: str
    host: str
    port: int

    @property
    def endpoint(self) -> Endpoint:
        return (self.host, self.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def github_url(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL of one of the operator's GitHub hosts: variable `name` of `GITHUB_URLS` or its
    default."""
    return (os.environ if environ is None else environ).get(name) or GITHUB_URLS[name]


def parse_ip(host: str) -> IPAddress | None:
    """`host` as an IP address, in any notation a resolver reads as one; None for a name."""
    text = host.rstrip(".").lower()
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not _INET_ATON.match(text):
        return None
    try:
        # `0x7f000001`, `2130706433`, `0177.0.0.1` and `127.1` are all 127.0.0.1 to getaddrinfo
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def normalize_host(host: str) -> str:
    """A host as the rules compare it: lowercase, no trailing dot, IP addresses canonical."""
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.rstrip(".")
    address = parse_ip(text)
    if address is not None:
        return str(address)
    if not _HOST_NAME.match(text):
        # `%`-escapes, zone ids, unicode: a parser that reads them differently from libgit2's
        # would check one host and connect to another
        raise UrlError(f"{host!r} is not a host name or an IP address")
    return text


def url_origin(url: str) -> Origin:
    """Scheme, host and port of a git URL (https, http, ssh, git, or scp-like `user@host:path`)."""
    scp = _SCP_LIKE.match(url)
    if scp and "://" not in url:
        return Origin("ssh", normalize_host(scp["host"]), DEFAULT_PORTS["ssh"])
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlError(f"{display_url(url)}: the scheme must be https, http, ssh or git")
    if not parts.hostname:
        raise UrlError(f"{display_url(url)}: no host")
    try:
        port = parts.port
    except ValueError:
        raise UrlError(f"{display_url(url)}: the port is not a number from 0 to 65535") from None
    return Origin(scheme, normalize_host(parts.hostname), port or DEFAULT_PORTS[scheme])


def display_url(url: str) -> str:
    """`url` without user, password, query or fragment: safe for logs, errors and metadata."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.scheme or not parts.hostname:
        return redact(url)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def credentials_problem(url: str) -> str | None:
    """Why `url` carries a credential (`user:pass@`, `token@`, `?access_token=`), or None.

    The answer names where the credential is, never the credential.
    """
    if _GITHUB_TOKEN.search(url):
        return "the URL holds a GitHub token"
    if _SCP_LIKE.match(url) and "://" not in url:
        return None  # `git@host:path`: a user name, no password
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    # ssh://git@host names the account the key is for; anything else before `@` is a secret
    if userinfo and (":" in userinfo or parts.scheme.lower() != "ssh"):
        return "the URL holds credentials before its host (user:password@ or token@)"
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if _CREDENTIAL_PARAM.search(name):
            return f"the URL's query holds a credential ({name[:40]!r})"
    if _CREDENTIAL_PARAM.search(parts.fragment):
        return "the URL's fragment holds a credential"
    return None


def forbidden_kind(address: IPAddress) -> str | None:
    """What makes `address` non-public ("loopback", "private"...), or None when it is public.

    IPv6 addresses that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
    NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) are judged by the IPv4 address.
    """
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return forbidden_kind(embedded)
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    if address.is_private:
        return "private"
    if not address.is_global or address.is_reserved:
        return "non-public"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if (address in _NAT64 or address in _IPV4_COMPATIBLE) and int(address) > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_loopback_name(host: str) -> bool:
    """`localhost` and the names RFC 6761 reserves for loopback (`*.localhost`)."""
    return host in _LOOPBACK_NAMES or host.endswith(".localhost")


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to now (what a connection would try)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnresolvedHostError(f"{host} does not resolve ({exc})") from None
    # a link-local IPv6 answer carries its zone (`fe80::1%eth0`)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The address rules in force: the allowed private hosts and the operator's GitHub hosts."""

    allowed_hosts: frozenset[str] = frozenset()  # any port of these hosts
    allowed_endpoints: frozenset[Endpoint] = frozenset()  # host:port
    allowed_networks: tuple[IPNetwork, ...] = ()
    github: frozenset[Endpoint] = frozenset()  # trusted; the only endpoints the token goes to

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AddressPolicy:
        """`SKILLMEAT_ALLOWED_PRIVATE_HOSTS` and the `SKILLMEAT_GITHUB_*_URL` hosts."""
        env = os.environ if environ is None else environ
        return _policy(
            env.get(ALLOWED_PRIVATE_HOSTS, ""),
            tuple(github_url(name, env) for name in GITHUB_URLS),
        )

    def to_json(self) -> dict[str, Any]:
        """The policy as a worker process receives it in its job."""
        return {
            "allowed_hosts": sorted(self.allowed_hosts),
            "allowed_endpoints": sorted(self.allowed_endpoints),
            "allowed_networks": [str(n) for n in self.allowed_networks],
            "github": sorted(self.github),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AddressPolicy:
        return cls(
            allowed_hosts=frozenset(data["allowed_hosts"]),
            allowed_endpoints=frozenset((h, int(p)) for h, p in data["allowed_endpoints"]),
            allowed_networks=tuple(ipaddress.ip_network(n) for n in data["allowed_networks"]),
            github=frozenset((h, int(p)) for h, p in data["github"]),
        )

    def is_github(self, url: str) -> bool:
        """Whether `url` is on one of the operator's GitHub hosts (host and port)."""
        try:
            return url_origin(url).endpoint in self.github
        except UrlError:
            return False

    def check(self, url: str) -> Origin:
        """The URL's origin, or `UrlError` / `ForbiddenAddressError`: the host as written.

        A name is not resolved here (see `check_connect`), except the loopback names.
        """
        origin = url_origin(url)
        if self._exempt(origin):
            return origin
        address = parse_ip(origin.host)
        if address is not None:
            self._check_address(origin, address, resolved=False)
        elif is_loopback_name(origin.host):
            for loopback in _LOOPBACK:
                self._check_address(origin, loopback, resolved=True)
        return origin

    def check_connect(self, url: str, resolve: Resolver = resolve_host) -> Origin:
        """`check`, then every address the host resolves to now: right before connecting."""
        origin = self.check(url)
        if self._exempt(origin) or parse_ip(origin.host) is not None:
            return origin
        addresses = resolve(origin.host, origin.port)
        if not addresses:
            raise UnresolvedHostError(f"{origin.host} resolves to no address")
        for address in addresses:
            self._check_address(origin, address, resolved=True)
        return origin

    def _exempt(self, origin: Origin) -> bool:
        return (
            origin.endpoint in self.github
            or origin.host in self.allowed_hosts
            or origin.endpoint in self.allowed_endpoints
        )

    def _allows(self, address: IPAddress, port: int) -> bool:
        candidates = [address]
        if (embedded := _embedded_ipv4(address)) is not None:
            candidates.append(embedded)
        return any(
            str(a) in self.allowed_hosts
            or (str(a), port) in self.allowed_endpoints
            or any(a.version == net.version and a in net for net in self.allowed_networks)
            for a in candidates
        )

    def _check_address(self, origin: Origin, address: IPAddress, *, resolved: bool) -> None:
        kind = forbidden_kind(address)
        if kind is None or self._allows(address, origin.port):
            return
        embedded = _embedded_ipv4(address)
        shown = f"{address} ({embedded})" if embedded is not None else str(address)
        article = "an" if kind[0] in "aeiou" else "a"
        what = f"{origin.host} resolves to {shown}," if resolved else f"{shown} is"
        raise ForbiddenAddressError(
            f"host {what} {article} {kind} address: connections to non-public addresses are "
            f"refused unless the host is listed in {ALLOWED_PRIVATE_HOSTS}"
        )


def parse_allowed(text: str) -> tuple[frozenset[str], frozenset[Endpoint], tuple[IPNetwork, ...]]:
    """`SKILLMEAT_ALLOWED_PRIVATE_HOSTS`: (hosts, host:ports, networks); ValueError naming a bad
    entry."""
    hosts: set[str] = set()
    endpoints: set[Endpoint] = set()
    networks: list[IPNetwork] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        try:
            if "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            host, port = _host_and_port(entry)
            if port is None:
                hosts.add(normalize_host(host))
            else:
                endpoints.add((normalize_host(host), port))
        except ValueError as exc:
            raise ValueError(
                f"{ALLOWED_PRIVATE_HOSTS}: {entry!r} is not a host, host:port or CIDR ({exc})"
            ) from None
    return frozenset(hosts), frozenset(endpoints), tuple(networks)


def _host_and_port(entry: str) -> tuple[str, int | None]:
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", entry)
    if bracketed:
        return bracketed[1], int(bracketed[2]) if bracketed[2] else None
    if entry.count(":") == 1:
        host, port = entry.split(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"bad port {port!r}")
        return host, int(port)
    return entry, None  # a name, an IPv4 address, or an IPv6 address without brackets


@functools.lru_cache(maxsize=16)
def _policy(allowed: str, github_urls: tuple[str, ...]) -> AddressPolicy:
    hosts, endpoints, networks = parse_allowed(allowed)
    return AddressPolicy(
        allowed_hosts=hosts,
        allowed_endpoints=endpoints,
        allowed_networks=networks,
        github=frozenset(_operator_endpoints(github_urls)),
    )


def _operator_endpoints(urls: Iterable[str]) -> Iterable[Endpoint]:
    for url in urls:
        try:
            yield url_origin(url).endpoint
        except UrlError as exc:
            names = ", ".join(GITHUB_URLS)
            raise ValueError(f"one of {names} is not a usable URL: {exc}") from None
