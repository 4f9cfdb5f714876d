"""What CPU this is: model, cores, and the ISA extensions that change which code path runs.

maskrt's CPU engines take different paths on different x86 CPUs: OpenVINO computes `--precision
fp16` engines in bf16 only where the CPU has AVX512_BF16 or AMX (f32 elsewhere), and int8
convolutions use VNNI / AMX where present and AVX2's `vpmaddubsw` otherwise. Benchmark reports
and tests name the machine with `describe()`, so a figure is never read as a property of the
product alone.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The flags (as /proc/cpuinfo spells them) that select a kernel path somewhere in maskrt's stack.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class MachineInfo:
    """One CPU as the tests and benchmark reports name it.

    flags: the ISA_FLAGS present, in ISA_FLAGS order; openvino: OpenVINO's CPU
    OPTIMIZATION_CAPABILITIES (e.g. FP32, BF16, INT8), empty when OpenVINO was not asked.
    """

    model: str
    vendor: str
    family: int | None
    model_number: int | None
    physical_cores: int
    logical_cpus: int
    flags: tuple[str, ...]
    openvino: tuple[str, ...] = field(default=())

    @property
    def kind(self) -> str:
        """"avx512-bf16" (AVX-512 with native bf16, or AMX), "avx512", "avx2" or "baseline"."""
        if "amx_bf16" in self.flags or {"avx512f", "avx512_bf16"} <= set(self.flags):
            return "avx512-bf16"
        if "avx512f" in self.flags:
            return "avx512"
        return "avx2" if "avx2" in self.flags else "baseline"

    @property
    def microarchitecture(self) -> str | None:
        """AMD Zen generation from family/model where known (KVM guests often hide the model name)."""
        return amd_zen_generation(self.family, self.model_number) if self.vendor == "AuthenticAMD" else None

    def summary(self) -> str:
        """One line: model, cores, ISA flags present and absent, OpenVINO's capabilities."""
        arch = f" ({self.microarchitecture})" if self.microarchitecture else ""
        family = f", family {self.family} model {self.model_number}" if self.family is not None else ""
        absent = [f for f in ISA_FLAGS if f not in self.flags]
        isa = " ".join(self.flags) or "none of " + " ".join(ISA_FLAGS)
        line = (f"{self.model}{arch}{family}: {self.physical_cores} physical cores, {self.logical_cpus} logical "
                f"CPUs; kind {self.kind}; ISA {isa}" + (f"; no {' '.join(absent)}" if absent else ""))
        return line + (f"; OpenVINO CPU: {' '.join(self.openvino)}" if self.openvino else "")

    def as_dict(self) -> dict:
        return {**asdict(self), "kind": self.kind, "microarchitecture": self.microarchitecture,
                "summary": self.summary()}


def amd_zen_generation(family: int | None, model: int | None) -> str | None:
    """AMD's family/model numbers to a Zen generation (family 0x17: Zen/Zen 2, 0x19: Zen 3/4, 0x1A: Zen 5)."""
    if family is None or model is None:
        return None
    if family == 0x17:
        return "Zen 2" if model >= 0x30 else "Zen / Zen+"
    if family == 0x19:
        zen4 = 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF
        return "Zen 4" if zen4 else "Zen 3"
    return "Zen 5" if family == 0x1A else None


def parse_cpuinfo(text: str, openvino: tuple[str, ...] = ()) -> MachineInfo:
    """MachineInfo from the text of Linux's /proc/cpuinfo (x86: one block per logical CPU)."""
    blocks = [dict(_fields(block)) for block in text.strip().split("\n\n") if block.strip()]
    first = blocks[0] if blocks else {}
    cores = {(b.get("physical id", "0"), b.get("core id", str(i))) for i, b in enumerate(blocks)}
    flags = set(first.get("flags", "").split())
    return MachineInfo(
        model=first.get("model name", platform.processor() or "unknown CPU"),
        vendor=first.get("vendor_id", ""),
        family=_int(first.get("cpu family")),
        model_number=_int(first.get("model")),
        physical_cores=len(cores) or 1,
        logical_cpus=len(blocks) or os.cpu_count() or 1,
        flags=tuple(f for f in ISA_FLAGS if f in flags),
        openvino=openvino,
    )


@functools.lru_cache(maxsize=1)
def describe(with_openvino: bool = True) -> MachineInfo:
    """This machine (Linux /proc/cpuinfo; elsewhere the model from `platform` and no flags)."""
    caps = openvino_capabilities() if with_openvino else ()
    path = Path("/proc/cpuinfo")
    if path.exists():
        return parse_cpuinfo(path.read_text(errors="replace"), caps)
    n = os.cpu_count() or 1
    return MachineInfo(platform.processor() or platform.machine(), "", None, None, n, n, (), caps)


def openvino_capabilities() -> tuple[str, ...]:
    """OpenVINO's CPU OPTIMIZATION_CAPABILITIES (FP32, BF16, INT8, ...); () without OpenVINO."""
    try:
        import openvino as ov

        return tuple(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # OpenVINO missing or no CPU plugin: nothing to report
        return ()


def _fields(block: str):
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip(), value.strip()


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
