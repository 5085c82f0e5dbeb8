"""Notebook 03: FLOPs, FLOP/s, MFU and the roofline.

Read top to bottom: counting FLOPs (by hand and with PyTorch's FlopCounterMode), what a cluster
delivers, timing a function honestly (on one thread on a CPU, as a median with its spread) and
conclusions computed from timings, MFU, throughput against size, arithmetic intensity, the
notebook's figures, and its exercises.

Units: FLOPs (a count), FLOP/s (a rate), seconds, bytes, bytes/s.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import statistics
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lecture_utils.device import as_device, get_device, parse_device, synchronize
from lecture_utils.exercises import (
    CORRECT,
    UNANSWERED,
    Exercises,
    Feedback,
    as_number,
    check_number,
    wrong,
)
from lecture_utils.hardware import GPUSpec, lookup_gpu, normalize_dtype, peak_flops
from lecture_utils.napkin import SECONDS_PER_DAY

SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY


def _check_positive_int(name: str, value: Any) -> None:
    """Raise if `value` is not an int >= 1 (a matrix size or a count)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive size, got {value}")


def _check_positive_number(name: str, value: Any) -> float:
    """Raise if `value` is not a finite number > 0; return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


# ----------------------------------------------------------------------------------------------
# Counting FLOPs


def matmul_flops(m: int, n: int, k: int) -> int:
    """FLOPs of an (m x n) @ (n x k) matmul: one multiply and one add per (i, j, l) triple."""
    for name, value in (("m", m), ("n", n), ("k", k)):
        _check_positive_int(name, value)
    return 2 * m * n * k


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """FLOPs PyTorch's FlopCounterMode counts while running fn(*args, **kwargs)."""
    if not callable(fn):
        raise TypeError(f"count_flops needs a function to run, got {type(fn).__name__}")
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def flops_by_operator(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, int]:
    """FLOPs FlopCounterMode counts per aten operator ('aten.mm', 'aten.addmm', ...)."""
    if not callable(fn):
        raise TypeError(f"flops_by_operator needs a function to run, got {type(fn).__name__}")
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    # Operators with no FLOP formula (add, softmax, mv, ...) never appear here: they count 0.
    return {str(op): flops for op, flops in counter.get_flop_counts().get("Global", {}).items()}


# ----------------------------------------------------------------------------------------------
# Training budgets and what hardware delivers


@dataclass(frozen=True)
class ComputeReference:
    """A training compute budget or a legal threshold, in FLOPs, and where it comes from."""

    name: str
    flops: float
    what: str
    source: str


COMPUTE_REFERENCES: dict[str, ComputeReference] = {
    ref.name: ref
    for ref in (
        ComputeReference(
            "GPT-3", 3.14e23, "trained: 175B parameters on 300B tokens",
            "Brown et al. 2020, 'Language Models are Few-Shot Learners', Table D.1",
        ),
        ComputeReference(
            "GPT-4", 2e25, "trained: an outside estimate, speculative",
            "quoted in the lecture; OpenAI has not published GPT-4's size or compute",
        ),
        ComputeReference(
            "EU AI Act", 1e25, "threshold: presumed systemic risk",
            "Regulation (EU) 2024/1689, Article 51(2): general-purpose models above 1e25 FLOPs",
        ),
        ComputeReference(
            "US EO 14110", 1e26, "threshold: report to government (revoked Jan 2025)",
            "Executive Order 14110 (Oct 2023), Sec. 4.2(b); revoked on 20 January 2025",
        ),
    )
}


def flops_delivered(
    gpu: str | GPUSpec, dtype: str | torch.dtype, num_gpus: int, seconds: float, mfu: float
) -> float:
    """FLOPs that `num_gpus` GPUs deliver in `seconds` at a model FLOPs utilization `mfu`."""
    spec = gpu if isinstance(gpu, GPUSpec) else lookup_gpu(gpu)
    _check_positive_int("num_gpus", num_gpus)
    seconds = _check_positive_number("seconds", seconds)
    mfu = _check_positive_number("mfu", mfu)
    if mfu > 1:
        raise ValueError(f"mfu is a fraction of the peak, in (0, 1]; got {mfu} (a percent?)")
    return num_gpus * spec.peak_flops(dtype) * seconds * mfu


def mfu(flops: float, seconds: float, peak: float) -> float:
    """Model FLOPs utilization: achieved FLOP/s (flops / seconds) over the dense peak FLOP/s."""
    flops = _check_positive_number("flops", flops)
    seconds = _check_positive_number("seconds", seconds)
    peak = _check_positive_number("peak", peak)
    # Above 1 means the peak is the wrong one (fp32 peak for a TF32 run, say): we report it.
    return flops / seconds / peak


# ----------------------------------------------------------------------------------------------
# Timing


MIN_BLOCK_SECONDS = 1e-3  # a timed block shorter than this is dominated by timer overhead


