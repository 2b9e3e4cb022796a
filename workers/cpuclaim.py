"""`farm worker --claim N`: pin to N CPUs that no other worker of this machine holds.

One lock file per CPU in a folder the workers share (FARM_CPU_LOCK_DIR: /tmp/farm-cpus on a
host; a volume shared by the containers in docker/compose.yaml), each held with flock for
the worker's life. So replicas started alike (`docker compose up --scale worker-icelake=3`)
pin to disjoint CPUs, and the kernel frees a dead worker's CPUs with its last descriptor
(the pool child inherits them, so a child still measuring keeps its CPUs).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import NoReturn

from farm.errors import FarmError

DEFAULT_DIR = "/tmp/farm-cpus"  # noqa: S108 (lock files only; no data is read from them)


def claim_cpus(candidates: set[int], count: int, folder: Path) -> set[int]:
    """The first `count` free CPUs of `candidates`, locked until this process and its
    children exit; one clear error, and nothing held, when fewer are free."""
    held: dict[int, int] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _unusable(folder, exc, held)
    for cpu in sorted(candidates):
        try:
            fd = os.open(folder / f"cpu{cpu}.lock", os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError as exc:
            _unusable(folder, exc, held)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        held[cpu] = fd
        if len(held) == count:
            return set(held)  # the descriptors stay open: the locks last as long as we do
    for fd in held.values():
        os.close(fd)
    raise FarmError(
        f"--claim {count}: only {len(held)} of CPUs {_ranges(candidates)} are free (workers "
        f"sharing {folder} hold the others); start fewer workers or give --cpus more CPUs"
    )


def _unusable(folder: Path, exc: OSError, held: dict[int, int]) -> NoReturn:
    for fd in held.values():
        os.close(fd)
    raise FarmError(
        f"cannot use the CPU lock folder {folder} ({exc.strerror}); set FARM_CPU_LOCK_DIR to "
        "a folder the workers can write"
    ) from None


def _ranges(cpus: set[int]) -> str:
    out: list[str] = []
    for cpu in sorted(cpus):
        if out and out[-1].split("-")[-1] == str(cpu - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{cpu}"
        else:
            out.append(str(cpu))
    return ",".join(out)
