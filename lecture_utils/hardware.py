"""Datasheet figures for common GPUs: dense peak FLOP/s per dtype, memory, memory bandwidth.

Every figure is the *dense* one. NVIDIA's datasheets for Ampere and later print tensor-core
figures "with sparsity" (2:4 structured sparsity), twice the dense ones (to the rounding of the
last digit); a normal training run never gets them, so MFU against them is off by 2x. We keep
them apart in `sparse_flops` so the difference can be shown, never used by accident.

Units: FLOP/s, bytes, bytes/s. Memory is the datasheet's label read as decimal gigabytes
("80 GB" = 80e9 bytes), the course's napkin convention. The chips hold binary units (an "80 GB"
GPU has 80 GiB of DRAM, some of it reserved), so where nvidia-smi's figure is known it is kept
beside, in `nvidia_smi_mib`: the convention undercounts what the GPU holds by about 6-7 %.

This module does not import torch (the napkin command line runs without it); the functions
that need torch import it when called.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

TERA = 1e12
GB = 1e9  # datasheets use decimal gigabytes
GIB = 2**30
MIB = 2**20

# The precisions a datasheet quotes. "tf32" is fp32 storage with tensor-core matmuls.
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")

# torch float dtypes by name (str(torch.bfloat16) is "torch.bfloat16"), so this module can read
# a torch.dtype without importing torch.
_TORCH_DTYPE_NAMES = {
    "float64": "fp64",
    "float32": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "float8_e4m3fn": "fp8",
    "float8_e5m2": "fp8",
}
_ALIASES = {
    "float64": "fp64", "double": "fp64", "float32": "fp32", "float": "fp32",
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16",
    "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "e4m3": "fp8", "e5m2": "fp8",
}


class NotFoundError(KeyError):
    """A lookup by name that found nothing; the course's lookups raise subclasses of it."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


class UnknownGPUError(NotFoundError):
    """No datasheet entry matches this GPU name."""


@dataclass(frozen=True)
class GPUSpec:
    """One GPU's datasheet: dense peaks in FLOP/s, memory in bytes, bandwidth in bytes/s."""

    name: str
    dense_flops: dict[str, float]
    memory_bytes: float  # the datasheet's label read as decimal GB: "80 GB" -> 80e9 bytes
    memory_bandwidth: float  # bytes/s
    source: str
    sparse_flops: dict[str, float] = field(default_factory=dict)  # "with sparsity": never MFU
    patterns: tuple[str, ...] = ()  # regexes matched against torch.cuda.get_device_name()
    note: str = ""
    # Total memory nvidia-smi reports, in MiB, where known: the DRAM is binary (80 GiB for an
    # "80 GB" part), less what the GPU reserves. None where no one has read it off a real GPU.
    nvidia_smi_mib: int | None = None

    @property
    def memory_label(self) -> str:
        """The memory as the vendor prints it, e.g. "80 GB" (vendor GB; the chips hold GiB)."""
        return f"{self.memory_bytes / GB:g} GB"

    def peak_flops(self, dtype: str | torch.dtype) -> float:
        """Dense peak FLOP/s of this GPU for `dtype` (fp32 means no TF32)."""
        key = normalize_dtype(dtype)
        if key not in self.dense_flops:
            have = ", ".join(self.dense_flops)
            raise ValueError(
                f"{self.name} has no {key} figure on its datasheet (it lists: {have}); "
                f"it likely has no {key} tensor cores, so no peak to measure against"
            )
        return self.dense_flops[key]


def _is_torch_dtype(value: Any) -> bool:
    """True for a torch.dtype, found without importing torch."""
    return type(value).__module__ == "torch" and type(value).__name__ == "dtype"


