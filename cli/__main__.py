"""`python -m cli`: the same as the `farm` command."""

from cli.main import main

main()
