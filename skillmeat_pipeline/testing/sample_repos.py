"""Sample marketplace repositories, made by the project itself, for the demo and its tests.

Five repositories of different sizes, so that every strategy of SPEC §4 gets picked, with a few of
the traps real repositories hold (shared/corpus/README.md): agent descriptions with unquoted
`<example>` blocks, `description: |` and `>` block scalars, a SKILL.md without frontmatter, an
`agents/` folder inside a skill, React `hooks/` folders, `.mcp.json` files with and without the
`mcpServers` wrapper, agents declared only by `plugin.json`, a marketplace entry pointing at a
folder that does not exist, a lower-case `skill.md`, CRLF line endings, a BOM, and artifact-shaped
test fixtures.

Everything is deterministic: fixed author, dates and content, so the commit SHAs are the same on
every machine and every run.

    repos = build_sample_repos(root)          # root/<owner>/<repo>.git, bare
    apply_update(root, SAMPLE_UPDATE)         # a second commit ("a push") to one repository
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from skillmeat_pipeline.lib.core.models import MODE_BLOB, MODE_TREE

AUTHOR = ("Sample Author", "samples@skillmeat.invalid")
FIRST_COMMIT_TIME = 1_735_722_000  # 2025-01-01 09:00 UTC
UPDATE_COMMIT_TIME = 1_736_326_800  # a week later
BRANCH = "main"


@dataclass(frozen=True)
class SampleRepo:
    """One sample repository and what SPEC §3 finds in it (its first commit)."""

    slug: str  # owner/repo, as served by the git server and the GitHub emulator
    summary: str
    on_github: bool  # a GitHub source (API path and tree-call sizing) or a plain git URL
    files: Mapping[str, bytes]
    expected: Mapping[str, int]  # artifacts per kind
    options: Mapping[str, Any] = field(default_factory=dict)  # extra sources-file fields

    @property
    def artifact_count(self) -> int:
        return sum(self.expected.values())

    def source_entry(self, git_base_url: str) -> dict[str, Any]:
        """This repository's entry in a sources file; plain git sources get a URL of the server."""
        if self.on_github:
            return {"github": self.slug, **self.options}
        return {"key": self.slug, "url": f"{git_base_url}/{self.slug}.git", **self.options}


@dataclass(frozen=True)
class SampleUpdate:
    """A second commit to one sample repository: paths to write, or to delete (None)."""

    slug: str
    message: str
    changes: Mapping[str, bytes | None]
    expected: Mapping[str, int]  # artifacts per kind after the update


def _text(value: str) -> bytes:
    return value.lstrip("\n").encode()


def _doc(frontmatter: str, body: str) -> bytes:
    """A Markdown manifest: YAML frontmatter between `---` lines, then the body."""
    return _text(f"---\n{frontmatter.strip()}\n---\n\n{body.strip()}\n")


def _json(value: str) -> bytes:
    return _text(value.strip() + "\n")


# -- acme/tiny-tools: two artifacts, read over the API ---------------------------------------------

TINY_TOOLS = {
    "README.md": _text("""
# tiny-tools

Two small helpers for release days: a changelog skill and a `/release-notes` command.
Copy `skills/` and `commands/` into your `.claude/` folder.
"""),
    "skills/changelog-writer/SKILL.md": _doc(
        """
name: changelog-writer
description: Writes a Keep a Changelog entry from the merged pull requests since the last tag. Use when preparing a release or when asked what changed.
allowed-tools: Bash(git log:*), Bash(git tag:*), Read
""",  # noqa: E501
        """
# Changelog writer

1. Find the last tag with `git describe --tags --abbrev=0`.
2. List merge commits since then and group them into Added, Changed, Fixed and Removed.
3. Write the entry at the top of `CHANGELOG.md`; never rewrite released sections.
""",
    ),
    # `argument-hint: [a] | [b]` is not valid YAML: the tolerant parser must recover it
    "commands/release-notes.md": _doc(
        """
description: Draft release notes for a version or a commit range
argument-hint: [version] | [from..to]
allowed-tools: Bash(git log:*), Read
""",
        """
Draft release notes for $ARGUMENTS.

Summarise user-facing changes first, then fixes, then internal changes. Link every pull request.
""",
    ),
}

