"""Notebook 08: mixed precision, activation checkpointing and gradient accumulation.

The recipe this module measures: run the matmul-heavy forward and backward in a 16-bit (or 8-bit)
format, keep parameters, gradients and optimizer state in fp32. Memory is in bytes, time in
seconds, work in FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch.utils.checkpoint import checkpoint

from lecture_utils.device import Needs, get_device, parse_device, synchronize, warm_up_cublas
from lecture_utils.exercises import (
    CORRECT,
    UNANSWERED,
    Exercises,
    Feedback,
    as_number,
    check_number,
    wrong,
)
from lecture_utils.flops import (
    FP8,
    Timing,
    compare_timings,
    count_flops,
    scaled_matmul_fp8,
    time_it,
)
from lecture_utils.hardware import GB, current_gpu, lookup_gpu, peak_flops
from lecture_utils.models import (
    Cruncher,
    _check_inputs,
    _check_size,
    _check_target,
    cruncher_num_parameters,
)
from lecture_utils.napkin import _positive
from lecture_utils.optimizers import SGD, predict_peak_training_memory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The ways to run a training step that compare_precisions knows.
#   fp32: fp32 matmuls (TF32 off)         tf32: fp32 storage, TF32 tensor-core matmuls
#   bf16: autocast to bfloat16            fp16: autocast to float16 with a GradScaler
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def float_format(dtype: torch.dtype) -> dict[str, Any]:
    """Bits, exponent and mantissa bits, largest value, smallest normal and eps of a float dtype."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"float_format needs a floating torch.dtype, got {dtype!r}")
    info = torch.finfo(dtype)
    mantissa_bits = round(-math.log2(info.eps))  # eps = 2^-mantissa_bits
    return {
        "bits": info.bits,
        "exponent_bits": info.bits - 1 - mantissa_bits,  # one bit is the sign
        "mantissa_bits": mantissa_bits,
        "max": info.max,
        "smallest_normal": info.smallest_normal,
        "smallest_subnormal": info.smallest_normal * info.eps,
        "eps": info.eps,
    }


def format_float_table(formats: Mapping[str, torch.dtype]) -> str:
    """A text table of float_format for each named dtype: bits, exponent, mantissa, range, eps."""
    if not formats:
        raise ValueError("formats must name at least one dtype, e.g. {'bf16': torch.bfloat16}")
    lines = [f"{'format':<9} {'bits':>4} {'exp':>4} {'mant':>4} {'max':>9} "
             f"{'smallest normal':>16} {'eps':>9}"]
    for name, dtype in formats.items():
        f = float_format(dtype)
        lines.append(f"{name:<9} {f['bits']:>4} {f['exponent_bits']:>4} {f['mantissa_bits']:>4} "
                     f"{f['max']:>9.3g} {f['smallest_normal']:>16.3g} {f['eps']:>9.3g}")
    return "\n".join(lines)


def count_zeros(tensors: Iterable[torch.Tensor | None]) -> int:
    """Number of elements that are exactly zero, over all tensors (None, as in a missing .grad, counts 0)."""
    tensors = _tensor_list("tensors", tensors, allow_none=True)
    return sum(int((t == 0).sum()) for t in tensors if t is not None)


def _tensor_list(name: str, tensors: object, *, allow_none: bool = False) -> list[torch.Tensor]:
    """`tensors` as a list, checked to hold only tensors (and None where allowed)."""
    if isinstance(tensors, torch.Tensor) or not isinstance(tensors, Iterable):
        raise TypeError(f"{name} must be a list of tensors, e.g. list(model.parameters()), "
                        f"got {type(tensors).__name__}")
    tensors = list(tensors)
    kinds = (torch.Tensor, type(None)) if allow_none else torch.Tensor
    if not all(isinstance(t, kinds) for t in tensors):
        raise TypeError(f"{name} must hold only tensors, got "
                        f"{sorted({type(t).__name__ for t in tensors})}")
    return tensors


@dataclass(frozen=True)
class SavedForBackward:
    """What autograd keeps for the backward pass, in bytes (each storage counted once)."""

    activation_bytes: int  # tensors the forward created: activations, low-precision weight copies
    parameter_bytes: int  # references to parameters: they are in memory anyway, so no extra cost
    shapes: list[tuple[tuple[int, ...], torch.dtype]] = field(default_factory=list)


def saved_for_backward(
    fn: Callable[[], Any], parameters: Iterable[torch.Tensor] = ()
) -> SavedForBackward:
    """Bytes of the tensors autograd saves while fn() runs, split into new tensors and parameters."""
    if not callable(fn):
        raise TypeError(f"saved_for_backward needs a function to call, got {type(fn).__name__}")
    parameters = _tensor_list("parameters", parameters)
    parameter_storages = {p.untyped_storage().data_ptr() for p in parameters}
    seen: set[int] = set()
    activation_bytes = parameter_bytes = 0
    shapes = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal activation_bytes, parameter_bytes
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:  # two ops saving one tensor hold one copy
            seen.add(storage.data_ptr())
            shapes.append((tuple(t.shape), t.dtype))
            if storage.data_ptr() in parameter_storages:
                parameter_bytes += storage.nbytes()
            else:
                activation_bytes += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return SavedForBackward(activation_bytes, parameter_bytes, shapes)


