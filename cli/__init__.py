"""The `farm` command line: thin Click commands over core, db and workers."""