# -- acme/team-toolkit: a team's .claude folder and an app; no common root -------------------------

CODE_REVIEWER = _text("""
---
name: code-reviewer
description: Use this agent when a logical chunk of code has been written or changed and should be reviewed before it is committed. Examples:

<example>
Context: The user has just implemented a new API endpoint.
user: "I've added the /orders endpoint with validation"
assistant: "Let me use the code-reviewer agent to check the new endpoint."
<commentary>
New code was written, so a review is due before the commit.
</commentary>
</example>

<example>
Context: The user refactored the payment module.
user: "Refactor done, can you look it over?"
assistant: "I'll run the code-reviewer agent on the payment changes."
</example>
tools: Read, Grep, Glob, Bash
model: sonnet
color: blue
---

You are a senior reviewer. Read the diff (`git diff --staged`, else `git diff HEAD`), then report:

1. Bugs and security problems, with file and line.
2. Missing tests for changed behaviour.
3. Style problems only when they hide a bug.

Never rewrite the code yourself; explain what to change and why.
""")  # noqa: E501

TEAM_TOOLKIT = {
    "README.md": _text("""
# team-toolkit

Shared Claude Code set-up of the platform team: agents, commands and hooks in `.claude/`, MCP
servers in `.mcp.json`, and the web dashboard the team maintains (`web/`).
"""),
    ".claude/agents/code-reviewer.md": CODE_REVIEWER,
    ".claude/agents/test-runner.md": _doc(
        """
name: test-runner
description: Runs the test suite after code changes and fixes failures it caused. Use proactively after edits.
tools: Bash, Read, Edit
model: haiku
""",  # noqa: E501
        """
Run `make test`. When a test fails, read it before touching the code: fix the code unless the
test is wrong, and say which one you changed.
""",
    ),
    ".claude/commands/git/commit.md": _doc(
        """
description: Create a conventional commit from the staged changes
allowed-tools: Bash(git diff:*), Bash(git commit:*)
""",
        "Write a Conventional Commits message for `git diff --staged` and commit it.",
    ),
    ".claude/commands/git/pr.md": _doc(
        """
description: Open a pull request for the current branch
argument-hint: [base-branch]
""",
        "Push the branch and open a pull request against ${1:-main} with a summary and test plan.",
    ),
    ".claude/commands/deploy.md": _doc(
        """
description: Deploy the dashboard to staging or production
argument-hint: staging|production
""",
        "Run `make deploy ENV=$ARGUMENTS`, then watch `/healthz` until it answers 200.",
    ),
    ".claude/skills/sql-helper/SKILL.md": _doc(
        """
name: sql-helper
description: Writes and explains PostgreSQL queries against the dashboard schema in db/schema.sql.
""",
        """
# SQL helper

Read `db/schema.sql` first. Prefer CTEs over nested subqueries and always use parameters.
""",
    ),
    ".claude/settings.json": _json("""
{
  "permissions": {"allow": ["Bash(make test)", "Bash(npm run lint)"]},
  "hooks": {
    "PostToolUse": [
      {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "npm run lint --silent"}]}
    ]
  }
}
"""),
    # the standard wrapper: two servers
    ".mcp.json": _json("""
{
  "mcpServers": {
    "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]},
    "postgres": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-postgres", "postgresql://localhost/dashboard"]
    }
  }
}
"""),
    # no wrapper: the file's top-level map is the server map
    "services/observability/.mcp.json": _json("""
{
  "sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"}
}
"""),
    # React hooks: source code, not Claude Code hooks
    "web/package.json": _json("""
{"name": "dashboard", "private": true, "scripts": {"lint": "eslint src", "test": "vitest run"}}
"""),
    "web/src/hooks/useDebounce.ts": _text("""
import { useEffect, useState } from "react";

export function useDebounce<T>(value: T, delayMs = 300): T {
  const [debounced, setDebounced] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(value), delayMs);
    return () => clearTimeout(timer);
  }, [value, delayMs]);
  return debounced;
}
"""),
    "web/src/hooks/useAuth.ts": _text("""
import { useContext } from "react";
import { AuthContext } from "../auth";

export const useAuth = () => useContext(AuthContext);
"""),
    "web/src/App.tsx": _text("""
export default function App() {
  return <main>Dashboard</main>;
}
"""),
    "db/schema.sql": _text("""
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, total_cents integer);
"""),
    "docs/onboarding.md": _text("""
# Onboarding

Install Claude Code, then open this repository: the agents and commands load automatically.
"""),
}