# Ops whose autocast dtype differs between devices: on CUDA all but the matmul run in fp32.
AUTOCAST_PROBES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mm": lambda t: t @ t,
    "softmax": lambda t: t.softmax(-1),
    "log_softmax": lambda t: t.log_softmax(-1),
    "layer_norm": lambda t: torch.nn.functional.layer_norm(t, t.shape[-1:]),
    "sum": lambda t: t.sum(),
    "pow": lambda t: t.pow(2),
    "exp": lambda t: t.exp(),
    "mse_loss": lambda t: torch.nn.functional.mse_loss(t, torch.zeros_like(t)),
    "cross_entropy": lambda t: torch.nn.functional.cross_entropy(
        t, torch.zeros(t.shape[0], dtype=torch.long, device=t.device)),
}


def autocast_output_dtypes(
    device: torch.device | str, dtype: torch.dtype = torch.bfloat16
) -> dict[str, torch.dtype]:
    """The dtype each op of AUTOCAST_PROBES gives on a low-precision activation under autocast."""
    device = parse_device(device)
    h = torch.randn(16, 16, device=device)
    with torch.autocast(device.type, dtype=dtype):
        activation = h @ h  # low precision, as it would be inside a model
        return {name: op(activation).dtype for name, op in AUTOCAST_PROBES.items()}


def fp16_gradients(
    model: torch.nn.Module, x: Float[torch.Tensor, "batch dim"], loss_factor: float, *,
    use_scaler: bool,
) -> list[torch.Tensor]:
    """The fp32 .grad of each parameter after an fp16 forward and backward of a tiny loss,
    loss_factor * mean(model(x)), with or without a GradScaler."""
    params = list(model.parameters())
    scaler = torch.amp.GradScaler(x.device.type, enabled=use_scaler)
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.float16):
        out = model(x)
    loss = loss_factor * out.float().mean()
    scaler.scale(loss).backward()  # backward of S * loss
    scaler.unscale_(SGD(params, lr=0.1))  # .grad /= S, in fp32 (a no-op when disabled)
    return [p.grad.clone() for p in params]


@dataclass(frozen=True)
class ScalerStep:
    """One fp16 training step under a GradScaler: the scale before and after, and what ran."""

    inputs: str  # a name for the step's inputs
    scale_before: float
    loss_finite: bool
    updated: bool  # whether the optimizer step changed the parameters (False: skipped)
    scale_after: float


def grad_scaler_steps(
    model: torch.nn.Module, batches: Sequence[tuple[str, torch.Tensor]], *,
    growth_interval: int, lr: float = 1e-3,
) -> list[ScalerStep]:
    """Train `model` on each (name, inputs) batch: fp16 forward, loss mean(out^2), a GradScaler
    with its default initial scale, SGD. What the scaler did at each step."""
    _check_positive(growth_interval=growth_interval)
    params = list(model.parameters())
    optimizer = SGD(params, lr=lr)
    device_type = params[0].device.type
    scaler = torch.amp.GradScaler(device_type, growth_interval=growth_interval)
    history = []
    for name, inputs in batches:
        scale_before = scaler.get_scale()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.float16):
            out = model(inputs)
        loss = out.float().pow(2).mean()
        scaler.scale(loss).backward()
        before = [p.detach().clone() for p in params]
        scaler.step(optimizer)  # skipped if any gradient is inf/NaN
        scaler.update()  # halve S after a skip, double it after growth_interval clean steps
        updated = any(not torch.equal(b, p) for b, p in zip(before, params))
        history.append(ScalerStep(name, scale_before, bool(torch.isfinite(loss)), updated,
                                  scaler.get_scale()))
    return history


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def checkpointed_forward(
    model: Cruncher, x: Float[torch.Tensor, "batch dim"], segment_size: int
) -> Float[torch.Tensor, " batch"]:
    """The Cruncher's forward, keeping only each segment's input and recomputing the rest."""
    if not isinstance(model, Cruncher):
        raise TypeError(f"checkpointed_forward needs a Cruncher, got {type(model).__name__}")
    _check_inputs(model, x)
    _check_positive(segment_size=segment_size)
    layers = list(model.layers)

    def run_segment(h: torch.Tensor, start: int) -> torch.Tensor:
        for layer in layers[start : start + segment_size]:
            h = layer(h)
        return h

    for start in range(0, len(layers), segment_size):
        # use_reentrant=False: the recommended implementation (works with autocast and hooks).
        x = checkpoint(run_segment, x, start, use_reentrant=False)
    return model.final(x).squeeze(-1)


def checkpointed_backward(
    model: Cruncher, x: Float[torch.Tensor, "batch dim"], segment_size: int | None
) -> None:
    """Forward and backward of the output's sum, with segments of segment_size layers (None: no
    checkpointing). The output is freed once .sum() has read it."""
    # One expression: a name for the output would keep it alive through backward.
    (model(x) if segment_size is None
     else checkpointed_forward(model, x, segment_size)).sum().backward()


@dataclass(frozen=True)
class CheckpointingCost:
    """What one choice of segment size keeps for backward and what it adds."""

    segment_size: int | None  # None: no checkpointing
    num_segments: int | None
    saved_bytes: int  # activations saved for backward
    flops: int  # FLOPs of forward + backward
    extra_flops: int  # above those without checkpointing


