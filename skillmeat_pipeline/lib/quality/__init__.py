"""Quality of an artifact (SPEC §5.5): the 0-100 rubric (`rubric.quality_of`) and validation
against the published formats (`validation`, findings of rule family `format.*`)."""
