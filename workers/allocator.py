"""Allocator preload: the worker re-executes itself with LD_PRELOAD before torch loads.

The blog preloaded tcmalloc "for extra performance"; an allocator can only be chosen at
process start, so a worker started with `--allocator` serves that allocator's queues.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from farm.errors import FarmError

LIBRARIES = {
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
    "jemalloc": ("libjemalloc.so.2",),
}
PACKAGES = {"tcmalloc": "libtcmalloc-minimal4", "jemalloc": "libjemalloc2"}
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")


def library_path(allocator: str) -> str:
    for directory in LIB_DIRS:
        for name in LIBRARIES[allocator]:
            path = Path(directory) / name
            if path.exists():
                return str(path)
    raise FarmError(
        f"allocator {allocator!r} is not installed on this host; install Debian's "
        f"{PACKAGES[allocator]} (apt-get install {PACKAGES[allocator]})"
    )


def active_allocator() -> str:
    preload = os.environ.get("LD_PRELOAD", "")
    for name, libs in LIBRARIES.items():
        if any(lib.split(".so")[0] in preload for lib in libs):
            return name
    return "default"


def ensure_allocator(allocator: str) -> None:
    """Re-exec this process with the allocator preloaded, unless it already is."""
    if allocator == active_allocator():
        return
    env = dict(os.environ)
    if allocator == "default":
        env.pop("LD_PRELOAD", None)
    else:
        env["LD_PRELOAD"] = library_path(allocator)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)  # noqa: S606 (our own argv)
