import logging

# A library's records go where the host process sends them (the Dagster run log, JSON on stderr
# with SKILLMEAT_LOG_FORMAT); without a handler, Python would print warnings raw on stderr.
logging.getLogger(__name__).addHandler(logging.NullHandler())
