"""The contents of the sample repository `acme/plugin-marketplace`: five plugins, `plugins/`."""

from __future__ import annotations

from skillmeat_pipeline.testing.sample_files import (
    agent_manifest,
    command_manifest,
    json_content,
    skill_manifest,
    text_content,
)


def _plugin_json(name: str, description: str, extra: str = "") -> bytes:
    body = f'  "name": "{name}",\n  "version": "1.2.0",\n  "description": "{description}",\n'
    body += '  "author": {"name": "Acme Developer Tools"}'
    if extra:
        body += ",\n" + extra.strip("\n")
    return text_content("{\n" + body + "\n}\n")


MARKETPLACE = {
    "README.md": text_content("""
# Acme plugin marketplace

`/plugin marketplace add acme/plugin-marketplace`, then `/plugin install pr-review@acme`.
"""),
    ".claude-plugin/marketplace.json": json_content("""
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
    "plugins/pr-review/README.md": text_content("# pr-review\n\nReview pull requests in depth.\n"),
    "plugins/pr-review/agents/pr-reviewer.md": agent_manifest(
        "pr-reviewer",
        "Reviews a pull request end to end (correctness, tests, security and naming).",
        "Fetch the diff with `gh pr diff`, review each file, then post one summary comment.",
        tools="Bash(gh pr:*), Read, Grep",
    ),
    "plugins/pr-review/agents/comment-analyzer.md": text_content("""
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
    "plugins/pr-review/commands/review-pr.md": command_manifest(
        "Review a pull request by number",
        "Run the pr-reviewer agent on pull request #$1 and summarise its findings.",
        hint="<pr-number>",
    ),
    "plugins/pr-review/hooks/hooks.json": json_content("""
{
  "description": "Remind to run the review before pushing",
  "hooks": {
    "PreToolUse": [
      {"matcher": "Bash", "hooks": [{"type": "command", "command": "${CLAUDE_PLUGIN_ROOT}/hooks/check-push.sh"}]}
    ]
  }
}
"""),  # noqa: E501
    "plugins/pr-review/hooks/check-push.sh": text_content("""
#!/bin/sh
# Warn when `git push` runs before /review-pr did.
grep -q "git push" && echo "Did you run /review-pr?" >&2
exit 0
"""),
    "plugins/pr-review/skills/review-checklist/SKILL.md": skill_manifest(
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
    "plugins/security-guidance/scripts/scan.py": text_content("""
import json
import sys

PATTERNS = ("eval(", "pickle.loads(", "shell=True")
edit = json.load(sys.stdin)
text = edit.get("tool_input", {}).get("new_string", "")
for pattern in PATTERNS:
    if pattern in text:
        print(f"security-guidance: {pattern} is risky here", file=sys.stderr)
"""),
    "plugins/security-guidance/skills/secure-coding/SKILL.md": text_content("""
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
    "plugins/security-guidance/skills/threat-model/SKILL.md": skill_manifest(
        "threat-model",
        "Builds a STRIDE threat model for a service from its architecture notes.",
        "# Threat model\n\nUse the prompts in `agents/` for each STRIDE category.",
    ),
    # inside a skill: the skill's own prompt documents, not top-level agents
    "plugins/security-guidance/skills/threat-model/agents/stride-analyst.md": agent_manifest(
        "stride-analyst",
        "Prompt used by the threat-model skill for one STRIDE category.",
        "Given one STRIDE category and the architecture notes, list concrete threats.",
    ),
    "plugins/security-guidance/skills/threat-model/agents/mitigation-writer.md": agent_manifest(
        "mitigation-writer",
        "Prompt used by the threat-model skill to propose mitigations.",
        "For each threat, propose one mitigation and how to test it.",
    ),
    "plugins/security-guidance/commands/security-scan.md": command_manifest(
        "Scan the working tree for secrets and risky calls",
        "Run `gitleaks detect --no-git` and grep for eval, pickle and shell=True; report findings.",
    ),
    # docs-writer: agents declared only by plugin.json, outside any agents/ folder
    "plugins/docs-writer/.claude-plugin/plugin.json": _plugin_json(
        "docs-writer",
        "Documentation agents and commands",
        '  "agents": ["./writers/api-doc-writer.md", "./writers/tutorial-writer.md"]',
    ),
    "plugins/docs-writer/writers/api-doc-writer.md": agent_manifest(
        "api-doc-writer",
        "Writes reference documentation for public functions and HTTP endpoints.",
        "Document every parameter, return value and error, with one example each.",
    ),
    "plugins/docs-writer/writers/tutorial-writer.md": agent_manifest(
        "tutorial-writer",
        "Turns a feature into a step-by-step tutorial for new users.",
        "Start from a clean install and show every command the reader types.",
    ),
    "plugins/docs-writer/commands/docs/generate.md": command_manifest(
        "Generate reference docs for a module",
        "Use the api-doc-writer agent on $ARGUMENTS and write the result under docs/reference/.",
        hint="<module>",
    ),
    "plugins/docs-writer/commands/docs/check-links.md": command_manifest(
        "Check every link in the docs folder",
        "List broken relative links and anchors in docs/ and propose fixes.",
    ),
    "plugins/docs-writer/skills/docs-style/SKILL.md": skill_manifest(
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
    "plugins/db-tools/.mcp.json": json_content("""
{
  "redis": {"command": "npx", "args": ["-y", "@acme/mcp-redis"], "env": {"REDIS_URL": "redis://localhost:6379"}}
}
"""),
    "plugins/db-tools/agents/query-optimizer.md": agent_manifest(
        "query-optimizer",
        "Reads EXPLAIN ANALYZE output and proposes indexes and rewrites.",
        "Ask for the query and its plan; never run DDL yourself.",
        tools="Read, Bash(psql:*)",
    ),
    "plugins/db-tools/agents/migration-planner.md": text_content("""
---
name: migration-planner
description: >
  Plans zero-downtime schema migrations:
  expand, migrate, contract.
tools: Read, Write
---

Split every breaking change into backwards-compatible steps and say when each can ship.
"""),
    "plugins/db-tools/commands/explain-query.md": command_manifest(
        "Explain a slow query",
        "Run EXPLAIN (ANALYZE, BUFFERS) on $ARGUMENTS and hand the plan to the query-optimizer.",
        hint="<sql>",
    ),
    "plugins/db-tools/commands/db/seed.md": command_manifest(
        "Seed the development database",
        "Load db/seed.sql into the dev database after confirming the target URL.",
    ),
    "plugins/db-tools/skills/schema-designer/SKILL.md": skill_manifest(
        "schema-designer",
        "Designs normalised PostgreSQL schemas with constraints and indexes.",
        "# Schema designer\n\nStart from the queries the application runs.",
    ),
    # frontend-kit: plus a React hooks/ folder that is not a Claude Code hook
    "plugins/frontend-kit/.claude-plugin/plugin.json": _plugin_json(
        "frontend-kit", "React component agents, commands and skills"
    ),
    "plugins/frontend-kit/agents/ui-reviewer.md": agent_manifest(
        "ui-reviewer",
        "Reviews React components for state handling, rendering cost and consistency.",
        "Check props, effects and memoisation; flag components over 200 lines.",
    ),
    "plugins/frontend-kit/agents/accessibility-auditor.md": agent_manifest(
        "accessibility-auditor",
        "Audits components against WCAG 2.2 AA.",
        "Check labels, focus order, contrast and keyboard use; cite the WCAG criterion.",
    ),
    "plugins/frontend-kit/commands/component.md": command_manifest(
        "Scaffold a React component with a test and a story",
        "Create src/components/$1.tsx, its test and its Storybook story.",
        hint="<ComponentName>",
    ),
    "plugins/frontend-kit/skills/design-tokens/SKILL.md": skill_manifest(
        "design-tokens",
        "Uses the Acme design tokens instead of raw colours and sizes.",
        "# Design tokens\n\nImport from `@acme/tokens`; never hard-code a hex colour.",
    ),
    "plugins/frontend-kit/skills/storybook-writer/SKILL.md": skill_manifest(
        "storybook-writer",
        "Writes Storybook stories that cover every state of a component.",
        "# Storybook writer\n\nOne story per visual state, with controls for each prop.",
    ),
    "plugins/frontend-kit/src/hooks/useTheme.ts": text_content("""
import { useContext } from "react";
import { ThemeContext } from "../theme";

export const useTheme = () => useContext(ThemeContext);
"""),
}
