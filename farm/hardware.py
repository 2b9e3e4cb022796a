"""Hardware class from a CPU fingerprint: a pool is the user's label, the class is derived.

The class is what a reader compares across pools (Ice Lake, Sapphire Rapids, Zen 4); a
pool whose hosts fall in several classes gets a warning, since its numbers mix machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def hardware_class(cpu_model: str, vendor: str, flags: Mapping[str, bool]) -> str:
    has = {name for name, on in flags.items() if on}
    model = cpu_model.lower()
    if vendor == "AuthenticAMD" or "amd" in model or "epyc" in model:
        if {"avx512f", "avx512_bf16"} <= has:
            return "AMD Zen 4+"
        return "AMD Zen 3 or older" if "avx2" in has else "AMD (unknown)"
    if vendor == "GenuineIntel" or "intel" in model or "xeon" in model:
        if "amx_fp16" in has:
            return "Intel Granite Rapids"
        if "amx_tile" in has:
            return "Intel Sapphire/Emerald Rapids"
        if {"avx512_fp16", "avx512_bf16"} <= has:
            return "Intel Sapphire Rapids class (AMX not exposed)"
        if "avx512_bf16" in has:
            return "Intel Cooper Lake"
        if {"avx512_vnni", "avx512ifma"} <= has:
            return "Intel Ice Lake"
        if "avx512_vnni" in has:
            return "Intel Cascade Lake"
        if "avx512f" in has:
            return "Intel Skylake-SP"
        return "Intel (AVX2)" if "avx2" in has else "Intel (unknown)"
    return f"{vendor or 'unknown vendor'} CPU"


# IPEX's bf16 weight prepack (ipex.optimize with dtype=bf16) asserts one of these ISA sets.
IPEX_BF16_ISAS = ({"avx512bw", "avx512vl", "avx512dq"}, {"avx_ne_convert"})


def ipex_bf16_missing(flags: Mapping[str, bool]) -> str | None:
    """Why IPEX cannot run bf16 on a CPU with these flags (None: it can)."""
    has = {name for name, on in flags.items() if on}
    if any(isa <= has for isa in IPEX_BF16_ISAS):
        return None
    return "IPEX's bf16 needs AVX-512 (avx512bw, avx512vl, avx512dq) or avx_ne_convert"


def native_bf16(flags: Mapping[str, bool]) -> bool:
    """Whether the CPU computes in bf16 natively (AVX-512 BF16 or AMX): OpenVINO's bf16
    precision hint is honoured only then, and falls back to f32 elsewhere."""
    return bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))


def mixed_pools(workers: Iterable[tuple[str, str | None]]) -> dict[str, set[str]]:
    """Pools whose (pool, hardware class) pairs show more than one class."""
    classes: dict[str, set[str]] = {}
    for pool, cls in workers:
        classes.setdefault(pool, set()).add(cls or "unknown")
    return {pool: found for pool, found in classes.items() if len(found) > 1}
