"""Inside each stack: every `farm` command loads, and none pulls in the dashboard's or
Flower's packages, which a worker stack does not install (a worker runs `farm worker`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.main, pytest.mark.ipex]

CHECK = """
import sys
from farm.cli.main import cli, commands
for command in commands():
    cli.add_command(command)
top = {m.split(".")[0] for m in sys.modules}
heavy = sorted(top & {"starlette", "uvicorn", "jinja2", "flower"})
print("loaded:", heavy)
"""


def test_every_command_loads_without_the_dashboard_packages() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded: []", out.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "farm", "worker", "--help"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert help_text.returncode == 0 and "--pool" in help_text.stdout, help_text.stderr
