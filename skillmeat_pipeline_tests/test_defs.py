import dagster as dg
import pytest
from dagster._core.definitions.dependency import NodeHandle

from skillmeat_pipeline.definitions import defs
from skillmeat_pipeline.defs.index.checks import INDEX_CHECK_SPECS


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


@pytest.mark.parametrize("spec", INDEX_CHECK_SPECS, ids=lambda spec: spec.name)
def test_every_check_has_its_own_op_output(spec: dg.AssetCheckSpec):
    # Runs that select the checks (every UI backfill does) need each one mapped to an output.
    layer = defs.resolve_implicit_global_asset_job_def().asset_layer
    writer = NodeHandle("write_index_rows", parent=NodeHandle("marketplace_index", None))
    assert layer.get_asset_check_key_for_node_output(writer, spec.get_python_identifier()) == (
        spec.key
    )
