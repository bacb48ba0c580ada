"""The rules document (docs/trust-rules.md), generated from the rules' own data.

python -m skillmeat_pipeline.lib.trust.docs > docs/trust-rules.md
"""

from __future__ import annotations

import sys

from skillmeat_pipeline.lib.core.findings import Severity
from skillmeat_pipeline.lib.trust.rules import RULES, Rule

_INTRO = """\
# Trust rules

Every catalog entry carries `findings` (`{rule, severity, file, line, excerpt, message}`) and a
`risk`, the highest severity among them (SPEC §5.5). This page lists every rule: its id (stable,
stored with each finding), its severity, what it matches and why it matters. It is generated from
`skillmeat_pipeline/lib/trust/rules.py` by `python -m skillmeat_pipeline.lib.trust.docs`; a test
keeps it current.

## Severities

* **high**: remote code run, obfuscated code run, credential access and exfiltration, live
  secrets, destructive commands, hidden or injected instructions.
* **medium**: permission bypass (including setuid bits), broad-scope hooks, network to raw or
  non-public addresses, unpinned code run with secrets in reach.
* **low**: the rest: persistence, `sudo` in scripts, plain file uploads, unpinned code run without
  secrets.

## What is read, and how

* Inputs: every text file up to 256 KB below the artifact's root (a skill's or plugin's folder; an
  agent's, command's, hook's or MCP server's own file). Binary files (a NUL byte, a known binary
  suffix, or mostly invalid UTF-8 in the first 8 KB) are skipped.
* Contexts. In scripts and config files everything is code. In markdown, fenced code blocks, the
  YAML frontmatter and inline `code spans` are code; the rest is prose. Command rules (remote
  code, exfiltration, destructive, persistence, privilege, network, permission bypass) fire only
  in code. Secrets, injection phrasing and invisible characters fire anywhere.
* Documentation that describes a pattern stays quiet: in markdown a command rule does not fire
  when its line (or, inside a fence, one of the 3 lines above it or the section heading) uses
  words such as *never, don't, avoid, dangerous, malicious, attack, insecure, detect, deny,
  adversarial*, ❌ or ⚠. So "❌ Never pipe a download to a shell: `curl … | sh`" in a security
  guide is not a finding, while a setup step `curl … | sh` is: the assistant may run it.
  Comment lines (`# …`, `// …`, a trailing ` # …`) and lines that are regular expressions
  (`\\s`, `\\|`, `(?:`) never run and are skipped. Injection phrasing that is quoted
  (`"ignore previous instructions"`) or sits in text about injection, attacks or detection is
  a mention, not an instruction.
* Excerpts are at most 160 characters of the line, control and invisible characters escaped
  (`\\x1b`, `\\u202e`), and every secret-shaped token cut to its first 4 characters and `…`.
* Limits: a line longer than 4,000 bytes is looked at only in a 1,000-byte window around each
  match; at most 2,000 trigger matches per pivot letter (20 per line) and 100 findings per rule
  are taken from one file; JSON is parsed only for `hooks.json`, settings, `.mcp.json`/`mcp.json`
  and `plugin.json`.
* Speed: text is searched as ASCII-lowercased bytes by *triggers*, short literals pivoted on a
  rare letter (`curl` is found through `u`, `exec` through `x`) and joined per pivot, so a file
  costs one C-level pass per pivot letter (11 for markdown) whatever the number of rules; the
  rule's predicate then runs on the few candidate lines only.
"""


def render() -> str:
    lines = [_INTRO, "## Rules", "", "| id | severity | family |", "|---|---|---|"]
    order = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}
    ordered = sorted(RULES, key=lambda r: (order[r.severity], r.family, r.id))
    lines += [f"| [`{r.id}`](#{_anchor(r)}) | {r.severity.value} | {r.family} |" for r in ordered]
    lines.append("")
    for rule in ordered:
        lines += _section(rule)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(rule: Rule) -> str:
    return rule.id.replace(".", "")


def _section(rule: Rule) -> list[str]:
    how = "JSON structure" if rule.structured else "triggers " + ", ".join(rule.triggers)
    return [
        f"### {rule.id}",
        "",
        f"**{rule.severity.value}** · {rule.family} · {how}",
        "",
        f"* Matches: {rule.matches}",
        f"* Why: {rule.why}",
        f"* Message: {rule.message}",
        f"* Examples: {len(rule.positives)} that match, {len(rule.negatives)} look-alikes that "
        "do not (in `rules.py`, run by the tests).",
        "",
    ]


if __name__ == "__main__":
    sys.stdout.write(render())
