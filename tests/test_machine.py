"""maskrt.machine: naming the CPU and the ISA path it takes, from /proc/cpuinfo text."""

from __future__ import annotations

from maskrt.machine import amd_zen_generation, describe, parse_cpuinfo

ZEN3_FLAGS = "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni vaes vpclmulqdq"
ZEN4_FLAGS = ZEN3_FLAGS + " avx512f avx512dq avx512bw avx512vl avx512_bf16 avx512_vnni avx512_bitalg"
SPR_FLAGS = ZEN4_FLAGS + " avx_vnni amx_bf16 amx_tile amx_int8"


def cpuinfo(vendor: str, family: int, model: int, name: str, flags: str, cores: int, threads: int = 1) -> str:
    blocks = []
    for cpu in range(cores * threads):
        blocks.append("\n".join([f"processor\t: {cpu}", f"vendor_id\t: {vendor}", f"cpu family\t: {family}",
                                 f"model\t\t: {model}", f"model name\t: {name}", "physical id\t: 0",
                                 f"core id\t\t: {cpu // threads}", f"flags\t\t: {flags}"]))
    return "\n\n".join(blocks) + "\n"


def test_avx2_only_zen3():
    info = parse_cpuinfo(cpuinfo("AuthenticAMD", 25, 1, "AMD EPYC", ZEN3_FLAGS, cores=2), ("FP32", "INT8"))
    assert (info.kind, info.microarchitecture, info.physical_cores, info.logical_cpus) == ("avx2", "Zen 3", 2, 2)
    assert info.flags == ("avx2", "fma")
    summary = info.summary()
    assert "AMD EPYC (Zen 3), family 25 model 1: 2 physical cores, 2 logical CPUs; kind avx2" in summary
    assert "no avx512f avx512_bf16 avx512_vnni avx_vnni amx_tile amx_bf16 amx_int8" in summary
    assert summary.endswith("OpenVINO CPU: FP32 INT8")


def test_avx512_bf16_zen4():
    info = parse_cpuinfo(cpuinfo("AuthenticAMD", 25, 17, "AMD EPYC", ZEN4_FLAGS, cores=2))
    assert (info.kind, info.microarchitecture) == ("avx512-bf16", "Zen 4")
    assert info.flags == ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni")


def test_intel_amx_with_hyperthreads():
    info = parse_cpuinfo(cpuinfo("GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8480+", SPR_FLAGS, 2, 2))
    assert (info.kind, info.microarchitecture, info.physical_cores, info.logical_cpus) == ("avx512-bf16", None, 2, 4)
    assert "amx_int8" in info.flags and "avx_vnni" in info.flags


def test_zen_generations():
    assert [amd_zen_generation(f, m) for f, m in [(23, 49), (25, 1), (25, 33), (25, 17), (25, 97), (26, 2)]] == \
        ["Zen 2", "Zen 3", "Zen 3", "Zen 4", "Zen 4", "Zen 5"]


def test_this_machine_is_described():
    info = describe()
    assert info.logical_cpus >= 1 and info.physical_cores >= 1 and info.model
    print(info.summary())
