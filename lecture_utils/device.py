"""Which device the course runs on, and how large its problems are there.

A CPU or a Mac runs the small problems. A CUDA GPU runs the lecture's sizes, but only those that
fit it: a heavy cell states what its lecture-scale problem needs (`Needs`: bytes of GPU memory,
FLOPs of work), and `by_scale` picks the lecture sizes only if this GPU has the memory free and
would finish within LECTURE_SECONDS (a 16 GB T4 cannot hold notebook 04's 18.5 GiB backward
pass).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from typing import TypeVar

import torch

from lecture_utils.hardware import GIB, current_gpu

DEVICE_ENV = "LECTURE_DEVICE"  # force a device: "cpu", "cuda", "cuda:1", "mps"
SCALE_ENV = "LECTURE_SCALE"  # force problem sizes: "small" or "lecture"
SCALES = ("small", "lecture")

LECTURE_SECONDS = 60.0  # the longest one lecture-scale cell may take on the GPU at hand
ASSUMED_MFU = 0.5  # for that estimate: a large fp32 matmul reaches more, a training step less
MEMORY_HEADROOM = 0.9  # of the free memory: the allocator rounds up and fragments

T = TypeVar("T")


def as_device(device: torch.device | str) -> torch.device:
    """`device` as a torch.device, from a name ("cpu", "cuda:1", "mps") or a torch.device; not
    checked to exist here (parse_device checks)."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a name such as 'cpu' or 'cuda:0', or a torch.device; "
                        f"got {device!r}")
    try:
        return torch.device(device.strip())
    except RuntimeError as e:
        raise ValueError(f"{device!r} is not a device; use cpu, cuda, cuda:N or mps") from e


def parse_device(name: str | torch.device) -> torch.device:
    """The device called `name` ("cpu", "cuda", "cuda:1", "mps"), checked to exist here."""
    device = as_device(name)
    shown = f"device {name if isinstance(name, str) else str(device)!r}"
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{shown} asks for CUDA, but CUDA is not available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RuntimeError(f"{shown}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                           "numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"{shown} asks for Apple MPS, but MPS is not available here")
    return device