def normalize_dtype(dtype: str | torch.dtype) -> str:
    """Map 'bfloat16', torch.bfloat16, 'bf16', ... to one of DTYPES."""
    if _is_torch_dtype(dtype):
        name = str(dtype).removeprefix("torch.")
        if name not in _TORCH_DTYPE_NAMES:
            raise ValueError(f"no datasheet peak for {dtype}; floating dtypes only: {DTYPES}")
        return _TORCH_DTYPE_NAMES[name]
    if not isinstance(dtype, str):
        raise TypeError(f"dtype must be a str or torch.dtype, got {type(dtype).__name__}")
    key = dtype.strip().lower().removeprefix("torch.")
    key = _ALIASES.get(key, key)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {DTYPES} or a torch float dtype")
    return key


def _tf(**figures: float) -> dict[str, float]:
    """Figures given in TFLOP/s, stored in FLOP/s."""
    # Read "66.9" as 66.9e12, the float nearest the printed figure; 66.9 * 1e12 is 1 ulp off,
    # and a notebook's `peak == 66.9e12` would fail.
    return {k: float(Decimal(repr(v)).scaleb(12)) for k, v in figures.items()}


def _sparse_double(dense: dict[str, float], *keys: str) -> dict[str, float]:
    """The datasheet's "with sparsity" figures where they are printed as exactly 2x dense."""
    return {k: 2 * dense[k] for k in keys if k in dense}


_T4 = _tf(fp32=8.1, fp16=65)
_V100 = _tf(fp64=7.8, fp32=15.7, fp16=125)
_A10 = _tf(fp32=31.2, tf32=62.5, bf16=125, fp16=125)
_L4 = _tf(fp32=30.3, tf32=60, bf16=121, fp16=121, fp8=242.5)
_A100 = _tf(fp64=19.5, fp32=19.5, tf32=156, bf16=312, fp16=312)
# The whitepaper's figures to one decimal (the datasheet rounds them: 989, 1,979, 67). Its
# sparse figures are rounded on their own, so they are given, not doubled: 1,978.9 is not
# 2 x 989.4. fp64 is the tensor-core figure (66.9); plain fp64 is 33.5.
_H100_SXM = _tf(fp64=66.9, fp32=66.9, tf32=494.7, bf16=989.4, fp16=989.4, fp8=1978.9)
_H100_SXM_SPARSE = _tf(tf32=989.4, bf16=1978.9, fp16=1978.9, fp8=3957.8)
_H100_PCIE = _tf(fp64=51, fp32=51, tf32=378, bf16=756.5, fp16=756.5, fp8=1513)
_B200 = _tf(fp64=37, fp32=75, tf32=1125, bf16=2250, fp16=2250, fp8=4500)
# GeForce cards: the figures with fp32 accumulation (what training uses), which are half the
# fp16-accumulate ones printed first in the Ada whitepaper.
_RTX4090 = _tf(fp64=1.29, fp32=82.6, tf32=82.6, bf16=165.2, fp16=165.2, fp8=330.3)

_TC = ("tf32", "bf16", "fp16", "fp8")  # tensor-core figures that have a "with sparsity" twin
_H100_WHITEPAPER = ("NVIDIA H100 Tensor Core GPU Architecture whitepaper, H100 SXM5 column "
                    "(fp64 = tensor cores); memory and bandwidth from the H100 datasheet")

