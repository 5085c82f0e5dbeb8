"""Notebook 06: optimizers (SGD, momentum, AdaGrad, RMSProp, Adam) and the memory of training.

The five optimizers are small `torch.optim.Optimizer`s that share one loop
(`PerParameterOptimizer`) and differ only in `update`, so each rule reads as a few lines added
to the previous one. Each
follows torch.optim's conventions (eps outside the square root, the same state names where torch
has them) and the tests check each against its torch.optim twin.

Then the memory of one training step of the Cruncher: what is stored (parameters, gradients,
optimizer state, the activations autograd saves for backward), predicted from the sizes and
measured from the live tensors; and how many bytes each optimizer needs per parameter.
"""

from __future__ import annotations

import copy
import inspect
import math
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor
from torch.autograd.graph import saved_tensors_hooks
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from lecture_utils.device import warm_up_cublas
from lecture_utils.exercises import (
    CORRECT,
    DEFAULT_REL_TOL,
    UNANSWERED,
    Exercises,
    check_count,
    check_number,
    tolerance_text,
    wrong,
)
from lecture_utils.models import (
    Cruncher,
    _check_inputs,
    _check_size,
    _check_target,
    cruncher_num_parameters,
)
from lecture_utils.napkin import OPTIMIZER_STATES, PRECISIONS, bytes_per_parameter

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_positive(name: str, value: float) -> None:
    # An infinite learning rate would pass `> 0` and turn every weight into inf or NaN.
    if not (_is_number(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_fraction(name: str, value: float) -> None:
    if not (_is_number(value) and 0 <= value < 1):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _check_eps(eps: float) -> None:
    if not (_is_number(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")


def _check_params(params: object) -> None:
    # torch.optim's own message for a model passed whole is "'Cruncher' object is not iterable".
    if isinstance(params, torch.nn.Module):
        raise TypeError(f"params must be the model's parameters, e.g. model.parameters(), not "
                        f"the {type(params).__name__} itself")
    if isinstance(params, torch.Tensor) or not isinstance(params, Iterable):
        raise TypeError(f"params must be an iterable of parameters such as model.parameters(), "
                        f"got {type(params).__name__}")


def _check_pair(name: str, pair: object, example: str) -> tuple:
    """`pair` as a tuple, checked to hold exactly two items (each checked by the caller)."""
    if not isinstance(pair, (tuple, list)):
        raise TypeError(f"{name} must be a pair such as {example}, got {pair!r}")
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair such as {example}, got {len(pair)} values: "
                         f"{pair!r}")
    return tuple(pair)


def _check_sizes(dim: int, num_layers: int, batch_size: int) -> None:
    for name, value, least in (("dim", dim, 1), ("num_layers", num_layers, 0),
                               ("batch_size", batch_size, 1)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")


# ---------------------------------------------------------------------------------------------
# Optimizers, each built on the previous one
# ---------------------------------------------------------------------------------------------


class PerParameterOptimizer(torch.optim.Optimizer):
    """The loop every optimizer here shares: call `update` on each parameter that has a gradient."""

    @torch.no_grad()  # the update itself must not be recorded by autograd
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Update every parameter in place from its .grad; returns closure()'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:  # a parameter that took no part in the loss stays as it is
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                self.update(p, p.grad, self.state[p], group)
        return loss

    def update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """Change p in place, using (and updating) this parameter's own `state`."""
        raise NotImplementedError


class SGD(PerParameterOptimizer):
    """Plain gradient descent: p -= lr * g. No state."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 0.01) -> None:
        _check_params(params)
        _check_positive("lr", lr)
        super().__init__(params, {"lr": lr})

    def update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """p -= lr * g."""
        p.add_(grad, alpha=-group["lr"])


class Momentum(PerParameterOptimizer):
    """SGD with momentum: buf = momentum * buf + g; p -= lr * buf (torch.optim.SGD's form)."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float = 0.01, momentum: float = 0.9
    ) -> None:
        _check_params(params)
        _check_positive("lr", lr)
        _check_fraction("momentum", momentum)
        super().__init__(params, {"lr": lr, "momentum": momentum})

    def update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """buf = momentum * buf + g, then p -= lr * buf."""
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(grad)  # a running sum of past gradients, decayed
        p.add_(buf, alpha=-group["lr"])


class AdaGrad(PerParameterOptimizer):
    """AdaGrad: sum_sq += g^2; p -= lr * g / (sqrt(sum_sq) + eps), the sum kept per parameter.

    eps is added *outside* the square root, as torch.optim.Adagrad does (default 1e-10).
    """

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float = 0.01, eps: float = 1e-10
    ) -> None:
        _check_params(params)
        _check_positive("lr", lr)
        _check_eps(eps)
        super().__init__(params, {"lr": lr, "eps": eps})

    def update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """sum_sq += g^2, then p -= lr * g / (sqrt(sum_sq) + eps)."""
        if "sum_sq_grad" not in state:
            state["sum_sq_grad"] = torch.zeros_like(p)
        sum_sq = state["sum_sq_grad"]
        sum_sq.addcmul_(grad, grad)
        denominator = sum_sq.sqrt().add_(group["eps"])  # the one temporary, the size of p
        p.addcdiv_(grad, denominator, value=-group["lr"])


class LectureAdaGrad(AdaGrad):
    """AdaGrad as the lecture wrote it: p -= lr * g / sqrt(sum_sq + 1e-5), eps *inside* the sqrt."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float = 0.01, eps: float = 1e-5
    ) -> None:
        super().__init__(params, lr=lr, eps=eps)

    def update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """sum_sq += g^2, then p -= lr * g / sqrt(sum_sq + eps)."""
        if "sum_sq_grad" not in state:
            state["sum_sq_grad"] = torch.zeros_like(p)
        sum_sq = state["sum_sq_grad"]
        sum_sq.addcmul_(grad, grad)
        p.addcdiv_(grad, sum_sq.add(group["eps"]).sqrt_(), value=-group["lr"])


class RMSProp(PerParameterOptimizer):
    """RMSProp: AdaGrad with a decaying average, avg = alpha * avg + (1 - alpha) * g^2."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
    ) -> None:
        _check_params(params)
        _check_positive("lr", lr)
        _check_fraction("alpha", alpha)
        _check_eps(eps)
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    def update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """avg = alpha * avg + (1 - alpha) * g^2, then p -= lr * g / (sqrt(avg) + eps)."""
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(p)
        square_avg = state["square_avg"]
        alpha = group["alpha"]
        square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)  # forgets old gradients
        p.addcdiv_(grad, square_avg.sqrt().add_(group["eps"]), value=-group["lr"])


class Adam(PerParameterOptimizer):
    """Adam: RMSProp's denominator plus momentum's numerator, both averages bias-corrected."""

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 0.001,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        _check_params(params)
        _check_positive("lr", lr)
        betas = _check_pair("betas", betas, "(0.9, 0.999)")
        for i, beta in enumerate(betas):
            _check_fraction(f"betas[{i}] (beta{i + 1})", beta)
        _check_eps(eps)
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    def update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        """m, v = averages of g and g^2; p -= lr * m_hat / (sqrt(v_hat) + eps)."""
        if "step" not in state:
            state["step"] = 0  # a Python int: no tensor memory (torch keeps a float32 tensor)
            state["exp_avg"] = torch.zeros_like(p)  # m: average gradient
            state["exp_avg_sq"] = torch.zeros_like(p)  # v: average squared gradient
        state["step"] += 1
        beta1, beta2 = group["betas"]
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m.lerp_(grad, 1 - beta1)  # m = beta1 * m + (1 - beta1) * g
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        # Both averages start at 0, so early on they are too small by (1 - beta^t): undo that.
        step_size = group["lr"] / (1 - beta1**t)
        denominator = v.sqrt().div_(math.sqrt(1 - beta2**t)).add_(group["eps"])
        p.addcdiv_(m, denominator, value=-step_size)


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "adagrad": AdaGrad,
    "rmsprop": RMSProp,
    "adam": Adam,
}

