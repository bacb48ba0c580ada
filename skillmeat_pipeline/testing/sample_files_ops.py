"""The contents of the sample repository `internal/ops-playbooks`, and the push made to it.

Served by the plain git server (not GitHub), everything under `.claude/`.
"""

from __future__ import annotations

from skillmeat_pipeline.testing.sample_files import (
    agent_manifest,
    command_manifest,
    json_content,
    manifest,
    skill_manifest,
    text_content,
)


def _ops_agent(name: str, description: str, body: str, model: str = "sonnet") -> bytes:
    return manifest(
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
    "README.md": text_content("""
# ops-playbooks

The operations team's runbooks as Claude Code skills, agents and commands (`.claude/`).
Served from the internal git server; not on GitHub.
"""),
    # no frontmatter at all: the title comes from the heading, the description from the paragraph
    ".claude/skills/incident-response/SKILL.md": text_content("""
# Incident response

Guides an engineer through a production incident: declare it, assign roles, communicate every
30 minutes, mitigate before debugging, and write the timeline as you go.

## Steps

1. Declare the incident in #incidents with `/incident:open`.
2. Page the owning team; the first responder is incident commander until handed over.
"""),
    ".claude/skills/runbook-author/SKILL.md": text_content("""
---
name: runbook-author
description: >
  Writes a runbook for an alert: what it means,
  how to check it, and how to fix it.
---

# Runbook author

Every runbook answers: what fired, who is affected, how to confirm, how to mitigate, who to call.
"""),
    ".claude/skills/postmortem/SKILL.md": skill_manifest(
        "postmortem",
        "Writes a blameless postmortem from the incident channel and the timeline.",
        "# Postmortem\n\nUse the prompts in `agents/` to build the timeline and the action items.",
    ),
    # prompt documents of the postmortem skill: not agents
    ".claude/skills/postmortem/agents/timeline-builder.md": agent_manifest(
        "timeline-builder",
        "Prompt of the postmortem skill: orders chat messages into a timeline.",
        "Merge the messages by timestamp and keep only decisions and observations.",
    ),
    ".claude/skills/postmortem/agents/action-items.md": agent_manifest(
        "action-items",
        "Prompt of the postmortem skill: turns contributing factors into action items.",
        "One owner and one due date per action item.",
    ),
    # lower-case manifest name: still a skill, flagged as non-canonical
    ".claude/skills/oncall-handoff/skill.md": skill_manifest(
        "oncall-handoff",
        "Summarises the on-call week for the next engineer.",
        "# On-call handoff\n\nOpen incidents, noisy alerts, pending changes.",
    ),
    ".claude/skills/k8s-debug/SKILL.md": skill_manifest(
        "k8s-debug",
        "Debugs failing Kubernetes workloads (pending pods, crash loops, OOM kills).",
        "# Kubernetes debugging\n\nStart with `kubectl describe` and the events, then the logs.",
    ),
    ".claude/skills/k8s-debug/reference/probes.md": text_content("""
# Probes

A failing readiness probe removes the pod from the service; a failing liveness probe restarts it.
"""),
    ".claude/skills/terraform-plan-review/SKILL.md": skill_manifest(
        "terraform-plan-review",
        "Reviews a terraform plan for destroys, replacements and IAM widening.",
        "# Terraform plan review\n\nRead `terraform show -json plan.out`; flag every delete.",
    ),
    ".claude/skills/log-triage/SKILL.md": skill_manifest(
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
    ".claude/agents/security-auditor.md": text_content("""
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
    ".claude/agents/README.md": text_content("""
# Agents

One file per agent. The on-call rotation uses sre-oncall first.
"""),
    # a BOM before the frontmatter
    ".claude/commands/status.md": b"\xef\xbb\xbf"
    + command_manifest(
        "Show the status of every production service",
        "Query the status page API and list degraded services first.",
    ),
    ".claude/commands/runbook.md": command_manifest(
        "Open the runbook for an alert",
        "Find the runbook for alert $1 under runbooks/ and summarise the mitigation steps.",
        hint="<alert-name>",
    ),
    ".claude/commands/cost-report.md": command_manifest(
        "Weekly cloud cost report",
        "Use the cost-analyst agent on last week's billing export.",
    ),
    ".claude/commands/deploy/canary.md": command_manifest(
        "Start a canary deployment",
        "Deploy $1 to 5% of traffic and watch error rate and latency for 15 minutes.",
        hint="<service> <version>",
    ),
    ".claude/commands/deploy/rollback.md": command_manifest(
        "Roll a service back to its previous version",
        "Roll $1 back and confirm the error rate returns to its baseline.",
        hint="<service>",
    ),
    ".claude/commands/incident/open.md": command_manifest(
        "Declare an incident",
        "Create the incident channel, post the template and page the owning team.",
        hint="<severity> <summary>",
    ),
    ".claude/commands/incident/close.md": command_manifest(
        "Close an incident",
        "Post the resolution, schedule the postmortem and archive the channel.",
    ),
    ".claude/commands/oncall/handoff.md": command_manifest(
        "Hand the pager to the next engineer",
        "Run the oncall-handoff skill and post the summary in #oncall.",
    ),
    ".claude/settings.json": json_content("""
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
    ".claude/hooks/block-prod-writes.sh": text_content("""
#!/bin/sh
# Refuse kubectl and terraform commands that write to production.
if grep -Eq "(kubectl (apply|delete)|terraform apply).*prod"; then
  echo "blocked: writes to production need a human" >&2
  exit 2
fi
"""),
    ".claude/mcp.json": json_content("""
{
  "mcpServers": {
    "pagerduty": {"command": "npx", "args": ["-y", "@acme/mcp-pagerduty"]}
  }
}
"""),
    # application code and artifact-shaped test fixtures: ignored
    "tools/oncall.py": text_content("""
def current_oncall(schedule: dict) -> str:
    return schedule["layers"][0]["users"][0]
"""),
    "tests/fixtures/.claude/agents/fake-agent.md": agent_manifest(
        "fake-agent", "A test fixture, not an agent.", "Ignored: under fixtures/."
    ),
}

# The changes of `SAMPLE_UPDATE` (sample_repos.py): paths to write, or to delete (None).
OPS_PLAYBOOKS_PUSH: dict[str, bytes | None] = {
    ".claude/commands/incident/escalate.md": command_manifest(
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
}
