"""`python -m skillmeat_pipeline.cli`, as the `skillmeat-pipeline` script."""

from skillmeat_pipeline.cli import main

main()