# Tensors the size of each parameter that the optimizer keeps between steps (notebook 00's table).
STATE_TENSORS_PER_PARAMETER: dict[str, int] = {name: OPTIMIZER_STATES[name] for name in OPTIMIZERS}

# Temporaries the size of one parameter that `update` allocates (the denominators).
_UPDATE_TEMPORARIES = {"sgd": 0, "momentum": 0, "adagrad": 1, "rmsprop": 1, "adam": 1}


def _check_optimizer(optimizer: object) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer such as make_optimizer("
                        f"'adam', model.parameters()), got {type(optimizer).__name__}")


def _check_steps(steps: object) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def _check_factory(name: str, make: object) -> None:
    if not callable(make):
        raise TypeError(f"{name} must be a function that takes parameters and returns an "
                        f"optimizer, e.g. lambda p: Adam(p, lr=0.01); got {type(make).__name__}")


def _check_optimizer_name(optimizer: str) -> str:
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZERS)}")
    return optimizer.lower()


def make_optimizer(
    optimizer: str, params: Iterable[torch.nn.Parameter], **hyperparameters: float
) -> torch.optim.Optimizer:
    """The course's optimizer called `optimizer` ("sgd", "momentum", "adagrad", ...) over params."""
    name = _check_optimizer_name(optimizer)
    accepted = [p for p in inspect.signature(OPTIMIZERS[name]).parameters if p != "params"]
    unknown = sorted(set(hyperparameters) - set(accepted))
    if unknown:  # say which names the optimizer does take, not just "unexpected keyword"
        raise TypeError(f"{name} has no hyperparameter {', '.join(unknown)}; it takes "
                        f"{', '.join(accepted)}")
    return OPTIMIZERS[name](params, **hyperparameters)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Float[torch.Tensor, "batch dim"],
    y: Float[torch.Tensor, " batch"],
) -> torch.Tensor:
    """One step (MSE loss, backward, update); the new gradients stay in p.grad. Returns the loss."""
    _check_inputs(model, x)
    _check_optimizer(optimizer)
    optimizer.zero_grad(set_to_none=True)  # frees last step's gradients before the forward
    # No name for the prediction: a local would keep it alive through backward and the update.
    loss = F.mse_loss(_check_target(model(x), y), y)
    loss.backward()
    optimizer.step()
    return loss.detach()