def checkpointing_costs(
    model: Cruncher, x: Float[torch.Tensor, "batch dim"], segment_sizes: Sequence[int]
) -> list[CheckpointingCost]:
    """Saved bytes (saved_for_backward) and extra FLOPs (FlopCounterMode, which sees the matmuls
    re-run inside backward) of no checkpointing, then of each segment size."""
    params = list(model.parameters())
    plain_flops = count_flops(lambda: checkpointed_backward(model, x, None))
    plain_saved = saved_for_backward(lambda: model(x), params).activation_bytes
    costs = [CheckpointingCost(None, None, plain_saved, plain_flops, 0)]
    for size in segment_sizes:
        saved = saved_for_backward(lambda s=size: checkpointed_forward(model, x, s), params)
        flops = count_flops(lambda s=size: checkpointed_backward(model, x, s))
        costs.append(CheckpointingCost(size, math.ceil(len(model.layers) / size),
                                       saved.activation_bytes, flops, flops - plain_flops))
    model.zero_grad(set_to_none=True)  # the gradients these runs left are not the caller's
    return costs


def format_checkpointing_costs(costs: Sequence[CheckpointingCost]) -> str:
    """A text table of checkpointing_costs: segment size, segments, saved bytes, extra FLOPs."""
    if not costs or not all(isinstance(c, CheckpointingCost) for c in costs):
        raise TypeError("costs must be the list of CheckpointingCost that checkpointing_costs "
                        "returned")
    lines = [f"{'segment':>7} {'segments':>8} {'saved bytes':>11} {'extra FLOPs':>11} "
             f"{'extra':>6}"]
    for c in costs:
        size, count = ("none", "-") if c.segment_size is None else (c.segment_size, c.num_segments)
        lines.append(f"{size:>7} {count:>8} {c.saved_bytes:>11} {c.extra_flops:>11} "
                     f"{c.extra_flops / (c.flops - c.extra_flops):>6.0%}")
    return "\n".join(lines)


def gpu_checkpointing_peaks(
    dim: int, num_layers: int, batch_size: int, segment_sizes: Mapping[str, int | None],
    device: torch.device | str,
) -> dict[str, int]:
    """Peak bytes the CUDA allocator sees above a Cruncher's weights and batch, during forward
    and backward, for each named segment size (None: no checkpointing)."""
    device = parse_device(device)
    if device.type != "cuda":
        raise ValueError(f"device must be a CUDA GPU (the peak comes from its allocator), got "
                         f"{device}")
    torch.manual_seed(0)
    model = Cruncher(dim, num_layers).to(device)
    x = torch.randn(batch_size, dim, device=device)
    peaks = {}
    for name, segment in segment_sizes.items():
        model.zero_grad(set_to_none=True)
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        checkpointed_backward(model, x, segment)
        synchronize(device)
        peaks[name] = torch.cuda.max_memory_allocated(device) - start
    return peaks


def checkpointing_peak_bytes(
    dim: int, num_layers: int, batch_size: int, segment_size: int | None = None
) -> int:
    """Peak bytes that model(x).sum().backward() adds to an fp32 Cruncher's weights and x.

    Backward runs through the head, then the segments from the top. At the top layer of segment
    j (1 is the bottom one) it holds the j - 1 segment inputs below it, the segment_size - 1
    activations recomputed for the segment, the incoming and outgoing activation gradients, and
    the weight gradients made so far; the peak is the largest of these moments (plus the head's
    weight gradient and two scalars). No checkpointing (segment_size=None) is the same as
    segments of one layer. Exact when batch_size >= dim; with a smaller batch other moments of
    the backward can be larger.
    """
    segment = 1 if segment_size is None else segment_size
    _check_positive(dim=dim, num_layers=num_layers, batch_size=batch_size, segment_size=segment)
    if num_layers % segment:
        raise ValueError(f"segment_size {segment} does not divide num_layers {num_layers}")
    if batch_size < dim:
        raise ValueError(f"the prediction needs batch_size >= dim (activations at least as large "
                         f"as weight gradients), got batch_size {batch_size} < dim {dim}")
    activation, weight = 4 * batch_size * dim, 4 * dim * dim
    segments = num_layers // segment
    # The head's backward: the segment inputs above x, h_L (the head's input) and its gradient.
    moments = [(segments - 1 + 2) * activation]
    for j in range(1, segments + 1):
        top = j * segment
        gradients = 2 if top > 1 else 1  # layer 1 sends no gradient on: x needs none
        held = (j - 1) + (segment - 1) + gradients
        moments.append(held * activation + (num_layers - top + 1) * weight)
    return max(moments) + 4 * (dim + 2)  # head's weight gradient; the loss and its gradient


def mse_loss(
    model: torch.nn.Module, x: Float[torch.Tensor, "batch dim"], y: Float[torch.Tensor, " batch"]
) -> torch.Tensor:
    """Mean squared error of model(x) against y, computed in fp32 whatever the forward's dtype."""
    _check_inputs(model, x)
    return (_check_target(model(x), y).float() - y).pow(2).mean()


def _check_micro_batches(
    model: object, x: object, y: object, num_micro_batches: object, scale_loss: object
) -> None:
    """accumulate_gradients' arguments: a batch x, y that splits into equal micro-batches."""
    _check_inputs(model, x)
    _check_positive(num_micro_batches=num_micro_batches)
    if not isinstance(scale_loss, bool):
        raise TypeError(f"scale_loss must be True or False, got {scale_loss!r}")
    if not isinstance(y, torch.Tensor) or y.dim() == 0 or y.shape[0] != x.shape[0]:
        got = f"shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"y must hold one target per row of x ({x.shape[0]}), got {got}")
    if x.shape[0] % num_micro_batches:
        raise ValueError(
            f"a batch of {x.shape[0]} does not split into num_micro_batches={num_micro_batches} "
            "equal micro-batches; pick a number of micro-batches that divides the batch size"
        )


