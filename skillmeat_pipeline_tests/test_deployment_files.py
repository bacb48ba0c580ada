"""The deployment files are valid for the Dagster version we pin."""

import shlex
from pathlib import Path

import yaml
from dagster._core.instance.config import dagster_instance_config

ROOT = Path(__file__).resolve().parents[1]


def test_production_dagster_yaml_matches_the_instance_schema():
    config, _ = dagster_instance_config(str(ROOT), "dagster.yaml")
    postgres = config["storage"]["postgres"]["postgres_db"]
    assert postgres["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_workspace_loads_the_code_server_the_dockerfile_starts():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    port = entry["grpc_server"]["port"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd_line = next(line for line in dockerfile.splitlines() if line.startswith("CMD "))
    cmd = yaml.safe_load(cmd_line.removeprefix("CMD "))
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-p") + 1] == str(port)
    module = cmd[cmd.index("-m") + 1]
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file(), shlex.join(cmd)