# -- acme/plugin-marketplace: a marketplace of five plugins under plugins/ ----------------------


def _plugin_json(name: str, description: str, extra: str = "") -> bytes:
    body = f'  "name": "{name}",\n  "version": "1.2.0",\n  "description": "{description}",\n'
    body += '  "author": {"name": "Acme Developer Tools"}'
    if extra:
        body += ",\n" + extra.strip("\n")
    return _text("{\n" + body + "\n}\n")


def _agent(name: str, description: str, body: str, tools: str = "Read, Grep, Glob") -> bytes:
    return _doc(f"name: {name}\ndescription: {description}\ntools: {tools}", body)


def _command(description: str, body: str, hint: str | None = None) -> bytes:
    front = f"description: {description}" + (f"\nargument-hint: {hint}" if hint else "")
    return _doc(front, body)


def _skill(name: str, description: str, body: str) -> bytes:
    return _doc(f"name: {name}\ndescription: {description}", body)


MARKETPLACE = {
    "README.md": _text("""
# Acme plugin marketplace

`/plugin marketplace add acme/plugin-marketplace`, then `/plugin install pr-review@acme`.
"""),
    ".claude-plugin/marketplace.json": _json("""
{
  "name": "acme",
  "owner": {"name": "Acme Developer Tools", "email": "devtools@acme.invalid"},
  "metadata": {"description": "Plugins the Acme engineering teams use every day"},
  "plugins": [
    {"name": "pr-review", "source": "./plugins/pr-review"},
    {"name": "security-guidance", "source": "./plugins/security-guidance"},
    {"name": "docs-writer", "source": "./plugins/docs-writer"},
    {"name": "db-tools", "source": "./plugins/db-tools"},
    {"name": "frontend-kit", "source": "./plugins/frontend-kit"},
    {"name": "legacy-linter", "source": "./plugins/legacy-linter"}
  ]
}
"""),
    # pr-review: agents, a command, hooks.json and a skill
    "plugins/pr-review/.claude-plugin/plugin.json": _plugin_json(
        "pr-review", "Pull request review agents and a /review-pr command"
    ),
    "plugins/pr-review/README.md": _text("# pr-review\n\nReview pull requests in depth.\n"),
    "plugins/pr-review/agents/pr-reviewer.md": _agent(
        "pr-reviewer",
        "Reviews a pull request end to end (correctness, tests, security and naming).",
        "Fetch the diff with `gh pr diff`, review each file, then post one summary comment.",
        tools="Bash(gh pr:*), Read, Grep",
    ),
    "plugins/pr-review/agents/comment-analyzer.md": _text("""
---
name: comment-analyzer
description: Use this agent to check that code comments are accurate after a change. Examples:
<example>
Context: A function's behaviour changed but its docstring did not.
user: "I changed how retries work"
assistant: "I'll use the comment-analyzer agent to find comments that now lie."
</example>
tools: Read, Grep
model: inherit
---

Compare each changed function with its comments and docstrings; list every comment that no
longer matches the code, with a corrected version.
"""),
    "plugins/pr-review/commands/review-pr.md": _command(
        "Review a pull request by number",
        "Run the pr-reviewer agent on pull request #$1 and summarise its findings.",
        hint="<pr-number>",
    ),
    "plugins/pr-review/hooks/hooks.json": _json("""
{
  "description": "Remind to run the review before pushing",
  "hooks": {
    "PreToolUse": [
      {"matcher": "Bash", "hooks": [{"type": "command", "command": "${CLAUDE_PLUGIN_ROOT}/hooks/check-push.sh"}]}
    ]
  }
}
"""),  # noqa: E501
    "plugins/pr-review/hooks/check-push.sh": _text("""
#!/bin/sh
# Warn when `git push` runs before /review-pr did.
grep -q "git push" && echo "Did you run /review-pr?" >&2
exit 0
"""),
    "plugins/pr-review/skills/review-checklist/SKILL.md": _skill(
        "review-checklist",
        "What every Acme reviewer checks before approving a pull request.",
        "# Review checklist\n\n- Tests cover the change\n- No secrets in the diff\n"
        "- Errors are handled",
    ),
    # security-guidance: inline hooks in plugin.json; one skill holds prompt documents in agents/
    "plugins/security-guidance/.claude-plugin/plugin.json": _plugin_json(
        "security-guidance",
        "Warns about insecure patterns while editing",
        """
  "hooks": {
    "PreToolUse": [
      {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "python3 ${CLAUDE_PLUGIN_ROOT}/scripts/scan.py"}]}
    ]
  }""",  # noqa: E501
    ),
    "plugins/security-guidance/scripts/scan.py": _text("""
import json
import sys

PATTERNS = ("eval(", "pickle.loads(", "shell=True")
edit = json.load(sys.stdin)
text = edit.get("tool_input", {}).get("new_string", "")
for pattern in PATTERNS:
    if pattern in text:
        print(f"security-guidance: {pattern} is risky here", file=sys.stderr)
"""),
    "plugins/security-guidance/skills/secure-coding/SKILL.md": _text("""
---
name: secure-coding
description: |
  Secure coding rules for Python and TypeScript services.
  Use when writing code that handles input, secrets, files or SQL.
license: Apache-2.0
---

# Secure coding

Validate input at the boundary, parameterise SQL, never log secrets, and pin dependencies.
"""),
    "plugins/security-guidance/skills/threat-model/SKILL.md": _skill(
        "threat-model",
        "Builds a STRIDE threat model for a service from its architecture notes.",
        "# Threat model\n\nUse the prompts in `agents/` for each STRIDE category.",
    ),
    # inside a skill: the skill's own prompt documents, not top-level agents
    "plugins/security-guidance/skills/threat-model/agents/stride-analyst.md": _agent(
        "stride-analyst",
        "Prompt used by the threat-model skill for one STRIDE category.",
        "Given one STRIDE category and the architecture notes, list concrete threats.",
    ),
    "plugins/security-guidance/skills/threat-model/agents/mitigation-writer.md": _agent(
        "mitigation-writer",
        "Prompt used by the threat-model skill to propose mitigations.",
        "For each threat, propose one mitigation and how to test it.",
    ),
    "plugins/security-guidance/commands/security-scan.md": _command(
        "Scan the working tree for secrets and risky calls",
        "Run `gitleaks detect --no-git` and grep for eval, pickle and shell=True; report findings.",
    ),
    # docs-writer: agents declared only by plugin.json, outside any agents/ folder
    "plugins/docs-writer/.claude-plugin/plugin.json": _plugin_json(
        "docs-writer",
        "Documentation agents and commands",
        '  "agents": ["./writers/api-doc-writer.md", "./writers/tutorial-writer.md"]',
    ),
    "plugins/docs-writer/writers/api-doc-writer.md": _agent(
        "api-doc-writer",
        "Writes reference documentation for public functions and HTTP endpoints.",
        "Document every parameter, return value and error, with one example each.",
    ),
    "plugins/docs-writer/writers/tutorial-writer.md": _agent(
        "tutorial-writer",
        "Turns a feature into a step-by-step tutorial for new users.",
        "Start from a clean install and show every command the reader types.",
    ),
    "plugins/docs-writer/commands/docs/generate.md": _command(
        "Generate reference docs for a module",
        "Use the api-doc-writer agent on $ARGUMENTS and write the result under docs/reference/.",
        hint="<module>",
    ),
    "plugins/docs-writer/commands/docs/check-links.md": _command(
        "Check every link in the docs folder",
        "List broken relative links and anchors in docs/ and propose fixes.",
    ),
    "plugins/docs-writer/skills/docs-style/SKILL.md": _skill(
        "docs-style",
        "The Acme documentation style guide for voice, headings and code samples.",
        "# Docs style\n\nSecond person, present tense, one idea per sentence.",
    ),
    # db-tools: MCP servers in plugin.json and in an unwrapped .mcp.json
    "plugins/db-tools/.claude-plugin/plugin.json": _plugin_json(
        "db-tools",
        "Database agents, commands and MCP servers",
        """
  "mcpServers": {
    "postgres-readonly": {"command": "npx", "args": ["-y", "@acme/mcp-postgres", "--read-only"]},
    "sqlite-explorer": {"command": "uvx", "args": ["mcp-server-sqlite", "--db-path", "dev.db"]}
  }""",
    ),
    "plugins/db-tools/.mcp.json": _json("""
{
  "redis": {"command": "npx", "args": ["-y", "@acme/mcp-redis"], "env": {"REDIS_URL": "redis://localhost:6379"}}
}
"""),
    "plugins/db-tools/agents/query-optimizer.md": _agent(
        "query-optimizer",
        "Reads EXPLAIN ANALYZE output and proposes indexes and rewrites.",
        "Ask for the query and its plan; never run DDL yourself.",
        tools="Read, Bash(psql:*)",
    ),
    "plugins/db-tools/agents/migration-planner.md": _text("""
---
name: migration-planner
description: >
  Plans zero-downtime schema migrations:
  expand, migrate, contract.
tools: Read, Write
---

Split every breaking change into backwards-compatible steps and say when each can ship.
"""),
    "plugins/db-tools/commands/explain-query.md": _command(
        "Explain a slow query",
        "Run EXPLAIN (ANALYZE, BUFFERS) on $ARGUMENTS and hand the plan to the query-optimizer.",
        hint="<sql>",
    ),
    "plugins/db-tools/commands/db/seed.md": _command(
        "Seed the development database",
        "Load db/seed.sql into the dev database after confirming the target URL.",
    ),
    "plugins/db-tools/skills/schema-designer/SKILL.md": _skill(
        "schema-designer",
        "Designs normalised PostgreSQL schemas with constraints and indexes.",
        "# Schema designer\n\nStart from the queries the application runs.",
    ),
    # frontend-kit: plus a React hooks/ folder that is not a Claude Code hook
    "plugins/frontend-kit/.claude-plugin/plugin.json": _plugin_json(
        "frontend-kit", "React component agents, commands and skills"
    ),
    "plugins/frontend-kit/agents/ui-reviewer.md": _agent(
        "ui-reviewer",
        "Reviews React components for state handling, rendering cost and consistency.",
        "Check props, effects and memoisation; flag components over 200 lines.",
    ),
    "plugins/frontend-kit/agents/accessibility-auditor.md": _agent(
        "accessibility-auditor",
        "Audits components against WCAG 2.2 AA.",
        "Check labels, focus order, contrast and keyboard use; cite the WCAG criterion.",
    ),
    "plugins/frontend-kit/commands/component.md": _command(
        "Scaffold a React component with a test and a story",
        "Create src/components/$1.tsx, its test and its Storybook story.",
        hint="<ComponentName>",
    ),
    "plugins/frontend-kit/skills/design-tokens/SKILL.md": _skill(
        "design-tokens",
        "Uses the Acme design tokens instead of raw colours and sizes.",
        "# Design tokens\n\nImport from `@acme/tokens`; never hard-code a hex colour.",
    ),
    "plugins/frontend-kit/skills/storybook-writer/SKILL.md": _skill(
        "storybook-writer",
        "Writes Storybook stories that cover every state of a component.",
        "# Storybook writer\n\nOne story per visual state, with controls for each prop.",
    ),
    "plugins/frontend-kit/src/hooks/useTheme.ts": _text("""
import { useContext } from "react";
import { ThemeContext } from "../theme";

export const useTheme = () => useContext(ThemeContext);
"""),
}