def accumulate_gradients(
    model: torch.nn.Module,
    x: Float[torch.Tensor, "batch dim"],
    y: Float[torch.Tensor, " batch"],
    num_micro_batches: int,
    *,
    scale_loss: bool = True,
) -> float:
    """Add the batch's gradient into .grad one micro-batch at a time; returns the batch's mean loss.

    Each micro-batch's loss is divided by num_micro_batches (scale_loss=False leaves that out, the
    classic bug), so the sum of the micro-batch gradients is the gradient of the full-batch mean.
    """
    _check_micro_batches(model, x, y, num_micro_batches, scale_loss)
    total = 0.0
    for x_micro, y_micro in zip(x.chunk(num_micro_batches), y.chunk(num_micro_batches)):
        loss = mse_loss(model, x_micro, y_micro)
        (loss / num_micro_batches if scale_loss else loss).backward()
        total += loss.item() / num_micro_batches
    return total


def time_accumulation(
    model: torch.nn.Module,
    x: Float[torch.Tensor, "batch dim"],
    y: Float[torch.Tensor, " batch"],
    micro_batches: Sequence[int],
    *,
    repeats: int = 11,
) -> dict[int, Timing]:
    """Timing of accumulate_gradients(model, x, y, k) for each k in micro_batches (on a CPU, on
    one thread: time_it's default, which a busy laptop can give a demo reliably)."""
    timings = {k: time_it(lambda k=k: accumulate_gradients(model, x, y, k), device=x.device,
                          warmup=1, repeats=repeats) for k in micro_batches}
    model.zero_grad(set_to_none=True)
    return timings


# fp8 (e4m3) matmuls need tensor cores of compute capability >= 8.9 (Ada, Hopper, Blackwell);
# FP8, fp8_matmul_supported and scaled_matmul_fp8 live with the other matmuls, in flops.


def quantize_fp8(x: Float[torch.Tensor, "*shape"]) -> tuple[torch.Tensor, torch.Tensor]:
    """x as fp8 e4m3 and its fp32 scale (x ~ x8 * scale): the largest |x| maps to fp8's max."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"quantize_fp8 needs x to be a floating tensor, got {got}")
    if x.numel() == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)}): its scale comes from its largest "
                         "|x|, so quantize a tensor with at least one element")
    if x.element_size() == 1:  # already 8-bit: abs and max have no fp8 kernels
        x = x.float()
    amax = x.abs().max().float()
    if not torch.isfinite(amax):
        raise ValueError("x holds inf or NaN: fp8 has neither, and the scale would be one")
    scale = amax.clamp(min=torch.finfo(torch.float32).tiny) / torch.finfo(FP8).max
    return (x.float() / scale).to(FP8), scale


def fp8_matmul(
    a: Float[torch.Tensor, "m k"], b: Float[torch.Tensor, "k n"]
) -> Float[torch.Tensor, "m n"]:
    """a @ b with both operands quantized to fp8 e4m3 (one scale per tensor), out in bf16."""
    return scaled_matmul_fp8(*quantize_fp8(a), *quantize_fp8(b))


@dataclass(frozen=True)
class PrecisionRun:
    """One precision's training run: median step time (s), peak GPU memory (bytes), losses."""

    precision: str
    step_seconds: float
    step_flops: int
    peak_memory_bytes: int | None  # the run's, batch included; None off CUDA (no allocator)
    losses: list[float]
    step_timing: Timing | None = None  # the timed steps, with their spread (step_seconds: median)

    def __post_init__(self) -> None:
        if not (isinstance(self.step_seconds, (int, float)) and self.step_seconds > 0):
            raise ValueError(f"step_seconds must be a number > 0, got {self.step_seconds!r}")
        if not self.losses:
            raise ValueError("losses must hold at least one loss (one per training step)")

    @property
    def flops_per_second(self) -> float:
        """Achieved FLOP/s of one training step."""
        return self.step_flops / self.step_seconds


def _train_with_precision(
    precision: str,
    x: torch.Tensor,
    y: torch.Tensor,
    num_layers: int,
    num_steps: int,
    lr: float,
    seed: int,
    repeats: int,
    baseline: int,
) -> PrecisionRun:
    device = x.device
    autocast_dtype = _AUTOCAST_DTYPES.get(precision)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(seed)  # the same initial weights for every precision
    model = Cruncher(x.shape[1], num_layers).to(device)
    optimizer = SGD(model.parameters(), lr=lr)
    # fp16's narrow range needs loss scaling; a disabled scaler passes everything through.
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                            enabled=autocast_dtype is not None):
            prediction = model(x)
        loss = (prediction.float() - y).pow(2).mean()  # the loss in fp32
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    losses = [step() for _ in range(num_steps)]  # tensors: no sync inside the loop
    timing = time_it(step, device=device, warmup=1, repeats=repeats)  # on a CPU, one thread
    peak = torch.cuda.max_memory_allocated(device) - baseline if device.type == "cuda" else None
    flops = count_flops(step)
    return PrecisionRun(precision, timing.median, flops, peak, [float(v) for v in losses], timing)


