"""`farm serve`: the live, read-only web dashboard (an outer layer beside the CLI)."""