# -- internal/ops-playbooks: a plain git server (not GitHub), everything under .claude/ ------------


def _ops_agent(name: str, description: str, body: str, model: str = "sonnet") -> bytes:
    return _doc(
        f"name: {name}\ndescription: {description}\ntools: Read, Bash\nmodel: {model}", body
    )


OPS_AGENTS = {
    "sre-oncall": "First responder for production alerts; triages, mitigates, then hands over.",
    "capacity-planner": "Forecasts CPU, memory and storage needs from the last 90 days of metrics.",
    "cost-analyst": "Finds the biggest cloud cost increases and proposes savings.",
    "db-admin": "Operates the PostgreSQL clusters (replication, vacuum, failover).",
    "network-debugger": "Debugs DNS, TLS and load balancer problems between services.",
    "release-manager": "Coordinates releases (freeze, changelog, canary, go or no-go).",
    "chaos-engineer": "Designs small, reversible chaos experiments for one service at a time.",
}

OPS_PLAYBOOKS = {
    "README.md": _text("""
# ops-playbooks

The operations team's runbooks as Claude Code skills, agents and commands (`.claude/`).
Served from the internal git server; not on GitHub.
"""),
    # no frontmatter at all: the title comes from the heading, the description from the paragraph
    ".claude/skills/incident-response/SKILL.md": _text("""
# Incident response

Guides an engineer through a production incident: declare it, assign roles, communicate every
30 minutes, mitigate before debugging, and write the timeline as you go.

## Steps

1. Declare the incident in #incidents with `/incident:open`.
2. Page the owning team; the first responder is incident commander until handed over.
"""),
    ".claude/skills/runbook-author/SKILL.md": _text("""
---
name: runbook-author
description: >
  Writes a runbook for an alert: what it means,
  how to check it, and how to fix it.
---

# Runbook author

Every runbook answers: what fired, who is affected, how to confirm, how to mitigate, who to call.
"""),
    ".claude/skills/postmortem/SKILL.md": _skill(
        "postmortem",
        "Writes a blameless postmortem from the incident channel and the timeline.",
        "# Postmortem\n\nUse the prompts in `agents/` to build the timeline and the action items.",
    ),
    # prompt documents of the postmortem skill: not agents
    ".claude/skills/postmortem/agents/timeline-builder.md": _agent(
        "timeline-builder",
        "Prompt of the postmortem skill: orders chat messages into a timeline.",
        "Merge the messages by timestamp and keep only decisions and observations.",
    ),
    ".claude/skills/postmortem/agents/action-items.md": _agent(
        "action-items",
        "Prompt of the postmortem skill: turns contributing factors into action items.",
        "One owner and one due date per action item.",
    ),
    # lower-case manifest name: still a skill, flagged as non-canonical
    ".claude/skills/oncall-handoff/skill.md": _skill(
        "oncall-handoff",
        "Summarises the on-call week for the next engineer.",
        "# On-call handoff\n\nOpen incidents, noisy alerts, pending changes.",
    ),
    ".claude/skills/k8s-debug/SKILL.md": _skill(
        "k8s-debug",
        "Debugs failing Kubernetes workloads (pending pods, crash loops, OOM kills).",
        "# Kubernetes debugging\n\nStart with `kubectl describe` and the events, then the logs.",
    ),
    ".claude/skills/k8s-debug/reference/probes.md": _text("""
# Probes

A failing readiness probe removes the pod from the service; a failing liveness probe restarts it.
"""),
    ".claude/skills/terraform-plan-review/SKILL.md": _skill(
        "terraform-plan-review",
        "Reviews a terraform plan for destroys, replacements and IAM widening.",
        "# Terraform plan review\n\nRead `terraform show -json plan.out`; flag every delete.",
    ),
    ".claude/skills/log-triage/SKILL.md": _skill(
        "log-triage",
        "Finds the first error in a burst of logs and groups repeats.",
        "# Log triage\n\nSort by time, find the first error, group by message template.",
    ),
    **{
        f".claude/agents/{name}.md": _ops_agent(
            name, description, f"You are the {name.replace('-', ' ')}. {description}"
        )
        for name, description in OPS_AGENTS.items()
    },
    # a `description: |` block scalar, with CRLF line endings
    ".claude/agents/security-auditor.md": _text("""
---
name: security-auditor
description: |
  Audits infrastructure changes for security problems:
  open security groups, public buckets, wide IAM policies.
tools: Read, Grep
model: opus
---

Report each finding with its severity and the exact resource address.
""").replace(b"\n", b"\r\n"),
    # documentation inside agents/: not an agent
    ".claude/agents/README.md": _text("""
# Agents

One file per agent. The on-call rotation uses sre-oncall first.
"""),
    # a BOM before the frontmatter
    ".claude/commands/status.md": b"\xef\xbb\xbf"
    + _command(
        "Show the status of every production service",
        "Query the status page API and list degraded services first.",
    ),
    ".claude/commands/runbook.md": _command(
        "Open the runbook for an alert",
        "Find the runbook for alert $1 under runbooks/ and summarise the mitigation steps.",
        hint="<alert-name>",
    ),
    ".claude/commands/cost-report.md": _command(
        "Weekly cloud cost report",
        "Use the cost-analyst agent on last week's billing export.",
    ),
    ".claude/commands/deploy/canary.md": _command(
        "Start a canary deployment",
        "Deploy $1 to 5% of traffic and watch error rate and latency for 15 minutes.",
        hint="<service> <version>",
    ),
    ".claude/commands/deploy/rollback.md": _command(
        "Roll a service back to its previous version",
        "Roll $1 back and confirm the error rate returns to its baseline.",
        hint="<service>",
    ),
    ".claude/commands/incident/open.md": _command(
        "Declare an incident",
        "Create the incident channel, post the template and page the owning team.",
        hint="<severity> <summary>",
    ),
    ".claude/commands/incident/close.md": _command(
        "Close an incident",
        "Post the resolution, schedule the postmortem and archive the channel.",
    ),
    ".claude/commands/oncall/handoff.md": _command(
        "Hand the pager to the next engineer",
        "Run the oncall-handoff skill and post the summary in #oncall.",
    ),
    ".claude/settings.json": _json("""
{
  "hooks": {
    "PreToolUse": [
      {"matcher": "Bash", "hooks": [{"type": "command", "command": ".claude/hooks/block-prod-writes.sh"}]}
    ],
    "Notification": [
      {"hooks": [{"type": "command", "command": "notify-send 'Claude Code' 'needs your input'"}]}
    ]
  }
}
"""),  # noqa: E501
    ".claude/hooks/block-prod-writes.sh": _text("""
#!/bin/sh
# Refuse kubectl and terraform commands that write to production.
if grep -Eq "(kubectl (apply|delete)|terraform apply).*prod"; then
  echo "blocked: writes to production need a human" >&2
  exit 2
fi
"""),
    ".claude/mcp.json": _json("""
{
  "mcpServers": {
    "pagerduty": {"command": "npx", "args": ["-y", "@acme/mcp-pagerduty"]}
  }
}
"""),
    # application code and artifact-shaped test fixtures: ignored
    "tools/oncall.py": _text("""
def current_oncall(schedule: dict) -> str:
    return schedule["layers"][0]["users"][0]
"""),
    "tests/fixtures/.claude/agents/fake-agent.md": _agent(
        "fake-agent", "A test fixture, not an agent.", "Ignored: under fixtures/."
    ),
}

