"""Notebook 03: FLOPs, FLOP/s, MFU and the roofline.

Read top to bottom: counting FLOPs (by hand and with PyTorch's FlopCounterMode), what a cluster
delivers, timing a function honestly, MFU, and arithmetic intensity.

Units: FLOPs (a count), FLOP/s (a rate), seconds, bytes, bytes/s.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lecture_utils.device import as_device, get_device, parse_device, synchronize
from lecture_utils.exercises import CORRECT, UNANSWERED, Exercises, check_number, wrong
from lecture_utils.hardware import GPUSpec, lookup_gpu, peak_flops
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
        number = max(1, min(10_000, math.ceil(MIN_BLOCK_SECONDS / max(estimate, 1e-9))))
    return [time_block(fn, number, device) for _ in range(repeats)]


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


def time_it(
    fn: Callable[[], Any],
    *,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 15,
    number: int | None = None,
) -> Timing:
    """fn()'s seconds per call as a Timing: `repeats` timed blocks after `warmup` calls."""
    return Timing(tuple(measure_times(fn, device=device, warmup=warmup, repeats=repeats,
                                      number=number)))


def compare_timings(name_a: str, a: Timing, name_b: str, b: Timing) -> str:
    """A conclusion computed from two timings: which is faster and by how much, or that they
    cannot be told apart (their spreads overlap)."""
    ratio = a.median / b.median if b.median else math.inf
    if a.low <= b.high and b.low <= a.high:
        return (f"{name_a} and {name_b} agree within their spread "
                f"(medians {ratio:.2f}x apart)")
    faster, slower, times = (name_a, name_b, 1 / ratio) if ratio < 1 else (name_b, name_a, ratio)
    return f"{faster} is {times:.2f}x faster than {slower} (their spreads do not overlap)"


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
    "lecture_mean": s, "warm_median": s}. Only a first call pays one-off costs, and only the
    first time its kernels run in the process: in a re-run, even the first call is warm.
    """
    cold = time_each_call_cold(fn, calls=calls, device=device)
    warm = benchmark(fn, device=device, warmup=2, repeats=5)
    return {"cold": cold, "first_call": cold[0], "lecture_mean": statistics.fmean(cold),
            "warm_median": warm}


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
# Check yourself

EXERCISES = Exercises("03")

LECTURE_B, LECTURE_D, LECTURE_K = 16384, 32768, 8192
H100_BF16 = peak_flops("H100 SXM", "bf16")  # dense; the datasheet's 1979e12 is "with sparsity"


@EXERCISES.checker(1, "FLOPs of the lecture's matmul")
def _check_lecture_matmul(answer: Any) -> Any:
    b, d, k = LECTURE_B, LECTURE_D, LECTURE_K
    return check_number(
        answer, 2 * b * d * k, unit="FLOPs",
        hints={
            b * d * k: "you counted only the multiplies: each multiply-add is 2 FLOPs.",
            2 * b * d: "K is missing: every one of the B x K outputs needs D multiply-adds.",
            b * d + d * k: "that is the number of input elements, not the work done on them.",
        },
    )


@EXERCISES.checker(2, "MFU of the lecture's bf16 timing")
def _check_lecture_mfu(answer: Any) -> Any:
    flops = 2 * LECTURE_B * LECTURE_D * LECTURE_K
    expected = flops / 0.03 / H100_BF16
    return check_number(
        answer, expected, rel_tol=1e-2,
        hints={
            flops / 0.03 / (2 * H100_BF16): "you divided by 1979e12, the 'with sparsity' peak; "
            "dense matmuls get at most the dense 989.5e12.",
            100 * expected: "MFU is a fraction between 0 and 1, not a percent.",
            flops / 0.03 / peak_flops("H100 SXM", "fp32"): "67e12 is the fp32 peak; this run was "
            "bf16.",
        },
    )


@EXERCISES.checker(3, "days to train 70B parameters on 15T tokens")
def _check_training_days(answer: Any) -> Any:
    total = 6 * 70e9 * 15e12
    per_day = 1024 * H100_BF16 * 0.5 * SECONDS_PER_DAY
    days = total / per_day
    return check_number(
        answer, days, rel_tol=1e-2, unit="days",
        hints={
            days / 2: "half the answer: did you use the 1979e12 'with sparsity' peak, or leave "
            "out the MFU of 0.5?",
            days / 3: "2 N D counts only the forward pass; training (forward + backward) is 6 N D.",
            days * SECONDS_PER_DAY: "that is in seconds; divide by 86400 for days.",
            days * 24: "that is in hours; divide by 24 for days.",
        },
    )


@EXERCISES.checker(4, "arithmetic intensity of a bf16 add")
def _check_add_intensity(answer: Any) -> Any:
    return check_number(
        answer, 1 / 6, unit="FLOP/byte",
        hints={
            1 / 4: "count the output too: 2 reads and 1 write of 2 bytes each per element.",
            1 / 12: "that is fp32 (4 bytes); bf16 elements are 2 bytes.",
            1 / 2: "each element of the output needs two inputs read and one output written.",
            1 / 3: "bytes, not elements: each bf16 element is 2 bytes.",
        },
    )


def _reference_matmul_intensity(m: int, n: int, k: int, dtype_bytes: int) -> float:
    """FLOP/byte of an (m x n) @ (n x k) matmul whose three matrices cross the bus once."""
    return 2 * m * n * k / ((m * n + n * k + m * k) * dtype_bytes)


@EXERCISES.checker(5, "arithmetic intensity of any matmul")
def _check_matmul_intensity(fn: Any) -> Any:
    if not callable(fn):
        return wrong("pass your function itself, e.g. EXERCISES.check(5, matmul_intensity).")
    cases = [(1, 1, 1, 4), (64, 64, 64, 2), (16384, 32768, 8192, 2), (1, 4096, 4096, 2),
             (4096, 1, 4096, 4)]
    for m, n, k, dtype_bytes in cases:
        got = fn(m, n, k, dtype_bytes)
        if got is None:
            return UNANSWERED
        expected = _reference_matmul_intensity(m, n, k, dtype_bytes)
        if not math.isclose(float(got), expected, rel_tol=1e-9):
            if math.isclose(float(got), expected * dtype_bytes, rel_tol=1e-9):
                return wrong(f"for {(m, n, k, dtype_bytes)} you return FLOPs per element: "
                             "divide by the bytes per element.")
            if math.isclose(float(got), expected / 2, rel_tol=1e-9):
                return wrong(f"for {(m, n, k, dtype_bytes)} you count m*n*k FLOPs: it is 2*m*n*k.")
            return wrong(f"for (m, n, k, dtype_bytes) = {(m, n, k, dtype_bytes)} you return "
                         f"{got}, expected {expected:.6g}: bytes moved are (m*n + n*k + m*k) "
                         "elements, each read or written once.")
    return CORRECT

