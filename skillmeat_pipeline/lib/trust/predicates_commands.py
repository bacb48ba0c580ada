"""`accept` predicates of the command rules (remote code, obfuscation, exfiltration, network,
destructive, persistence, privilege, permission bypass) and the vocabulary they share."""

from __future__ import annotations

import re

from skillmeat_pipeline.lib.trust.model import Hit

# Shared vocabulary (lowercased bytes)

_DOWNLOAD = re.compile(
    rb"\b(?:curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod)\b|https?://|net\.webclient"
)
NETWORK_SEND = re.compile(
    rb"\b(?:curl|wget|nc|ncat|netcat|socat|scp|rsync|sftp|ftp|telnet|iwr|irm)\b"
    rb"|requests\.(?:post|put|get|patch|request)|httpx\.|urllib|urlopen|\bfetch\(|axios"
    rb"|http\.client|https?\.request|socket\.|invoke-webrequest|invoke-restmethod|net\.webclient"
    rb"|/dev/tcp/"
)
_SHELL_SINK = re.compile(
    rb"(?:/usr)?(?:/bin/)?(?:(?:ba|z|da|k|fi)?sh|pwsh|powershell|iex|invoke-expression)\b"
)
_INTERPRETER_SINK = re.compile(rb"(?:/usr)?(?:/bin/)?(?:python[0-9.]*|node|perl|ruby|php)\b")
_NETWORK_SINK = re.compile(rb"(?:curl|wget|nc|ncat|netcat|socat)\b")
# What follows an interpreter that reads a program from stdin, not one that processes the data.
_STDIN_PROGRAM = re.compile(rb"\s*(?:$|-(?:\s|$|[;&|)\"'])|[;&|)\"'`])")
_DECODE = re.compile(
    rb"\bbase(?:64|32)\s+(?:-\w+\s+)*(?:-d|--decode)\b|\bxxd\s+(?:-\w+\s+)*-r"
    rb"|\bopenssl\s+(?:enc\s+|base64\s+)(?:-\S+\s+)*-d\b|\bgunzip\b|\bzcat\b"
    rb"|(?:printf|echo\s+-e)\s+[\"']?(?:\\x[0-9a-f]{2}){4}"
)
SENSITIVE_PATH = re.compile(
    rb"/\.(?:ssh/(?:id_[a-z0-9_]++(?!\.pub)|identity\b|\*|[\s\"'`]|$)|ssh[\s\"'`]|ssh$"
    rb"|aws/credentials|aws/?[\s\"'`]|config/gcloud|netrc\b|git-credentials|docker/config\.json"
    rb"|kube/config|npmrc|pypirc)"
    rb"|(?:^|[\s@=\"'<(])\.env(?![.\w-])|\bid_(?:rsa|dsa|ecdsa|ed25519)\b(?!\.pub)"
    rb"|/etc/(?:passwd|shadow)|\bfind-(?:generic|internet)-password|\bdump-keychain"
)
_SECRET_VARIABLE = re.compile(
    rb"\$\{?[a-z0-9_]*(?:key|token|secret|password|passwd|pat|credentials?)\b"
    rb"|environ(?:\.get\(|\[)[\"'][a-z0-9_]*(?:key|token|secret|password)"
    rb"|process\.env\.[a-z0-9_]*(?:key|token|secret|password)"
    rb"|getenv\([\"'][a-z0-9_]*(?:key|token|secret|password)"
)
_IPV4 = re.compile(rb"(?<![\w./:-])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w.]*[a-z])")
_URL_HOST = re.compile(rb"://(\[[0-9a-f:.]+\]|[^/\s:\"'`)<>\]]+)")
_METADATA_HOSTS = (b"169.254.169.254", b"metadata.google.internal", b"100.100.100.200")


def _ipv4(text: bytes) -> tuple[int, int, int, int] | None:
    match = _IPV4.fullmatch(text)
    if not match:
        return None
    octets = tuple(int(part) for part in match.groups())
    if any(octet > 255 for octet in octets):
        return None
    return (octets[0], octets[1], octets[2], octets[3])


