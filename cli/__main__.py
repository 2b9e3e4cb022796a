"""`python -m farm.cli`: the same as the `farm` command."""

from farm.cli.main import main

main()
