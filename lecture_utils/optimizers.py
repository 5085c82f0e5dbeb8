"""Notebook 06: optimizers (SGD, AdaGrad) and the memory of training."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class SGD(torch.optim.Optimizer):
    """Plain gradient descent: p -= lr * grad. No state."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 0.01) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        super().__init__(params, dict(lr=lr))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (the torch.optim.Optimizer API)
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss


class AdaGrad(torch.optim.Optimizer):
    """AdaGrad: p -= lr * g / (sqrt(sum of g^2) + eps), the sum kept per parameter.

    eps is added *outside* the square root, as torch.optim.Adagrad does (default 1e-10).
    """

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float = 0.01, eps: float = 1e-10
    ) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if eps < 0:
            raise ValueError(f"eps must be non-negative, got {eps}")
        super().__init__(params, dict(lr=lr, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (the torch.optim.Optimizer API)
        loss = None if closure is None else closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "sum_sq_grad" not in state:
                    state["sum_sq_grad"] = torch.zeros_like(p)
                sum_sq = state["sum_sq_grad"]
                sum_sq.addcmul_(p.grad, p.grad)
                p.addcdiv_(p.grad, sum_sq.sqrt().add_(group["eps"]), value=-group["lr"])
        return loss