def address_class(host: bytes) -> str | None:
    """`metadata`, `private`, `public` or None (a name, loopback, a documentation address)."""
    host = host.strip(b"[]")
    if host in _METADATA_HOSTS or host.startswith(b"fd00:ec2::254"):
        return "metadata"
    if b":" in host:  # IPv6 literal
        if host in (b"::1", b"::"):
            return None
        return "private" if host.startswith((b"fc", b"fd", b"fe80")) else "public"
    octets = _ipv4(host)
    if octets is None:
        return None
    a, b, c, _ = octets
    if a in (0, 127) or octets == (255, 255, 255, 255):
        return None
    if (a, b, c) in ((192, 0, 2), (198, 51, 100), (203, 0, 113)):  # RFC 5737 examples
        return None
    if a == 10 or (a == 172 and 16 <= b <= 31) or (a, b) == (192, 168) or (a, b) == (169, 254):
        return "private"
    if a == 100 and 64 <= b <= 127:  # carrier-grade NAT
        return "private"
    return "public"


def _hosts(line: bytes) -> list[tuple[bytes, str]]:
    """Every literal address of `line` (in URLs or bare) with its class."""
    found: list[tuple[bytes, str]] = []
    for match in _URL_HOST.finditer(line):
        kind = address_class(match.group(1))
        if kind:
            found.append((match.group(1), kind))
    for match in _IPV4.finditer(line):
        kind = address_class(match.group())
        if kind:
            found.append((match.group(), kind))
    for name in _METADATA_HOSTS[1:]:
        if name in line:
            found.append((name, "metadata"))
    return found


def _pipe_segment_left(hit: Hit) -> bytes:
    """The pipeline to the left of the matched `|` (after the last `;`, `&&` or `(`)."""
    left = hit.before
    cut = max(left.rfind(b";"), left.rfind(b"&&"), left.rfind(b"$("))
    return left[cut + 1 :] if cut >= 0 else left


def _pipe_sink(hit: Hit) -> tuple[bytes, bytes]:
    """The command that the `|` feeds (without `| sudo`), and what follows it on the line."""
    text = hit.line[hit.start + 1 : hit.end].strip()
    sink = re.sub(rb"^sudo\s+(?:-[a-z]+\s+)*", b"", text)
    return sink, hit.after


def _runs_stdin(hit: Hit) -> bool:
    """The pipe feeds a shell, or an interpreter that reads its program from stdin."""
    if hit.before.endswith(b"|"):  # `||`
        return False
    sink, after = _pipe_sink(hit)
    if _SHELL_SINK.fullmatch(sink):
        return not re.match(rb"\s+-c\b", after)
    if _INTERPRETER_SINK.fullmatch(sink):
        return bool(_STDIN_PROGRAM.match(after))
    return False


def accept_pipe_to_shell(hit: Hit) -> bool:
    return _runs_stdin(hit) and bool(_DOWNLOAD.search(_pipe_segment_left(hit)))


def accept_decode_to_shell(hit: Hit) -> bool:
    left = _pipe_segment_left(hit)
    if _runs_stdin(hit) and _DECODE.search(left):
        return True
    sink, after = _pipe_sink(hit)
    # eval "$(echo … | base64 -d)", sh -c "$(… | base64 --decode)"
    return (
        sink == b"base64"
        and bool(re.match(rb"\s+(?:-\w+\s+)*(?:-d|--decode)\b", after))
        and bool(
            re.search(rb"\b(?:eval|(?:ba|z|da)?sh\s+-c|source)\s*[\"']?\$\(", hit.line[: hit.start])
        )
    )


def accept_env_dump_pipe(hit: Hit) -> bool:
    sink, _ = _pipe_sink(hit)
    if not _NETWORK_SINK.fullmatch(sink):
        return False
    left = _pipe_segment_left(hit).strip()
    return bool(re.fullmatch(rb"(?:.*\s)?(?:env|printenv|set|export\s+-p|compgen\s+-e)", left))


def accept_secret_file_pipe(hit: Hit) -> bool:
    sink, _ = _pipe_sink(hit)
    return bool(_NETWORK_SINK.fullmatch(sink)) and bool(SENSITIVE_PATH.search(hit.before))


def accept_crontab_pipe(hit: Hit) -> bool:
    sink, _ = _pipe_sink(hit)
    return sink == b"crontab"


