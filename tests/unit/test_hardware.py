"""Hardware class from real-looking /proc/cpuinfo text, and pools that mix classes."""

from __future__ import annotations

import pytest

from farm.hardware import hardware_class, mixed_pools
from farm.workers.probe import CPU_FLAGS, _cpuinfo, host_fingerprint

BASE = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc "
    "cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c "
    "rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid"
)
AVX512 = "avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl"
ICX = (
    f"{BASE} {AVX512} avx512ifma sha_ni xsaveopt xsavec xgetbv1 xsaves wbnoinvd ida arat "
    "avx512vbmi pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme "
    "avx512_vpopcntdq rdpid md_clear flush_l1d arch_capabilities"
)
SPR = (
    f"{ICX} avx_vnni avx512_bf16 cldemote movdiri movdir64b serialize tsxldtrk amx_bf16 "
    "avx512_fp16 amx_tile amx_int8"
)
CLX = f"{BASE} {AVX512} xsaveopt xsavec xgetbv1 xsaves ida arat pku ospke avx512_vnni md_clear"
ZEN3 = (
    f"{BASE} clzero xsaveerptr rdpru wbnoinvd arat npt nrip_save vaes vpclmulqdq rdpid fsrm "
    "sha_ni xsaveopt xsavec xgetbv1 clflushopt clwb rdseed adx smap"
)
ZEN4 = (
    f"{ZEN3} {AVX512} avx512ifma avx512vbmi avx512_vbmi2 gfni avx512_vnni avx512_bitalg "
    "avx512_vpopcntdq avx512_bf16 avx_vnni"
)


def cpuinfo(model: str, vendor: str, flags: str, cpus: int = 2) -> str:
    blocks = []
    for cpu in range(cpus):
        blocks.append(
            f"processor\t: {cpu}\nvendor_id\t: {vendor}\nmodel name\t: {model}\n"
            f"physical id\t: 0\ncore id\t\t: {cpu // 2}\nflags\t\t: {flags}\n"
        )
    return "\n".join(blocks)


@pytest.mark.parametrize(
    ("model", "vendor", "flags", "expected"),
    [
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "GenuineIntel", ICX, "Intel Ice Lake"),
        (
            "Intel(R) Xeon(R) Platinum 8488C",
            "GenuineIntel",
            SPR,
            "Intel Sapphire/Emerald Rapids",
        ),
        (
            "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
            "GenuineIntel",
            CLX,
            "Intel Cascade Lake",
        ),
        ("AMD EPYC 9R14", "AuthenticAMD", ZEN4, "AMD Zen 4+"),
        ("AMD EPYC 7R13 Processor", "AuthenticAMD", ZEN3, "AMD Zen 3 or older"),
    ],
    ids=["icelake-8375C", "sapphirerapids-8488C", "cascadelake-8259CL", "zen4-9R14", "zen3-7R13"],
)
def test_hardware_class_of_representative_cpus(
    model: str, vendor: str, flags: str, expected: str
) -> None:
    cpu = _cpuinfo(cpuinfo(model, vendor, flags))
    assert cpu["cpu_model"] == model and cpu["vendor"] == vendor
    assert set(cpu["flags"]) == set(CPU_FLAGS)
    assert hardware_class(cpu["cpu_model"], cpu["vendor"], cpu["flags"]) == expected


def test_amx_flags_are_read_from_cpuinfo() -> None:
    cpu = _cpuinfo(cpuinfo("Intel(R) Xeon(R) Platinum 8488C", "GenuineIntel", SPR))
    on = {f for f, present in cpu["flags"].items() if present}
    assert {"amx_tile", "amx_bf16", "amx_int8", "avx512_bf16", "avx512_fp16"} <= on
    assert "amx_fp16" not in on
    ice = _cpuinfo(cpuinfo("Intel(R) Xeon(R) Platinum 8375C", "GenuineIntel", ICX))
    assert not ice["flags"]["amx_tile"] and not ice["flags"]["avx512_bf16"]


def test_sapphire_rapids_with_amx_hidden_is_still_told_apart() -> None:
    hidden = " ".join(f for f in SPR.split() if not f.startswith("amx"))
    cpu = _cpuinfo(cpuinfo("Intel(R) Xeon(R) Platinum 8488C", "GenuineIntel", hidden))
    assert hardware_class(cpu["cpu_model"], cpu["vendor"], cpu["flags"]) == (
        "Intel Sapphire Rapids class (AMX not exposed)"
    )


def test_granite_rapids_by_amx_fp16() -> None:
    flags = {"amx_tile": True, "amx_fp16": True, "avx512_bf16": True}
    assert hardware_class("Intel(R) Xeon(R) 6975P-C", "GenuineIntel", flags) == (
        "Intel Granite Rapids"
    )


@pytest.mark.parametrize(
    ("model", "vendor", "flags", "expected"),
    [
        ("unknown", "", {}, "unknown vendor CPU"),  # e.g. an ARM host: no vendor_id line
        ("Neoverse-V1", "ARM", {"avx2": False}, "ARM CPU"),
        ("Intel(R) Core(TM) i7", "GenuineIntel", {"avx2": True}, "Intel (AVX2)"),
        ("Intel(R) Pentium", "GenuineIntel", {}, "Intel (unknown)"),
        ("AMD Opteron", "AuthenticAMD", {}, "AMD (unknown)"),
        ("Intel Xeon", "GenuineIntel", {"avx512f": True, "avx512_vnni": False}, "Intel Skylake-SP"),
    ],
)
def test_hardware_class_of_unknown_and_older_cpus(
    model: str, vendor: str, flags: dict[str, bool], expected: str
) -> None:
    assert hardware_class(model, vendor, flags) == expected


def test_cpuinfo_without_flags_or_model() -> None:
    cpu = _cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n")
    assert cpu["cpu_model"] == "unknown" and cpu["vendor"] == ""
    assert not any(cpu["flags"].values())
    assert hardware_class(cpu["cpu_model"], cpu["vendor"], cpu["flags"]) == "unknown vendor CPU"


def test_cpuinfo_counts_cores_and_sockets() -> None:
    cpu = _cpuinfo(cpuinfo("AMD EPYC 9R14", "AuthenticAMD", ZEN4, cpus=8))
    assert cpu["sockets"] == 1 and cpu["physical_cores"] == 4


def test_this_hosts_fingerprint_has_a_class_and_the_recorded_fields() -> None:
    fp = host_fingerprint("tcmalloc")
    assert isinstance(fp["hardware_class"], str) and fp["hardware_class"]
    assert fp["allocator"] == "tcmalloc"
    for key in ("cpu_model", "flags", "numa_nodes", "governor", "turbo", "smt", "libraries"):
        assert key in fp, key
    assert isinstance(fp["governor"], str)  # a value or "unreadable: ..."


def test_mixed_pools() -> None:
    workers = [
        ("icelake", "Intel Ice Lake"),
        ("icelake", "Intel Ice Lake"),
        ("spr", "Intel Sapphire/Emerald Rapids"),
        ("spr", "Intel Sapphire Rapids class (AMX not exposed)"),
        ("zen", "AMD Zen 4+"),
        ("zen", None),
        ("old", None),
        ("old", None),
    ]
    assert mixed_pools(workers) == {
        "spr": {"Intel Sapphire/Emerald Rapids", "Intel Sapphire Rapids class (AMX not exposed)"},
        "zen": {"AMD Zen 4+", "unknown"},
    }
    assert mixed_pools([]) == {}
    assert mixed_pools(iter([("a", "X")])) == {}