def _check_precisions(precisions: object, device: torch.device) -> list[str]:
    """`precisions` as a list, each a name in PRECISIONS that runs on `device`."""
    if isinstance(precisions, str):  # a string would be read letter by letter
        raise TypeError(f"precisions must be a list of names, e.g. [{precisions!r}], not the "
                        f"string {precisions!r}")
    if not isinstance(precisions, Iterable):
        raise TypeError(f"precisions must be a list of names from {PRECISIONS}, got {precisions!r}")
    precisions = list(precisions)
    if not precisions:
        raise ValueError(f"precisions must name at least one of {PRECISIONS}")
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r} in precisions; use some of "
                             f"{PRECISIONS}")
        if precision == "tf32" and device.type != "cuda":
            raise ValueError("tf32 is a tensor-core format: it needs a CUDA GPU (Ampere or newer)")
    return precisions


def compare_precisions(
    dim: int,
    num_layers: int,
    batch_size: int,
    *,
    precisions: Iterable[str] = PRECISIONS,
    num_steps: int = 20,
    lr: float = 0.02,
    repeats: int = 5,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> list[PrecisionRun]:
    """Train the same Cruncher on the same batch in each precision: step time, memory, losses.

    `precisions` is a list of names from PRECISIONS; a single string is refused (pass ['bf16']).
    """
    _check_positive(dim=dim, num_layers=num_layers, batch_size=batch_size, num_steps=num_steps,
                    repeats=repeats)
    _check_size("seed", seed, minimum=0)
    _positive("lr", lr)
    device = get_device() if device is None else parse_device(device)
    precisions = _check_precisions(precisions, device)
    baseline = 0
    if device.type == "cuda":
        # What other cells left on the GPU, and cuBLAS's workspaces, are not the runs' memory.
        warm_up_cublas(device)
        baseline = torch.cuda.memory_allocated(device)
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch_size, dim, generator=generator).to(device)
    y = torch.randn(batch_size, generator=generator).to(device)
    previous = torch.get_float32_matmul_precision()
    runs = []
    try:
        for precision in precisions:
            # "highest" keeps fp32 matmuls in fp32; "high" lets them use TF32 tensor cores.
            torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
            runs.append(_train_with_precision(precision, x, y, num_layers, num_steps, lr, seed,
                                              repeats, baseline))
    finally:
        torch.set_float32_matmul_precision(previous)
    return runs


def compare_precisions_needs(
    dim: int, num_layers: int, batch_size: int, *, num_steps: int = 20, repeats: int = 5
) -> Needs:
    """What compare_precisions needs from a GPU at these sizes: the peak bytes of an fp32 SGD
    step (notebook 06's timeline), and the FLOPs of its fp32 run (num_steps, a warm-up step,
    `repeats` timed steps and one counted step, each 6·B·P − 2·B·D², as x needs no gradient)."""
    _check_positive(dim=dim, num_layers=num_layers, batch_size=batch_size, num_steps=num_steps,
                    repeats=repeats)
    step_flops = (6 * batch_size * cruncher_num_parameters(dim, num_layers)
                  - 2 * batch_size * dim * dim)
    return Needs(memory_bytes=predict_peak_training_memory(dim, num_layers, batch_size, "sgd"),
                 fp32_flops=(num_steps + 1 + repeats + 1) * step_flops)


def format_precision_table(runs: list[PrecisionRun], gpu_name: str | None = None) -> str:
    """A text table of compare_precisions' runs: ms per step, speed-up over the first, MFU, memory."""
    if not runs:
        raise ValueError("no runs to show: pass the list compare_precisions returned")
    if not all(isinstance(run, PrecisionRun) for run in runs):
        raise TypeError("runs must be the list of PrecisionRun that compare_precisions returned")
    gpu = current_gpu() if gpu_name is None else lookup_gpu(gpu_name)
    header = (f"{'precision':<9} {'ms/step':>9} {'speed-up':>8} {'TFLOP/s':>8} {'MFU':>6} "
              f"{'peak GB':>8} {'final loss':>10}")
    lines = [header]
    for run in runs:
        mfu = "-"
        if gpu is not None and run.precision in gpu.dense_flops:  # MFU against that dtype's peak
            mfu = f"{run.flops_per_second / peak_flops(gpu, run.precision):.0%}"
        memory = "-" if run.peak_memory_bytes is None else f"{run.peak_memory_bytes / GB:.2f}"
        lines.append(
            f"{run.precision:<9} {run.step_seconds * 1e3:>9.2f} "
            f"{runs[0].step_seconds / run.step_seconds:>7.2f}x "
            f"{run.flops_per_second / 1e12:>8.2f} {mfu:>6} {memory:>8} {run.losses[-1]:>10.4f}"
        )
    return "\n".join(lines)


def format_step_timings(runs: Sequence[PrecisionRun]) -> str:
    """Each run's step time as "name step: median (quartiles)", then how each later run compares
    with the first (computed from both spreads, so it cannot contradict them)."""
    if not runs or any(not isinstance(run, PrecisionRun) or run.step_timing is None
                       for run in runs):
        raise ValueError("runs must be compare_precisions' runs, each with its step_timing")
    lines = [f"{run.precision} step: {run.step_timing.format('ms')}" for run in runs]
    base = runs[0]
    lines += [compare_timings(f"{run.precision} step", run.step_timing,
                              f"{base.precision} step", base.step_timing) for run in runs[1:]]
    return "\n".join(lines)


