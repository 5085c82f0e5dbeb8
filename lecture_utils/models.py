"""Notebook 05: parameters, initialization and the Cruncher."""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import nn


class Linear(nn.Module):
    """y = x @ weight, with weight ~ N(0, 1/input_dim) so outputs keep unit scale."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        if input_dim <= 0 or output_dim <= 0:
            raise ValueError(f"dimensions must be positive, got {input_dim} x {output_dim}")
        self.weight = nn.Parameter(torch.randn(input_dim, output_dim) / math.sqrt(input_dim))

    def forward(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_out"]:
        return x @ self.weight


class Cruncher(nn.Module):
    """The lecture's deep linear model: num_layers D x D layers, then a D -> 1 head."""

    def __init__(self, dim: int, num_layers: int) -> None:
        super().__init__()
        if dim <= 0 or num_layers < 0:
            raise ValueError(f"need dim > 0 and num_layers >= 0, got {dim} and {num_layers}")
        self.layers = nn.ModuleList([Linear(dim, dim) for _ in range(num_layers)])
        self.final = Linear(dim, 1)

    def forward(self, x: Float[torch.Tensor, "batch dim"]) -> Float[torch.Tensor, " batch"]:
        for layer in self.layers:
            x = layer(x)
        return self.final(x).squeeze(-1)


def cruncher_num_parameters(dim: int, num_layers: int) -> int:
    """Parameters of a Cruncher: D^2 per layer plus D for the head."""
    return dim * dim * num_layers + dim
