"""Notebook 00: napkin math for training time and for the largest model that fits.

Also a command line for the same questions (`napkin ...` once the course is installed, or
`python -m lecture_utils.napkin ...`):

    napkin train-time --params 70e9 --tokens 15e12 --gpus 1024
    napkin max-params --gpus 8 --gpu "H100 SXM"
    napkin transformer --preset llama3-8b --seq-len 8192 --gpu H200

train-time and max-params import neither torch nor matplotlib, so they answer at once.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from dataclasses import dataclass, fields
from pathlib import Path

from lecture_utils.exercises import CORRECT, Exercises, Feedback, check_number
from lecture_utils.hardware import (
    DTYPES,
    GB,
    GIB,
    GPUS,
    GPUSpec,
    UnknownGPUError,
    gpu_by_name,
    normalize_dtype,
    peak_flops,
)

SECONDS_PER_DAY = 24 * 60 * 60

# FLOPs per parameter per token: a matmul does one multiply and one add per weight and token
# in the forward pass (2); the backward pass does two matmuls of the same size, one for the
# weight gradient and one for the activation gradient (4).
FORWARD_FLOPS_PER_PARAM_TOKEN = 2
BACKWARD_FLOPS_PER_PARAM_TOKEN = 4
TRAINING_FLOPS_PER_PARAM_TOKEN = FORWARD_FLOPS_PER_PARAM_TOKEN + BACKWARD_FLOPS_PER_PARAM_TOKEN

# Tensors the size of each parameter that an optimizer keeps between steps.
OPTIMIZER_STATES = {
    "sgd": 0,
    "momentum": 1,  # the momentum buffer
    "adagrad": 1,  # the sum of squared gradients
    "rmsprop": 1,  # the running average of squared gradients
    "adam": 2,  # the running averages of gradients and of squared gradients
    "adamw": 2,  # Adam's two, with decoupled weight decay (no extra state)
}

# How the bytes of one parameter are held; optimizer state is fp32 in every recipe.
#   fp32              weights, gradients and state all in float32
#   mixed             fp32 master weights and gradients, plus a bf16 copy of the weights that
#                     the forward and backward passes read (the common bf16 recipe)
#   mixed_bf16_grads  the same with the gradients kept only in bf16 (the ZeRO paper's accounting)
PRECISIONS = ("fp32", "mixed", "mixed_bf16_grads")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, "
                         f"got {value}")
    return value


def training_flops(num_parameters: float, num_tokens: float) -> float:
    """FLOPs to train a dense model: 6 x parameters x tokens."""
    _positive("num_parameters", num_parameters)
    _positive("num_tokens", num_tokens)
    return TRAINING_FLOPS_PER_PARAM_TOKEN * num_parameters * num_tokens


def training_days(
    num_parameters: float,
    num_tokens: float,
    num_gpus: int,
    gpu: str | GPUSpec = "H100 SXM",
    dtype: str = "bf16",
    mfu: float = 0.5,
) -> float:
    """Days to train on `num_gpus` GPUs running at `mfu` of their dense `dtype` peak."""
    _positive("num_gpus", num_gpus)
    _positive("mfu", mfu)
    if mfu > 1:
        raise ValueError(f"mfu is a fraction of the peak, at most 1, got {mfu}")
    flops_per_day = num_gpus * peak_flops(gpu, dtype) * mfu * SECONDS_PER_DAY
    return training_flops(num_parameters, num_tokens) / flops_per_day


@dataclass(frozen=True)
class BytesPerParameter:
    """Bytes each parameter costs in training memory, by what holds them (activations excluded)."""

    weights: int  # fp32 weights: the master copy under mixed precision
    weights_copy: int  # the bf16 copy the matmuls read (mixed precision only)
    gradients: int
    optimizer_state: int

    @property
    def total(self) -> int:
        """Bytes per parameter, all parts together."""
        return self.weights + self.weights_copy + self.gradients + self.optimizer_state


def bytes_per_parameter(optimizer: str = "adamw", precision: str = "fp32") -> BytesPerParameter:
    """Training bytes per parameter for `optimizer` under one of the PRECISIONS recipes."""
    key = optimizer.lower() if isinstance(optimizer, str) else optimizer
    if key not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {optimizer!r}; use one of {sorted(OPTIMIZER_STATES)}")
    _check_precision(precision)
    return BytesPerParameter(
        weights=4,
        weights_copy=0 if precision == "fp32" else 2,
        gradients=2 if precision == "mixed_bf16_grads" else 4,
        optimizer_state=4 * OPTIMIZER_STATES[key],
    )


ZERO_STAGES = (0, 1, 2, 3)


def sharded_parts(zero_stage: int, precision: str = "fp32") -> tuple[str, ...]:
    """Which parts of the training state are split over the GPUs at `zero_stage` (ZeRO paper)."""
    _check_stage(zero_stage)
    _check_precision(precision)
    # Stage 1 shards what only the optimizer reads: its state and, under mixed precision, the
    # fp32 master weights. Stage 2 adds the gradients; stage 3 the weights the model computes
    # with. Under fp32 the master weights are those weights, so they wait for stage 3.
    order = ["optimizer_state"]
    if precision != "fp32":
        order.append("weights")
    order.append("gradients")
    order.append("weights" if precision == "fp32" else "weights_copy")
    count = {0: 0, 1: len(order) - 2, 2: len(order) - 1, 3: len(order)}[zero_stage]
    return tuple(order[:count])


def _check_stage(zero_stage: object) -> None:
    if not isinstance(zero_stage, int) or isinstance(zero_stage, bool) \
            or zero_stage not in ZERO_STAGES:
        raise ValueError(f"zero_stage must be one of {ZERO_STAGES} (0 = plain DDP), "
                         f"got {zero_stage!r}")


def _check_precision(precision: object) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {PRECISIONS}")


def max_parameters(num_gpus: int, memory_per_gpu: float, bytes_per_param: float) -> float:
    """Largest parameter count whose training state fits in memory (bytes), activations ignored."""
    _positive("num_gpus", num_gpus)
    _positive("memory_per_gpu", memory_per_gpu)
    _positive("bytes_per_param", bytes_per_param)
    return num_gpus * memory_per_gpu / bytes_per_param


# What each ZeRO stage splits over the GPUs, as max-params prints it.
_ZERO_SPLITS = (
    "DDP, nothing split", "ZeRO-1, optimizer state split",
    "ZeRO-2, state and gradients split", "ZeRO-3/FSDP, everything split",
)


def _max_parameters_zero(num_gpus: int, memory_per_gpu: float, zero_stage: int,
                         optimizer: str, precision: str) -> float:
    """Largest parameter count whose training state fits on each GPU (bytes) at `zero_stage`."""
    per_param = bytes_per_parameter(optimizer, precision)
    split = sharded_parts(zero_stage, precision)
    per_gpu = sum(getattr(per_param, f.name) / (num_gpus if f.name in split else 1)
                  for f in fields(BytesPerParameter))
    return memory_per_gpu / per_gpu


# Printed lines stay within this many characters, as the exercise verdicts do.
OUTPUT_WIDTH = 88

# The names of lecture_utils.transformer.PRESETS, so that --help lists them without importing
# torch; a test keeps the two equal.
_PRESET_NAMES = ("gpt2-small", "gpt2-xl", "llama2-7b", "llama3-8b", "llama3-70b")

# Python names in the transformer helpers' messages, and the flags that set them.
_FLAGS = {"seq_len": "--seq-len", "batch": "--batch"}


# argparse types: a bad value is reported as "argument --flag: <message>".
def _number(text: str) -> float:
    """A finite float, or a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number such as 8 or 70e9, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _positive_number(text: str) -> float:
    """A finite float > 0, or a usage error."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    """A whole number >= 1 ("1024" or "1e3"), or a usage error."""
    value = _number(text)
    if value < 1 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return int(value)


def _fraction(text: str) -> float:
    """A fraction in (0, 1], or a usage error."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"must be in (0, 1], got {text}: it is a fraction of the peak, e.g. 0.4")
    return value