def time_block(fn: Callable[[], Any], number: int, device: torch.device) -> float:
    """Seconds per call of `number` back-to-back calls of fn(), finished on `device`."""
    _check_positive_int("number", number)
    device = parse_device(device)  # a name or a torch.device, checked to exist here
    if device.type == "cuda":
        # CUDA events are timestamps the GPU records in its own queue of work.
        with torch.cuda.device(device):
            begin = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
        return begin.elapsed_time(end) / 1e3 / number  # elapsed_time is in milliseconds
    start = time.perf_counter()
    for _ in range(number):
        fn()
    synchronize(device)  # GPU kernels are queued, not done: wait before stopping the clock
    return (time.perf_counter() - start) / number


def measure_times(
    fn: Callable[[], Any],
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
    number: int | None = None,
) -> list[float]:
    """Seconds per call of fn(), one value per timed block of `number` calls, after warm-up."""
    if not callable(fn):
        raise TypeError(f"need a zero-argument function to time, got {type(fn).__name__}")
    for name, value, minimum in (("warmup", warmup, 0), ("repeats", repeats, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)
                               or number < 1):
        raise ValueError(f"number (calls per timed block) must be an int >= 1 or None, "
                         f"got {number!r}")
    device = get_device() if device is None else parse_device(device)

    # The first calls pay for one-off work: library initialization, memory allocation,
    # kernel selection, cold caches. None of that is the steady-state cost.
    estimate = None
    for _ in range(warmup):
        seconds = time_block(fn, 1, device)
        # The fastest warm-up call estimates one call's time: the first pays the one-off costs,
        # and any of them may be slowed down by another process.
        estimate = seconds if estimate is None else min(estimate, seconds)

    if number is None:  # enough calls that one block lasts MIN_BLOCK_SECONDS
        if estimate is None:
            estimate = time_block(fn, 1, device)
        number = calls_per_block(estimate)
    return [time_block(fn, number, device) for _ in range(repeats)]


def calls_per_block(seconds_per_call: float) -> int:
    """Calls of a function that takes `seconds_per_call` that fill a MIN_BLOCK_SECONDS block."""
    return max(1, min(10_000, math.ceil(MIN_BLOCK_SECONDS / max(seconds_per_call, 1e-9))))


def benchmark(
    fn: Callable[[], Any],
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
    number: int | None = None,
) -> float:
    """Median seconds per call of fn(), after `warmup` untimed calls, synchronizing `device`."""
    # The median ignores the odd slow block (another process, a page fault, a clock change).
    return statistics.median(
        measure_times(fn, device=device, warmup=warmup, repeats=repeats, number=number)
    )


@dataclass(frozen=True)
class Timing:
    """Seconds per call from several timed blocks: the median, and the spread around it."""

    times: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.times or not all(math.isfinite(t) and t >= 0 for t in self.times):
            raise ValueError(f"times must be one or more finite seconds >= 0, got {self.times}")

    @property
    def median(self) -> float:
        """Seconds: the middle block, which ignores the odd block slowed by another program."""
        return statistics.median(self.times)

    @property
    def low(self) -> float:
        """Seconds: the lower quartile of the blocks (the fastest block, with fewer than 4)."""
        return self.quartiles()[0]

    @property
    def high(self) -> float:
        """Seconds: the upper quartile of the blocks (the slowest block, with fewer than 4)."""
        return self.quartiles()[1]

    def quartiles(self) -> tuple[float, float]:
        """Seconds: the lower and upper quartiles, where half of the blocks fall."""
        if len(self.times) < 4:
            return min(self.times), max(self.times)
        q1, _, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
        return q1, q3

    def format(self, unit: str = "ms") -> str:
        """The median and the quartiles, e.g. "1.23 ms (1.20-1.31)"."""
        scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
        return (f"{self.median * scale:.3g} {unit} "
                f"({self.low * scale:.3g}-{self.high * scale:.3g})")


@contextlib.contextmanager
def timing_threads(device: torch.device | str | None = None, threads: int | None = 1
                   ) -> Iterator[None]:
    """Time a block on `threads` CPU threads (on a CPU device), then restore the thread count.

    On a busy laptop (a browser, a video call) other programs take cores away at random, and an
    op split over every core waits for its slowest thread: one thread is slowed only by the
    share of its own core it loses. A GPU does the work itself, so nothing changes there.
    """
    if threads is not None:
        _check_positive_int("threads", threads)
    device = get_device() if device is None else parse_device(device)
    if threads is None or device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_it(
    fn: Callable[[], Any],
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 15,
    number: int | None = None,
    threads: int | None = 1,
) -> Timing:
    """fn()'s seconds per call as a Timing: `repeats` timed blocks after `warmup` calls.

    On a CPU it runs on `threads` threads (None: as many as torch uses), see `timing_threads`.
    """
    with timing_threads(device, threads):
        return Timing(tuple(measure_times(fn, device=device, warmup=warmup, repeats=repeats,
                                          number=number)))


def _as_printed(seconds: float) -> float:
    """`seconds` to the 3 significant figures Timing.format prints."""
    return float(f"{seconds:.3g}")