GPUS: dict[str, GPUSpec] = {
    spec.name: spec
    for spec in [
        GPUSpec(
            "T4", _T4, 16 * GB, 320 * GB,
            "NVIDIA T4 Tensor Core GPU datasheet (fp16 = mixed-precision tensor cores)",
            patterns=(r"\bT4\b",),
            note="Turing: no bf16 or tf32 tensor cores.",
        ),
        GPUSpec(
            "V100 SXM2 16GB", _V100, 16 * GB, 900 * GB,
            "NVIDIA V100 Tensor Core GPU datasheet (SXM2 column; the 16GB and 32GB parts "
            "differ only in memory)",
            patterns=(r"\bV100\b.*16\s*GB",),
            note="Volta: no bf16 or tf32 tensor cores.",
        ),
        GPUSpec(
            "V100 SXM2 32GB", _V100, 32 * GB, 900 * GB,
            "NVIDIA V100 Tensor Core GPU datasheet (SXM2 column)",
            patterns=(r"\bV100\b.*32\s*GB",),
            note="Volta: no bf16 or tf32 tensor cores.",
        ),
        GPUSpec(
            "A10", _A10, 24 * GB, 600 * GB,
            "NVIDIA A10 Tensor Core GPU datasheet",
            sparse_flops=_sparse_double(_A10, *_TC), patterns=(r"\bA10\b(?!0)",),
        ),
        GPUSpec(
            "L4", _L4, 24 * GB, 300 * GB,
            "NVIDIA L4 Tensor Core GPU datasheet (its tensor figures are with sparsity; halved)",
            sparse_flops=_sparse_double(_L4, *_TC), patterns=(r"\bL4\b",),
        ),
        GPUSpec(
            "A100 40GB", _A100, 40 * GB, 1555 * GB,
            "NVIDIA A100 Tensor Core GPU datasheet (40GB SXM column; fp64 = tensor cores)",
            sparse_flops=_sparse_double(_A100, *_TC), patterns=(r"\bA100\b.*40\s*GB",),
        ),
        GPUSpec(
            "A100 80GB", _A100, 80 * GB, 2039 * GB,
            "NVIDIA A100 Tensor Core GPU datasheet (80GB SXM column; fp64 = tensor cores)",
            sparse_flops=_sparse_double(_A100, *_TC), patterns=(r"\bA100\b.*80\s*GB",),
            nvidia_smi_mib=81_920,  # 80 GiB
        ),
        GPUSpec(
            "H100 SXM", _H100_SXM, 80 * GB, 3350 * GB, _H100_WHITEPAPER,
            sparse_flops=_H100_SXM_SPARSE,
            patterns=(r"\bH100\b.*(SXM|HBM3)", r"\bH100\b(?!.*(PCIe|NVL))"),
            nvidia_smi_mib=81_559,  # 80 GiB, less 361 MiB the GPU reserves
        ),
        GPUSpec(
            "H100 PCIe", _H100_PCIE, 80 * GB, 2000 * GB,
            "NVIDIA H100 Tensor Core GPU datasheet (PCIe column; fp64 = tensor cores)",
            sparse_flops=_sparse_double(_H100_PCIE, *_TC), patterns=(r"\bH100\b.*PCIe",),
        ),
        GPUSpec(
            "H200", _H100_SXM, 141 * GB, 4800 * GB,
            "NVIDIA H200 Tensor Core GPU datasheet (SXM column): H100 SXM compute, more HBM3e; "
            "compute to one decimal from the NVIDIA H100 Tensor Core GPU Architecture whitepaper",
            sparse_flops=_H100_SXM_SPARSE, patterns=(r"\bH200\b",),
        ),
        GPUSpec(
            "B200", _B200, 180 * GB, 8000 * GB,
            "NVIDIA DGX B200 and HGX B200 datasheets: 8-GPU totals / 8 (tensor figures halved)",
            sparse_flops=_sparse_double(_B200, *_TC), patterns=(r"\bB200\b",),
        ),
        GPUSpec(
            "RTX 4090", _RTX4090, 24 * GB, 1008 * GB,
            "NVIDIA Ada Lovelace architecture whitepaper, GeForce RTX 4090 column",
            sparse_flops=_sparse_double(_RTX4090, *_TC), patterns=(r"\b4090\b",),
        ),
    ]
}