def _dtype(text: str) -> str:
    """One of DTYPES (long names such as bfloat16 accepted), or a usage error."""
    try:
        return normalize_dtype(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"unknown dtype {text!r}; use one of {', '.join(DTYPES)}") from None


def _gpu(text: str) -> GPUSpec:
    """The table entry named exactly `text` (case and spaces folded), or a usage error."""
    try:
        return gpu_by_name(text)
    except (UnknownGPUError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    # Installed, the course puts a `napkin` command on the PATH; `python -m` works as well.
    command = Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(
        prog="napkin" if command == "napkin" else "python -m lecture_utils.napkin",
        description="Napkin math for training: how long it takes, and what fits in memory.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gpus = ", ".join(GPUS)

    time = sub.add_parser("train-time", help="days to train a model (6 x params x tokens FLOPs)")
    time.add_argument("--params", type=_positive_number, required=True,
                      help="parameters, e.g. 70e9")
    time.add_argument("--tokens", type=_positive_number, required=True,
                      help="training tokens, e.g. 15e12")
    time.add_argument("--gpus", type=_positive_int, required=True, help="number of GPUs")
    time.add_argument("--gpu", type=_gpu, default="H100 SXM",
                      help=f"GPU type (default H100 SXM): {gpus}")
    time.add_argument("--dtype", type=_dtype, default="bf16",
                      help=f"precision of the matmuls (default bf16): {', '.join(DTYPES)}")
    time.add_argument("--mfu", type=_fraction, default=0.5,
                      help="model FLOPs utilization, in (0, 1] (default 0.5)")

    fit = sub.add_parser("max-params", help="largest model whose training state fits")
    fit.add_argument("--gpus", type=_positive_int, required=True, help="number of GPUs")
    fit.add_argument("--gpu", type=_gpu, default="H100 SXM",
                     help=f"GPU type, for its memory (default H100 SXM): {gpus}")
    fit.add_argument("--memory-gb", type=_positive_number,
                     help="memory per GPU in GB of 1e9 bytes (overrides --gpu)")
    fit.add_argument("--optimizer", type=str.lower, default="adamw",
                     choices=sorted(OPTIMIZER_STATES), help="optimizer (default adamw)")
    fit.add_argument("--precision", default="fp32", choices=PRECISIONS,
                     help="fp32; mixed (fp32 master + bf16 copy); mixed_bf16_grads")
    fit.add_argument("--bytes-per-param", type=_positive_number,
                     help="override the bytes per parameter")
    fit.add_argument("--zero-stage", type=int, default=3, choices=(0, 1, 2, 3),
                     help="what is split over the GPUs: 0 = nothing (plain DDP), 1 = optimizer "
                          "state, 2 = + gradients, 3 = everything (ZeRO-3/FSDP; the default)")

    model = sub.add_parser("transformer", help="a Transformer's parameters, FLOPs and memory")
    model.add_argument("--preset", required=True, choices=_PRESET_NAMES, help="a real model")
    model.add_argument("--seq-len", type=int, help="tokens per sequence (default: its context)")
    model.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    model.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"),
                       help="dtype of activations, KV cache and inference weights (bf16)")
    model.add_argument("--gpu", type=_gpu,
                       help=f"also: how many tokens of KV cache fit on it: {gpus}")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Answer one napkin question from the command line and print the working."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train-time":
            _train_time(parser, args)
        elif args.command == "max-params":
            _max_params(parser, args)
        else:
            # Imported here: it imports torch and matplotlib, and this module.
            from lecture_utils.transformer import describe, preset

            cfg = preset(args.preset)
            seq_len = cfg.context_length if args.seq_len is None else args.seq_len
            print(describe(cfg, args.batch, seq_len, dtype=args.dtype, gpu=args.gpu))
    except (KeyError, ValueError, TypeError) as e:
        name = str(e).split(" ", 1)[0]
        parser.error((f"argument {_FLAGS[name]}: " if name in _FLAGS else "") + str(e))


def _train_time(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Print the days to train, and the GPU and peak it assumed."""
    spec: GPUSpec = args.gpu
    try:
        peak = spec.peak_flops(args.dtype)
    except ValueError as e:
        parser.error(f"argument --dtype: {e}; pick another --dtype or --gpu")
    flops = training_flops(args.params, args.tokens)
    days = training_days(args.params, args.tokens, args.gpus, spec, args.dtype, args.mfu)
    print(f"training FLOPs = 6 x {args.params:.3g} x {args.tokens:.3g} = {flops:.3g}")
    print(f"GPU: {spec.name}, dense {args.dtype} peak {peak / 1e12:,.1f} TFLOP/s "
          "(--gpu and --dtype to change)")
    # Wrapped: a notebook's output area breaks a long line anywhere, even mid-word.
    print(textwrap.fill(f"source: {spec.source}", width=OUTPUT_WIDTH, initial_indent="  ",
                        subsequent_indent="    "))
    print(f"{args.gpus} x {spec.name} at {args.mfu:.0%} of {peak / 1e12:.1f} TFLOP/s "
          f"(dense {args.dtype}) -> {days:.1f} days")


def _max_params(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Print the largest model whose training state fits, and the memory it assumed."""
    stage = args.zero_stage
    if args.memory_gb is not None:
        memory = args.memory_gb * GB
        where = f"{args.gpus} x {args.memory_gb:g} GB (given by --memory-gb)"
    else:
        memory = args.gpu.memory_bytes
        where = (f"{args.gpus} x {args.gpu.name} ({args.gpu.memory_label} each, datasheet; "
                 "--memory-gb to override)")
    if args.bytes_per_param is not None:
        if stage in (1, 2):
            parser.error("argument --bytes-per-param: --zero-stage 1 or 2 splits some parts of "
                         "the bytes per parameter: give --optimizer and --precision instead of "
                         "--bytes-per-param")
        per_param = args.bytes_per_param
        what = "given by --bytes-per-param"
        params = max_parameters(args.gpus if stage == 3 else 1, memory, per_param)
    else:
        per_param = bytes_per_parameter(args.optimizer, args.precision).total
        what = f"{args.optimizer} in {args.precision}"
        params = _max_parameters_zero(args.gpus, memory, stage, args.optimizer, args.precision)
    print(f"memory: {where}")
    print(f"{per_param:g} bytes per parameter, {what} ({_ZERO_SPLITS[stage]})")
    print(f"  -> {params / 1e9:.1f} B parameters, activations not counted")


# "Check yourself" exercises of notebook 00. Each hint is keyed by the value its mistake gives,
# computed by making that mistake; two mistakes that give the same value share one hint.
EXERCISES = Exercises("00")

# Exercises 1 and 2: a 7B model on 2T tokens; 2 trains it on 256 A100s at MFU 0.4.
EX_PARAMS, EX_TOKENS = 7e9, 2e12
EX2_GPUS, EX2_GPU, EX2_MFU = 256, "A100 80GB", 0.4
# Exercise 4: a 70B model on 1024 H100s at MFU 0.5. Exercise 5: an MFU quoted against 1979.
EX4_PARAMS, EX4_GPUS, EX4_MFU = 70e9, 1024, 0.5
EX5_REPORTED_MFU, EX5_QUOTED_PEAK = 0.35, 1979e12


@EXERCISES.checker(1, "FLOPs to train 7B on 2T tokens",
                   wants="a number of FLOPs, such as 1.23e21, within 2%")
def _check_1(answer: object) -> Feedback:
    n, d = EX_PARAMS, EX_TOKENS
    return check_number(answer, training_flops(n, d), unit="FLOPs", hints={
        FORWARD_FLOPS_PER_PARAM_TOKEN * n * d: "that is the forward pass only (2 FLOPs per "
        "parameter per token); training adds the backward pass (4 more).",
        BACKWARD_FLOPS_PER_PARAM_TOKEN * n * d: "that is the backward pass only (4); training "
        "is forward + backward, 2 + 4 = 6 FLOPs per parameter per token.",
        TRAINING_FLOPS_PER_PARAM_TOKEN / 2 * n * d: "half the FLOPs: that counts the multiplies "
        "only. Each multiply comes with an add, and both are FLOPs: 6 per parameter per token, "
        "not 3.",
        n * d: "each parameter costs 6 FLOPs per token (2 forward + 4 backward), not 1.",
    })


def _ex2_days(flops_per_param_token: float = TRAINING_FLOPS_PER_PARAM_TOKEN,
              peak: float | None = None, mfu_factor: float = 1 / EX2_MFU,
              seconds_per_unit: float = SECONDS_PER_DAY) -> float:
    """Exercise 2's answer in days, or a mistaken one: each argument is a factor to get wrong."""
    flops = flops_per_param_token * EX_PARAMS * EX_TOKENS
    peak = peak_flops(EX2_GPU, "bf16") if peak is None else peak
    return flops / (EX2_GPUS * peak * seconds_per_unit) * mfu_factor


@EXERCISES.checker(2, "days on 256 A100s at MFU 0.4", wants="a number of days, within 2%")
def _check_2(answer: object) -> Feedback:
    expected = training_days(EX_PARAMS, EX_TOKENS, EX2_GPUS, gpu=EX2_GPU, dtype="bf16",
                             mfu=EX2_MFU)
    sparse_peak = gpu_by_name(EX2_GPU).sparse_flops["bf16"]
    # Two slips halve the days: the sparse peak, and counting multiplies only (3 FLOPs).
    return check_number(answer, expected, unit="days", hints={
        _ex2_days(peak=sparse_peak): f"half the days: either the 'with sparsity' peak ({sparse_peak / 1e12:.0f} "
              f"TFLOP/s) instead of the dense {peak_flops(EX2_GPU, 'bf16') / 1e12:.0f}, or 3 "
              "FLOPs per parameter per token (multiplies only) instead of 6.",
        _ex2_days(FORWARD_FLOPS_PER_PARAM_TOKEN): "a third of the days: that counts the forward "
        "pass only (2 FLOPs per parameter per token); training costs 6.",
        _ex2_days(mfu_factor=1): "that is the time at the full peak: the GPUs deliver only "
        "MFU = 0.4 of it, so divide by 0.4.",
        _ex2_days(mfu_factor=EX2_MFU): "you multiplied by the MFU (0.4) instead of dividing by "
        "it: GPUs at 40% of their peak take longer than at the peak, not shorter.",
        _ex2_days(seconds_per_unit=1): "that is in seconds; divide by 86,400 for days.",
        _ex2_days(seconds_per_unit=3600): "that is in hours; divide by 24 for days.",
    })


@EXERCISES.checker(3, "AdaGrad on 4 x A100 80GB", wants="a number of parameters, within 2%")
def _check_3(answer: object) -> Feedback:
    adagrad = bytes_per_parameter("adagrad")
    # The chips hold 80 GiB (nvidia-smi shows 81,920 MiB on an A100 80GB): an answer that reads
    # "80 GB" as that is as right as the lecture's 80e9 bytes, and closer to the hardware.
    if check_number(answer, max_parameters(4, 80 * GIB, adagrad.total)) is CORRECT:
        return Feedback(True, "correct, reading 80 GB as the physical 80 GiB (2^30 bytes each), "
                              "which is closer to what the GPU holds. The exercise, like the "
                              "lecture, reads the datasheet's 80 GB as 80e9 bytes, about 7 % "
                              "fewer parameters; both are fine.")
    hints: dict[float, str] = {}
    for memory in (80e9, 80 * GIB):  # the same slips, under either reading of "80 GB"
        hints[max_parameters(4, memory, bytes_per_parameter("adamw").total)] = (
            "16 bytes per parameter is AdamW (two moments); AdaGrad keeps one state tensor: 12.")
        hints[max_parameters(4, memory, adagrad.total - adagrad.optimizer_state)] = (
            "AdaGrad also keeps a sum of squared gradients per parameter (4 more bytes).")
        hints[max_parameters(4, memory, adagrad.weights)] = (
            "that counts the weights only; training also holds their gradients and AdaGrad's "
            "state: 4 + 4 + 4 bytes.")
        hints[max_parameters(4, memory, bytes_per_parameter("adagrad", "mixed").total)] = (
            "14 bytes is the mixed-precision recipe (an extra bf16 copy of the weights); the "
            "exercise trains in fp32: 12 bytes.")
        hints[max_parameters(1, memory, adagrad.total)] = (
            "that is what one GPU holds, as with plain DDP; split over the 4 GPUs (ZeRO-3/FSDP, "
            "as the exercise says), 4 times as many fit.")
    return check_number(answer, max_parameters(4, 80e9, adagrad.total), unit="parameters",
                        hints=hints)


def _ex4_tokens_per_second(peak: float | None = None, mfu_factor: float = EX4_MFU,
                           flops_per_param_token: float = TRAINING_FLOPS_PER_PARAM_TOKEN,
                           gpus: int = EX4_GPUS) -> float:
    """Exercise 4's answer in tokens/s, or a mistaken one: each argument is a factor to get wrong."""
    peak = peak_flops("H100 SXM", "bf16") if peak is None else peak
    return gpus * peak * mfu_factor / (flops_per_param_token * EX4_PARAMS)


@EXERCISES.checker(4, "tokens per second of 1024 H100s",
                   wants="a number of tokens per second, within 2%")
def _check_4(answer: object) -> Feedback:
    spec = gpu_by_name("H100 SXM")
    dense, sparse = spec.dense_flops["bf16"], spec.sparse_flops["bf16"]
    # Three slips double the answer (no MFU, the sparse peak, 3 FLOPs): one hint names all three.
    return check_number(answer, _ex4_tokens_per_second(), unit="tokens/s", hints={
        _ex4_tokens_per_second(mfu_factor=1): f"twice the answer: did you leave out the MFU (0.5), use the 'with sparsity' "
               f"peak ({sparse / 1e12:.0f} TFLOP/s, not the dense {dense / 1e12:.1f}), or count "
               "3 FLOPs per parameter per token (multiplies only) instead of 6?",
        _ex4_tokens_per_second(mfu_factor=1 / EX4_MFU): "you divided by the MFU (0.5); the GPUs "
        "deliver MFU x peak, so multiply by it.",
        _ex4_tokens_per_second(flops_per_param_token=FORWARD_FLOPS_PER_PARAM_TOKEN): "that uses "
        "2 FLOPs per parameter per token, the forward pass only; training costs 6.",
        _ex4_tokens_per_second(flops_per_param_token=1): "each token costs 6 FLOPs per "
        "parameter (2 forward + 4 backward), not 1.",
        _ex4_tokens_per_second(gpus=1): "that is one GPU's tokens per second; the question asks "
        "for all 1024 together.",
    })


@EXERCISES.checker(5, "MFU against the dense peak",
                   wants="a fraction between 0 and 1 (not a percent), within 2%")
def _check_5(answer: object) -> Feedback:
    dense = peak_flops("H100 SXM", "bf16")
    achieved = EX5_REPORTED_MFU * EX5_QUOTED_PEAK  # the run's FLOP/s, from the paper's figures
    expected = achieved / dense
    return check_number(answer, expected, unit="fraction", hints={
        EX5_REPORTED_MFU * dense / EX5_QUOTED_PEAK: "the dense peak is *smaller*, so the same "
        "FLOP/s is a *larger* fraction of it.",
        EX5_REPORTED_MFU: "that is the MFU against the sparse peak, unchanged; measured against "
        "the dense peak (half as large) the same FLOP/s is a larger fraction.",
        expected * 100: "that is a percent; give the MFU as a fraction between 0 and 1.",
    })


if __name__ == "__main__":
    main()