# -- acme/writing-skills: two skills, deep-indexed ----------------------------------------------

WRITING_SKILLS = {
    "README.md": _text("""
# writing-skills

Skills for technical writing, with reference material that deep indexing makes searchable.
"""),
    "skills/technical-writing/SKILL.md": _skill(
        "technical-writing",
        "Writes clear technical documents such as design docs, READMEs and runbooks.",
        "# Technical writing\n\nSee `reference/style-guide.md` for the rules.",
    ),
    "skills/technical-writing/reference/style-guide.md": _text("""
# Style guide

Prefer active voice. Define every acronym on first use. Put the conclusion first (inverted
pyramid). Use numbered lists for procedures and bullet lists for options.
"""),
    "skills/commit-messages/SKILL.md": _skill(
        "commit-messages",
        "Writes commit messages that explain why a change was made.",
        "# Commit messages\n\nSubject under 50 characters, imperative mood; see `examples/`.",
    ),
    "skills/commit-messages/examples/good.md": _text("""
# Good commit messages

    Retry idempotent uploads on connection reset

    The load balancer resets idle connections after 60 s; uploads that
    start late in that window fail. Retrying is safe: uploads are keyed.
"""),
}


SAMPLE_REPOS: tuple[SampleRepo, ...] = (
    SampleRepo(
        slug="acme/tiny-tools",
        summary="GitHub, 2 artifacts: read over the REST API",
        on_github=True,
        files=TINY_TOOLS,
        expected={"skill": 1, "command": 1},
    ),
    SampleRepo(
        slug="acme/team-toolkit",
        summary="GitHub, 10 artifacts, no common root: sparse_manifest",
        on_github=True,
        files=TEAM_TOOLKIT,
        expected={"skill": 1, "agent": 2, "command": 3, "hook": 1, "mcp": 3},
    ),
    SampleRepo(
        slug="acme/plugin-marketplace",
        summary="GitHub, 32 artifacts under plugins/: sparse_directory",
        on_github=True,
        files=MARKETPLACE,
        expected={"skill": 7, "agent": 8, "command": 7, "hook": 2, "mcp": 3, "plugin": 5},
    ),
    SampleRepo(
        slug="internal/ops-playbooks",
        summary="plain git, 25 artifacts under .claude/: sparse_manifest, then sparse_directory",
        on_github=False,
        files=OPS_PLAYBOOKS,
        expected={"skill": 7, "agent": 8, "command": 8, "hook": 1, "mcp": 1},
    ),
    SampleRepo(
        slug="acme/writing-skills",
        summary="GitHub, 2 skills with deep_indexing: sparse_directory",
        on_github=True,
        files=WRITING_SKILLS,
        expected={"skill": 2},
        options={"deep_indexing": True},
    ),
)

