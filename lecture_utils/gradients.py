"""Notebook 04: gradients, and how many FLOPs the backward pass costs.

The model is the lecture's two-layer linear network

    x (B x D) --w1 (D x D)--> h1 (B x D) --w2 (D x K)--> h2 (B x K) --> loss = mean(h2^2)

Each matmul is listed once by hand (`two_layer_matmuls`) and once as PyTorch runs it
(`measure_flops_per_op`, which reads FlopCounterMode after every operation), so the two can be
compared entry by entry.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from lecture_utils.device import as_device
from lecture_utils.exercises import (
    CORRECT,
    DEFAULT_REL_TOL,
    UNANSWERED,
    Exercises,
    Feedback,
    as_number,
    check_number,
    wrong,
)
from lecture_utils.flops import Timing, count_flops, matmul_flops, time_it

PHASES = ("forward", "backward")


def _check_size(name: str, value: Any) -> int:
    """`value` if it is a positive int, else an error naming the size."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive size, got {value}")
    return value


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _check_vectors(x: Any, w: Any, target: Any) -> None:
    """x and w: floating vectors of one length; target: a number."""
    for name, value in (("x", x), ("w", w)):
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            got = f"a {value.dtype} tensor" if isinstance(value, torch.Tensor) else repr(value)
            raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if x.ndim != 1 or x.shape != w.shape:
        raise ValueError(f"x and w must be vectors of one length, got {tuple(x.shape)} and "
                         f"{tuple(w.shape)}")
    if isinstance(target, bool) or not isinstance(target, (int, float)):
        raise TypeError(f"target must be a number, got {target!r}")


# --- A gradient by hand -----------------------------------------------------------------------


def squared_error_gradient(
    x: Float[torch.Tensor, " dim"], w: Float[torch.Tensor, " dim"], target: float
) -> Float[torch.Tensor, " dim"]:
    """d/dw of 0.5 * (x @ w - target)^2, by the chain rule: (x @ w - target) * x."""
    _check_vectors(x, w, target)
    residual = x @ w.detach() - target  # the derivative of 0.5 * r^2 is r ...
    return residual * x  # ... times d(x @ w)/dw = x


# --- The two-layer network, by hand ----------------------------------------------------------


@dataclass(frozen=True)
class Matmul:
    """One (m x n) @ (n x k) matmul of a forward or backward pass."""

    phase: str  # "forward" or "backward"
    name: str  # what it computes, e.g. "w2.grad = h1.T @ h2.grad"
    formula: str  # its FLOPs in the network's sizes, e.g. "2·B·D·K"
    m: int
    n: int
    k: int

    @property
    def flops(self) -> int:
        """FLOPs of this matmul: 2 * m * n * k."""
        return matmul_flops(self.m, self.n, self.k)


def two_layer_num_parameters(D: int, K: int) -> int:
    """Parameters of the two-layer network: D*D in w1 plus D*K in w2."""
    return _check_size("D", D) * D + D * _check_size("K", K)


def two_layer_matmuls(B: int, D: int, K: int, input_requires_grad: bool) -> list[Matmul]:
    """Every matmul of one forward and one backward pass, in the order autograd runs them."""
    for name, value in (("B", B), ("D", D), ("K", K)):
        _check_size(name, value)
    _check_flag("input_requires_grad", input_requires_grad)
    matmuls = [
        Matmul("forward", "h1 = x @ w1", "2·B·D·D", B, D, D),
        Matmul("forward", "h2 = h1 @ w2", "2·B·D·K", B, D, K),
        # Layer 2 (h2 = h1 @ w2) needs two products: one for its weight, one to go on backwards.
        Matmul("backward", "w2.grad = h1.T @ h2.grad", "2·B·D·K", D, B, K),
        Matmul("backward", "h1.grad = h2.grad @ w2.T", "2·B·D·K", B, K, D),
        # Layer 1 (h1 = x @ w1): its weight gradient always; x.grad only if someone asked for it.
        Matmul("backward", "w1.grad = x.T @ h1.grad", "2·B·D·D", D, B, D),
    ]
    if input_requires_grad:
        matmuls.append(Matmul("backward", "x.grad = h1.grad @ w1.T", "2·B·D·D", B, D, D))
    return matmuls