def plot_precision_runs(runs: Sequence[PrecisionRun], title: str) -> Figure:
    """Figure: the runs' loss curves overlaid, and each one's loss relative to the first run's."""
    import matplotlib.pyplot as plt

    if not runs:
        raise ValueError("no runs to plot: pass the list compare_precisions returned")
    fig, (ax_loss, ax_diff) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = range(1, len(runs[0].losses) + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    base = runs[0]
    for run, color in zip(runs, colors):
        ax_loss.plot(steps, run.losses, label=run.precision, color=color,
                     linewidth=4 if run is base else 2, linestyle="-" if run is base else "--")
        if run is not base:
            difference = [100 * (v / b - 1) for v, b in zip(run.losses, base.losses)]
            ax_diff.plot(steps, difference, label=run.precision, color=color)
    ax_loss.set(xlabel="training step", ylabel="loss (mean squared error)",
                title="loss curves, overlaid")
    ax_diff.axhline(0, color="black", linewidth=1)
    ax_diff.set(xlabel="training step", ylabel=f"loss relative to {base.precision} (%)",
                title=f"difference from {base.precision}")
    for ax in (ax_loss, ax_diff):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Fp8Comparison:
    """An n x n matmul in bf16 and in fp8 (one scale per tensor): time and relative error."""

    n: int
    bf16: Timing
    fp8: Timing
    bf16_error: float  # relative to the same product in fp32
    fp8_error: float

    @property
    def flops(self) -> int:
        """FLOPs of one n x n x n matmul."""
        return 2 * self.n**3


def compare_fp8_matmul(n: int, device: torch.device | str, repeats: int = 15) -> Fp8Comparison:
    """Time an (n x n) @ (n x n) matmul in bf16 and in fp8 on a GPU with fp8 tensor cores."""
    _check_positive(n=n, repeats=repeats)
    device = parse_device(device)
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=generator)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=generator)
    a8, scale_a = quantize_fp8(a)
    b8, scale_b = quantize_fp8(b)
    b8 = b8.t().contiguous().t()  # the column-major layout the fp8 kernel wants, made once
    bf16 = time_it(lambda: a @ b, device=device, repeats=repeats)
    fp8 = time_it(lambda: scaled_matmul_fp8(a8, scale_a, b8, scale_b), device=device,
                  repeats=repeats)
    exact = a.float() @ b.float()

    def error(product: torch.Tensor) -> float:
        return float((product.float() - exact).norm() / exact.norm())

    return Fp8Comparison(n, bf16, fp8, error(a @ b),
                         error(scaled_matmul_fp8(a8, scale_a, b8, scale_b)))


# ---------------------------------------------------------------------------------------------
# "Check yourself"
# ---------------------------------------------------------------------------------------------

EXERCISES = Exercises("08")

# Exercise 1: a Cruncher's activations, saved in fp32 and under bf16 autocast.
_B1, _D1, _L1 = 2048, 4096, 8
_ELEMENTS1 = (_L1 + 1) * _B1 * _D1  # x, then each layer's output: L + 1 activations of B x D


@EXERCISES.checker(1, "activation bytes saved by bf16",
                   wants="a number of bytes, within 2% (3 significant figures are enough)")
def _check_bf16_activations(answer: Any) -> Feedback:
    return check_number(
        answer, _ELEMENTS1 * (4 - 2), unit="bytes",
        hints={
            _ELEMENTS1 * 4: "that is what fp32 stores; the question asks how many bytes bf16 "
            "saves: 4 - 2 bytes a number.",
            _L1 * _B1 * _D1 * (4 - 2): "count the input x too: a model with L layers saves L + 1 "
            "activations (x, then one per layer; the last one feeds the head).",
            _ELEMENTS1: "that is the number of activation elements; give bytes: each element is "
            "2 bytes smaller in bf16 (4 - 2).",
        },
    )


# Exercise 2: the smallest power-of-two loss scale that makes a gradient a normal number.
_TINY_GRADIENT = 3e-8
_FP16_NORMAL = torch.finfo(torch.float16).smallest_normal  # 2^-14
_FP16_SUBNORMAL = _FP16_NORMAL * torch.finfo(torch.float16).eps  # 2^-24
_BF16_NORMAL = torch.finfo(torch.bfloat16).smallest_normal  # 2^-126, as fp32


def _smallest_scale(value: float, threshold: float) -> int:
    """The smallest power of two S with value * S >= threshold."""
    scale = 1
    while value * scale < threshold:
        scale *= 2
    return scale


_FP16_SCALE = _smallest_scale(_TINY_GRADIENT, _FP16_NORMAL)  # 2048
_BF16_SCALE = _smallest_scale(_TINY_GRADIENT, _BF16_NORMAL)  # 1
# Typical slips: the exponent rounded down, not up; the subnormal limit instead of the normal one.
_FP16_ROUNDED_DOWN = 2 ** math.floor(math.log2(_FP16_NORMAL / _TINY_GRADIENT))
_FP16_SUBNORMAL_SCALE = _smallest_scale(_TINY_GRADIENT, _FP16_SUBNORMAL)
_FP16_SCALE_HINTS = {
    _FP16_ROUNDED_DOWN: f"3e-8 * {_FP16_ROUNDED_DOWN} = {_TINY_GRADIENT * _FP16_ROUNDED_DOWN:.2g} "
    f"is still below fp16's smallest normal, 2^-14 = {_FP16_NORMAL:.2g}: round the exponent up.",
    _FP16_SUBNORMAL_SCALE: "that makes 3e-8 a subnormal fp16 number (above 2^-24), not a normal "
    "one: the smallest normal is torch.finfo(torch.float16).smallest_normal, 2^-14.",
}


