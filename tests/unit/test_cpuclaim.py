"""`farm worker --claim N`: workers sharing a lock folder get disjoint CPUs (flock)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from farm.errors import FarmError
from farm.workers.cpuclaim import claim_cpus


def test_claims_are_disjoint_and_a_full_set_is_one_clear_error(tmp_path: Path) -> None:
    # flock locks of two open() calls conflict even in one process: each call is a worker.
    assert claim_cpus({4, 5, 6}, 1, tmp_path) == {4}
    assert claim_cpus({4, 5, 6}, 2, tmp_path) == {5, 6}
    with pytest.raises(FarmError) as err:
        claim_cpus({4, 5, 6, 8}, 2, tmp_path)
    assert str(err.value) == (
        f"--claim 2: only 1 of CPUs 4-6,8 are free (workers sharing {tmp_path} hold the "
        "others); start fewer workers or give --cpus more CPUs"
    )
    assert claim_cpus({8, 9}, 1, tmp_path) == {8}, "the failed claim held nothing"


def test_a_dead_workers_cpus_are_free_again(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from farm.workers.cpuclaim import claim_cpus; "
        f"print(sorted(claim_cpus({{0, 1}}, 1, Path({str(tmp_path)!r})))); sys.stdout.flush(); "
        "sys.stdin.read()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "[0]"
    assert claim_cpus({0, 1}, 1, tmp_path) == {1}
    proc.kill()
    proc.wait(10)
    assert claim_cpus({0}, 1, tmp_path) == {0}


def test_an_unwritable_folder_says_which_variable_to_set(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(FarmError, match="set FARM_CPU_LOCK_DIR to a folder the workers can"):
        claim_cpus({0}, 1, blocker / "cpus")


def test_a_lock_file_that_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cpu5.lock").mkdir()  # not a file: open() fails
    with pytest.raises(FarmError, match=r"cannot use the CPU lock folder .* \(Is a directory\)"):
        claim_cpus({3, 5}, 2, tmp_path)  # CPU 3 is locked first, then let go
    assert claim_cpus({3}, 1, tmp_path) == {3}, "nothing was left held"