_EXECUTOR_BEFORE_SUBSTITUTION = re.compile(
    rb"(?:\beval|\bsource|(?:^|[\s;&|(])\.|\b(?:ba|z|da|k)?sh(?:\s+-[a-z]+)*"
    rb"|\bpython[0-9.]*(?:\s+-[a-z]+)*|\bnode(?:\s+-[a-z]+)*|\bperl(?:\s+-[a-z]+)*"
    rb"|\bruby(?:\s+-[a-z]+)*)\s*[\"']?$"
)


def accept_eval_download(hit: Hit) -> bool:
    """`bash <(curl …)`, `eval "$(curl …)"`, `sh -c "$(wget -O- …)"`, `iex (iwr …)`."""
    if hit.trigger == "iex":
        if hit.before.rstrip().endswith(b"|"):
            return False  # `… | iex` is the pipe rule's
        return bool(
            re.search(
                rb"downloadstring|\b(?:iwr|irm|invoke-webrequest|invoke-restmethod)\b|https?://",
                hit.after,
            )
        )
    before = hit.before.rstrip()
    for opener in (b"$(", b"<(", b"`"):
        if before.endswith(opener):
            head = before[: -len(opener)].rstrip()
            if opener == b"<(" and re.search(rb"(?:^|[\s;&|(])(?:diff|cmp|comm|paste)\b", head):
                return False
            return bool(_EXECUTOR_BEFORE_SUBSTITUTION.search(head))
    return False


_RUN_FILE = re.compile(
    rb"(?:&&|;)\s*(?:sudo\s+)?(?:(?:(?:ba|z|da)?sh|python[0-9.]*|node|perl|ruby)\s+(?:-\S+\s+)*"
    rb"|chmod\s+\+?[0-7x+a-z]+\s+|\.?/)"
    rb"(?P<file>[^\s;&|\"')]+)"
)


def accept_download_then_run(hit: Hit) -> bool:
    """`curl -o x.sh URL && bash x.sh`, `wget URL/install.sh; sh install.sh`."""
    after = hit.after
    for match in _RUN_FILE.finditer(after):
        name = match.group("file").rsplit(b"/", 1)[-1]
        head = after[: match.start()]
        if len(name) > 2 and name in head and re.search(rb"https?://|\$\{?\w*url", head):
            return True
    return False


_UPLOAD = re.compile(
    rb"(?:\s-f\s*|\s--form(?:-string)?[\s=]+)[\"']?[^\s=\"']*=@\s*[\"']?(?P<a>[^\s\"';]+)"
    rb"|(?:\s-t\s*|\s--upload-file[\s=]+)[\"']?(?P<b>[^\s\"';-][^\s\"';]*)"
    rb"|\s--post-file[\s=]+[\"']?(?P<c>[^\s\"';]+)"
)
_DATA_FROM_FILE = re.compile(
    rb"(?:\s-d|\s--data(?:-binary|-raw|-urlencode|-ascii)?|\s--json)[\s=]*[\"']?@(?P<a>[^\s\"';]+)"
)


def _uploads(hit: Hit) -> list[bytes]:
    after = hit.after
    files = [next(g for g in m.groups() if g) for m in _UPLOAD.finditer(after)]
    files += [m.group("a") for m in _DATA_FROM_FILE.finditer(after)]
    return [f for f in files if f != b"-"]


def _is_local_only(line: bytes) -> bool:
    hosts = re.findall(rb"https?://([^/\s:\"']+)", line)
    return bool(hosts) and all(
        host in (b"localhost", b"127.0.0.1", b"0.0.0.0", b"[::1]") for host in hosts
    )


def accept_secret_file_upload(hit: Hit) -> bool:
    """A network command whose payload is a credential file."""
    if hit.trigger in ("curl", "wget"):
        return any(SENSITIVE_PATH.search(b" " + name) for name in _uploads(hit))
    # trigger `dotpath` / `keychain`: a credential path on a line that sends to the network
    return bool(NETWORK_SEND.search(hit.line)) and _is_credential_access(hit)


def accept_file_upload(hit: Hit) -> bool:
    """`curl -F file=@x`, `curl -T x`, `wget --post-file=x` to a host that is not this machine."""
    files = [name for name in _uploads(hit) if not SENSITIVE_PATH.search(b" " + name)]
    if not files or _is_local_only(hit.line):
        return False
    # `-d @payload.json` posts a request body; only -F/-T/--upload-file/--post-file upload files
    return bool(_UPLOAD.search(hit.after))


