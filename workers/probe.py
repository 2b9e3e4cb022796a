"""Host probe: what CPU, memory and software a worker measures with (stdlib only)."""

from __future__ import annotations

import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any

CPU_FLAGS = (
    "amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2",
)  # fmt: skip
LIBRARIES = (
    "farm", "torch", "intel_extension_for_pytorch", "transformers", "optimum",
    "optimum-intel", "openvino", "tokenizers", "numpy", "celery",
)  # fmt: skip
ENV_KEYS = ("LD_PRELOAD", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "KMP_AFFINITY", "KMP_BLOCKTIME")


def _cpuinfo(text: str) -> dict[str, Any]:
    model, flags, cores, sockets = "unknown", set(), set(), set()
    physical = core = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            model = value
        elif key == "flags":
            flags = set(value.split())
        elif key == "physical id":
            physical = value
            sockets.add(value)
        elif key == "core id":
            core = value
            cores.add((physical, core))
    return {
        "cpu_model": model,
        "flags": {f: f in flags for f in CPU_FLAGS},
        "sockets": len(sockets) or None,
        "physical_cores": len(cores) or None,
    }


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def host_fingerprint() -> dict[str, Any]:
    try:
        cpu = _cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = {"cpu_model": platform.processor() or "unknown", "flags": {}}
    return {
        "hostname": socket.gethostname(),
        **cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }


def run_environment(threads: int | None) -> dict[str, Any]:
    """What this process runs with: affinity, threads and the relevant environment."""
    return {
        "affinity": sorted(os.sched_getaffinity(0)),
        "threads": threads,
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
    }
