"""Rules for live secrets: token formats, private keys, secret-named config values."""

from __future__ import annotations

from skillmeat_pipeline.lib.trust.examples import (
    FAKE_ANTHROPIC,
    FAKE_AWS,
    FAKE_GITHUB,
    FAKE_GOOGLE,
    FAKE_OPENAI,
    FAKE_PASSWORD,
    FAKE_PEM_BODY,
    FAKE_SLACK,
    Example,
    fenced,
    mcp_json,
    script,
    skill_md,
)
from skillmeat_pipeline.lib.trust.model import ANYWHERE, CONFIG, HIGH, Rule
from skillmeat_pipeline.lib.trust.predicates_secrets import (
    accept_anthropic_key,
    accept_aws_key,
    accept_github_token,
    accept_google_key,
    accept_openai_key,
    accept_private_key,
    accept_slack_token,
)

_R = Rule
SECRET_RULES: tuple[Rule, ...] = (
    _R(
        "secrets.aws_access_key",
        HIGH,
        "live secrets",
        "An AWS access key id (`AKIA…` and 16 more characters), not AWS's documented "
        "`…EXAMPLE` key nor a placeholder.",
        "A live AWS access key id is committed; rotate the key and remove it from history.",
        "Anyone who reads the repository can use a committed key.",
        positives=(
            mcp_json('{"command": "aws-mcp", "env": {"AWS_ACCESS_KEY_ID": "' + FAKE_AWS + '"}}'),
            script(f"export AWS_ACCESS_KEY_ID={FAKE_AWS}"),
        ),
        negatives=(
            fenced("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"),
            script("export AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX"),
        ),
        triggers=("aws_key",),
        accept=accept_aws_key,
        contexts=ANYWHERE,
        command=False,
    ),
    _R(
        "secrets.github_token",
        HIGH,
        "live secrets",
        "A GitHub token: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36+ characters, or "
        "`github_pat_…`, random enough not to be a placeholder.",
        "A GitHub token is committed; revoke it on GitHub and remove it from history.",
        "A token grants its owner's access to repositories and organisations.",
        positives=(
            script(f"GITHUB_TOKEN={FAKE_GITHUB} gh pr list"),
            skill_md(f"Authenticate with the token {FAKE_GITHUB} before you start."),
        ),
        negatives=(
            script("GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            script('curl -H "Authorization: Bearer $GITHUB_TOKEN" https://api.github.com/user'),
        ),
        triggers=("github_token", "github_pat"),
        accept=accept_github_token,
        contexts=ANYWHERE,
        command=False,
    ),
    _R(
        "secrets.openai_key",
        HIGH,
        "live secrets",
        "An OpenAI-style key: `sk-` (or `sk-proj-`, `sk-svcacct-`) and 20+ random characters.",
        "An API key is committed; revoke it with its provider and remove it from history.",
        "Anyone can spend the owner's money and read their data with a committed key.",
        positives=(
            script(f"OPENAI_API_KEY={FAKE_OPENAI}", "scripts/.env"),
            script(f'client = OpenAI(api_key="{FAKE_OPENAI}")', "scripts/chat.py"),
        ),
        negatives=(
            script('client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])', "scripts/chat.py"),
            script("OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "scripts/.env"),
        ),
        triggers=("sk_key",),
        accept=accept_openai_key,
        contexts=ANYWHERE,
        command=False,
    ),
    _R(
        "secrets.anthropic_key",
        HIGH,
        "live secrets",
        "An Anthropic key: `sk-ant-` and 20+ random characters.",
        "An Anthropic API key is committed; revoke it in the console and remove it from history.",
        "Anyone can spend the owner's credits with a committed key.",
        positives=(
            mcp_json(
                '{"command": "node", "args": ["s.js"], "env": {"ANTHROPIC_API_KEY": "'
                + FAKE_ANTHROPIC
                + '"}}'
            ),
            fenced(f"export ANTHROPIC_API_KEY={FAKE_ANTHROPIC}"),
        ),
        negatives=(
            mcp_json(
                '{"command": "node", "args": ["s.js"], "env": {"ANTHROPIC_API_KEY": '
                '"${ANTHROPIC_API_KEY}"}}'
            ),
            fenced("export ANTHROPIC_API_KEY=sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ),
        triggers=("sk_key",),
        accept=accept_anthropic_key,
        contexts=ANYWHERE,
        command=False,
    ),
    _R(
        "secrets.slack_token",
        HIGH,
        "live secrets",
        "A Slack token: `xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-` with its numeric ids.",
        "A Slack token is committed; revoke it in the Slack app settings.",
        "A bot or user token reads and posts in the workspace as its owner.",
        positives=(
            mcp_json('{"command": "slack-mcp", "env": {"SLACK_BOT_TOKEN": "' + FAKE_SLACK + '"}}'),
            script(f"SLACK_TOKEN={FAKE_SLACK}"),
        ),
        negatives=(
            mcp_json('{"command": "slack-mcp", "env": {"SLACK_BOT_TOKEN": "xoxb-your-token"}}'),
            script("SLACK_TOKEN=${SLACK_BOT_TOKEN}"),
        ),
        triggers=("slack_token",),
        accept=accept_slack_token,
        contexts=ANYWHERE,
        command=False,
    ),
    _R(
        "secrets.google_api_key",
        HIGH,
        "live secrets",
        "A Google API key: `AIza` and 35 random characters.",
        "A Google API key is committed; restrict or delete it in the Cloud console.",
        "An unrestricted key bills its owner for whatever anyone calls with it.",
        positives=(
            script(f'const key = "{FAKE_GOOGLE}";', "scripts/maps.js"),
            fenced(f"curl 'https://maps.googleapis.com/maps/api/geocode/json?key={FAKE_GOOGLE}'"),
        ),
        negatives=(
            script('const key = "AIzaXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";', "scripts/maps.js"),
            script('curl "https://maps.googleapis.com/x?key=$GOOGLE_API_KEY"'),
        ),
        triggers=("google_key",),
        accept=accept_google_key,
        contexts=ANYWHERE,
        command=False,
    ),
    _R(
        "secrets.private_key",
        HIGH,
        "live secrets",
        "A private key block: `-----BEGIN … PRIVATE KEY-----` followed by key data "
        "(not `...` or a placeholder).",
        "A private key is committed; replace the key pair and remove it from history.",
        "A private key proves identity: whoever has it can sign, decrypt or log in as its owner.",
        positives=(
            Example(
                "skills/deploy/keys/deploy_key",
                f"-----BEGIN OPENSSH PRIVATE KEY-----\n{FAKE_PEM_BODY}\n-----END OPENSSH PRIVATE "
                "KEY-----\n",
            ),
            Example(
                "skills/deploy/service-account.json",
                '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
                + FAKE_PEM_BODY
                + '\\n-----END PRIVATE KEY-----\\n"}\n',
            ),
        ),
        negatives=(
            fenced("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----", lang=""),
            script('if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):', "scripts/k.py"),
        ),
        triggers=("private_key",),
        accept=accept_private_key,
        contexts=ANYWHERE,
        command=False,
    ),
    _R(
        "secrets.config_value",
        HIGH,
        "live secrets",
        "In JSON, YAML, TOML and .env files: a secret-named key (`*api_key*`, `*token*`, "
        "`*secret*`, `*password*`, …) whose literal value is random enough to be a credential "
        "(≥ 16 characters, letters and digits, Shannon entropy ≥ 3.5 bits/char), not a "
        "placeholder (`${VAR}`, `<your-key>`, `xxx`, `changeme`, `example`).",
        "A credential is written into a config file; move it to the environment and rotate it.",
        "Config files are committed and copied; a literal credential in one is public.",
        positives=(
            mcp_json('{"command": "db-mcp", "env": {"DB_PASSWORD": "' + FAKE_PASSWORD + '"}}'),
            Example("skills/helper/config.yaml", f"service:\n  api_token: {FAKE_PASSWORD}\n"),
        ),
        negatives=(
            mcp_json('{"command": "db-mcp", "env": {"API_KEY": "${API_KEY}"}}'),
            Example("skills/helper/config.yaml", "api_key: <your-api-key>\nmax_tokens: 4096\n"),
            Example(
                "skills/helper/config.json",
                '{"password": "changeme", "token_url": "https://auth.example.com/oauth2/token"}',
            ),
            # a known token format: `secrets.github_token` reports the line, once
            mcp_json('{"command": "gh-mcp", "env": {"GITHUB_TOKEN": "' + FAKE_GITHUB + '"}}'),
        ),
        contexts=ANYWHERE,
        kinds=frozenset({CONFIG}),
        command=False,
        structured=True,
    ),
)
