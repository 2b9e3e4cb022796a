"""From the dev venv: run tests/stacks inside each software stack's own venv.

A stack's venv is found with `stacks/build.sh --path STACK` (nothing is built). With
FARM_STACK_TESTS=1, and always under CI=true, a missing stack is built first
(`stacks/build.sh STACK`: main ~3 min and 1.6 GB, ipex ~4 min and 7.4 GB); otherwise a
stack that is not built is skipped with the command that builds it. The backends themselves
are exercised only inside the stacks.

A stack's venv is shared by every checkout on the host, and its editable Farm points at
whichever checkout built it. The suite runs this checkout's code all the same: its root is
put first on PYTHONPATH, and tests/stacks/conftest.py refuses to run when `farm` was
imported from anywhere else (FARM_CHECKOUT).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from farm.stacks import STACKS

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "stacks" / "build.sh"


def stack_venv(stack: str) -> Path:
    found = subprocess.run([str(BUILD), "--path", stack], capture_output=True, text=True)
    if found.returncode == 0:
        return Path(found.stdout.strip())
    if os.environ.get("FARM_STACK_TESTS") != "1" and os.environ.get("CI") != "true":
        pytest.skip(
            f"the {stack} stack is not built here ({found.stderr.strip() or 'no marker'}); "
            f"build it with `stacks/build.sh {stack}`, or set FARM_STACK_TESTS=1"
        )
    built = subprocess.run([str(BUILD), stack], capture_output=True, text=True, timeout=3600)
    assert built.returncode == 0, built.stderr[-4000:]
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stack", STACKS)
def test_stack_suite(stack: str) -> None:
    venv = stack_venv(stack)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "FARM_STACK": stack,
           "PYTHONPATH": str(REPO), "FARM_CHECKOUT": str(REPO)}  # fmt: skip
    run = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "tests/stacks", "-m", stack,
         "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    tail = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, f"{stack} stack tests failed in {venv}:\n{tail}"
    assert " passed" in run.stdout and "skipped" not in run.stdout.split("\n")[-2], tail
    print(f"{stack}: {run.stdout.strip().splitlines()[-1]}", file=sys.stderr)
