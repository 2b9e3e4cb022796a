#!/usr/bin/env bash
# A multi-host test bed on this machine (root): network namespaces on a bridge, six worker
# hosts (pools a, b, c x 2) with their own hostnames, Redis and PostgreSQL on a services side.
#   scripts/testbed.sh up [--workers]         # prints the bed id and the FARM_* exports
#   scripts/testbed.sh exec ID HOST CMD...    # CMD in that host (its netns and hostname)
#   scripts/testbed.sh partition|heal ID HOST # silent drop of all its traffic, and back
#   scripts/testbed.sh partition ID HOST --link   # its link down instead (heal: the same)
#   scripts/testbed.sh cut ID HOST db|redis   # only the database or the broker;
#   scripts/testbed.sh heal ID HOST db|redis  #   heal with the same words
#   scripts/testbed.sh list | down ID... | down --all   # --all: beds whose run has died
# The code: tests/support/testbed.py (what tests/multihost uses) and testbed_cli.py.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$here/.venv/bin/python}
[ -x "$py" ] || py=python3
cd "$here"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m tests.support.testbed_cli "$@"
