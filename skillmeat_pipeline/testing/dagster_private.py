"""The one place that imports Dagster's private modules (`dagster._...`): what has no public API.

Everything else in the project, tests and benchmarks included, uses `import dagster as dg` and
Dagster's command line. Each function says why no public route exists (checked for 1.13.27); a
Dagster upgrade may move these imports, and then only this file changes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def instance_config(config_dir: Path, filename: str = "dagster.yaml") -> dict[str, Any]:
    """`config_dir/filename` validated against Dagster's instance config schema, unresolved.

    No public API checks an instance file without building the instance, which resolves the
    `{env: ...}` settings and connects to the storage (`DagsterInstance.from_config`); this keeps
    the `env` references as they are written and needs no database.
    """
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(config_dir), filename)
    return config


def submit_asset_backfill(
    instance: Any,
    workspace: Path,
    asset_key: str,
    partition_keys: Sequence[str],
    run_config: Mapping[str, Any],
) -> str:
    """One asset backfill of `asset_key` over `partition_keys`, as the UI's "Materialize" submits
    it (`PartitionBackfill.from_asset_partitions`, what the GraphQL `launchPartitionBackfill`
    mutation calls); returns its id. The daemon splits it into runs by the asset's backfill policy.

    Public routes do something else or need more running: `dagster job backfill` makes a *job*
    backfill (one run per partition, the backfill policy ignored), a sensor cannot request a
    backfill (`RunRequest.for_asset_graph_subset` is private; dagster-io/dagster#34096 would add
    a public one), and the GraphQL mutation needs a webserver process next to the daemon.
    """
    import dagster as dg
    from dagster._cli.workspace.cli_target import get_workspace_from_cli_opts
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster_shared.cli import WorkspaceOpts

    with get_workspace_from_cli_opts(
        instance, version="", workspace_opts=WorkspaceOpts(workspace=[str(workspace)])
    ) as context:
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id=make_new_backfill_id(),
            asset_graph=context.asset_graph,
            partition_names=list(partition_keys),
            asset_selection=[dg.AssetKey(asset_key)],
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=dict(run_config),
        )
        instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_status(instance: Any, backfill_id: str) -> tuple[str, bool]:
    """(status, whether it is final) of a backfill; the terminal set is not exported publicly."""
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES

    backfill = instance.get_backfill(backfill_id)
    return backfill.status.value, backfill.status in BULK_ACTION_TERMINAL_STATUSES