def _as_scale(value: Any, which: str) -> float | Feedback:
    """One scale of the pair as a number, or the verdict that says why it is not one."""
    number = as_number(value)
    if isinstance(number, Feedback):
        return wrong(f"the {which} scale: {number.message.removeprefix('not quite. ')}")
    return number


@EXERCISES.checker(2, "loss scale for a tiny gradient",
                   wants="a pair (S_fp16, S_bf16) of powers of two, exactly")
def _check_loss_scale(answer: Any) -> Feedback:
    if isinstance(answer, (tuple, list)) and len(answer) == 2 and all(a is None for a in answer):
        return UNANSWERED  # the student's stub, (None, None)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return wrong("answer with a pair: (scale for fp16, scale for bf16).")
    if any(a is None for a in answer):
        return wrong("fill in both scales.")
    fp16_scale, bf16_scale = (_as_scale(a, which) for a, which in zip(answer, ("fp16", "bf16")))
    for scale in (fp16_scale, bf16_scale):
        if isinstance(scale, Feedback):
            return scale
    exponents = (math.log2(_FP16_SCALE), math.log2(_BF16_SCALE))
    if (fp16_scale, bf16_scale) == exponents:
        return wrong("those are the exponents; give the scales themselves: S = 2^exponent.")
    for scale, which in ((fp16_scale, "fp16"), (bf16_scale, "bf16")):
        if scale <= 0 or not math.log2(scale).is_integer():
            return wrong(f"the {which} scale must be a power of two (1, 2, 4, ...), got {scale:g}.")
    if fp16_scale != _FP16_SCALE:
        return wrong(_FP16_SCALE_HINTS.get(
            fp16_scale, "find the smallest power of two S with 3e-8 * S >= 2^-14 (fp16's "
            "smallest normal, torch.finfo(torch.float16).smallest_normal)."))
    if bf16_scale != _BF16_SCALE:
        return wrong("bf16 has fp32's 8 exponent bits: its smallest normal is 2^-126, so 3e-8 "
                     "needs no scaling at all (S = 1).")
    return CORRECT


# Exercise 3: GradScaler defaults, 3 overflowing steps, then 4000 clean ones.
_INITIAL_SCALE, _BACKOFF, _GROWTH, _INTERVAL = 2.0**16, 0.5, 2.0, 2000
_OVERFLOWS, _CLEAN_STEPS = 3, 4000


def _scale_after(overflows: int, growths: int) -> float:
    """The scale after `overflows` halvings and `growths` doublings."""
    return _INITIAL_SCALE * _BACKOFF**overflows * _GROWTH**growths


@EXERCISES.checker(3, "the scaler's scale after overflows",
                   wants="a number (a power of two), exactly")
def _check_scale_after(answer: Any) -> Feedback:
    growths = _CLEAN_STEPS // _INTERVAL  # once per growth_interval clean steps in a row
    return check_number(
        answer, _scale_after(_OVERFLOWS, growths), rel_tol=0,
        hints={
            _scale_after(_OVERFLOWS, 0): "the 4000 clean steps after the overflows grow the "
            "scale: x2 after every 2000 steps in a row without inf/NaN.",
            _scale_after(_OVERFLOWS, 1): "growth is once per growth_interval = 2000 clean "
            "steps: 4000 clean steps double it twice.",
            _scale_after(0, growths): "the 3 overflows halve the scale 3 times before it grows.",
            # 2^16 is where every mix of as many halvings as doublings ends: say what it is.
            _scale_after(0, 0): "that is the initial scale, 2^16: each overflow halves it "
            "(backoff_factor=0.5), and every 2000 clean steps in a row double it.",
        },
    )


# Exercise 4: a fp32 Cruncher checkpointed in segments of 8 layers.
_B4, _D4, _L4, _S4 = 1024, 8192, 48, 8
_SEGMENTS4 = _L4 // _S4


def _checked_part(answer: Any, expected: float, hints: dict[float, str], what: str) -> Feedback:
    """check_number on one half of the pair, its message prefixed by which half it is."""
    verdict = check_number(answer, expected, unit=what, hints=hints)
    if verdict.correct is True:
        return verdict
    return Feedback(verdict.correct, f"not quite. the {what}: "
                                     f"{verdict.message.removeprefix('not quite. ')}")


@EXERCISES.checker(4, "checkpointing: memory kept and FLOPs added",
                   wants="a pair (bytes, FLOPs), each within 2% (3 significant figures)")
