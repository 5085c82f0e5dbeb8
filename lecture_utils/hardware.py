"""Datasheet figures for common GPUs: dense peak FLOP/s per dtype, memory, memory bandwidth.

Every figure is the *dense* one. NVIDIA's datasheets for Ampere and later print tensor-core
figures "with sparsity" (2:4 structured sparsity), which are exactly twice the dense ones; a
normal training run never gets them, so MFU against them is off by 2x. We keep them apart in
`sparse_flops` so the difference can be shown, never used by accident.

Units: FLOP/s, bytes (1 GB = 1e9 bytes, as on the datasheets), bytes/s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

TERA = 1e12
GB = 1e9  # datasheets use decimal gigabytes
GIB = 2**30

# The precisions a datasheet quotes. "tf32" is fp32 storage with tensor-core matmuls.
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")

_TORCH_DTYPE_NAMES = {
    torch.float64: "fp64",
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float8_e4m3fn: "fp8",
    torch.float8_e5m2: "fp8",
}
_ALIASES = {
    "float64": "fp64", "double": "fp64", "float32": "fp32", "float": "fp32",
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16",
    "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "e4m3": "fp8", "e5m2": "fp8",
}


class UnknownGPUError(KeyError):
    """No datasheet entry matches this GPU name."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclass(frozen=True)
class GPUSpec:
    """One GPU's datasheet: dense peaks in FLOP/s, memory in bytes, bandwidth in bytes/s."""

    name: str
    dense_flops: dict[str, float]
    memory_bytes: float
    memory_bandwidth: float  # bytes/s
    source: str
    sparse_flops: dict[str, float] = field(default_factory=dict)  # "with sparsity": never MFU
    patterns: tuple[str, ...] = ()  # regexes matched against torch.cuda.get_device_name()
    note: str = ""

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


def normalize_dtype(dtype: str | torch.dtype) -> str:
    """Map 'bfloat16', torch.bfloat16, 'bf16', ... to one of DTYPES."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _TORCH_DTYPE_NAMES:
            raise ValueError(f"no datasheet peak for {dtype}; floating dtypes only: {DTYPES}")
        return _TORCH_DTYPE_NAMES[dtype]
    if not isinstance(dtype, str):
        raise TypeError(f"dtype must be a str or torch.dtype, got {type(dtype).__name__}")
    key = dtype.strip().lower().removeprefix("torch.")
    key = _ALIASES.get(key, key)
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {DTYPES} or a torch float dtype")
    return key


def _tf(**figures: float) -> dict[str, float]:
    """Figures given in TFLOP/s, stored in FLOP/s."""
    return {k: v * TERA for k, v in figures.items()}


def _sparse_double(dense: dict[str, float], *keys: str) -> dict[str, float]:
    """The datasheet's "with sparsity" figures: exactly 2x the dense tensor-core ones."""
    return {k: 2 * dense[k] for k in keys if k in dense}


_T4 = _tf(fp32=8.1, fp16=65)
_V100 = _tf(fp64=7.8, fp32=15.7, fp16=125)
_A10 = _tf(fp32=31.2, tf32=62.5, bf16=125, fp16=125)
_L4 = _tf(fp32=30.3, tf32=60, bf16=121, fp16=121, fp8=242.5)
_A100 = _tf(fp64=19.5, fp32=19.5, tf32=156, bf16=312, fp16=312)
_H100_SXM = _tf(fp64=67, fp32=67, tf32=494.5, bf16=989.5, fp16=989.5, fp8=1979)
_H100_PCIE = _tf(fp64=51, fp32=51, tf32=378, bf16=756.5, fp16=756.5, fp8=1513)
_B200 = _tf(fp64=37, fp32=75, tf32=1125, bf16=2250, fp16=2250, fp8=4500)
# GeForce cards: the figures with fp32 accumulation (what training uses), which are half the
# fp16-accumulate ones printed first in the Ada whitepaper.
_RTX4090 = _tf(fp64=1.29, fp32=82.6, tf32=82.6, bf16=165.2, fp16=165.2, fp8=330.3)

_TC = ("tf32", "bf16", "fp16", "fp8")  # tensor-core figures that have a "with sparsity" twin

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
            "V100 SXM2", _V100, 32 * GB, 900 * GB,
            "NVIDIA V100 Tensor Core GPU datasheet (SXM2 column)",
            patterns=(r"V100",),
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
            sparse_flops=_sparse_double(_A100, *_TC), patterns=(r"A100.*40\s*GB",),
        ),
        GPUSpec(
            "A100 80GB", _A100, 80 * GB, 2039 * GB,
            "NVIDIA A100 Tensor Core GPU datasheet (80GB SXM column; fp64 = tensor cores)",
            sparse_flops=_sparse_double(_A100, *_TC), patterns=(r"A100.*80\s*GB", r"A100"),
        ),
        GPUSpec(
            "H100 SXM", _H100_SXM, 80 * GB, 3350 * GB,
            "NVIDIA H100 Tensor Core GPU datasheet (SXM column; fp64 = tensor cores)",
            sparse_flops=_sparse_double(_H100_SXM, *_TC),
            patterns=(r"H100.*(SXM|HBM3)", r"H100(?!.*(PCIe|NVL))"),
        ),
        GPUSpec(
            "H100 PCIe", _H100_PCIE, 80 * GB, 2000 * GB,
            "NVIDIA H100 Tensor Core GPU datasheet (PCIe column; fp64 = tensor cores)",
            sparse_flops=_sparse_double(_H100_PCIE, *_TC), patterns=(r"H100.*PCIe",),
        ),
        GPUSpec(
            "H200", _H100_SXM, 141 * GB, 4800 * GB,
            "NVIDIA H200 Tensor Core GPU datasheet (SXM column): H100 compute, more HBM3e",
            sparse_flops=_sparse_double(_H100_SXM, *_TC), patterns=(r"H200",),
        ),
        GPUSpec(
            "B200", _B200, 180 * GB, 8000 * GB,
            "NVIDIA DGX B200 and HGX B200 datasheets: 8-GPU totals / 8 (tensor figures halved)",
            sparse_flops=_sparse_double(_B200, *_TC), patterns=(r"B200",),
        ),
        GPUSpec(
            "RTX 4090", _RTX4090, 24 * GB, 1008 * GB,
            "NVIDIA Ada Lovelace architecture whitepaper, GeForce RTX 4090 column",
            sparse_flops=_sparse_double(_RTX4090, *_TC), patterns=(r"4090",),
        ),
    ]
}


def lookup_gpu(name: str) -> GPUSpec:
    """The datasheet entry for a course name ('H100 SXM') or a CUDA device name."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"GPU name must be a non-empty string, got {name!r}")
    if name in GPUS:
        return GPUS[name]
    folded = {k.lower().replace(" ", ""): v for k, v in GPUS.items()}
    if name.lower().replace(" ", "") in folded:
        return folded[name.lower().replace(" ", "")]
    for spec in GPUS.values():
        if any(re.search(p, name, flags=re.IGNORECASE) for p in spec.patterns):
            return spec
    raise UnknownGPUError(
        f"no datasheet entry for GPU {name!r}. Known: {', '.join(GPUS)}. Pass one of those "
        "names, or build a GPUSpec(...) from your GPU's datasheet (dense figures only)."
    )


def current_gpu() -> GPUSpec | None:
    """The datasheet entry for this machine's CUDA GPU; None without CUDA or if it is unknown."""
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


class UnknownLinkError(KeyError):
    """No interconnect entry matches this name."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


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
