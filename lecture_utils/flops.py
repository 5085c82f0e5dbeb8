"""Notebook 03: FLOPs, FLOP/s and MFU."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from lecture_utils.device import synchronize


def matmul_flops(m: int, n: int, k: int) -> int:
    """FLOPs of an (m x n) @ (n x k) matmul: one multiply and one add per (i, j, l) triple."""
    for name, value in (("m", m), ("n", n), ("k", k)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be a positive size, got {value}")
    return 2 * m * n * k


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs PyTorch's FlopCounterMode counts while running fn(*args, **kwargs)."""
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def benchmark(
    fn: Callable[[], Any],
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> float:
    """Median wall-clock seconds of fn(), after `warmup` calls, synchronizing `device` each time."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup} and {repeats}")
    for _ in range(warmup):  # first calls pay for allocation, autotuning and caches
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)  # GPU kernels are asynchronous: wait before stopping the clock
        times.append(time.perf_counter() - start)
    return statistics.median(times)
