"""Inside each stack: a result records the stack it ran in, with the stack's lock hash.

An embedded `farm run` in the ipex venv runs its pytorch jobs there: they record `ipex`
(with the venv's lock hash, from stacks/build.sh's marker), not pytorch's home stack `main`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from farm.stacks import recorded_stack
from farm.workers.probe import host_fingerprint
from tests.support.harness import farm, farm_env, write_matrix

pytestmark = [pytest.mark.main, pytest.mark.ipex]


def _marker() -> dict[str, str]:
    marker = Path(sys.prefix) / ".farm-stack-ok"
    return dict(line.split("=", 1) for line in marker.read_text().splitlines() if "=" in line)


def test_the_fingerprint_records_the_stack_and_its_lock_hash() -> None:
    marker = _marker()
    assert Path(sys.prefix).name == f"{marker['stack']}-{marker['hash']}"  # build.sh's name
    fingerprint = host_fingerprint()
    assert (fingerprint["stack"], fingerprint["stack_lock"]) == (marker["stack"], marker["hash"])
    assert recorded_stack({"host": fingerprint}) == f"{marker['stack']}@{marker['hash']}"


def test_an_embedded_run_records_its_pytorch_jobs_in_this_stack(tmp_path: Path) -> None:
    marker = _marker()
    url = f"sqlite:///{tmp_path / 'farm.db'}"
    env = farm_env(url)
    matrix = write_matrix(tmp_path / "m.yaml", batch_sizes=[1], protocol={"warmup": 1,
                          "iterations": 3})  # fmt: skip
    run = farm("run", str(matrix), env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    report = farm("report", run.stdout.strip().splitlines()[-1], "--format", "json", env=env)
    (row,) = json.loads(report.stdout)
    assert (row["backend"], row["state"]) == ("pytorch", "succeeded")
    assert row["stack"] == f"{marker['stack']}@{marker['hash']}"