def _check_checkpointing(answer: Any) -> Feedback:
    if isinstance(answer, (tuple, list)) and len(answer) == 2 and all(a is None for a in answer):
        return UNANSWERED  # the student's stub, (None, None)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return wrong("answer with a pair: (activation bytes saved for backward, extra FLOPs).")
    kept, extra = answer
    if kept is None or extra is None:
        return wrong("fill in both: the bytes and the FLOPs.")
    activation = _B4 * _D4 * 4  # one fp32 activation of B x D
    verdict = _checked_part(kept, (_SEGMENTS4 + 1) * activation, what="bytes", hints={
        _SEGMENTS4 * activation: "the head's input (the last layer's output) is saved too: it "
        "is outside every segment.",
        (_L4 + 1) * activation: "that is without checkpointing: with it, only each segment's "
        "input is kept.",
        (_SEGMENTS4 + 1) * activation // 2: "the model is fp32: 4 bytes a number, not 2.",
        (_S4 + 1) * activation: "there are L / s = 6 segments of s = 8 layers, not 8 segments.",
    })
    if verdict.correct is not True:
        return verdict
    layer = 2 * _B4 * _D4 * _D4  # the forward FLOPs of one D x D layer on the batch
    return _checked_part(extra, layer * (_L4 - _SEGMENTS4), what="FLOPs", hints={
        layer * _L4: "PyTorch's non-reentrant checkpoint stops recomputing a segment once it "
        "has what backward needs: the last matmul of each segment is never rerun.",
        3 * layer * _L4: "only the forward is recomputed, not the backward.",
        layer * (_L4 - _SEGMENTS4) // 2: "a matmul does a multiply and an add per term: "
        "2 * B * D * D FLOPs a layer, not B * D * D.",
        layer * (_L4 - _S4): "each of the L / s = 6 segments skips its last layer: L - 6 = 42 "
        "layers are rerun, not L - s = 40.",
    })


# Exercise 5: gradient accumulation, checked against the full batch and against typical slips.
_K5 = 3


def _accumulation_problem() -> tuple[Cruncher, torch.Tensor, torch.Tensor]:
    """A small Cruncher and a batch of 12, drawn without touching the notebook's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Cruncher(8, 2)
        x, y = torch.randn(12, 8), torch.randn(12)
    return model, x, y


def _gradients_of(model: torch.nn.Module, fn: Callable[[], Any]) -> list[torch.Tensor]:
    """The .grad of every parameter after fn(), starting from none."""
    model.zero_grad(set_to_none=True)
    fn()
    return [p.grad.clone() for p in model.parameters()]


def _zeroing_each_micro_batch(model: Cruncher, x: torch.Tensor, y: torch.Tensor) -> None:
    """The slip of zeroing .grad inside the loop: only the last micro-batch's gradient is left."""
    for x_micro, y_micro in zip(x.chunk(_K5), y.chunk(_K5)):
        model.zero_grad(set_to_none=True)
        (mse_loss(model, x_micro, y_micro) / _K5).backward()


def _dividing_twice(model: Cruncher, x: torch.Tensor, y: torch.Tensor) -> None:
    """The slip of dividing each micro-batch's mean loss by k twice."""
    for x_micro, y_micro in zip(x.chunk(_K5), y.chunk(_K5)):
        (mse_loss(model, x_micro, y_micro) / _K5 / _K5).backward()


_ACCUMULATION_SLIPS = (
    (lambda m, x, y: accumulate_gradients(m, x, y, _K5, scale_loss=False),
     "the gradient is 3x too large: divide each micro-batch's loss by the number of "
     "micro-batches before backward()."),
    (_dividing_twice, "the gradient is 3x too small: you divided by the number of micro-batches "
     "twice (mse_loss already averages within a micro-batch)."),
    (_zeroing_each_micro_batch, "only the last micro-batch's gradient is left: do not zero .grad "
     "between micro-batches (backward adds into it)."),
)


@EXERCISES.checker(5, "gradient accumulation with the right loss scaling",
                   wants="a function (model, x, y, num_micro_batches) -> the batch's mean loss "
                   "(a float), leaving the full batch's gradient in .grad")
def _check_accumulate(answer: Any) -> Feedback:
    if not callable(answer):
        return wrong("pass your function itself (without calling it).")
    model, x, y = _accumulation_problem()
    reference = _gradients_of(model, lambda: mse_loss(model, x, y).backward())
    full_loss = mse_loss(model, x, y).item()
    model.zero_grad(set_to_none=True)
    try:
        result = answer(model, x, y, _K5)
    except Exception as e:  # noqa: BLE001 (the student's function: say what it raised)
        return wrong(f"my_accumulate(model, x, y, 3) raised {type(e).__name__}: {e}.")
    grads = [p.grad for p in model.parameters()]
    if all(g is None for g in grads):
        if result is None:
            return UNANSWERED  # the stub: nothing computed, nothing returned
        return wrong("no gradient reached the parameters: call .backward() on each micro-batch's "
                     "loss.")
    if any(g is None for g in grads):
        return wrong("some parameters have no gradient: run every micro-batch through the whole "
                     "model.")

    def close(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return all(torch.allclose(g, r, rtol=1e-4, atol=1e-6) for g, r in zip(a, b))

    if not close(grads, reference):
        for make_slip, hint in _ACCUMULATION_SLIPS:
            if close(grads, _gradients_of(model, lambda f=make_slip: f(model, x, y))):
                return wrong(hint)
        return wrong("the gradient differs from the full batch's: split x and y the same way, "
                     "divide each micro-batch's loss by their number, zero nothing in between.")
    if result is None:
        return wrong("the gradients are right; now return the full batch's mean loss as a float.")
    loss = as_number(result)
    if isinstance(loss, Feedback):
        return wrong(f"the gradients are right; the loss you return: "
                     f"{loss.message.removeprefix('not quite. ')}")
    if math.isclose(loss, _K5 * full_loss, rel_tol=1e-4):
        return wrong("the gradients are right; you returned the sum of the micro-batch losses: "
                     "the batch's mean loss is their mean.")
    if not math.isclose(loss, full_loss, rel_tol=1e-4):
        return wrong("the gradients are right; return the full batch's mean loss as a float.")
    return CORRECT
