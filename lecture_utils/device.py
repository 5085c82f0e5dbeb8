"""Which device the course runs on, and how large its problems are there."""

from __future__ import annotations

import os
from typing import TypeVar

import torch

DEVICE_ENV = "LECTURE_DEVICE"  # force a device: "cpu", "cuda", "cuda:1", "mps"
SCALE_ENV = "LECTURE_SCALE"  # force problem sizes: "small" or "lecture"
SCALES = ("small", "lecture")

T = TypeVar("T")


def get_device(index: int = 0) -> torch.device:
    """The best device here: CUDA, then Apple MPS, then CPU (override with $LECTURE_DEVICE)."""
    forced = os.environ.get(DEVICE_ENV, "").strip()
    if forced:
        try:
            device = torch.device(forced)
        except RuntimeError as e:
            raise ValueError(
                f"${DEVICE_ENV}={forced!r} is not a device; use cpu, cuda, cuda:N or mps"
            ) from e
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"${DEVICE_ENV}={forced!r} but CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"${DEVICE_ENV}={forced!r} but Apple MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device(f"cuda:{index}")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def problem_scale(device: torch.device | None = None) -> str:
    """'lecture' on a CUDA GPU, 'small' elsewhere (override with $LECTURE_SCALE)."""
    forced = os.environ.get(SCALE_ENV, "").strip().lower()
    if forced:
        if forced not in SCALES:
            raise ValueError(f"${SCALE_ENV}={forced!r} is not a scale; use one of {SCALES}")
        return forced
    device = get_device() if device is None else torch.device(device)
    # MPS laptops share memory with everything else: keep them on the small problems.
    return "lecture" if device.type == "cuda" else "small"


def by_scale(small: T, lecture: T, device: torch.device | None = None) -> T:
    """The one place that picks a problem size: `lecture` on a GPU, `small` on a CPU or a Mac."""
    return lecture if problem_scale(device) == "lecture" else small


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued kernels on `device` to finish (a no-op on the CPU)."""
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe_device(device: torch.device | None = None) -> str:
    """A one-line description of `device` for printing (name, and memory on a GPU)."""
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device}: {props.name}, {props.total_memory / 2**30:.1f} GiB"
    if device.type == "mps":
        return "mps: Apple GPU (unified memory)"
    n = torch.get_num_threads()
    return f"cpu: {n} thread{'' if n == 1 else 's'}"