# CUDA device names that a pattern above would match but that name a different part, with its
# own datasheet: matching them would put a guess in the course's figures. Checked first.
_OTHER_PARTS = (
    (r"GH200", "GH200 is a Grace Hopper superchip, an H100-class GPU with 96 GB of HBM3 or "
               "144 GB of HBM3e, not an H200"),
    (r"GB200", "GB200 is a Grace Blackwell superchip whose GPUs have their own figures, not "
               "a B200's"),
    (r"H200\s*NVL", "the H200 NVL runs at lower clocks and 600 W, not the H200 SXM's figures"),
    (r"H100\s*NVL", "the H100 NVL has its own clocks and 94 GB of memory, not the H100 SXM's "
                    "figures"),
    (r"V100S|V100.*(PCIe|SXM3)", "this V100 has other clocks than the SXM2 parts in the table"),
    (r"4090\s*D\b", "the RTX 4090 D is a cut-down RTX 4090 with fewer SMs"),
)
# Names that say the family but not which table entry: refused, never given one of them.
_AMBIGUOUS = (
    (r"\bV100\b", ("V100 SXM2 16GB", "V100 SXM2 32GB")),
    (r"\bA100\b", ("A100 40GB", "A100 80GB")),
)
_HOW_TO = ("Pass one of the table's names, or build a GPUSpec(...) from its datasheet (dense "
           "figures only) and pass that.")


def _fold(name: str) -> str:
    """A GPU name with case and spaces folded: 'H100 SXM' -> 'h100sxm'."""
    return "".join(name.lower().split())


def gpu_by_name(name: str) -> GPUSpec:
    """The table entry named exactly `name`, case and spaces folded ('h100sxm'); never a guess."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"GPU name must be a non-empty string, got {name!r}")
    folded = {_fold(k): spec for k, spec in GPUS.items()}
    if _fold(name) in folded:
        return folded[_fold(name)]
    for pattern, why in _OTHER_PARTS:  # a different part: say so rather than suggest a look-alike
        if re.search(pattern, name, flags=re.IGNORECASE):
            raise UnknownGPUError(f"no GPU named {name!r} in the table: {why}, so the course does "
                                  f"not guess its figures. {_HOW_TO}")
    # Suggestions only: the entry lookup_gpu's patterns give a CUDA device name ('NVIDIA H100
    # 80GB HBM3'), names that contain it, and names spelled alike.
    close: list[str] = []
    try:
        close.append(lookup_gpu(name).name)
    except UnknownGPUError:
        pass
    close += [spec.name for k, spec in folded.items() if _fold(name) in k]
    close += [folded[k].name for k in difflib.get_close_matches(_fold(name), folded, cutoff=0.6)]
    maybe = ", ".join(dict.fromkeys(close))
    raise UnknownGPUError(
        f"no GPU named {name!r} in the table"
        + (f"; did you mean {maybe}?" if maybe else ".")
        + f" Known: {', '.join(GPUS)} (case and spaces do not matter)."
    )


def lookup_gpu(name: str) -> GPUSpec:
    """The datasheet entry for a course name ('H100 SXM') or a CUDA device name.

    CUDA device names (torch.cuda.get_device_name()) are matched by each entry's patterns;
    a name that could be two entries, or that names a different part, is refused.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"GPU name must be a non-empty string, got {name!r}")
    folded = {_fold(k): spec for k, spec in GPUS.items()}
    if _fold(name) in folded:
        return folded[_fold(name)]
    for pattern, why in _OTHER_PARTS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            raise UnknownGPUError(f"no datasheet entry for GPU {name!r}: {why}, so the course "
                                  f"does not guess its figures. {_HOW_TO}")
    for spec in GPUS.values():
        if any(re.search(p, name, flags=re.IGNORECASE) for p in spec.patterns):
            return spec
    for pattern, candidates in _AMBIGUOUS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            raise UnknownGPUError(
                f"GPU name {name!r} is ambiguous: it could be {' or '.join(candidates)}, which "
                "differ in memory. Pass the full name.")
    raise UnknownGPUError(f"no datasheet entry for GPU {name!r}. Known: {', '.join(GPUS)}. "
                          f"{_HOW_TO}")


