"""Every trust rule, as data: id, severity, family, what it matches, message, why, examples.

How a line rule matches
-----------------------
Text is matched as ASCII-lowercased bytes (offsets equal the original's, so a secret's case is
checked on the original bytes). A file is searched by *triggers*: short regexes that each start with
a literal (`curl\\b`, `/.`, `sk-`, …). Triggers that share a first character are joined into one
regex, so a file costs one C-level pass per distinct first character, whatever the number of rules.
Each trigger match hands a `Hit` (the line around it) to the rules that listen to that trigger; a
rule's `accept` predicate decides. Structured rules (`structured=True`) have no trigger: the JSON
checks in `structured.py` call their predicates on parsed hooks, settings and MCP server configs.

Where a rule counts (`contexts`)
--------------------------------
* `code`: scripts and config files; in markdown, fenced code blocks, the YAML frontmatter and inline
  `code spans`.
* `prose`: markdown text outside those, and plain-text files.
Command rules (remote code, destructive, persistence, …) count only in code, and in markdown they
stay quiet when the line (or, in a fence, one of the 3 lines above it) *describes* the pattern
("never", "avoid", "dangerous", "❌", "detect", …): a security guide's "❌ never run `curl … | sh`"
is documentation, a setup step's `curl … | sh` is an instruction the assistant may follow. Comment
lines (`# …`, `// …`) and lines that are regular expressions (`\\s`, `\\|`, `(?:`) never run and
are skipped too.
"""

from __future__ import annotations

from skillmeat_pipeline.lib.trust.model import Rule
from skillmeat_pipeline.lib.trust.rules_config import CONFIG_RULES
from skillmeat_pipeline.lib.trust.rules_injection import INJECTION_RULES
from skillmeat_pipeline.lib.trust.rules_network import NETWORK_RULES
from skillmeat_pipeline.lib.trust.rules_remote import REMOTE_RULES
from skillmeat_pipeline.lib.trust.rules_secrets import SECRET_RULES
from skillmeat_pipeline.lib.trust.rules_system import SYSTEM_RULES

RULES: tuple[Rule, ...] = (
    *REMOTE_RULES,
    *SECRET_RULES,
    *SYSTEM_RULES,
    *INJECTION_RULES,
    *NETWORK_RULES,
    *CONFIG_RULES,
)

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}