_RAW_READ_BEFORE = re.compile(
    rb"(?:\bcat|\bhead|\btail|\bless|\bbase64|\bxxd|<|\bopen\(|readfile(?:sync)?\(|read_text\("
    rb"|\bget-content|\bpath\()\s*[\"']?(?:\./)?$"
)


def _is_credential_access(hit: Hit) -> bool:
    line = hit.line
    if hit.trigger == "keychain":
        return True
    if hit.trigger == "dotenv":  # `.env` read raw (`cat .env`, `open(".env")`), not `source .env`
        return bool(_RAW_READ_BEFORE.search(hit.before))
    match = SENSITIVE_PATH.search(line, max(0, hit.start - 1))
    if match is None or match.start() > hit.end + 2:
        return False
    # using a key for what it is for, or managing the folder, is not reading it
    return not re.search(
        rb"\bssh\s+(?:-\S+\s+)*-i\b|\bssh-(?:add|keygen|copy-id|keyscan|agent)\b|identityfile"
        rb"|\b(?:chmod|chown|mkdir|ls|touch|stat|test)\b|\s-v\s|known_hosts|authorized_keys",
        line,
    )


def accept_credential_with_network(hit: Hit) -> bool:
    """A credential read on a line without a network call, and a network call in the same block."""
    if not _is_credential_access(hit) or NETWORK_SEND.search(hit.line):
        return False
    return bool(NETWORK_SEND.search(hit.block()))


_ENV_SERIALIZED = re.compile(
    rb"(?:dict|str|repr|json\.dumps|list|tuple)\s*\(\s*(?:os\.)?environ(?:\.items\(\))?\s*\)"
    rb"|(?:stringify|object\.entries|object\.keys)\s*\(\s*process\.env\s*\)"
    rb"|\$\(\s*(?:env|printenv)\s*\)|`\s*(?:env|printenv)\s*`"
)


def accept_env_dump(hit: Hit) -> bool:
    if not _ENV_SERIALIZED.search(hit.line):
        return False
    return bool(NETWORK_SEND.search(hit.line) or NETWORK_SEND.search(hit.block()))


def accept_secret_to_raw_ip(hit: Hit) -> bool:
    hosts = _hosts(hit.line)
    return (
        any(kind in ("public", "private") for _, kind in hosts)
        and bool(_SECRET_VARIABLE.search(hit.line))
        and bool(NETWORK_SEND.search(hit.line))
    )


def _url_host_class(hit: Hit) -> str | None:
    if hit.trigger == "url":
        match = _URL_HOST.match(hit.line, hit.start)
        return address_class(match.group(1)) if match else None
    # curl/wget with a bare address
    kinds = {kind for _, kind in _hosts(hit.line)}
    for kind in ("metadata", "private", "public"):
        if kind in kinds:
            return kind
    return None


def accept_metadata(hit: Hit) -> bool:
    return _url_host_class(hit) == "metadata"


def accept_private_address(hit: Hit) -> bool:
    return _url_host_class(hit) == "private"


def accept_public_ip(hit: Hit) -> bool:
    return _url_host_class(hit) == "public"


_REMOTE_CALL = re.compile(
    rb"urlopen|urllib\.request|requests\.(?:get|post|request)|httpx\.(?:get|post|request)"
    rb"|\bfetch\(|axios|https?\.get|\.downloadstring|https?://"
)
_DECODED_DATA = re.compile(
    rb"b(?:64|32|85)decode|a85decode|decodebytes|fromhex|unhexlify|decompress\(|codecs\.decode"
    rb"|marshal\.loads|\batob\(|buffer\.from\([^)]{0,200}[\"'](?:base64|hex)|fromcharcode"
    rb"|unescape\(|(?:\\x[0-9a-f]{2}){4}"
)


def accept_exec_download(hit: Hit) -> bool:
    return bool(_REMOTE_CALL.search(hit.after[:400]))


def accept_exec_decoded(hit: Hit) -> bool:
    return bool(_DECODED_DATA.search(hit.after[:400]))


