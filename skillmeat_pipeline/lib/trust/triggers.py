"""Triggers: the short regexes that find candidate lines; every one starts with a literal, and
`scan.py` joins those with the same first character (the pivot) into one regex."""

from __future__ import annotations

import re
from dataclasses import dataclass

from skillmeat_pipeline.lib.trust.model import ALL_KINDS, CODE, CONFIG, MARKDOWN, RUNNABLE_KINDS


@dataclass(frozen=True, slots=True)
class Trigger:
    """A regex that finds candidate lines in lowercased bytes.

    The search is led by `literal` (its first byte is the *pivot*: `scan.py` joins the triggers
    with the same pivot into one regex). `lead` is what must come right before the literal, checked
    by a fixed-width look-behind of `lead_width` bytes, so that a common word can be found through
    its rarest letter (`curl` through `u`, `exec` through `x`).
    """

    literal: bytes
    rest: bytes = b""
    kinds: frozenset[str] = RUNNABLE_KINDS
    lead: bytes = b""
    lead_width: int = -1  # -1: len(lead), for a plain literal lead

    @property
    def width_before(self) -> int:
        return len(self.lead) if self.lead_width < 0 else self.lead_width

    def body(self) -> bytes:
        """The regex after the pivot byte: the rest of the literal first (so that a failing
        candidate is dropped on its next byte), then the look-behind, then `rest`."""
        behind = b"(?<=" + self.lead + re.escape(self.literal) + b")" if self.lead else b""
        return re.escape(self.literal[1:]) + behind + self.rest

    def full(self) -> bytes:
        """The whole trigger, matched from where the lead starts."""
        return self.lead + re.escape(self.literal) + self.rest


_T = Trigger
TRIGGERS: dict[str, Trigger] = {
    "pipe": _T(
        b"|",
        rb"[ \t]*(?:sudo[ \t]+(?:-[a-z]+[ \t]+)*)?(?:/usr)?(?:/bin/)?"
        rb"(?:(?:ba|z|da|k|fi)?sh|python[0-9.]*|node|perl|ruby|php|iex|invoke-expression|pwsh"
        rb"|powershell|curl|wget|nc|ncat|netcat|socat|base64|crontab)\b",
    ),
    "curl": _T(b"url", rb"\b", lead=b"c"),
    "wget": _T(b"get", rb"\b", lead=b"w"),
    "iex": _T(b"x", rb"\b", lead=b"ie"),
    "exec": _T(b"xec", rb"[ \t]*\(", lead=b"e"),
    "eval": _T(b"val", rb"[ \t]*\(", lead=b"e"),
    "env": _T(b"v", rb"(?:iron)?[ \t]*\)", lead=b"en"),
    "dotenv": _T(b"v", rb"(?:\.local|\.production|\.prod)?(?![\w.-])", lead=b".en"),
    "setuid": _T(b"uid", rb"[ \t]*\(", lead=b"set"),
    "dotpath": _T(
        b"/.",
        rb"(?:ssh\b|aws/|config/gcloud|netrc\b|git-credentials|docker/config\.json|kube/config"
        rb"|npmrc|pypirc|bashrc|zshrc|profile|bash_profile|zprofile|zshenv|bash_login"
        rb"|config/systemd/user|config/fish/config\.fish)",
    ),
    "dev": _T(b"/dev/", rb"(?:sd|nvme|hd|disk|rdisk|mmcblk|xvd|vd)"),
    "launchd": _T(b"/library/launch", rb"(?:agents|daemons)"),
    "cron_dir": _T(b"/etc/cron", rb"(?:\.d|tab)"),
    "url": _T(b"//", rb"(?:\[|\d|metadata\.google\.internal)", lead=b":"),
    "rm": _T(b"m ", rb"[ \t]*-", lead=b"r"),
    "chmod": _T(b"mod", rb"\b", lead=b"ch"),
    "crontab": _T(b"b ", rb"", lead=b"cronta"),
    "sudo": _T(b"udo", rb"\b", frozenset({CODE, CONFIG}), lead=b"s"),
    "keychain": _T(
        b"urity", rb"[ \t]+(?:find-(?:generic|internet)-password|dump-keychain)", lead=b"sec"
    ),
    "ignore": _T(
        b"gnore",
        rb"[ \t]+(?:all[ \t]+|any[ \t]+)?(?:of[ \t]+)?"
        rb"(?:the[ \t]+|your[ \t]+|my[ \t]+|these[ \t]+)?"
        rb"(?:previous|prior|above|earlier|preceding|foregoing|original|system|initial|all|other)"
        rb"[ \t]+(?:instructions?|prompts?|directions?|directives?|rules|guidelines|guidance"
        rb"|messages?|context|commands?|constraints|programming)\b",
        ALL_KINDS,
        lead=b"i",
    ),
    "disregard": _T(
        b"gard",
        rb"[ \t]+(?:all[ \t]+|any[ \t]+)?(?:of[ \t]+)?(?:the[ \t]+|your[ \t]+)?"
        rb"(?:(?:previous|prior|above|earlier|preceding|original|initial|system)[ \t]+)?"
        rb"(?:instructions?|prompts?|directions?|rules|guidelines|programming)\b",
        ALL_KINDS,
        lead=b"disre",
    ),
    "user": _T(b"user", rb"\b", ALL_KINDS, lead=b"the "),
    "comment": _T(b"!--", b"", frozenset({MARKDOWN}), lead=b"<"),
    "bypass": _T(b"missions", lead=b"bypassper"),
    "dangerously": _T(b"gerously", rb"[-_]?skip[-_]?permissions", lead=b"dan"),
    # secrets (checked case-sensitively on the original bytes by the rules)
    "aws_key": _T(b"kia", rb"[0-9a-z]{16}\b", ALL_KINDS, lead=b"a"),
    "google_key": _T(b"za", rb"[0-9a-z_-]{35}", ALL_KINDS, lead=b"ai"),
    "github_token": _T(b"gh", rb"[pousr]_[0-9a-z]{36}", ALL_KINDS),
    "github_pat": _T(b"github_pat_", rb"[0-9a-z_]{22}", ALL_KINDS),
    "sk_key": _T(b"k-", rb"[0-9a-z_-]{20}", ALL_KINDS, lead=b"s"),
    "slack_token": _T(b"xox", rb"[bpars]-[0-9]", ALL_KINDS),
    "private_key": _T(b"gin", rb"[ a-z0-9]{0,30}private key", ALL_KINDS, lead=b"-----be"),
}