def two_layer_flops(
    B: int, D: int, K: int, input_requires_grad: bool
) -> dict[str, dict[str, int]]:
    """FLOPs of each matmul by hand: {"forward": {name: FLOPs}, "backward": {name: FLOPs}}."""
    flops: dict[str, dict[str, int]] = {phase: {} for phase in PHASES}
    for matmul in two_layer_matmuls(B, D, K, input_requires_grad):
        flops[matmul.phase][matmul.name] = matmul.flops
    return flops


def two_layer_peak_bytes(B: int, D: int, K: int, input_requires_grad: bool) -> int:
    """Peak bytes (fp32) of a backward pass over a kept graph, as `time_forward_backward` runs it.

    At the last backward matmul these are alive: x, w1, w2; the saved h1 (for w2.grad) and h2
    (for the loss's square); w2.grad, h1.grad, w1.grad, and x.grad if x requires one.
    """
    for name, value in (("B", B), ("D", D), ("K", K)):
        _check_size(name, value)
    _check_flag("input_requires_grad", input_requires_grad)
    inputs_and_saved = B * D + D * D + D * K + B * D + B * K
    gradients = D * K + B * D + D * D + (B * D if input_requires_grad else 0)
    return 4 * (inputs_and_saved + gradients)


# --- The two-layer network, as PyTorch runs it -----------------------------------------------


def make_two_layer_tensors(
    B: int,
    D: int,
    K: int,
    *,
    input_requires_grad: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Float[torch.Tensor, "B D"], Float[torch.Tensor, "D D"], Float[torch.Tensor, "D K"]]:
    """x, w1, w2 with Gaussian entries (on "meta": shapes only, no memory is allocated)."""
    for name, value in (("B", B), ("D", D), ("K", K)):
        _check_size(name, value)
    _check_flag("input_requires_grad", input_requires_grad)
    device = as_device(device)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32, "
                        f"got {dtype!r}")
    x = torch.randn(B, D, device=device, dtype=dtype).requires_grad_(input_requires_grad)
    # Scaling by 1/sqrt(D) keeps h1 and h2 near unit size, whatever D is.
    w1 = (torch.randn(D, D, device=device, dtype=dtype) / math.sqrt(D)).requires_grad_()
    w2 = (torch.randn(D, K, device=device, dtype=dtype) / math.sqrt(D)).requires_grad_()
    return x, w1, w2


def two_layer_forward(
    x: Float[torch.Tensor, "B D"], w1: Float[torch.Tensor, "D D"], w2: Float[torch.Tensor, "D K"]
) -> tuple[Float[torch.Tensor, "B D"], Float[torch.Tensor, "B K"], Float[torch.Tensor, ""]]:
    """The lecture's model: h1 = x @ w1, h2 = h1 @ w2, loss = mean(h2^2). Returns h1, h2, loss."""
    h1 = x @ w1
    h2 = h1 @ w2
    loss = h2.pow(2).mean()
    return h1, h2, loss


@dataclass(frozen=True)
class OpRecord:
    """One ATen operation PyTorch ran, with the FLOPs FlopCounterMode counted for it."""

    op: str  # e.g. "aten.mm"
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    flops: int