def max_difference_after_training(
    make_a: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer],
    make_b: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer],
    *,
    steps: int = 100,
    dim: int = 64,
    num_layers: int = 2,
    batch_size: int = 32,
    seed: int = 0,
) -> float:
    """Largest |weight difference| after training two copies of one Cruncher, one per optimizer.

    Both copies start from the same weights and see the same random batches; runs on the CPU.
    """
    _check_steps(steps)
    _check_sizes(dim, num_layers, batch_size)
    _check_factory("make_a", make_a)
    _check_factory("make_b", make_b)
    _check_size("seed", seed, minimum=0)
    generator = torch.Generator().manual_seed(seed)
    model_a = Cruncher(dim, num_layers, generator=generator)
    model_b = copy.deepcopy(model_a)
    optimizer_a, optimizer_b = make_a(model_a.parameters()), make_b(model_b.parameters())
    for _ in range(steps):
        x = torch.randn(batch_size, dim, generator=generator)
        y = torch.randn(batch_size, generator=generator)
        train_step(model_a, optimizer_a, x, y)
        train_step(model_b, optimizer_b, x, y)
    return max(
        (a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters())
    )


# ---------------------------------------------------------------------------------------------
# A 2-D test problem: the ill-conditioned quadratic
# ---------------------------------------------------------------------------------------------


def quadratic_trajectory(
    make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer],
    start: tuple[float, float],
    curvatures: tuple[float, float],
    steps: int,
) -> Float[torch.Tensor, "steps_plus_1 2"]:
    """Points visited minimizing f(x, y) = (a x^2 + b y^2) / 2 from `start`, in float64."""
    a, b = _check_pair("curvatures", curvatures, "(1.0, 50.0)")
    _check_positive("curvatures[0] (a)", a)
    _check_positive("curvatures[1] (b)", b)
    for i, coordinate in enumerate(_check_pair("start", start, "(-1.0, 0.5)")):
        if not _is_number(coordinate):
            raise ValueError(f"start[{i}] must be a finite number, got {coordinate!r}")
    _check_steps(steps)
    _check_factory("make", make)
    point = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    curvature = torch.tensor(curvatures, dtype=torch.float64)
    optimizer = make([point])
    path = [point.detach().clone()]
    for _ in range(steps):
        point.grad = curvature * point.detach()  # the gradient of f, written out: (a x, b y)
        optimizer.step()
        path.append(point.detach().clone())
    return torch.stack(path)


