"""CI runs the suite once: nothing reruns a failed test or hides a failed run."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from tests.support.harness import REPO

RERUN_PLUGINS = ("rerunfailures", "flaky", "retry")
RERUN_FLAGS = re.compile(r"--(reruns|lf|last-failed|sw|stepwise|flake-finder|count)\b")


def test_ci_calls_the_readme_test_command_once_and_unguarded() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "set -euo pipefail" in lines
    runs = [line for line in lines if "make test" in line or "pytest" in line]
    assert runs == ["make test"], runs  # no `|| make test`, no loop, no `|| true`
    assert lines[-1] == "make test"  # its exit status is the script's


def test_the_test_target_runs_pytest_once_with_no_rerun_flag() -> None:
    makefile = (REPO / "Makefile").read_text()
    target = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    pytest_lines = [line for line in target.splitlines() if "pytest" in line]
    assert len(pytest_lines) == 1, target
    assert not RERUN_FLAGS.search(pytest_lines[0]), pytest_lines[0]
    recipe = [line for line in target.splitlines() if line.startswith("\t")]
    assert recipe and not [line for line in recipe if line.startswith(("\t-", "\t@-"))]
    assert "||" not in target  # a recipe line whose failure is ignored hides a failed run


def test_rerun_plugins_are_blocked_and_none_is_installed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    addopts = config["tool"]["pytest"]["ini_options"]["addopts"].split()
    for name in RERUN_PLUGINS:
        assert f"no:{name}" in addopts
    installed = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    assert not installed & {"pytest-rerunfailures", "flaky", "pytest-retry", "pytest-flakefinder"}
