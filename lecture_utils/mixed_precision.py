"""Notebook 08: mixed precision, activation checkpointing and gradient accumulation.

The recipe this module measures: run the matmul-heavy forward and backward in a 16-bit (or 8-bit)
format, keep parameters, gradients and optimizer state in fp32. Memory is in bytes, time in
seconds, work in FLOPs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch.utils.checkpoint import checkpoint

from lecture_utils.device import Needs, get_device, parse_device, warm_up_cublas
from lecture_utils.exercises import CORRECT, UNANSWERED, Exercises, check_number, wrong
from lecture_utils.flops import FP8, benchmark, count_flops, scaled_matmul_fp8
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
    seconds = benchmark(step, device=device, warmup=1, repeats=repeats)
    peak = torch.cuda.max_memory_allocated(device) - baseline if device.type == "cuda" else None
    flops = count_flops(step)
    return PrecisionRun(precision, seconds, flops, peak, [float(v) for v in losses])


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


# ---------------------------------------------------------------------------------------------
# "Check yourself"
# ---------------------------------------------------------------------------------------------

EXERCISES = Exercises("08")


@EXERCISES.checker(1, "activation bytes saved by bf16")
def _check_bf16_activations(answer: Any) -> Any:
    batch, dim, layers = 2048, 4096, 8
    fp32 = (layers + 1) * batch * dim * 4
    return check_number(
        answer, fp32 // 2, unit="bytes",
        hints={
            fp32: "that is what fp32 stores; the question asks how many bytes bf16 saves.",
            layers * batch * dim * 2: "count the input x too: a model with L layers saves L + 1 "
            "activations (x, then one per layer, the last one feeds the head).",
            (layers + 1) * batch * dim: "each bf16 element is 2 bytes smaller than fp32 (4 - 2), "
            "not 1.",
        },
    )


@EXERCISES.checker(2, "loss scale for a tiny gradient")
def _check_loss_scale(answer: Any) -> Any:
    if answer == (None, None):
        return UNANSWERED
    if not isinstance(answer, tuple) or len(answer) != 2:
        return wrong("answer with a pair: (scale for fp16, scale for bf16).")
    fp16_scale, bf16_scale = answer
    if fp16_scale is None or bf16_scale is None:
        return wrong("fill in both scales.")
    if fp16_scale == 1024:
        return wrong("3e-8 * 2^10 = 3.1e-5 is still below fp16's smallest normal, 2^-14 = 6.1e-5.")
    if fp16_scale != 2048:
        return wrong("find the smallest power of two S with 3e-8 * S >= 2^-14 "
                     "(fp16's smallest normal, torch.finfo(torch.float16).smallest_normal).")
    if bf16_scale != 1:
        return wrong("bf16 has fp32's 8 exponent bits: its smallest normal is 2^-126, so 3e-8 "
                     "needs no scaling at all (S = 1).")
    return CORRECT


@EXERCISES.checker(3, "the scaler's scale after overflows")
def _check_scale_after(answer: Any) -> Any:
    # 3 overflowing steps halve it 3 times; 4000 clean steps double it once per 2000.
    return check_number(
        answer, 2.0**16 * 0.5**3 * 2**2,
        hints={
            2.0**16 * 0.5**3: "the 4000 clean steps after the overflows grow the scale: "
            "x2 after every 2000 steps in a row without inf/NaN.",
            2.0**16 * 0.5**3 * 2**1: "growth is once per growth_interval = 2000 clean steps: "
            "4000 clean steps double it twice.",
            2.0**16: "each overflowing step multiplies the scale by backoff_factor = 0.5.",
            2.0**16 * 4: "the 3 overflows halve the scale 3 times before it grows.",
        },
    )


@EXERCISES.checker(4, "checkpointing: memory kept and FLOPs added")
def _check_checkpointing(answer: Any) -> Any:
    batch, dim, layers, segment = 1024, 8192, 48, 8
    if answer == (None, None):
        return UNANSWERED
    if not isinstance(answer, tuple) or len(answer) != 2 or None in answer:
        return wrong("answer with a pair: (activation bytes saved for backward, extra FLOPs).")
    kept, extra = answer
    segments = layers // segment
    verdict = check_number(
        kept, (segments + 1) * batch * dim * 4, unit="bytes",
        hints={
            segments * batch * dim * 4: "the head's input (the last layer's output) is saved "
            "too: it is outside every segment.",
            (layers + 1) * batch * dim * 4: "that is without checkpointing: with it, only each "
            "segment's input is kept.",
        },
    )
    if verdict is not CORRECT:
        return wrong(f"the bytes: {verdict.message.removeprefix('not quite. ')}")
    return check_number(
        extra, 2 * batch * dim * dim * (layers - segments), unit="FLOPs",
        hints={
            2 * batch * dim * dim * layers: "PyTorch's non-reentrant checkpoint stops recomputing "
            "a segment once it has what backward needs: the last matmul of each segment is "
            "never rerun.",
            6 * batch * dim * dim * layers: "only the forward is recomputed, not the backward.",
        },
    )


@EXERCISES.checker(5, "gradient accumulation with the right loss scaling")
def _check_accumulate(answer: Any) -> Any:
    if not callable(answer):
        return wrong("pass your function itself (without calling it).")
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random state alone
        torch.manual_seed(0)
        model = Cruncher(8, 2)
        x, y = torch.randn(12, 8), torch.randn(12)
    mse_loss(model, x, y).backward()
    reference = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    result = answer(model, x, y, 3)
    if result is None:
        return UNANSWERED
    grads = [p.grad for p in model.parameters()]
    if any(g is None for g in grads):
        return wrong("no gradient reached the parameters: call .backward() on each micro-batch loss.")
    ratio = float(sum((g * r).sum() for g, r in zip(grads, reference))
                  / sum((r * r).sum() for r in reference))
    if all(torch.allclose(g, r, rtol=1e-4, atol=1e-6) for g, r in zip(grads, reference)):
        if not math.isclose(float(result), mse_loss(model, x, y).item(), rel_tol=1e-4):
            return wrong("the gradients are right; return the full batch's mean loss as a float.")
        return CORRECT
    if math.isclose(ratio, 3, rel_tol=1e-3):
        return wrong("the gradient is 3x too large: divide each micro-batch loss by the number of "
                     "micro-batches before backward().")
    if math.isclose(ratio, 1 / 3, rel_tol=1e-3):
        return wrong("the gradient is 3x too small: you divided by the number of micro-batches "
                     "twice (mse_loss already averages within a micro-batch).")
    return wrong(f"the gradient differs from the full batch's (it is {ratio:.3g}x it along the "
                 "true direction); split x and y the same way and zero nothing in between.")