def compare_timings(name_a: str, a: Timing, name_b: str, b: Timing) -> str:
    """A conclusion computed from two timings: which is faster and by how much, or that they
    cannot be told apart (their spreads overlap).

    The spreads are compared as printed (3 significant figures), so a reader who checks the
    printed numbers always reaches the same conclusion.
    """
    ratio = a.median / b.median if b.median else math.inf
    times = max(ratio, 1 / ratio) if ratio else math.inf  # >= 1: how many times apart
    # Three decimals near 1, so two medians 0.4% apart never read "1.00x faster".
    shown = f"{times:.3f}" if times < 1.1 else f"{times:.2f}"
    if _as_printed(a.low) <= _as_printed(b.high) and _as_printed(b.low) <= _as_printed(a.high):
        return f"{name_a} and {name_b} agree within their spread (medians {shown}x apart)"
    faster, slower = (name_a, name_b) if ratio < 1 else (name_b, name_a)
    return f"{faster} is {shown}x faster than {slower} (their spreads do not overlap)"


def time_without_and_with_sync(
    fn: Callable[[], Any],
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 15,
    threads: int | None = 1,
) -> tuple[Timing, Timing]:
    """fn()'s seconds per call two ways, block by block in turn: the clock stopped as soon as the
    calls return (no synchronize), and stopped once the device has finished them.

    Taking the two in turn gives both the same share of whatever else the machine is doing.
    """
    if not callable(fn):
        raise TypeError(f"need a zero-argument function to time, got {type(fn).__name__}")
    _check_positive_int("repeats", repeats)
    device = get_device() if device is None else parse_device(device)
    with timing_threads(device, threads):
        estimate = min(time_block(fn, 1, device) for _ in range(max(warmup, 1)))
        number = calls_per_block(estimate)
        without, with_sync = [], []
        for _ in range(repeats):
            synchronize(device)  # start each block with nothing queued
            start = time.perf_counter()
            for _ in range(number):
                fn()
            without.append((time.perf_counter() - start) / number)
            synchronize(device)
            start = time.perf_counter()
            for _ in range(number):
                fn()
            synchronize(device)
            with_sync.append((time.perf_counter() - start) / number)
    return Timing(tuple(without)), Timing(tuple(with_sync))


def time_each_call_cold(
    fn: Callable[[], Any], *, calls: int = 5, device: torch.device | str | None = None
) -> list[float]:
    """Seconds of each of `calls` calls of fn(), synchronized, with no warm-up (the lecture's way).

    The lecture's `time_matmul` averages 5 such calls; their mean includes the first call's
    one-off costs, which `benchmark` leaves out.
    """
    if not callable(fn):
        raise TypeError(f"need a zero-argument function to time, got {type(fn).__name__}")
    _check_positive_int("calls", calls)
    device = get_device() if device is None else parse_device(device)
    synchronize(device)  # nothing queued earlier may land in the first call's time
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def time_cold_and_warm(
    fn: Callable[[], Any], *, device: torch.device | str | None = None, calls: int = 5
) -> dict[str, Any]:
    """fn() timed the lecture's way (the mean of `calls` calls, no warm-up) and ours (a warm
    median).

    Returns {"cold": [seconds of each call made before any warm-up], "first_call": s,
    "lecture_mean": s, "warm_median": s, "warm": the warm Timing}. Only a first call pays
    one-off costs, and only the first time its kernels run in the process: in a re-run, even the
    first call is warm.
    """
    cold = time_each_call_cold(fn, calls=calls, device=device)
    warm = Timing(tuple(measure_times(fn, device=device, warmup=2, repeats=5)))
    return {"cold": cold, "first_call": cold[0], "lecture_mean": statistics.fmean(cold),
            "warm_median": warm.median, "warm": warm}


def cold_and_warm_report(
    label: str, timings: dict[str, Any], flops: float, peak: float | None
) -> str:
    """What `time_cold_and_warm` measured, in lines of at most 100 characters, MFU if `peak`."""
    cold, warm = timings["cold"], timings["warm"]
    lines = [f"{label} warm: {warm.format('ms')}",
             f"    first call {cold[0] * 1e3:.3g} ms, mean of {len(cold)} cold "
             f"calls {timings['lecture_mean'] * 1e3:.3g} ms; the first call is "
             f"{cold[0] / sum(cold):.0%} of the {len(cold)}"]
    if peak:
        lines.append(f"    MFU {flops / timings['lecture_mean'] / peak:.2f} the lecture's way, "
                     f"{flops / warm.median / peak:.2f} warm")
    else:
        lines.append("    no MFU: no datasheet peak for this device")
    return "\n".join(lines)


@contextlib.contextmanager
def float32_matmul_precision(precision: str) -> Iterator[None]:
    """Run a block with torch.set_float32_matmul_precision(precision), then restore the old one."""
    if precision not in ("highest", "high", "medium"):
        raise ValueError(f"precision must be 'highest', 'high' or 'medium', got {precision!r}")
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)  # "high" lets fp32 matmuls use TF32
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


FP8 = torch.float8_e4m3fn


