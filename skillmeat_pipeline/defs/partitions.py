import dagster as dg

# One partition per marketplace source; keys come from the sources file (see sensors.py).
marketplace_sources = dg.DynamicPartitionsDefinition(name="marketplace_sources")