_RM_TARGETS = frozenset(
    {
        b"/",
        b"/*",
        b"~",
        b"~/",
        b"~/*",
        b"$home",
        b"$home/",
        b"$home/*",
        b"${home}",
        b"${home}/",
        b"${home}/*",
        b"/home",
        b"/home/*",
        b"/users",
        b"/root",
        b"/etc",
        b"/usr",
        b"/var",
        b"/bin",
        b"/boot",
        b"/lib",
        b"/system",
        b"c:\\",
        b"c:/",
    }
)


def accept_delete_root_or_home(hit: Hit) -> bool:
    words = re.split(rb"[;&|)#\n]", hit.line[hit.start :], maxsplit=1)[0].split()[1:]
    recursive = False
    targets: list[bytes] = []
    for word in words:
        if word == b"--no-preserve-root":
            return True
        if word.startswith(b"--"):
            recursive |= word == b"--recursive"
        elif word.startswith(b"-"):
            recursive |= b"r" in word
        else:
            targets.append(word.strip(b"\"'"))
    return recursive and any(target in _RM_TARGETS for target in targets)


def accept_disk_wipe(hit: Hit) -> bool:
    return bool(
        re.search(
            rb"\bmkfs(?:\.\w+)?\s|\bdd\b[^\n]*\bof=/dev/|>\s*/dev/(?:sd|nvme|hd|disk|xvd|vd)"
            rb"|\bshred\b|\bwipefs\b|\bdiskutil\s+(?:erase|zero)",
            hit.line,
        )
    )


def accept_setuid(hit: Hit) -> bool:
    if hit.trigger == "setuid":  # os.setuid(0), setuid(0)
        return bool(re.match(rb"setuid\s*\(\s*0\s*\)", hit.line[hit.start :]))
    return bool(
        re.match(
            rb"chmod\s+(?:-[a-z]+\s+)*(?:[ugoa]*\+[rwxt]*s|0?[2467][0-7]{3})\b",
            hit.line[hit.start :],
        )
    )


_WRITES_BEFORE = re.compile(
    rb"(?:>>?|\btee\s+(?:-a\s+)?|\bsed\s+-i\S*\s+.*|\b(?:cp|mv|install|ln\s+-s\w*)\s+\S+\s+)"
    rb"\s*[\"']?(?:~|\$home|\$\{home\}|\$zdotdir|/home/\w+|/root|/users/\w+)?$"
)


def accept_shell_profile(hit: Hit) -> bool:
    tail = hit.line[hit.start + 2 : hit.end]
    if tail.startswith((b"ssh", b"aws", b"config/gcloud", b"netrc", b"git-cred", b"docker")):
        return False
    if tail.startswith((b"kube", b"npmrc", b"pypirc", b"config/systemd")):
        return False
    if re.search(rb"open\([^)]*[\"']a\+?[\"']|appendfile", hit.line):
        return True
    return bool(_WRITES_BEFORE.search(hit.before))


def accept_systemd_user(hit: Hit) -> bool:
    return hit.line[hit.start + 2 : hit.end].startswith(b"config/systemd")


def accept_crontab(hit: Hit) -> bool:
    if hit.trigger == "cron_dir":
        return bool(re.search(rb">|\btee\b|\b(?:cp|mv|install)\b", hit.line))
    words = re.split(rb"[;&|)#`\"'\n]", hit.line[hit.start :], maxsplit=1)[0].split()[1:]
    if not words:
        return hit.before.rstrip().endswith(b"|")  # `… | crontab` without arguments
    return words[0] not in (b"-l", b"-r", b"-v", b"--help", b"-h")


def accept_sudo(hit: Hit) -> bool:
    if hit.path.endswith(".json"):  # only hook commands in JSON
        return b'"command"' in hit.line
    return not hit.path.endswith((".yaml", ".yml", ".toml"))


def accept_bypass_mode(hit: Hit) -> bool:
    return bool(
        re.search(
            rb"(?:default[-_]?mode|permission[-_]?mode)[\"']?\s*[:=]?\s*[\"']?bypasspermissions",
            hit.line,
        )
    )


def accept_any(hit: Hit) -> bool:  # noqa: ARG001 (an `accept` check that keeps every hit)
    return True