# "A push" to the plain git source: one command added, one agent changed, one command deleted.
SAMPLE_UPDATE = SampleUpdate(
    slug="internal/ops-playbooks",
    message="Add /incident:escalate, update db-admin, drop the cost report",
    changes={
        ".claude/commands/incident/escalate.md": _command(
            "Escalate an incident to the next severity",
            "Raise the severity, page the engineering manager and post the reason.",
            hint="<reason>",
        ),
        ".claude/agents/db-admin.md": _ops_agent(
            "db-admin",
            "Operates the PostgreSQL and Redis clusters (replication, failover, backups).",
            "You are the database administrator. Check replication lag before any failover.",
        ),
        ".claude/commands/cost-report.md": None,
    },
    expected={"skill": 7, "agent": 8, "command": 8, "hook": 1, "mcp": 1},
)


def sample_repos() -> list[SampleRepo]:
    return list(SAMPLE_REPOS)


# -- writing the repositories ----------------------------------------------------------------------


def _signature(when: int) -> pygit2.Signature:
    return pygit2.Signature(AUTHOR[0], AUTHOR[1], when, 0)


def _insert(tree: dict[str, Any], path: str, content: bytes | None) -> None:
    *folders, name = path.split("/")
    node = tree
    for folder in folders:
        node = node.setdefault(folder, {})
    if content is None:
        node.pop(name, None)
    else:
        node[name] = content


