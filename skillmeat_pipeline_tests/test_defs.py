import dagster as dg

from skillmeat_pipeline.definitions import defs


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
