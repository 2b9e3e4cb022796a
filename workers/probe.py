"""Host probe: what CPU, memory and software a worker measures with (stdlib only)."""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from farm.hardware import hardware_class

CPU_FLAGS = (
    "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "avx512_bf16", "avx512_fp16",
    "avx512_vnni", "avx512ifma", "avx512f", "avx512bw", "avx512vl", "avx512dq",
    "avx_ne_convert", "avx_vnni", "avx2",
)  # fmt: skip
LIBRARIES = (
    "farm", "torch", "intel_extension_for_pytorch", "transformers", "optimum",
    "optimum-intel", "openvino", "tokenizers", "numpy", "celery",
)  # fmt: skip
ENV_KEYS = (
    "LD_PRELOAD", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "KMP_AFFINITY", "KMP_BLOCKTIME",
    "KMP_HW_SUBSET", "OMP_PROC_BIND", "OMP_PLACES", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
)  # fmt: skip
SYS_CPU = Path("/sys/devices/system/cpu")


def _cpuinfo(text: str) -> dict[str, Any]:
    model, vendor, flags, cores, sockets = "unknown", "", set(), set(), set()
    physical = core = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            model = value
        elif key == "vendor_id":
            vendor = value
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
        "vendor": vendor,
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


def _read(path: Path) -> str:
    """A sysfs value, or the reason it could not be read (recorded as such)."""
    try:
        return path.read_text().strip()
    except OSError as exc:
        return f"unreadable: {exc.strerror or type(exc).__name__}"


def _numa() -> dict[str, str]:
    nodes = sorted(Path("/sys/devices/system/node").glob("node[0-9]*"))
    return {n.name: _read(n / "cpulist") for n in nodes}


def _turbo() -> str:
    no_turbo = SYS_CPU / "intel_pstate" / "no_turbo"
    if no_turbo.exists():
        return "off" if _read(no_turbo) == "1" else "on"
    boost = SYS_CPU / "cpufreq" / "boost"
    if boost.exists():
        return "on" if _read(boost) == "1" else "off"
    return "unreadable: no intel_pstate/no_turbo or cpufreq/boost"


def _host_cpu() -> dict[str, Any]:
    try:
        return _cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return {"cpu_model": platform.processor() or "unknown", "vendor": "", "flags": {}}


def cpu_flags() -> dict[str, bool]:
    """This host's CPU flags of interest (CPU_FLAGS), empty when /proc/cpuinfo is unreadable."""
    flags: dict[str, bool] = _host_cpu()["flags"]
    return flags


def host_fingerprint(allocator: str = "default") -> dict[str, Any]:
    cpu = _host_cpu()
    logical = os.cpu_count()
    cores = cpu.get("physical_cores")
    return {
        "hostname": socket.gethostname(),
        **cpu,
        "hardware_class": hardware_class(cpu["cpu_model"], cpu["vendor"], cpu["flags"]),
        "logical_cpus": logical,
        "threads_per_core": logical // cores if logical and cores else None,
        "numa_nodes": _numa(),
        "memory_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "governor": _read(SYS_CPU / "cpu0" / "cpufreq" / "scaling_governor"),
        "turbo": _turbo(),
        "smt": _read(SYS_CPU / "smt" / "control"),
        "allocator": allocator,
        "stack": current_stack(),
        "stack_lock": current_stack_lock(),
        "backends": runnable_backends(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }


def stack_marker() -> dict[str, str]:
    """stacks/build.sh's marker in this venv (stack=, hash=, ...); empty outside a stack venv."""
    marker = Path(sys.prefix) / ".farm-stack-ok"
    if not marker.is_file():
        return {}
    pairs = (line.partition("=") for line in marker.read_text().splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def current_stack() -> str:
    """The stack this venv was built as (stacks/build.sh's marker), else FARM_STACK, else main."""
    return stack_marker().get("stack") or os.environ.get("FARM_STACK") or "main"


def current_stack_lock() -> str | None:
    """The hash of the lock this venv was built from (its name's suffix); None outside a
    built stack (the dev venv: the main stack's packages, not its lock)."""
    return stack_marker().get("hash") or None


def runnable_backends() -> dict[str, str | None]:
    """Backend → None when it can run here, else why not (registered with the worker)."""
    from farm.workers.backends import available_backends

    return available_backends()


def run_environment(threads: int | None) -> dict[str, Any]:
    """What this process runs with: affinity, threads, allocator, ISA and environment.

    torch's ISA and thread count only where the job's backend loaded torch: a job that
    needs no model (selftest) must not pay a torch import (seconds, and ~200 MB)."""
    isa = None
    torch = sys.modules.get("torch")  # as loaded by the job's backend; never imported here
    if torch is not None:
        isa = torch.backends.cpu.get_cpu_capability()
        threads = torch.get_num_threads()
    return {
        "affinity": sorted(os.sched_getaffinity(0)),
        "threads": threads,
        "cpu_capability": isa,
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