def _write_tree(repo: pygit2.Repository, tree: Mapping[str, Any]) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for name, value in sorted(tree.items()):
        if isinstance(value, dict):
            if value:  # git has no empty folders
                builder.insert(name, _write_tree(repo, value), MODE_TREE)
        else:
            builder.insert(name, repo.create_blob(value), MODE_BLOB)
    return builder.write()


def _nested(files: Mapping[str, bytes]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, content in files.items():
        _insert(tree, path, content)
    return tree


def build_sample_repo(root: str | Path, sample: SampleRepo) -> Path:
    """`root/<owner>/<repo>.git`: a bare repository with one commit on `main` (HEAD)."""
    path = Path(root) / f"{sample.slug}.git"
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = pygit2.init_repository(str(path), bare=True, initial_head=BRANCH)
    try:
        tree_id = _write_tree(repo, _nested(sample.files))
        signature = _signature(FIRST_COMMIT_TIME)
        repo.create_commit(
            f"refs/heads/{BRANCH}", signature, signature, "Initial import", tree_id, []
        )
    finally:
        repo.free()
    return path


def build_sample_repos(root: str | Path) -> list[SampleRepo]:
    """Every sample repository under `root`, laid out as the git server and emulator serve them."""
    for sample in SAMPLE_REPOS:
        build_sample_repo(root, sample)
    return sample_repos()


def apply_update(root: str | Path, update: SampleUpdate = SAMPLE_UPDATE) -> str:
    """Commit `update` on top of its repository's `main`, as a push would; the new commit SHA."""
    sample = next(s for s in SAMPLE_REPOS if s.slug == update.slug)
    repo = pygit2.Repository(str(Path(root) / f"{update.slug}.git"))
    try:
        parent = repo.references[f"refs/heads/{BRANCH}"].peel(pygit2.Commit)
        tree = _nested(sample.files)
        for path, content in update.changes.items():
            _insert(tree, path, content)
        signature = _signature(UPDATE_COMMIT_TIME)
        commit = repo.create_commit(
            f"refs/heads/{BRANCH}",
            signature,
            signature,
            update.message,
            _write_tree(repo, tree),
            [parent.id],
        )
        return str(commit)
    finally:
        repo.free()