def fp8_matmul_supported(device: torch.device | str) -> bool:
    """True on a CUDA GPU with fp8 tensor cores (compute capability 8.9 or newer)."""
    device = as_device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def scaled_matmul_fp8(
    a8: torch.Tensor,
    scale_a: torch.Tensor,
    b8: torch.Tensor,
    scale_b: torch.Tensor,
    out_dtype: torch.dtype = torch.bfloat16,
    *,
    use_fast_accum: bool = False,
) -> torch.Tensor:
    """(a8 * scale_a) @ (b8 * scale_b) on fp8 tensor cores, out in out_dtype.

    On Hopper the tensor cores add fp8 products with fewer bits than fp32. With
    use_fast_accum=False cuBLAS promotes their partial sums into full fp32 accumulators at
    intervals along k; True skips that promotion: faster, less exact.
    """
    for name, value in (("a8", a8), ("scale_a", scale_a), ("b8", b8), ("scale_b", scale_b)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a tensor (the scales too: one fp32 number each, as "
                            f"quantize_fp8 returns), got {type(value).__name__}")
    if not isinstance(out_dtype, torch.dtype) or not out_dtype.is_floating_point:
        raise TypeError(f"out_dtype must be a floating torch.dtype such as torch.bfloat16, "
                        f"got {out_dtype!r}")
    if a8.dtype != FP8 or b8.dtype != FP8:
        raise TypeError(f"a8 and b8 must be {FP8} (quantize them first, e.g. with "
                        f"mixed_precision.quantize_fp8), got {a8.dtype} and {b8.dtype}")
    if a8.dim() != 2 or b8.dim() != 2 or a8.shape[1] != b8.shape[0]:
        raise ValueError(f"need (m x n) @ (n x k), got {tuple(a8.shape)} @ {tuple(b8.shape)}")
    if any(size % 16 for size in (*a8.shape, b8.shape[1])):
        raise ValueError(f"fp8 matmul needs every size a multiple of 16, got {tuple(a8.shape)} "
                         f"@ {tuple(b8.shape)}; pad the operands")
    if b8.stride(0) != 1:  # cuBLASLt wants the second operand column-major
        b8 = b8.t().contiguous().t()
    if not isinstance(use_fast_accum, bool):
        raise TypeError(f"use_fast_accum must be True or False, got {use_fast_accum!r}")
    out = torch._scaled_mm(a8, b8, scale_a=scale_a, scale_b=scale_b, out_dtype=out_dtype,
                           use_fast_accum=use_fast_accum)
    return out[0] if isinstance(out, tuple) else out  # torch < 2.5 also returned amax


def make_matmul(
    n: int,
    dtype: torch.dtype,
    device: torch.device | str,
    *,
    m: int | None = None,
    k: int | None = None,
    seed: int = 0,
    fp8_fast_accum: bool = False,
) -> Callable[[], torch.Tensor]:
    """A zero-argument function computing (m x n) @ (n x k) of random `dtype` matrices (m = k = n
    unless given)."""
    m, k = (n if m is None else m), (n if k is None else k)
    for name, value in (("n", n), ("m", m), ("k", k)):
        _check_positive_int(name, value)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if fp8_fast_accum and dtype != FP8:
        raise ValueError(f"fp8_fast_accum is an option of fp8 matmuls; dtype is {dtype}")
    if dtype == FP8 and any(size % 16 for size in (m, n, k)):
        raise ValueError(f"fp8 matmuls need sizes that are multiples of 16, got (m, n, k) = "
                         f"{(m, n, k)}")
    device = parse_device(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(m, n, generator=generator, device=device)
    b = torch.randn(n, k, generator=generator, device=device)
    if dtype == FP8:
        # One fp32 scale per operand (here 1.0: randn values fit e4m3's range), bf16 output; b is
        # made column-major once here, so the timed call does no copy.
        a8 = a.to(FP8)
        b8 = b.t().contiguous().to(FP8).t()
        one = torch.tensor(1.0, device=device)
        return lambda: scaled_matmul_fp8(a8, one, b8, one, use_fast_accum=fp8_fast_accum)
    a, b = a.to(dtype), b.to(dtype)
    out = torch.empty(m, k, dtype=dtype, device=device)  # reused: we time the matmul, not malloc
    return lambda: torch.mm(a, b, out=out)


def make_elementwise_add(
    n: int, dtype: torch.dtype, device: torch.device | str
) -> Callable[[], torch.Tensor]:
    """A zero-argument function adding two n x n matrices of `dtype` into a preallocated output."""
    _check_positive_int("n", n)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    device = parse_device(device)
    a = torch.ones(n, n, dtype=dtype, device=device)
    b = torch.ones(n, n, dtype=dtype, device=device)
    out = torch.empty_like(a)
    return lambda: torch.add(a, b, out=out)


# ----------------------------------------------------------------------------------------------
# Throughput: number formats, and size


# (label, dtype, float32 matmul precision, datasheet column) of the formats notebook 03 times.
MATMUL_FORMATS: tuple[tuple[str, torch.dtype, str, str], ...] = (
    ("fp32, TF32 off", torch.float32, "highest", "fp32"),
    ("fp32, TF32 on", torch.float32, "high", "tf32"),
    ("bf16", torch.bfloat16, "highest", "bf16"),
    ("fp16", torch.float16, "highest", "fp16"),
)
FP8_FORMAT = ("fp8 e4m3", FP8, "highest", "fp8")


def time_matmul_format(
    n: int, dtype: torch.dtype, precision: str, device: torch.device | str, *, repeats: int = 15
) -> Timing | str:
    """An n x n @ n x n matmul of `dtype` under the float32 matmul `precision`, timed; or a
    sentence that says why it cannot run here."""
    if dtype == FP8 and not fp8_matmul_supported(device):
        return "skipped: needs a CUDA GPU with compute capability >= 8.9"
    try:
        with float32_matmul_precision(precision):
            return time_it(make_matmul(n, dtype, device), device=device, repeats=repeats)
    except (RuntimeError, TypeError) as error:  # e.g. _scaled_mm changed in this version
        return f"failed: {str(error).splitlines()[0][:60]}"


def rate_and_mfu(flops: float, timing: Timing, gpu: GPUSpec | None, column: str) -> str:
    """The achieved TFLOP/s at the median time, and the MFU where `gpu` has a `column` peak."""
    rate = flops / timing.median
    text = f"{rate / 1e12:.3g} TFLOP/s"
    if gpu is None:
        return f"{text}; no MFU (no datasheet peak for this device)"
    if column not in gpu.dense_flops:  # e.g. a T4 has no bf16 tensor cores
        return f"{text}; no MFU ({gpu.name} has no {column} figure)"
    peak = gpu.peak_flops(column)
    return (f"{text}; dense peak {peak / 1e12:.4g} TFLOP/s, "
            f"MFU {mfu(flops, timing.median, peak):.2f}")


@dataclass(frozen=True)
class Sweep:
    """n x n @ n x n matmuls of one format, timed at several sizes n."""

    label: str
    dtype: torch.dtype
    sizes: tuple[int, ...]
    timings: tuple[Timing, ...]

    def __post_init__(self) -> None:
        if not self.sizes or len(self.sizes) != len(self.timings):
            raise ValueError(f"sizes and timings must be non-empty and of one length, got "
                             f"{len(self.sizes)} sizes and {len(self.timings)} timings")

    def rates(self) -> list[tuple[float, float, float]]:
        """FLOP/s at each size: (low, median, high), from the timings' quartiles."""
        return [(matmul_flops(n, n, n) / t.high, matmul_flops(n, n, n) / t.median,
                 matmul_flops(n, n, n) / t.low if t.low else math.inf)
                for n, t in zip(self.sizes, self.timings, strict=True)]


def sweep_matmuls(
    label: str, dtype: torch.dtype, sizes: list[int], device: torch.device | str, *,
    repeats: int = 15,
) -> Sweep:
    """Time an n x n @ n x n matmul of `dtype` (TF32 off) for each n in `sizes`."""
    with float32_matmul_precision("highest"):
        timings = tuple(time_it(make_matmul(n, dtype, device), device=device, repeats=repeats)
                        for n in sizes)
    return Sweep(label, dtype, tuple(sizes), timings)


def throughput_trend(sweep: Sweep, width: int = 100) -> str:
    """How FLOP/s changes with size, chosen from the measurements and wrapped at `width`.

    A step between two sizes counts as a rise or a drop only where their quartile ranges do not
    overlap; otherwise it is level (the two cannot be told apart).
    """
    rates, sizes = sweep.rates(), sweep.sizes
    if len(sizes) < 2:
        return f"{sweep.label}: one size only, no trend to read."

    def step(a: tuple[float, float, float], b: tuple[float, float, float]) -> str:
        return "up" if b[0] > a[2] else "down" if b[2] < a[0] else "level"

    steps = [step(a, b) for a, b in itertools.pairwise(rates)]
    pairs = list(itertools.pairwise(sizes))
    drops = ", ".join(f"n = {a} to {b}" for (a, b), s in zip(pairs, steps, strict=True)
                      if s == "down")
    levels = ", ".join(f"n = {a} to {b}" for (a, b), s in zip(pairs, steps, strict=True)
                       if s == "level")
    ratio = rates[-1][1] / rates[0][1]
    span = f"from n = {sizes[0]} to n = {sizes[-1]}"
    best = sizes[max(range(len(sizes)), key=lambda i: rates[i][1])]
    overall = step(rates[0], rates[-1])
    if all(s == "up" for s in steps):
        text = f"FLOP/s rises at every step, {ratio:.3g}x {span}."
    elif overall == "up" and not drops:
        text = (f"FLOP/s rises {ratio:.3g}x {span}, but not at every step: level (the spreads "
                f"overlap) from {levels}.")
    elif overall == "up":
        text = (f"FLOP/s is {ratio:.3g}x higher at n = {sizes[-1]} than at n = {sizes[0]}, but "
                f"it does not rise steadily: it drops from {drops}; highest at n = {best}.")
    elif overall == "down":
        text = (f"FLOP/s falls {1 / ratio:.3g}x {span}" + (f" (drops from {drops})" if drops
                                                           else "") + f"; highest at n = {best}.")
    else:
        text = (f"no clear trend: FLOP/s at n = {sizes[-1]} is within the spread of n = "
                f"{sizes[0]} ({ratio:.3g}x); highest at n = {best}.")
    # Wrapped between words, never inside "n = 16" (a no-break space holds it together).
    text = textwrap.fill(f"{sweep.label}: {text}".replace("n = ", "n\u00a0=\u00a0"),
                         width=width, subsequent_indent="    ")
    return text.replace("\u00a0", " ")


# ----------------------------------------------------------------------------------------------
# Arithmetic intensity and the roofline


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs done per byte moved between memory and the chip (FLOP/byte)."""
    return _check_positive_number("flops", flops) / _check_positive_number(
        "bytes_moved", bytes_moved
    )


def arithmetic_intensity_matmul(n: int, dtype_bytes: int) -> float:
    """FLOP/byte of an n x n @ n x n matmul: 2n^3 FLOPs over 3 n^2 elements read or written."""
    _check_positive_int("n", n)
    _check_positive_int("dtype_bytes", dtype_bytes)
    return arithmetic_intensity(matmul_flops(n, n, n), 3 * n * n * dtype_bytes)


def arithmetic_intensity_elementwise(
    dtype_bytes: int, *, num_inputs: int = 2, flops_per_element: int = 1
) -> float:
    """FLOP/byte of an elementwise op: per element, read `num_inputs` values and write one."""
    _check_positive_int("dtype_bytes", dtype_bytes)
    _check_positive_int("num_inputs", num_inputs)
    _check_positive_int("flops_per_element", flops_per_element)
    return arithmetic_intensity(flops_per_element, (num_inputs + 1) * dtype_bytes)


def ridge_point(peak: float, bandwidth: float) -> float:
    """The arithmetic intensity (FLOP/byte) above which a kernel can reach the peak FLOP/s."""
    return _check_positive_number("peak", peak) / _check_positive_number("bandwidth", bandwidth)


def roofline(intensity: float, peak: float, bandwidth: float) -> float:
    """Attainable FLOP/s at `intensity`: memory-bound (intensity x bandwidth) or the peak."""
    intensity = _check_positive_number("intensity", intensity)
    bandwidth = _check_positive_number("bandwidth", bandwidth)
    return min(_check_positive_number("peak", peak), intensity * bandwidth)


# ----------------------------------------------------------------------------------------------
# Figures


def plot_throughput(sweeps: list[Sweep], *, gpu: GPUSpec | None, device_type: str) -> Any:
    """Measured FLOP/s against matrix size, one line per sweep with its quartile range; a dashed
    line at each format's dense peak where `gpu` has one."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    for i, sweep in enumerate(sweeps):
        low, mid, high = zip(*sweep.rates(), strict=True)
        spread = [[m - lo for m, lo in zip(mid, low, strict=True)],
                  [hi - m for m, hi in zip(mid, high, strict=True)]]
        ax.errorbar(sweep.sizes, mid, yerr=spread, fmt="o-", color=f"C{i}", capsize=3,
                    label=f"{sweep.label}, measured")
        column = normalize_dtype(sweep.dtype)
        if gpu is not None and column in gpu.dense_flops:
            ax.axhline(gpu.peak_flops(column), color=f"C{i}", linestyle="--",
                       label=f"{sweep.label}, dense peak ({gpu.name})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("matrix size n (n x n @ n x n)")
    ax.set_ylabel("achieved FLOP/s (median, quartiles)")
    ax.set_title(f"Matmul throughput against size ({device_type})")
    ax.legend()
    return fig


def plot_roofline(
    roof: GPUSpec, sweeps: list[Sweep], adds: dict[torch.dtype, float], *, device_type: str,
    reference: bool,
) -> Any:
    """`roof`'s roofline per format (dashed) under measured points: each sweep's matmuls, and an
    elementwise add per dtype (its FLOP/s in `adds`). `reference`: the roof is not this device's.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5))
    intensities = [10 ** (-2 + 6 * i / 199) for i in range(200)]  # 0.01 to 10^4 FLOP/byte
    suffix = " (reference)" if reference else ""
    for i, sweep in enumerate(sweeps):
        column, color, itemsize = normalize_dtype(sweep.dtype), f"C{i}", sweep.dtype.itemsize
        if column in roof.dense_flops:  # e.g. a T4 has no bf16 tensor cores: no bf16 roof
            peak = roof.peak_flops(column)
            ax.plot(intensities, [roofline(x, peak, roof.memory_bandwidth) for x in intensities],
                    "--", color=color, label=f"{roof.name} {column} roof{suffix}")
        ax.plot([arithmetic_intensity_matmul(n, itemsize) for n in sweep.sizes],
                [rate for _, rate, _ in sweep.rates()], "o:", color=color,
                label=f"matmul {sweep.label}, n = {sweep.sizes[0]}..{sweep.sizes[-1]}")
        if sweep.dtype in adds:
            ax.plot(arithmetic_intensity_elementwise(itemsize), adds[sweep.dtype], "s",
                    color=color, markersize=10, label=f"elementwise add {column}")
    top_peak = max(roof.peak_flops(c) for c in ("fp32", "bf16") if c in roof.dense_flops)
    ridge = ridge_point(top_peak, roof.memory_bandwidth)
    ax.axvline(ridge, color="gray", linestyle=":")
    ax.text(ridge, 0.04, "memory-bound  ", ha="right", transform=ax.get_xaxis_transform())
    ax.text(ridge, 0.04, "  compute-bound", ha="left", transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("FLOP/s")
    ax.set_title(f"Roofline with measured points ({device_type})")
    ax.legend(fontsize=10, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Check yourself
#
# Each hint is keyed by the answer its mistake gives, computed by making the mistake. Where two
# mistakes give the same number (counting only the multiplies and using the "with sparsity"
# peak both halve a result), one hint names both.

EXERCISES = Exercises("03")

LECTURE_B, LECTURE_D, LECTURE_K = 16384, 32768, 8192
LECTURE_BF16_SECONDS = 0.03  # the lecture's bf16 timing of its matmul on an H100
H100_BF16 = peak_flops("H100 SXM", "bf16")  # dense; the datasheet's 1979e12 is "with sparsity"
H100_BF16_SPARSE = lookup_gpu("H100 SXM").sparse_flops["bf16"]
H100_FP32 = peak_flops("H100 SXM", "fp32")
# Exercise 3: a 70B model on 15T tokens on 1024 H100 SXMs in bf16. The MFU is 0.4 (Llama 3
# 405B reached 38-43%), not 0.5: at 0.5, leaving the MFU out would halve the answer just as the
# two mistakes above do, and its hint could not say which mistake was made.
TRAINING = {"parameters": 70e9, "tokens": 15e12, "gpus": 1024, "mfu": 0.4}


def lecture_matmul_flops(flops_per_multiply_add: int = 2) -> int:
    """FLOPs of the lecture's (B x D) @ (D x K) matmul (1 per multiply-add: the slip)."""
    return flops_per_multiply_add * LECTURE_B * LECTURE_D * LECTURE_K


@EXERCISES.checker(1, "FLOPs of the lecture's matmul",
                   wants="a number of FLOPs, within 2% (3 significant figures are enough)")
def _check_lecture_matmul(answer: Any) -> Feedback:
    b, d, k = LECTURE_B, LECTURE_D, LECTURE_K
    return check_number(
        answer, lecture_matmul_flops(), unit="FLOPs",
        hints={
            lecture_matmul_flops(1): "you counted only the multiplies: each multiply-add is 2 "
            "FLOPs.",
            2 * b * d: "K is missing: every one of the B x K outputs needs D multiply-adds.",
            b * d + d * k: "that is the number of input elements, not the work done on them.",
        },
    )


def lecture_bf16_mfu(flops: float | None = None, seconds: float = LECTURE_BF16_SECONDS,
                     peak: float = H100_BF16) -> float:
    """MFU of the lecture's bf16 timing (other arguments: the slips exercise 2 recognizes)."""
    return (lecture_matmul_flops() if flops is None else flops) / seconds / peak


@EXERCISES.checker(2, "MFU of the lecture's bf16 timing",
                   wants="a fraction between 0 and 1, within 2%")
def _check_lecture_mfu(answer: Any) -> Feedback:
    expected = lecture_bf16_mfu()
    return check_number(
        answer, expected,
        hints={
            # Both slips halve the MFU, so one hint names both.
            lecture_bf16_mfu(flops=lecture_matmul_flops(1)): "half the MFU: did you count only "
            "the multiplies (the matmul is 2·B·D·K FLOPs), or divide by 1979e12, the 'with "
            "sparsity' peak? Dense matmuls get at most the dense 989.4e12.",
            lecture_bf16_mfu(peak=H100_BF16_SPARSE): "half the MFU: did you count only the "
            "multiplies (the matmul is 2·B·D·K FLOPs), or divide by 1979e12, the 'with "
            "sparsity' peak? Dense matmuls get at most the dense 989.4e12.",
            100 * expected: "MFU is a fraction between 0 and 1, not a percent.",
            lecture_bf16_mfu(peak=H100_FP32): "66.9e12 is the fp32 peak; this run was bf16.",
            1 / expected: "that is the peak over the achieved rate: MFU is achieved FLOP/s "
            "divided by the peak.",
            lecture_bf16_mfu(seconds=1.0): "the time is missing: the achieved rate is the FLOPs "
            "divided by 0.03 s.",
        },
    )


def training_days(
    *, flops_per_parameter_token: float = 6, peak: float = H100_BF16,
    mfu_factor: float | None = None, seconds_per_unit: float = SECONDS_PER_DAY,
) -> float:
    """Exercise 3's training time in days (other arguments: the slips it recognizes).

    `mfu_factor` multiplies the delivered FLOP/s: the MFU (right), 1 (MFU left out), 1/MFU
    (multiplied by the MFU instead of dividing by it), or 100 x MFU (a percent).
    """
    fraction = TRAINING["mfu"] if mfu_factor is None else mfu_factor
    total = flops_per_parameter_token * TRAINING["parameters"] * TRAINING["tokens"]
    return total / (TRAINING["gpus"] * peak * fraction) / seconds_per_unit


@EXERCISES.checker(3, "days to train 70B parameters on 15T tokens",
                   wants="a number of days, within 2%")
def _check_training_days(answer: Any) -> Feedback:
    halved = ("half the days: did you count only the multiplies (training is 6 x parameters x "
              "tokens FLOPs, 2 per multiply-add), or use 1979e12, the 'with sparsity' peak? "
              "Dense matmuls get at most 989.4e12.")
    return check_number(
        answer, training_days(), unit="days",
        hints={
            training_days(flops_per_parameter_token=3): halved,
            training_days(peak=H100_BF16_SPARSE): halved,
            training_days(mfu_factor=1): "the MFU is missing: the GPUs deliver only 0.4 of "
            "their peak, so divide by 0.4 as well.",
            training_days(mfu_factor=1 / TRAINING["mfu"]): "you multiplied by the MFU; divide "
            "by it: at 0.4 of the peak, training takes longer, not shorter.",
            training_days(mfu_factor=100 * TRAINING["mfu"]): "the MFU is a fraction (0.4), not "
            "a percent (40).",
            training_days(flops_per_parameter_token=2): "2 x parameters x tokens counts only "
            "the forward pass; training (forward + backward) is 6 x parameters x tokens.",
            training_days(peak=H100_FP32): "66.9e12 is the fp32 peak; this run is bf16.",
            training_days(seconds_per_unit=1): "that is in seconds; divide by 86400 for days.",
            training_days(seconds_per_unit=3600): "that is in hours; divide by 24 for days.",
        },
    )


def add_intensity(
    dtype_bytes: float = 2, elements_moved: int = 3, flops_per_element: int = 1
) -> float:
    """FLOP/byte of an elementwise add (other arguments: the slips exercise 4 recognizes)."""
    return flops_per_element / (elements_moved * dtype_bytes)


@EXERCISES.checker(4, "arithmetic intensity of a bf16 add",
                   wants="a number of FLOP/byte, within 2% (a fraction such as 1 / 10 is fine)")
def _check_add_intensity(answer: Any) -> Feedback:
    return check_number(
        answer, add_intensity(), unit="FLOP/byte",
        hints={
            add_intensity(elements_moved=2): "count the output too: 2 reads and 1 write of 2 "
            "bytes each per element.",
            add_intensity(dtype_bytes=4): "that is fp32 (4 bytes); bf16 elements are 2 bytes.",
            add_intensity(elements_moved=1): "you divided by one element's 2 bytes: per output "
            "element, two inputs are read and one output is written.",
            add_intensity(dtype_bytes=1): "bytes, not elements: each bf16 element is 2 bytes.",
            add_intensity(dtype_bytes=16): "bf16 is 16 bits, which is 2 bytes: divide by bytes, "
            "not bits.",
            1 / add_intensity(): "that is bytes per FLOP; arithmetic intensity is FLOPs per "
            "byte.",
        },
    )


def _reference_matmul_intensity(m: int, n: int, k: int, dtype_bytes: int) -> float:
    """FLOP/byte of an (m x n) @ (n x k) matmul whose three matrices cross the bus once."""
    return 2 * m * n * k / ((m * n + n * k + m * k) * dtype_bytes)


EXERCISE_5_CASES = ((1, 1, 1, 4), (64, 64, 64, 2), (16384, 32768, 8192, 2), (1, 4096, 4096, 2),
                    (4096, 1, 4096, 4))
# The slips exercise 5 recognizes, each made in code, with what to say about it.
EXERCISE_5_SLIPS: tuple[tuple[Callable[[int, int, int, int], float], str], ...] = (
    (lambda m, n, k, b: 2 * m * n * k / (m * n + n * k + m * k),
     "you return FLOPs per element: divide by the bytes per element."),
    (lambda m, n, k, b: m * n * k / ((m * n + n * k + m * k) * b),
     "you count m*n*k FLOPs: a multiply-add is 2 FLOPs, so 2*m*n*k."),
    (lambda m, n, k, b: 2 * m * n * k / ((m * n + n * k) * b),
     "count the output too: the bytes moved are (m*n + n*k + m*k) elements."),
    (lambda m, n, k, b: 2 * n / (3 * b),
     "that is the square-matrix formula 2n / (3 x bytes); here the three matrices have m*n, "
     "n*k and m*k elements."),
)


@EXERCISES.checker(5, "arithmetic intensity of any matmul",
                   wants="a function (m, n, k, dtype_bytes) -> FLOP/byte, within 0.0001% (float32 rounding is fine)")
def _check_matmul_intensity(fn: Any) -> Feedback:
    if not callable(fn):
        return wrong("pass your function itself, e.g. EXERCISES.check(5, matmul_intensity).")
    for case in EXERCISE_5_CASES:
        try:
            got = fn(*case)
        except Exception as e:  # noqa: BLE001 (a student's bug gets a hint, not a traceback)
            return wrong(f"your function raised {type(e).__name__} for (m, n, k, dtype_bytes) = "
                         f"{case}: {e}")
        if got is None:
            return UNANSWERED
        value = as_number(got, "FLOP/byte")
        if isinstance(value, Feedback):
            return wrong(f"for (m, n, k, dtype_bytes) = {case} your function returned {got!r}: "
                         "return one number, the FLOP/byte.")
        expected = _reference_matmul_intensity(*case)
        # 1e-6: a right formula computed in float32 (numpy, torch) is off by ~1e-7.
        if math.isclose(value, expected, rel_tol=1e-6):
            continue
        for slip, hint in EXERCISE_5_SLIPS:
            if math.isclose(value, slip(*case), rel_tol=1e-6):
                return wrong(f"for (m, n, k, dtype_bytes) = {case} {hint}")
        return wrong(f"for (m, n, k, dtype_bytes) = {case} you return {value:.6g}, expected "
                     f"{expected:.6g}: bytes moved are (m*n + n*k + m*k) elements, each read or "
                     "written once.")
    return CORRECT