def current_gpu() -> GPUSpec | None:
    """The datasheet entry for this machine's CUDA GPU; None without CUDA or if it is unknown."""
    import torch  # here, not at the top: the napkin command line runs without torch

    if not torch.cuda.is_available():
        return None
    try:
        return lookup_gpu(torch.cuda.get_device_name())
    except UnknownGPUError:
        return None


def peak_flops(gpu: str | GPUSpec, dtype: str | torch.dtype) -> float:
    """Dense datasheet peak of `gpu` for `dtype`, in FLOP/s."""
    spec = gpu if isinstance(gpu, GPUSpec) else lookup_gpu(gpu)
    return spec.peak_flops(dtype)


class UnknownLinkError(NotFoundError):
    """No interconnect entry matches this name."""


@dataclass(frozen=True)
class LinkSpec:
    """One interconnect: bytes/s each GPU can send (and, at the same time, receive)."""

    name: str
    bandwidth: float  # bytes/s per GPU per direction: half the "bidirectional" datasheet figure
    source: str
    note: str = ""


# `bandwidth` is what one GPU's ring collective can use, each way. Datasheets quote NVLink and
# PCIe as the sum of both directions ("900 GB/s"); a ring sends and receives at once, so its time
# is set by one direction: half that figure. InfiniBand is quoted per direction (400 Gb/s =
# 50 GB/s per card); how many cards a ring's server crossings share decides what a GPU gets.
LINKS: dict[str, LinkSpec] = {
    link.name: link
    for link in [
        LinkSpec(
            "NVLink 3", 300 * GB,
            "NVIDIA A100 Tensor Core GPU datasheet: NVLink 600 GB/s (both directions)",
            note="A100 SXM, within one 8-GPU server",
        ),
        LinkSpec(
            "NVLink 4", 450 * GB,
            "NVIDIA H100 Tensor Core GPU datasheet: NVLink 900 GB/s (both directions)",
            note="H100 and H200 SXM, inside one 8-GPU server",
        ),
        LinkSpec(
            "NVLink 5", 900 * GB,
            "NVIDIA DGX B200 datasheet: NVLink 1.8 TB/s per GPU (both directions)",
            note="B200, within one server",
        ),
        LinkSpec(
            "PCIe Gen4 x16", 32 * GB,
            "NVIDIA A100 Tensor Core GPU datasheet: PCIe Gen4 64 GB/s (both directions)",
            note="GPUs without NVLink, or GPU to CPU",
        ),
        LinkSpec(
            "PCIe Gen5 x16", 64 * GB,
            "NVIDIA H100 Tensor Core GPU datasheet: PCIe Gen5 128 GB/s (both directions)",
            note="GPUs without NVLink, or GPU to CPU",
        ),
        LinkSpec(
            "InfiniBand NDR", 400e9 / 8,
            "NVIDIA ConnectX-7 datasheet: 400 Gb/s per port",
            note="between servers, one 400 Gb/s card carries the ring",
        ),
        LinkSpec(
            "InfiniBand NDR x8", 8 * 400e9 / 8,
            "NVIDIA DGX H100 datasheet: 8 x ConnectX-7 at 400 Gb/s per 8-GPU server",
            # A ring leaves each server once, and NCCL spreads its rings over the 8 cards: the
            # server's crossings share 8 x 50 GB/s, so each GPU's ring gets 400 GB/s.
            note="between servers, a 400 Gb/s card per GPU (rings spread over 8 cards)",
        ),
    ]
}


def lookup_link(name: str) -> LinkSpec:
    """The interconnect entry for `name` ('NVLink 4', 'infiniband ndr', ...)."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"link name must be a non-empty string, got {name!r}")
    folded = {k.lower().replace(" ", ""): v for k, v in LINKS.items()}
    key = name.lower().replace(" ", "")
    if key not in folded:
        raise UnknownLinkError(f"no interconnect named {name!r}; use one of {', '.join(LINKS)}")
    return folded[key]