def plot_quadratic_race(
    paths: dict[str, Float[torch.Tensor, "steps_plus_1 2"]], curvatures: tuple[float, float]
) -> Figure:
    """Figure: each path from quadratic_trajectory over the contours of (a x^2 + b y^2) / 2."""
    import matplotlib.pyplot as plt  # imported when a figure is drawn, not with the module
    import numpy as np

    if not isinstance(paths, dict) or not paths or not all(
            isinstance(p, torch.Tensor) and p.dim() == 2 and p.shape[1] == 2 and len(p) > 1
            for p in paths.values()):
        raise ValueError("paths must map names to what quadratic_trajectory returns: "
                         "(steps + 1, 2) tensors of points")
    a, b = _check_pair("curvatures", curvatures, "(1.0, 50.0)")
    points = torch.cat(list(paths.values()))
    (x_low, y_low), (x_high, y_high) = points.min(0).values.tolist(), points.max(0).values.tolist()
    y_edge = max(abs(y_low), abs(y_high)) + 0.5  # symmetric: the valley's floor is y = 0
    xs, ys = np.meshgrid(np.linspace(x_low - 1, x_high + 1, 400), np.linspace(-y_edge, y_edge, 200))
    fig, ax = plt.subplots(figsize=(11, 5))
    ax.contour(xs, ys, 0.5 * (a * xs**2 + b * ys**2), levels=np.geomspace(0.05, 60, 12),
               colors="0.75", linewidths=1)
    for name, path in paths.items():
        ax.plot(path[:, 0], path[:, 1], marker="o", markersize=3, linewidth=1.5,
                label=f"{name}: {path[-1].norm().item():.2f} from optimum")
    first = next(iter(paths.values()))
    start = first[0].tolist()
    ax.plot(*start, "ks", markersize=8)
    ax.plot(0, 0, "k*", markersize=14)
    ax.set_xlabel(f"x (flat direction, curvature a = {a:g})")
    ax.set_ylabel(f"y (steep direction, b = {b:g})")
    terms = " + ".join(f"{c:g} {v}²" if c != 1 else f"{v}²" for c, v in ((a, "x"), (b, "y")))
    ax.set_title(f"{len(first) - 1} steps on f(x, y) = ({terms}) / 2 from "
                 f"({start[0]:g}, {start[1]:g})")
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=11)
    return fig


# ---------------------------------------------------------------------------------------------
# Memory of one training step
# ---------------------------------------------------------------------------------------------


