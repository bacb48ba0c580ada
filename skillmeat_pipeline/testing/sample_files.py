"""The contents of the smaller sample repositories, and the helpers that write manifests.

`acme/tiny-tools`, `acme/team-toolkit` and `acme/writing-skills` as path -> bytes maps; the
larger repositories are in `sample_files_marketplace.py` and `sample_files_ops.py`. Fixed
content only, so the sample commits are the same on every build.
"""

from __future__ import annotations


def text_content(value: str) -> bytes:
    return value.lstrip("\n").encode()


def manifest(frontmatter: str, body: str) -> bytes:
    """A Markdown manifest: YAML frontmatter between `---` lines, then the body."""
    return text_content(f"---\n{frontmatter.strip()}\n---\n\n{body.strip()}\n")


def json_content(value: str) -> bytes:
    return text_content(value.strip() + "\n")


def agent_manifest(
    name: str, description: str, body: str, tools: str = "Read, Grep, Glob"
) -> bytes:
    return manifest(f"name: {name}\ndescription: {description}\ntools: {tools}", body)


def command_manifest(description: str, body: str, hint: str | None = None) -> bytes:
    front = f"description: {description}" + (f"\nargument-hint: {hint}" if hint else "")
    return manifest(front, body)


def skill_manifest(name: str, description: str, body: str) -> bytes:
    return manifest(f"name: {name}\ndescription: {description}", body)


# -- acme/tiny-tools: two artifacts, read over the API ---------------------------------------------

TINY_TOOLS = {
    "README.md": text_content("""
# tiny-tools

Two small helpers for release days: a changelog skill and a `/release-notes` command.
Copy `skills/` and `commands/` into your `.claude/` folder.
"""),
    "skills/changelog-writer/SKILL.md": manifest(
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
    "commands/release-notes.md": manifest(
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

CODE_REVIEWER = text_content("""
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
    "README.md": text_content("""
# team-toolkit

Shared Claude Code set-up of the platform team: agents, commands and hooks in `.claude/`, MCP
servers in `.mcp.json`, and the web dashboard the team maintains (`web/`).
"""),
    ".claude/agents/code-reviewer.md": CODE_REVIEWER,
    ".claude/agents/test-runner.md": manifest(
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
    ".claude/commands/git/commit.md": manifest(
        """
description: Create a conventional commit from the staged changes
allowed-tools: Bash(git diff:*), Bash(git commit:*)
""",
        "Write a Conventional Commits message for `git diff --staged` and commit it.",
    ),
    ".claude/commands/git/pr.md": manifest(
        """
description: Open a pull request for the current branch
argument-hint: [base-branch]
""",
        "Push the branch and open a pull request against ${1:-main} with a summary and test plan.",
    ),
    ".claude/commands/deploy.md": manifest(
        """
description: Deploy the dashboard to staging or production
argument-hint: staging|production
""",
        "Run `make deploy ENV=$ARGUMENTS`, then watch `/healthz` until it answers 200.",
    ),
    ".claude/skills/sql-helper/SKILL.md": manifest(
        """
name: sql-helper
description: Writes and explains PostgreSQL queries against the dashboard schema in db/schema.sql.
""",
        """
# SQL helper

Read `db/schema.sql` first. Prefer CTEs over nested subqueries and always use parameters.
""",
    ),
    ".claude/settings.json": json_content("""
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
    ".mcp.json": json_content("""
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
    "services/observability/.mcp.json": json_content("""
{
  "sentry": {"type": "http", "url": "https://mcp.sentry.dev/mcp"}
}
"""),
    # React hooks: source code, not Claude Code hooks
    "web/package.json": json_content("""
{"name": "dashboard", "private": true, "scripts": {"lint": "eslint src", "test": "vitest run"}}
"""),
    "web/src/hooks/useDebounce.ts": text_content("""
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
    "web/src/hooks/useAuth.ts": text_content("""
import { useContext } from "react";
import { AuthContext } from "../auth";

export const useAuth = () => useContext(AuthContext);
"""),
    "web/src/App.tsx": text_content("""
export default function App() {
  return <main>Dashboard</main>;
}
"""),
    "db/schema.sql": text_content("""
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, total_cents integer);
"""),
    "docs/onboarding.md": text_content("""
# Onboarding

Install Claude Code, then open this repository: the agents and commands load automatically.
"""),
}

# -- acme/writing-skills: two skills, deep-indexed ----------------------------------------------

WRITING_SKILLS = {
    "README.md": text_content("""
# writing-skills

Skills for technical writing, with reference material that deep indexing makes searchable.
"""),
    "skills/technical-writing/SKILL.md": skill_manifest(
        "technical-writing",
        "Writes clear technical documents such as design docs, READMEs and runbooks.",
        "# Technical writing\n\nSee `reference/style-guide.md` for the rules.",
    ),
    "skills/technical-writing/reference/style-guide.md": text_content("""
# Style guide

Prefer active voice. Define every acronym on first use. Put the conclusion first (inverted
pyramid). Use numbered lists for procedures and bullet lists for options.
"""),
    "skills/commit-messages/SKILL.md": skill_manifest(
        "commit-messages",
        "Writes commit messages that explain why a change was made.",
        "# Commit messages\n\nSubject under 50 characters, imperative mood; see `examples/`.",
    ),
    "skills/commit-messages/examples/good.md": text_content("""
# Good commit messages

    Retry idempotent uploads on connection reset

    The load balancer resets idle connections after 60 s; uploads that
    start late in that window fail. Retrying is safe: uploads are keyed.
"""),
}