class _RecordOps(TorchDispatchMode):
    """Sees every ATen call; reads the FlopCounterMode below it before and after each one."""

    def __init__(self, counter: FlopCounterMode) -> None:
        super().__init__()
        self.counter = counter
        self.records: list[OpRecord] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = self.counter.get_total_flops()
        out = func(*args, **(kwargs or {}))  # runs through the FlopCounterMode, which counts it
        counted = self.counter.get_total_flops() - before
        shapes = [tuple(t.shape) for t in tree_flatten((args, kwargs))[0]
                  if isinstance(t, torch.Tensor)]
        outs = [tuple(t.shape) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        self.records.append(OpRecord(str(func.overloadpacket), tuple(shapes), tuple(outs), counted))
        return out


def record_ops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[OpRecord]:
    """Every ATen operation fn(*args, **kwargs) runs, with FlopCounterMode's FLOPs for each."""
    if not callable(fn):
        raise TypeError(f"fn must be a function for record_ops to run, got {type(fn).__name__}")
    # FlopCounterMode.get_flop_counts() sums by operator type (all aten.mm calls together), so
    # to see matmuls one at a time we read its running total around every single call.
    with FlopCounterMode(display=False) as counter, _RecordOps(counter) as recorder:
        fn(*args, **kwargs)
    total = sum(r.flops for r in recorder.records)
    if total != counter.get_total_flops():
        raise RuntimeError(f"per-op FLOPs add up to {total}, FlopCounterMode counted "
                           f"{counter.get_total_flops()}")
    return recorder.records


def _matmul_shape(record: OpRecord) -> tuple[int, int, int] | None:
    """(m, n, k) of a 2-D aten.mm record, else None."""
    if record.op != "aten.mm" or len(record.input_shapes) != 2:
        return None
    (m, n), (n2, k) = record.input_shapes
    return (m, n, k) if n == n2 else None


def measure_flops_per_op(
    B: int,
    D: int,
    K: int,
    *,
    input_requires_grad: bool,
    device: torch.device | str = "meta",
) -> dict[str, dict[str, int]]:
    """FLOPs FlopCounterMode counts for each matmul of one forward and backward pass.

    Same layout as `two_layer_flops`; each matmul is named by its shape, so B, D, K must differ.
    On the "meta" device nothing is computed or allocated: any size is counted in milliseconds.
    """
    if len({_check_size("B", B), _check_size("D", D), _check_size("K", K)}) != 3:
        raise ValueError(f"B, D, K must all differ so each matmul can be told apart by its "
                         f"shape, got B={B}, D={D}, K={K}")
    names = {(m.phase, (m.m, m.n, m.k)): m.name for m in two_layer_matmuls(B, D, K, True)}
    x, w1, w2 = make_two_layer_tensors(
        B, D, K, input_requires_grad=input_requires_grad, device=device
    )
    flops: dict[str, dict[str, int]] = {phase: {} for phase in PHASES}
    losses: list[torch.Tensor] = []
    steps = {"forward": lambda: losses.append(two_layer_forward(x, w1, w2)[2]),
             "backward": lambda: losses[0].backward()}
    for phase in PHASES:
        for record in record_ops(steps[phase]):
            if record.flops == 0:
                continue  # elementwise ops and views: FlopCounterMode counts no FLOPs for them
            shape = _matmul_shape(record)
            name = names.get((phase, shape), f"{record.op} {record.input_shapes}")
            flops[phase][name] = flops[phase].get(name, 0) + record.flops
    return flops


def phase_totals(flops: dict[str, dict[str, int]]) -> dict[str, int]:
    """Total FLOPs per phase of a `two_layer_flops`-style breakdown."""
    if not isinstance(flops, dict) or not all(isinstance(v, dict) for v in flops.values()):
        raise TypeError(f"flops must be {{phase: {{matmul name: FLOPs}}}} as two_layer_flops "
                        f"returns, got {flops!r}")
    return {phase: sum(per_op.values()) for phase, per_op in flops.items()}


def time_forward_backward(
    B: int,
    D: int,
    K: int,
    *,
    input_requires_grad: bool,
    device: torch.device | str,
    warmup: int = 2,
    repeats: int = 15,
) -> dict[str, Timing]:
    """Seconds of one forward and of one backward pass: {"forward": Timing, "backward": Timing}.

    On a CPU both run on one thread (see flops.timing_threads), so that other programs on a busy
    machine slow them less, and alike.
    """
    x, w1, w2 = make_two_layer_tensors(
        B, D, K, input_requires_grad=input_requires_grad, device=device
    )
    _, _, loss = two_layer_forward(x, w1, w2)

    def backward() -> None:
        for t in (x, w1, w2):
            t.grad = None  # a fresh gradient each time, no accumulation into the old one
        loss.backward(retain_graph=True)  # the same graph, walked again

    return {
        "forward": time_it(lambda: two_layer_forward(x, w1, w2), device=device, warmup=warmup,
                           repeats=repeats),
        "backward": time_it(backward, device=device, warmup=warmup, repeats=repeats),
    }


def time_ratio_conclusion(
    forward: Timing, backward: Timing, flop_ratio: float, width: int = 100
) -> str:
    """Whether the backward / forward time ratio agrees with `flop_ratio`, given both spreads,
    wrapped at `width` characters.

    The ratio's range runs from the fastest backward over the slowest forward (lower quartile
    over upper quartile) to the other way round.
    """
    if not isinstance(forward, Timing) or not isinstance(backward, Timing):
        raise TypeError(f"forward and backward must be Timings (time_forward_backward returns "
                        f"them), got {type(forward).__name__} and {type(backward).__name__}")
    if isinstance(flop_ratio, bool) or not isinstance(flop_ratio, (int, float)) \
            or not math.isfinite(flop_ratio) or flop_ratio <= 0:
        raise ValueError(f"flop_ratio must be a finite number > 0, got {flop_ratio!r}")
    ratio = backward.median / forward.median
    # Compared as printed (2 decimals), so the printed numbers always bear the conclusion out.
    low, high = round(backward.low / forward.high, 2), round(backward.high / forward.low, 2)
    measured = f"backward / forward time {ratio:.2f} ({low:.2f}-{high:.2f})"
    if low <= flop_ratio <= high:
        text = f"{measured}: agrees with the FLOP ratio {flop_ratio:.1f} within its spread"
    else:
        side, pace = ("above", "slower") if flop_ratio < low else ("below", "faster")
        text = (f"{measured}: {side} the FLOP ratio {flop_ratio:.1f}, so per FLOP the backward "
                f"pass ran {pace} than the forward pass")
    return textwrap.fill(text, width=width, subsequent_indent="    ")


# --- A figure ---------------------------------------------------------------------------------


def _kind(name: str) -> str:
    """Which of the three kinds of matmul a `two_layer_matmuls` name is."""
    if ".grad =" not in name:
        return "forward matmul"
    return "weight gradient" if name.startswith("w") else "input gradient"


KIND_COLORS = {"forward matmul": "#0072B2", "weight gradient": "#009E73",
               "input gradient": "#CC79A7"}


def plot_flops_breakdown(columns: dict[str, dict[str, int]], unit: int, unit_label: str) -> Any:
    """Stacked bars, one per column, one segment per matmul, heights in FLOPs / `unit`."""
    import matplotlib.pyplot as plt

    if isinstance(unit, bool) or not isinstance(unit, (int, float)) or not unit > 0:
        raise ValueError(f"unit must be a positive number of FLOPs, got {unit!r}")
    if not isinstance(columns, dict) or not columns:
        raise ValueError(f"columns must be a non-empty dict {{bar label: {{matmul name: FLOPs}}}}, "
                         f"got {columns!r}")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    tallest = 0.0
    for i, per_op in enumerate(columns.values()):
        bottom = 0.0
        for name, flops in per_op.items():
            height = flops / unit
            kind = _kind(name)
            ax.bar(i, height, bottom=bottom, width=0.6, color=KIND_COLORS[kind],
                   edgecolor="white", linewidth=1.5)
            short = name if kind == "forward matmul" else name.split(" =")[0]
            ax.text(i, bottom + height / 2, f"{short}: {height:.2g}", ha="center",
                    va="center", color="white", fontsize=11)
            bottom += height
        ax.text(i, bottom, f"{bottom:.3g}", ha="center", va="bottom", fontweight="bold")
        tallest = max(tallest, bottom)
    ax.set_xticks(range(len(columns)), list(columns))
    ax.set_ylim(0, tallest * 1.12)
    ax.set_ylabel(f"FLOPs / ({unit_label})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in KIND_COLORS.values()]
    ax.legend(handles, list(KIND_COLORS), loc="upper left")
    fig.tight_layout()
    return fig


# --- Check yourself ---------------------------------------------------------------------------
#
# Each hint is keyed by the answer its mistake gives, computed by making the mistake. Where two
# mistakes give the same number, one hint names both.

EXERCISES = Exercises("04")

EXERCISE_1 = {"x": [2.0, -1.0, 4.0], "w": [1.0, 1.0, 1.0], "target": 2.0}
EXERCISE_2 = {"parameters": 7e9, "tokens": 2e12}
EXERCISE_3 = {"tokens": 4096, "d_in": 4096, "d_out": 11008}
EXERCISE_5_CASES = (  # (batch, dims, input_requires_grad) the student's function is tried on
    (8, [16, 32, 4], False),
    (8, [16, 32, 4], True),
    (4, [10, 20, 30, 40, 5], False),
    (3, [7, 9], True),
    (5, [6, 6, 6, 6], False),
)


def exercise_1_gradient(*, residual_sign: float = 1.0, half: float = 0.5,
                        use_target: bool = True) -> list[float]:
    """d/dw of half * (x @ w - target)^2 for EXERCISE_1 (other arguments: the slips)."""
    x, w = torch.tensor(EXERCISE_1["x"]), torch.tensor(EXERCISE_1["w"])
    residual = x @ w - (EXERCISE_1["target"] if use_target else 0.0)
    return (residual_sign * 2 * half * residual * x).tolist()


def _exercise_1_hints() -> list[tuple[list[float], str]]:
    """(the answer a slip gives, what to say): each computed by making the slip."""
    x, w = EXERCISE_1["x"], EXERCISE_1["w"]
    residual = sum(a * b for a, b in zip(x, w, strict=True)) - EXERCISE_1["target"]
    alone = ("that is the residual alone (or the residual times w, which is all ones here): "
             "multiply the residual by x.")
    return [
        (exercise_1_gradient(residual_sign=-1), "the sign is flipped: the residual is "
         "(x @ w - target), not the reverse."),
        (exercise_1_gradient(half=1.0), "twice too large: the 0.5 in front cancels the 2 from "
         "the square."),
        (exercise_1_gradient(use_target=False), "the target is missing: the residual is "
         "x @ w - target."),
        (list(x), "that is d(x @ w)/dw alone: multiply by the residual (x @ w - target)."),
        ([residual] * len(x), alone),
        ([residual * v for v in w], alone),  # the same numbers as the line above: w is all ones
    ]


@EXERCISES.checker(1, "a gradient by hand", wants="a list of 3 numbers, each within 2%")
def _check_gradient_by_hand(answer: Any) -> Feedback:
    if isinstance(answer, str):
        return wrong(f"got the text {answer!r}; give a list of 3 numbers, such as [1, 2, 3].")
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        return wrong(f"expected a list of 3 numbers, got a {type(answer).__name__}.")
    if got.numel() != 3:
        return wrong(f"dloss/dw has one entry per weight: expected 3 numbers, got {got.numel()}.")
    if not torch.isfinite(got).all():
        return as_number(float(got[~torch.isfinite(got)][0]))  # says where nan or inf come from

    def close(value: list[float]) -> bool:
        return torch.allclose(got, torch.tensor(value, dtype=torch.float64),
                              rtol=DEFAULT_REL_TOL, atol=1e-9)

    if close(exercise_1_gradient()):
        return CORRECT
    for value, hint in _exercise_1_hints():
        if close(value):
            return wrong(hint)
    return wrong("use dloss/dw = (x @ w - target) * x, entry by entry.")


def training_flops_slip(flops_per_parameter_token: float) -> float:
    """Exercise 2's training FLOPs with `flops_per_parameter_token` (6 is right)."""
    return flops_per_parameter_token * EXERCISE_2["parameters"] * EXERCISE_2["tokens"]


@EXERCISES.checker(2, "training FLOPs of a 7B model on 2T tokens",
                   wants="a number of FLOPs, within 2% (3 significant figures are enough)")
def _check_training_flops(answer: Any) -> Feedback:
    return check_number(answer, training_flops_slip(6), unit="FLOPs", hints={
        training_flops_slip(2): "that is the forward pass alone: add the backward pass "
        "(4 x tokens x params).",
        training_flops_slip(4): "that is the backward pass alone: add the forward pass "
        "(2 x tokens x params).",
        training_flops_slip(3): "half: you counted only the multiplies (1 per parameter per "
        "token forward, 2 backward); each multiply-add is 2 FLOPs.",
        training_flops_slip(1): "each parameter costs 2 FLOPs per token forward and 4 "
        "backward: 6 in all.",
    })


def hidden_layer_backward_flops(matmuls: int = 2, flops_per_multiply_add: int = 2) -> int:
    """Exercise 3's backward FLOPs (other arguments: the slips it recognizes)."""
    b, d_in, d_out = EXERCISE_3["tokens"], EXERCISE_3["d_in"], EXERCISE_3["d_out"]
    return matmuls * flops_per_multiply_add * b * d_in * d_out


@EXERCISES.checker(3, "backward FLOPs of one hidden layer",
                   wants="a number of FLOPs, within 2% (3 significant figures are enough)")
def _check_hidden_layer_backward(answer: Any) -> Feedback:
    # One matmul at 2 FLOPs per multiply-add, and two at 1, give the same number.
    half = ("half: a hidden layer needs two backward matmuls, its weight gradient and the "
            "gradient of its input, each 2·B·D_in·D_out FLOPs. Did you count only one of them, "
            "or 1 FLOP per multiply-add?")
    return check_number(answer, hidden_layer_backward_flops(), unit="FLOPs", hints={
        hidden_layer_backward_flops(matmuls=1): half,
        hidden_layer_backward_flops(flops_per_multiply_add=1): half,
        hidden_layer_backward_flops(matmuls=3): "that is forward + backward; the question asks "
        "for the backward pass only.",
        hidden_layer_backward_flops(matmuls=1, flops_per_multiply_add=1): "a quarter: count "
        "two matmuls (weight gradient and input gradient), at 2 FLOPs per multiply-add.",
    })


@EXERCISES.checker(4, "the matmul autograd skips",
                   wants='a name as a string, one of "w2.grad", "h1.grad", "w1.grad", "x.grad"')
def _check_skipped_matmul(answer: Any) -> Feedback:
    if not isinstance(answer, str):
        return wrong(f"answer with a name as a string, e.g. 'w2.grad'; got a "
                     f"{type(answer).__name__}.")
    key = answer.strip().lower().replace(" ", "").split("=")[0]
    if key in {"x.grad", "x", "xgrad", "x_grad", "grad_x", "dx"}:
        return CORRECT
    hints = {
        "w1.grad": "w1 is a parameter: the optimizer needs its gradient, so it is always computed.",
        "w2.grad": "w2 is a parameter: the optimizer needs its gradient, so it is always computed.",
        "h1.grad": "h1.grad is needed on the way to w1.grad (w1.grad = x.T @ h1.grad).",
        "h2.grad": "h2.grad is an elementwise gradient of the loss, and every matmul needs it.",
    }
    return wrong(hints.get(key, "name one of w2.grad, h1.grad, w1.grad, x.grad."))


def measured_linear_chain_backward_flops(
    batch: int, dims: list[int], input_requires_grad: bool
) -> int:
    """Backward FLOPs FlopCounterMode counts for x (batch x dims[0]) @ W1 @ W2 ..., on meta."""
    _check_size("batch", batch)
    if not isinstance(dims, (list, tuple)):
        raise TypeError(f"dims must be a list of sizes such as [16, 32, 4], got {dims!r}")
    if len(dims) < 2:
        raise ValueError(f"dims needs an input size and at least one output size, got {dims}")
    for i, d in enumerate(dims):
        _check_size(f"dims[{i}]", d)
    _check_flag("input_requires_grad", input_requires_grad)
    x = torch.empty(batch, dims[0], device="meta", requires_grad=input_requires_grad)
    weights = [torch.empty(a, b, device="meta", requires_grad=True)
               for a, b in itertools.pairwise(dims)]
    h = x
    for w in weights:
        h = h @ w
    loss = h.pow(2).mean()
    return count_flops(loss.backward)


def chain_backward_flops_slip(batch: int, dims: list[int], input_requires_grad: bool, *,
                              weight: int = 2, inputs: str = "needed",
                              forward: bool = False) -> int:
    """Backward FLOPs of a linear chain by formula, or with a slip exercise 5 recognizes.

    `weight`: FLOPs per multiply-add; `inputs`: which input gradients are counted ("needed",
    "all", "none" or "never x": every layer's but the first, whatever x needs); `forward`: the
    forward pass added in.
    """
    total = 0
    for layer, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        per_matmul = weight * batch * d_in * d_out
        total += per_matmul * (2 if forward else 1)  # the weight gradient (and the forward)
        counted = {"needed": layer > 0 or input_requires_grad, "all": True, "none": False,
                   "never x": layer > 0}[inputs]
        total += per_matmul if counted else 0
    return total


# The slips exercise 5 recognizes: (keyword arguments that make it, what to say about it).
EXERCISE_5_SLIPS: tuple[tuple[dict[str, Any], str], ...] = (
    ({"inputs": "all"}, "you counted the first layer's input gradient, which autograd skips "
     "when x does not require a gradient."),
    ({"inputs": "never x"}, "x requires a gradient here, so autograd also computes the first "
     "layer's input gradient, x.grad."),
    ({"inputs": "none"}, "you counted only the weight gradients: every layer but (maybe) the "
     "first also needs the gradient of its input."),
    ({"forward": True}, "you returned forward + backward; return the backward only."),
    ({"weight": 1}, "half: each multiply-add is 2 FLOPs."),
)


@EXERCISES.checker(5, "backward FLOPs of a deep linear network",
                   wants="a function (batch, dims, input_requires_grad) -> FLOPs, exactly")
def _check_chain_backward(fn: Any) -> Feedback:
    if not callable(fn):
        return wrong(f"pass the function itself, e.g. EXERCISES.check(5, backward_flops), not a "
                     f"{type(fn).__name__}.")
    for batch, dims, needs_grad in EXERCISE_5_CASES:
        case = f"batch={batch}, dims={dims}, input_requires_grad={needs_grad}"
        try:
            got = fn(batch, list(dims), needs_grad)
        except Exception as e:  # noqa: BLE001 (a student's bug gets a hint, not a traceback)
            return wrong(f"your function raised {type(e).__name__} for {case}: {e}")
        if got is None:
            return UNANSWERED
        value = as_number(got, "FLOPs")
        if isinstance(value, Feedback):
            return wrong(f"for {case} your function returned {got!r}: return one number of "
                         "FLOPs.")
        expected = measured_linear_chain_backward_flops(batch, dims, needs_grad)
        if value == expected:
            continue
        for slip, hint in EXERCISE_5_SLIPS:
            if value == chain_backward_flops_slip(batch, dims, needs_grad, **slip):
                return wrong(f"for {case} {hint}")
        return wrong(f"for {case} FlopCounterMode counts {expected} backward FLOPs, you "
                     f"returned {got}.")
    return CORRECT