def bytes_per_element(dtype: torch.dtype) -> int:
    """Bytes one element of `dtype` takes (4 for float32, 2 for bfloat16)."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32, got {dtype!r}")
    return torch.empty((), dtype=dtype).element_size()


def saved_activation_count(dim: int, num_layers: int, batch_size: int) -> int:
    """Elements autograd keeps for backward in a Cruncher step with an MSE loss (not weights).

    Each matmul saves its input, so layer 1 keeps x, layer i+1 keeps h_i, and the head keeps
    h_L: (num_layers + 1) * B * D. The MSE loss keeps the prediction and the target: 2 * B.
    """
    _check_sizes(dim, num_layers, batch_size)
    return batch_size * dim * (num_layers + 1) + 2 * batch_size


def predict_training_memory(
    dim: int,
    num_layers: int,
    batch_size: int,
    optimizer: str = "adagrad",
    dtype: torch.dtype = torch.float32,
) -> dict[str, int]:
    """Bytes of each kind of tensor held in a Cruncher training step (everything in `dtype`)."""
    _check_sizes(dim, num_layers, batch_size)
    name = _check_optimizer_name(optimizer)
    size = bytes_per_element(dtype)
    num_parameters = cruncher_num_parameters(dim, num_layers)
    memory = {
        "parameters": size * num_parameters,
        "gradients": size * num_parameters,
        "optimizer_state": size * num_parameters * STATE_TENSORS_PER_PARAMETER[name],
        "activations": size * saved_activation_count(dim, num_layers, batch_size),
    }
    memory["total"] = sum(memory.values())
    return memory


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind `tensors` (views of one storage count once)."""
    if isinstance(tensors, torch.Tensor) or not isinstance(tensors, Iterable):
        raise TypeError(f"tensors must be an iterable of tensors such as model.parameters(), "
                        f"got {type(tensors).__name__}")
    storages = {}
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors must hold only tensors, got a {type(t).__name__}")
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(storages.values())


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor in optimizer.state (buffers and, for torch.optim, step counters)."""
    _check_optimizer(optimizer)
    return [
        value for state in optimizer.state.values() for value in state.values()
        if isinstance(value, torch.Tensor)
    ]


def saved_for_backward(
    model: torch.nn.Module,
    x: Float[torch.Tensor, "batch dim"],
    y: Float[torch.Tensor, " batch"],
) -> list[tuple[str, tuple[int, ...]]]:
    """What autograd saves in the forward of an MSE step: (what it is, shape), in saving order."""
    _check_inputs(model, x)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a tensor of targets, got {type(y).__name__}")
    names = {p.untyped_storage().data_ptr(): name for name, p in model.named_parameters()}
    names[x.untyped_storage().data_ptr()] = "x (input)"
    names[y.untyped_storage().data_ptr()] = "y (target)"
    saved = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        what = names.get(t.untyped_storage().data_ptr(), "activation")
        saved.append((what, tuple(t.shape)))
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        F.mse_loss(_check_target(model(x), y), y)  # the forward alone: the graph is dropped
    return saved


def measure_training_memory(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Float[torch.Tensor, "batch dim"],
    y: Float[torch.Tensor, " batch"],
) -> dict[str, int]:
    """Run one train_step and return the bytes of each kind of tensor it held, from the storages."""
    parameters = list(model.parameters())
    parameter_storages = {p.untyped_storage().data_ptr() for p in parameters}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        # Called for every tensor autograd saves; all of them are alive until backward runs.
        storage = t.untyped_storage()
        if storage.data_ptr() not in parameter_storages:  # a saved weight costs nothing extra
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        train_step(model, optimizer, x, y)
    memory = {
        "parameters": storage_bytes(parameters),
        "gradients": storage_bytes(p.grad for p in parameters if p.grad is not None),
        "optimizer_state": storage_bytes(optimizer_state_tensors(optimizer)),
        "activations": sum(saved.values()),
    }
    memory["total"] = sum(memory.values())
    return memory


class _NewStorageTracker(TorchDispatchMode):
    """Sees every aten op; adds up the storages that ops create, until each one is freed."""

    def __init__(self) -> None:
        super().__init__()
        self.alive: dict[int, int] = {}  # data pointer -> bytes, of storages made in the block
        self.live = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            pointer = storage.data_ptr()
            # A view or an in-place result shares an input's storage: nothing new.
            if pointer in inputs or pointer in self.alive or storage.nbytes() == 0:
                continue
            self.alive[pointer] = storage.nbytes()
            self.live += storage.nbytes()
            weakref.finalize(storage, self._free, pointer)  # runs when the storage is freed
        self.peak = max(self.peak, self.live)
        return out

    def _free(self, pointer: int) -> None:
        self.live -= self.alive.pop(pointer)


def peak_new_memory(fn: Callable[[], object]) -> int:
    """Peak bytes held at once by the storages fn() creates (on any device), from every aten op."""
    if not callable(fn):
        raise TypeError(f"peak_new_memory needs a function to run, got {type(fn).__name__}")
    tracker = _NewStorageTracker()
    with tracker:
        fn()
    return tracker.peak


TIMELINE_PARTS = (
    "parameters", "optimizer state", "batch (x, y)", "saved activations",
    "activation gradients", "weight gradients", "update temporary",
)


def training_memory_timeline(
    dim: int,
    num_layers: int,
    batch_size: int,
    optimizer: str = "adagrad",
    dtype: torch.dtype = torch.float32,
) -> dict[str, dict[str, int]]:
    """Bytes alive at each moment of a train_step, by part, once a first step made the state.

    Alive throughout: parameters, optimizer state, and the batch x, y; the previous step's
    gradients were freed by zero_grad. Backward runs from the head down; at layer k it holds the
    incoming gradient of h_k, the outgoing one of h_(k-1), the weight gradients made so far, and
    the saved inputs h_1 .. h_(k-1) that the layers below still need (x is part of the batch).

    num_layers must be at least 1: with no D x D layer the peak falls inside the loss's own
    backward (the prediction, its gradient and the loss's temporaries at once), a moment not
    modelled here; measure_peak_training_memory measures that case.
    """
    _check_sizes(dim, num_layers, batch_size)
    if num_layers == 0:
        raise ValueError("num_layers must be >= 1 for the timeline: with no D x D layer the peak "
                         "is inside the loss's backward, which it does not model (use "
                         "measure_peak_training_memory, or predict_training_memory for the "
                         "bytes held)")
    name = _check_optimizer_name(optimizer)
    D, L, B = dim, num_layers, batch_size
    P = cruncher_num_parameters(D, L)

    def moment(saved: int = 0, activation_grads: int = 0, weight_grads: int = 0,
               temporary: int = 0) -> dict[str, int]:
        elements = (P, P * STATE_TENSORS_PER_PARAMETER[name], B * D + B, saved,
                    activation_grads, weight_grads, temporary)
        return {part: bytes_per_element(dtype) * n for part, n in zip(TIMELINE_PARTS, elements)}

    timeline = {"forward done": moment(saved=L * B * D + B)}  # h_1 .. h_L and the prediction
    # The head: the prediction's gradient (B) comes in; h_L's (B*D) and its weight's (D) go out.
    timeline["backward: head"] = moment(saved=L * B * D, activation_grads=B + B * D,
                                        weight_grads=D)
    for k in range(L, 0, -1):
        timeline[f"backward: layer {k}"] = moment(
            saved=(k - 1) * B * D,
            activation_grads=2 * B * D if k > 1 else B * D,  # x needs no gradient
            weight_grads=D + (L - k + 1) * D * D,
        )
    timeline["optimizer step"] = moment(
        weight_grads=P, temporary=_UPDATE_TEMPORARIES[name] * D * D  # the largest parameter
    )
    return timeline


def predict_peak_training_memory(
    dim: int,
    num_layers: int,
    batch_size: int,
    optimizer: str = "adagrad",
    dtype: torch.dtype = torch.float32,
) -> int:
    """Peak bytes allocated during a train_step after a first step: the timeline's largest total."""
    timeline = training_memory_timeline(dim, num_layers, batch_size, optimizer, dtype)
    return max(sum(parts.values()) for parts in timeline.values())


def plot_memory_timeline(
    timeline: dict[str, dict[str, int]], title: str, reference: tuple[str, int] | None = None
) -> Figure:
    """Figure: stacked bars of the MB alive by part at each moment of training_memory_timeline."""
    import matplotlib.pyplot as plt  # imported when a figure is drawn, not with the module
    import numpy as np

    if not isinstance(timeline, dict) or not timeline or not all(
            isinstance(parts, dict) and set(parts) == set(TIMELINE_PARTS)
            for parts in timeline.values()):
        raise ValueError("timeline must be what training_memory_timeline returns: {moment: "
                         "{part: bytes}} with every part in TIMELINE_PARTS")
    fig, ax = plt.subplots(figsize=(11, 5))
    bottom = np.zeros(len(timeline))
    for part in TIMELINE_PARTS:
        heights = np.array([parts[part] / 1e6 for parts in timeline.values()])
        if heights.any():  # a part that is never alive gets no legend entry
            ax.bar(range(len(timeline)), heights, bottom=bottom, label=part)
            bottom += heights
    if reference is not None:
        label, value = reference
        ax.axhline(value / 1e6, color="black", linestyle="--", label=label)
    ax.set_xticks(range(len(timeline)), [m.replace("backward: ", "bwd ") for m in timeline],
                  rotation=20)
    ax.set_ylabel("bytes alive (MB)")
    ax.set_title(title)
    ax.set_ylim(0, 1.1 * max(bottom.max(), reference[1] / 1e6 if reference else 0))
    handles, labels = ax.get_legend_handles_labels()
    # Reversed, so the legend lists the parts in the order they are stacked, top first.
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def measure_peak_training_memory(
    dim: int,
    num_layers: int,
    batch_size: int,
    optimizer: str = "adagrad",
    device: torch.device | str = "cpu",
) -> int:
    """Peak bytes held during a Cruncher train_step (fp32) after a first step made the state.

    On a CUDA GPU: torch.cuda.max_memory_allocated above what was allocated before. Elsewhere:
    the bytes of what the step starts with (weights, optimizer state, batch) plus the peak of
    the storages its aten ops create (peak_new_memory). Seeds torch's generators with 0.
    """
    _check_sizes(dim, num_layers, batch_size)
    name = _check_optimizer_name(optimizer)
    device = torch.device(device)
    on_cuda = device.type == "cuda"
    if on_cuda:
        warm_up_cublas(device)  # its workspaces are not the step's memory
        baseline = torch.cuda.memory_allocated(device)
    torch.manual_seed(0)
    model = step_optimizer = x = y = None
    try:
        with torch.device(device):  # weights and batch made on the device directly
            model = Cruncher(dim, num_layers)
            x, y = torch.randn(batch_size, dim), torch.randn(batch_size)
        step_optimizer = make_optimizer(name, model.parameters(), lr=0.01)
        train_step(model, step_optimizer, x, y)  # a first step creates the optimizer state
        if not on_cuda:
            held = storage_bytes([*model.parameters(), *optimizer_state_tensors(step_optimizer),
                                  x, y])
            return held + peak_new_memory(lambda: train_step(model, step_optimizer, x, y))
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        train_step(model, step_optimizer, x, y)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - baseline
    finally:  # even after an error, a re-run (or the next cell) starts from an empty GPU
        model = step_optimizer = x = y = None  # noqa: F841 (frees the tensors now)
        if on_cuda:
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Bytes per parameter
# ---------------------------------------------------------------------------------------------

def bytes_per_parameter_table() -> dict[str, dict[str, int]]:
    """Total bytes per parameter for each optimizer (rows) and each recipe in PRECISIONS."""
    return {
        name: {precision: bytes_per_parameter(name, precision).total for precision in PRECISIONS}
        for name in OPTIMIZERS
    }


# ---------------------------------------------------------------------------------------------
# "Check yourself"
# ---------------------------------------------------------------------------------------------

EXERCISES = Exercises("06")

EXERCISE_1 = {"dim": 1024, "num_layers": 4}
EXERCISE_4 = {"dim": 2048, "num_layers": 8, "batch_size": 1024}
EXERCISE_5 = {"dim": 512, "num_layers": 4, "batch_size": 256}


@EXERCISES.checker(1, "bytes of AdaGrad's state, fp32",
                   wants="an int (a number of bytes), exactly")
def _check_adagrad_state(answer):
    D, L = EXERCISE_1["dim"], EXERCISE_1["num_layers"]
    P = cruncher_num_parameters(D, L)
    return check_count(answer, 4 * P, unit="bytes", hints={
        4 * D * D * L: "you left out the head: it has dim x 1 weights too.",
        P: "that is the number of state elements; each float32 takes 4 bytes.",
        # Two slips give 8 * P (two sums, or the weights plus the state): the hint names both.
        8 * P: "that is two float32 tensors' worth: AdaGrad's state is one sum per parameter, "
               "and the weights are not part of it.",
        12 * P: "that is three float32 tensors' worth (weights + gradients + state?); the "
                "question asks for the state alone.",
    })


@EXERCISES.checker(2, "bytes per parameter for Adam in fp32",
                   wants="an int (bytes per parameter), exactly")
def _check_adam_bytes(answer):
    # Several slips land on one number (two 4-byte tensors are 8 bytes whichever two they
    # are): each hint names every slip that gives its value.
    return check_count(answer, 16, unit="bytes per parameter", hints={
        12: "that counts three 4-byte tensors; there are four: weights, gradients, and Adam's "
            "two averages m and v.",
        8: "that counts two 4-byte tensors (Adam's m and v alone, or weights and gradients "
           "alone); count all four: weights, gradients, m and v.",
        4: "that is one 4-byte tensor (the weights alone); add the gradients and Adam's two "
           "averages.",
        18: "that is the mixed-precision recipe (plus a bf16 copy of the weights); here "
            "everything is fp32.",
        20: "that is mixed precision with a bf16 copy of the gradients too; here everything is "
            "fp32.",
        32: "that is float64 (8 bytes a number); fp32 takes 4.",
    })


def _rmsprop_reference(
    param: Tensor, grads: list[Tensor], lr: float, alpha: float, eps: float, *,
    mistake: str | None = None,
) -> Tensor:
    """The parameter after RMSProp steps over `grads`, optionally with one typical mistake."""
    param, square_avg = param.clone(), torch.zeros_like(param)
    for grad in grads:
        old_avg = square_avg
        if mistake == "no_decay":
            square_avg = square_avg + grad * grad
        elif mistake == "swap":
            square_avg = (1 - alpha) * square_avg + alpha * grad * grad
        else:
            square_avg = alpha * square_avg + (1 - alpha) * grad * grad
        avg = old_avg if mistake == "old_average" else square_avg
        if mistake == "eps_inside":
            denominator = (avg + eps).sqrt()
        elif mistake == "no_sqrt":
            denominator = avg + eps
        else:
            denominator = avg.sqrt() + eps
        param = param - lr * grad / denominator
    return param


_RMSPROP_MISTAKES = {
    "eps_inside": "you added eps inside the square root; torch adds it to sqrt(avg).",
    "swap": "alpha weighs the old average: avg = alpha * avg + (1 - alpha) * g^2.",
    "no_decay": "that is AdaGrad's running sum; RMSProp decays the old average by alpha.",
    "old_average": "you stepped with the old average; update the average first, then step.",
    "no_sqrt": "divide by the square root of the average (an RMS, the gradient's own scale), "
               "not by the average itself.",
}


@EXERCISES.checker(3, "one RMSProp step",
                   wants="a function (param, grad, square_avg, lr, alpha, eps) -> "
                         "(new_param, new_square_avg), matching torch.optim.RMSprop to 1e-12")
def _check_rmsprop_step(rmsprop_step):
    if not callable(rmsprop_step):
        return wrong(f"pass the function itself, EXERCISES.check(3, rmsprop_step); got a value "
                     f"of type {type(rmsprop_step).__name__}.")
    lr, alpha, eps = 0.01, 0.9, 1e-3  # a large eps, so that where it goes shows
    generator = torch.Generator().manual_seed(6)
    start = torch.randn(5, generator=generator, dtype=torch.float64)
    grads = [torch.randn(5, generator=generator, dtype=torch.float64) * 0.01 for _ in range(10)]
    param, square_avg = start.clone(), torch.zeros_like(start)
    for grad in grads:
        try:
            result = rmsprop_step(param.clone(), grad.clone(), square_avg.clone(), lr, alpha, eps)
        except Exception as e:  # noqa: BLE001 (a student's bug gets a hint, not a traceback)
            return wrong(f"calling your function raised {type(e).__name__}: {e}.")
        if result is None:
            return UNANSWERED
        if not (isinstance(result, tuple) and len(result) == 2):
            return wrong("return a pair (new_param, new_square_avg).")
        if not all(isinstance(r, Tensor) and r.shape == start.shape for r in result):
            return wrong(f"return two tensors of the parameter's shape {tuple(start.shape)}, "
                         f"got {', '.join(type(r).__name__ for r in result)}.")
        param, square_avg = (r.detach().to(torch.float64) for r in result)
    reference = torch.nn.Parameter(start.clone())
    torch_rmsprop = torch.optim.RMSprop([reference], lr=lr, alpha=alpha, eps=eps)
    for grad in grads:
        reference.grad = grad.clone()
        torch_rmsprop.step()
    if torch.allclose(param, reference.detach(), rtol=0, atol=1e-12):
        return CORRECT
    for mistake, hint in _RMSPROP_MISTAKES.items():
        slipped = _rmsprop_reference(start, grads, lr, alpha, eps, mistake=mistake)
        if torch.allclose(param, slipped, rtol=0, atol=1e-12):
            return wrong(hint)
    return wrong("after 10 steps your parameters differ from torch.optim.RMSprop's; "
                 "update the average first, then step by lr * g / (sqrt(avg) + eps).")


@EXERCISES.checker(4, "bytes held in one Adam training step, fp32",
                   wants="an int (a number of bytes), exactly")
def _check_training_memory(answer):
    D, L, B = EXERCISE_4["dim"], EXERCISE_4["num_layers"], EXERCISE_4["batch_size"]
    memory = predict_training_memory(D, L, B, "adam")
    total, size = memory["total"], bytes_per_element(torch.float32)
    P = cruncher_num_parameters(D, L)
    return check_count(answer, total, unit="bytes", hints={
        total - size * (B * D + 2 * B): "that uses the lecture's B*D*L activations; autograd "
            "also saves the input x (for the first layer's weight gradient) and the loss keeps "
            "the prediction and the target.",
        total - size * B * D: "autograd also saves the input x: the first layer's weight "
            "gradient needs it.",
        total - size * 2 * B: "the MSE loss also saves the prediction and the target, B numbers "
            "each.",
        # One parameter-sized tensor short: the gradients, or Adam's second average.
        total - size * P: "that is one parameter-sized tensor short: count the gradients, and "
            "both of Adam's averages (m and v).",
        total - memory["optimizer_state"]: "you left out Adam's state.",
        total - memory["activations"]: "you left out the activations saved for backward.",
        total // size: "that is a count of elements; float32 takes 4 bytes each.",
    })


@EXERCISES.checker(5, "FLOPs counted for forward + backward",
                   wants=f"a number of FLOPs, {tolerance_text(DEFAULT_REL_TOL)}")
def _check_step_flops(answer):
    D, L, B = EXERCISE_5["dim"], EXERCISE_5["num_layers"], EXERCISE_5["batch_size"]
    P = cruncher_num_parameters(D, L)
    counted = 6 * B * P - 2 * B * D * D  # no input gradient: layer 1's x-gradient never runs
    return check_number(answer, counted, unit="FLOPs", hints={
        6 * B * P: "that is 6*B*P; the input x needs no gradient, so the first layer's x-gradient "
                   "matmul (2*B*D*D FLOPs) never runs and FlopCounterMode does not count it.",
        counted / 2: "a multiply-add is 2 FLOPs (a multiply and an add); you counted it once.",
        3 * B * P: "that is half of 6*B*P: a multiply-add is 2 FLOPs, and the first layer's "
                   "x-gradient matmul never runs.",
        2 * B * P: "that is the forward pass alone; the backward pass adds twice as much, less "
                   "the x-gradient matmul.",
        counted - 2 * B * P: "that is the backward pass alone; add the forward's 2*B*P.",
        4 * B * P: "that is the backward pass alone by the 4*B*P rule; add the forward's 2*B*P, "
                   "and leave out the x-gradient matmul, which never runs.",
    })
