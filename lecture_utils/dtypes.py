"""Notebook 02: dtypes and memory."""

from __future__ import annotations

import torch


def get_memory_usage(x: torch.Tensor) -> int:
    """Bytes held by the elements of `x`: number of elements x bytes per element."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"get_memory_usage needs a torch.Tensor, got {type(x).__name__}")
    return x.numel() * x.element_size()