def supports_dtype(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether `device` can multiply matrices of `dtype` (bf16 on Apple MPS needs macOS 14)."""
    device = as_device(device)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}")
    if device.type == "cpu" or dtype in (torch.float32, torch.float64):
        return True
    if dtype == torch.float8_e4m3fn:  # only through torch._scaled_mm: see flops.fp8_matmul_supported
        return device.type == "cuda"
    try:
        ones = torch.ones(2, 2, dtype=dtype, device=device)
        (ones @ ones).sum().item()
    except (RuntimeError, TypeError, NotImplementedError):  # "MPS BFloat16 ... MacOS 14 ..."
        return False
    return True


def get_device(index: int = 0, *, dtypes: tuple[torch.dtype, ...] = ()) -> torch.device:
    """The best device here: CUDA, then Apple MPS, then CPU (override with $LECTURE_DEVICE).

    A notebook that computes in `dtypes` (say bfloat16) skips a device that cannot, with a
    warning: an older Mac's GPU lacks bf16, and the CPU has every dtype.
    """
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"index must be a GPU number >= 0, got {index!r}")
    if not isinstance(dtypes, (tuple, list)) or not all(isinstance(d, torch.dtype) for d in dtypes):
        raise TypeError(f"dtypes must be a tuple of torch dtypes such as (torch.bfloat16,), "
                        f"got {dtypes!r}")
    forced = os.environ.get(DEVICE_ENV, "").strip()
    if forced:
        try:
            return parse_device(forced)
        except (ValueError, RuntimeError) as e:
            raise type(e)(f"${DEVICE_ENV}: {e}") from e
    if torch.cuda.is_available():
        return torch.device(f"cuda:{index}")
    if torch.backends.mps.is_available():
        mps = torch.device("mps")
        lacking = [str(d).removeprefix("torch.") for d in dtypes if not supports_dtype(mps, d)]
        if not lacking:
            return mps
        warnings.warn(f"this Mac's GPU (MPS) cannot compute in {', '.join(lacking)} (that needs "
                      "macOS 14 or newer): this notebook runs on the CPU", stacklevel=2)
    return torch.device("cpu")


def problem_scale(device: torch.device | None = None) -> str:
    """'lecture' on a CUDA GPU, 'small' elsewhere (override with $LECTURE_SCALE)."""
    forced = os.environ.get(SCALE_ENV, "").strip().lower()
    if forced:
        if forced not in SCALES:
            raise ValueError(f"${SCALE_ENV}={forced!r} is not a scale; use one of {SCALES}")
        return forced
    device = get_device() if device is None else as_device(device)
    # MPS laptops share memory with everything else: keep them on the small problems.
    return "lecture" if device.type == "cuda" else "small"


@dataclass(frozen=True)
class Needs:
    """What a lecture-scale problem needs from a GPU: bytes of memory at its peak, and the FLOPs
    it runs in fp32 (the slowest format; the time estimate divides them by ASSUMED_MFU of the
    GPU's fp32 peak)."""

    memory_bytes: float
    fp32_flops: float = 0.0

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "fp32_flops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"Needs.{name} must be a finite number >= 0, got {value!r}")

    def __str__(self) -> str:
        text = f"{self.memory_bytes / GIB:.1f} GiB of GPU memory"
        return text + (f" and {self.fp32_flops / 1e12:,.0f} TFLOP in fp32" if self.fp32_flops
                       else "")


def _check_needs(needs: object) -> None:
    if not isinstance(needs, Needs):
        raise TypeError(f"needs must be a Needs(memory_bytes=..., fp32_flops=...), got {needs!r}")


def free_gpu_bytes(device: torch.device | str) -> int:
    """Bytes a new tensor can still get on a CUDA device: free in the driver, plus what
    PyTorch's caching allocator holds unused."""
    device = parse_device(device)
    if device.type != "cuda":
        raise ValueError(f"free_gpu_bytes needs a CUDA device, got device {str(device)!r}")
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


@functools.cache
def gpu_fp32_flops(device: torch.device | str) -> float:
    """This GPU's dense fp32 peak in FLOP/s: the datasheet's, or a 4096^3 matmul's measured rate."""
    spec = current_gpu()
    if spec is not None and "fp32" in spec.dense_flops:
        return spec.peak_flops("fp32")
    # Not on our datasheet list: measure it, in true fp32 (TF32 off). flops imports this module.
    from lecture_utils.flops import benchmark, float32_matmul_precision, make_matmul

    with float32_matmul_precision("highest"):
        seconds = benchmark(make_matmul(4096, torch.float32, device), device=device, warmup=1,
                            repeats=3)
    return 2 * 4096**3 / seconds


def warm_up_cublas(device: torch.device | str) -> None:
    """Run a tiny matmul forward and backward on a CUDA device, so that cuBLAS's workspaces
    exist before a memory measurement: one per thread, and autograd's backward pass runs on a
    thread of its own (32 MiB each on a Hopper GPU)."""
    device = as_device(device)
    if device.type != "cuda":
        return
    parse_device(device)  # a clear error where CUDA is missing
    w = torch.ones(64, 64, device=device, requires_grad=True)
    (torch.ones(64, 64, device=device) @ w).sum().backward()
    torch.cuda.synchronize(device)


def lecture_scale_fits(needs: Needs, device: torch.device | str | None = None
                       ) -> tuple[bool, str]:
    """Whether a problem that needs `needs` fits this device at lecture scale, and why."""
    _check_needs(needs)
    device = get_device() if device is None else as_device(device)
    if device.type != "cuda":
        return False, f"no CUDA GPU ({device.type}): the small problem"
    free = free_gpu_bytes(device)
    if needs.memory_bytes > MEMORY_HEADROOM * free:
        return False, (f"it needs {needs}, and this GPU has {free / GIB:.1f} GiB free: the "
                       "small problem instead")
    if not needs.fp32_flops:
        return True, (f"it needs {needs}; this GPU has {free / GIB:.1f} GiB free: the lecture's "
                      "sizes")
    seconds = needs.fp32_flops / (ASSUMED_MFU * gpu_fp32_flops(device))
    if seconds > LECTURE_SECONDS:
        return False, (f"it needs {needs}, about {seconds:.0f} s on this GPU (over "
                       f"{LECTURE_SECONDS:.0f} s): the small problem instead")
    return True, (f"it needs {needs}; this GPU has {free / GIB:.1f} GiB free and would take "
                  f"about {max(seconds, 1):.0f} s: the lecture's sizes")


def by_scale(small: T, lecture: T, device: torch.device | None = None, *,
             needs: Needs | None = None) -> T:
    """The one place that picks a problem size: `lecture` on a GPU it fits (see `needs`),
    `small` on a CPU, on a Mac, or on a GPU too small or too slow for it."""
    if needs is not None:
        _check_needs(needs)
    if problem_scale(device) != "lecture":
        return small
    if needs is None or os.environ.get(SCALE_ENV, "").strip():  # $LECTURE_SCALE forces it
        return lecture
    return lecture if lecture_scale_fits(needs, device)[0] else small


def explain_scale(needs: Needs, device: torch.device | None = None) -> str:
    """One line for a notebook: what the lecture-scale problem needs, and which size runs here."""
    _check_needs(needs)
    if os.environ.get(SCALE_ENV, "").strip():
        return (f"${SCALE_ENV}={os.environ[SCALE_ENV].strip()} chooses the size here (the "
                f"lecture-scale problem needs {needs})")
    return lecture_scale_fits(needs, device)[1]


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued kernels on `device` to finish (a no-op on the CPU)."""
    device = get_device() if device is None else as_device(device)
    try:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()
    except (AssertionError, RuntimeError):
        # Checked only on failure: timing loops call this after every call.
        parse_device(device)  # says clearly if the device is missing
        raise


def describe_device(device: torch.device | None = None) -> str:
    """A one-line description of `device` for printing (name, and memory on a GPU)."""
    device = get_device() if device is None else parse_device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device}: {props.name}, {props.total_memory / 2**30:.1f} GiB"
    if device.type == "mps":
        return "mps: Apple GPU (unified memory)"
    n = torch.get_num_threads()
    return f"cpu: {n} thread{'' if n == 1 else 's'}"
