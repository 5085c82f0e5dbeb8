"""Notebook 02: dtypes and memory.

A tensor's memory is (number of elements) x (bytes per element). A floating-point format splits
its bits into a sign, an exponent (the range: how large and how small) and a mantissa, also
called the fraction (the precision: how far apart neighbouring numbers are). Everything here is
derived from `torch.finfo`, and checked against an enumeration of every bit pattern where the
format is small enough (8 and 16 bits) to list them all.
"""

# No `from __future__ import annotations`: jaxtyping reads the real annotations.

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
from jaxtyping import Float, Shaped

from lecture_utils.exercises import (
    CORRECT,
    UNANSWERED,
    Exercises,
    Feedback,
    as_number,
    check_number,
    wrong,
)

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with this module
    from matplotlib.figure import Figure

T = TypeVar("T")

# --------------------------------------------------------------------------------------------
# Memory of a tensor
# --------------------------------------------------------------------------------------------


def get_memory_usage(x: torch.Tensor) -> int:
    """Bytes held by the elements of `x`: number of elements x bytes per element."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"get_memory_usage needs a torch.Tensor, got {type(x).__name__}")
    return x.numel() * x.element_size()


def _check_shape(shape: object) -> tuple[int, ...]:
    """`shape` as a tuple, checked to be a sequence of sizes (ints >= 0)."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise TypeError(f"shape must be a sequence of sizes such as (4, 8), got {shape!r}")
    shape = tuple(shape)
    for size in shape:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"a shape holds sizes >= 0, got {shape}")
    return shape


def tensor_bytes(shape: Sequence[int], dtype: torch.dtype = torch.float32) -> int:
    """Bytes a tensor of this shape and dtype would take, computed without allocating it."""
    shape = _check_shape(shape)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}")
    # A "meta" tensor has a shape and a dtype but no data: nothing is allocated.
    return get_memory_usage(torch.empty(shape, dtype=dtype, device="meta"))


# Decimal units (as on datasheets and disk labels) and binary units (as memory is built).
BYTE_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}


def format_bytes(num_bytes: float, unit: str = "GB", digits: int = 2) -> str:
    """`num_bytes` in one named unit: GB means 10^9 bytes and GiB means 2^30 bytes."""
    if not isinstance(unit, str) or unit not in BYTE_UNITS:
        raise ValueError(f"unknown unit {unit!r}: use one of {', '.join(BYTE_UNITS)}")
    if isinstance(num_bytes, bool) or not isinstance(num_bytes, (int, float)):
        raise TypeError(f"num_bytes must be a number, got {type(num_bytes).__name__}")
    if not math.isfinite(num_bytes) or num_bytes < 0:
        raise ValueError(f"num_bytes must be a finite number >= 0, got {num_bytes}")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an int >= 0 (digits after the point), got {digits!r}")
    return f"{num_bytes / BYTE_UNITS[unit]:.{digits}f} {unit}"


# --------------------------------------------------------------------------------------------
# Which floating-point dtypes there are
# --------------------------------------------------------------------------------------------

# The floating dtypes that hold one number per element, by name: float8_e8m0fnu arrived in
# PyTorch 2.7, so an older version simply lists fewer. (torch.float4_e2m1fn_x2 packs two 4-bit
# numbers into each byte and has no torch.finfo.)
_FLOAT_DTYPE_NAMES = (
    "float64", "float32", "float16", "bfloat16",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
)
FLOAT_DTYPES: tuple[torch.dtype, ...] = tuple(
    getattr(torch, name) for name in _FLOAT_DTYPE_NAMES if hasattr(torch, name)
)

# The five formats of the lecture: training's default, the two 16-bit ones and the two fp8 ones.
LECTURE_DTYPES: tuple[torch.dtype, ...] = (
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
)

_ALIASES = {"fp64": "float64", "fp32": "float32", "fp16": "float16", "bf16": "bfloat16",
            "double": "float64", "float": "float32", "half": "float16",
            "e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2"}
_DTYPES_BY_NAME = {name: v for name, v in vars(torch).items() if isinstance(v, torch.dtype)}


def dtype_name(dtype: torch.dtype) -> str:
    """The dtype's name without the `torch.` prefix, e.g. 'bfloat16'."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}")
    return str(dtype).removeprefix("torch.")


def as_float_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A floating-point torch.dtype with a torch.finfo, from a dtype or a name like 'bf16'."""
    if isinstance(dtype, str):
        name = _ALIASES.get(dtype.lower(), dtype.removeprefix("torch."))
        if name not in _DTYPES_BY_NAME:
            known = ", ".join(dtype_name(d) for d in FLOAT_DTYPES)
            raise ValueError(f"unknown dtype name {dtype!r}: use one of {known} (or fp32, bf16...)")
        dtype = _DTYPES_BY_NAME[name]
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: expected a torch.dtype such as torch.bfloat16 (or a name such "
                        f"as 'bf16'), got {type(dtype).__name__}")
    if not dtype.is_floating_point:
        raise ValueError(
            f"{dtype_name(dtype)} is not a floating-point dtype: torch.finfo describes only "
            "floating-point dtypes (use torch.iinfo for integers)"
        )
    try:
        torch.finfo(dtype).max  # noqa: B018  (packed formats fail only on first use)
    except (TypeError, RuntimeError) as e:  # packed sub-byte formats have no finfo
        raise ValueError(
            f"{dtype_name(dtype)} has no torch.finfo (it packs several numbers per byte)"
        ) from e
    return dtype


def dtype_table(
    dtypes: Sequence[torch.dtype] = FLOAT_DTYPES, shape: Sequence[int] = (4, 8)
) -> list[dict[str, object]]:
    """One row per dtype: its name, bits, bytes per element, and bytes of a tensor of `shape`."""
    _check_dtype_list(dtypes)
    shape = _check_shape(shape)
    rows = []
    for dtype in dtypes:
        dtype = as_float_dtype(dtype)
        rows.append(
            {
                "dtype": dtype_name(dtype),
                "bits": torch.finfo(dtype).bits,
                "bytes/element": dtype.itemsize,
                f"bytes of {'x'.join(map(str, shape))}": tensor_bytes(shape, dtype),
            }
        )
    return rows


def _check_dtype_list(dtypes: object) -> None:
    """A list of dtypes, not one dtype or one name (a string would be read letter by letter)."""
    if isinstance(dtypes, (str, torch.dtype)) or not isinstance(dtypes, Iterable):
        raise TypeError(f"dtypes must be a list of dtypes, e.g. [torch.bfloat16] or ['bf16'], "
                        f"got {dtypes!r}")


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """Rows of equal keys as a fixed-width text table; floats in 4 significant digits."""
    if not rows:
        raise ValueError("format_table needs at least one row")
    if isinstance(rows, (str, dict)) or not all(isinstance(row, dict) for row in rows):
        raise TypeError(f"rows must be a list of dicts (one per row), got {rows!r}")
    if any(list(row) != list(rows[0]) for row in rows):
        raise ValueError(f"rows must all have the same keys, in the same order; got "
                         f"{sorted({tuple(row) for row in rows})}")

    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    columns = list(rows[0])
    cells = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Bit layout, range and precision, all from torch.finfo
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BitLayout:
    """How a format spends its bits: sign, exponent and mantissa (fraction) bits."""

    sign: int
    exponent: int
    mantissa: int

    @property
    def bits(self) -> int:
        return self.sign + self.exponent + self.mantissa


def bit_layout(dtype: torch.dtype | str) -> BitLayout:
    """Sign, exponent and mantissa bits of a float dtype, derived from torch.finfo."""
    dtype = as_float_dtype(dtype)
    info = torch.finfo(dtype)
    # eps = 2^-mantissa: the gap between 1.0 and the next number is one unit of the last bit.
    mantissa = round(-math.log2(info.eps))
    sign = 1 if info.min < 0 else 0  # float8_e8m0fnu is unsigned: no sign bit
    layout = BitLayout(sign=sign, exponent=info.bits - sign - mantissa, mantissa=mantissa)
    # The float8 names spell their layout ("e4m3": 4 exponent, 3 mantissa bits): cross-check.
    named = re.search(r"e(\d+)m(\d+)", dtype_name(dtype))
    if named and (layout.exponent, layout.mantissa) != (int(named[1]), int(named[2])):
        raise ValueError(
            f"torch.finfo({dtype_name(dtype)}) gives eps={info.eps}, i.e. {mantissa} mantissa "
            f"bits, but the name says {named[2]}: this torch.finfo entry is wrong, so no layout "
            "is derived from it"
        )
    return layout


def smallest_subnormal(dtype: torch.dtype | str) -> float:
    """The smallest positive number of a float dtype: smallest normal x eps (one mantissa step)."""
    eps = 2.0 ** -bit_layout(dtype).mantissa  # torch.finfo's eps, cross-checked
    return torch.finfo(as_float_dtype(dtype)).smallest_normal * eps


def finfo_table(dtypes: Sequence[torch.dtype] = LECTURE_DTYPES) -> list[dict[str, object]]:
    """One row per dtype: layout, largest value, smallest normal and subnormal values, eps."""
    _check_dtype_list(dtypes)
    rows = []
    for dtype in dtypes:
        dtype = as_float_dtype(dtype)
        info, layout = torch.finfo(dtype), bit_layout(dtype)
        rows.append(
            {
                "dtype": dtype_name(dtype),
                "s/e/m": f"{layout.sign}/{layout.exponent}/{layout.mantissa}",
                "max": info.max,
                "smallest normal": info.smallest_normal,
                "smallest subnormal": smallest_subnormal(dtype),
                "eps": info.eps,
            }
        )
    return rows


def representable_values(dtype: torch.dtype | str) -> Float[torch.Tensor, " n"]:
    """Every finite value >= 0 of an 8- or 16-bit float dtype, ascending, as float64 (exact)."""
    dtype = as_float_dtype(dtype)
    if dtype.itemsize == 1:
        patterns = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    elif dtype.itemsize == 2:
        patterns = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    else:
        raise ValueError(
            f"{dtype_name(dtype)} has 2^{8 * dtype.itemsize} bit patterns, too many to list: "
            "use spacing() or torch.nextafter for 32- and 64-bit formats"
        )
    # Reinterpret each bit pattern as a number of `dtype`; float64 holds all of them exactly.
    values = patterns.view(dtype).to(torch.float64)
    values = values[torch.isfinite(values) & (values >= 0)]
    return torch.unique(values)  # sorted; merges +0 and -0


def spacing(
    x: float | Shaped[torch.Tensor, "*shape"], dtype: torch.dtype | str | None = None
) -> Float[torch.Tensor, "*shape"]:
    """Gap from |x| up to the next larger number of `dtype` (one unit in the last place), float64.

    `x` is first rounded to `dtype` (by default a tensor's own dtype). With m mantissa bits, a
    number in [2^k, 2^(k+1)) has neighbours 2^(k-m) apart; below the smallest normal number the
    gap stays at its value there (the subnormals are evenly spaced). A value that overflows
    `dtype` has no gap: ValueError.
    """
    if dtype is None:
        if not isinstance(x, torch.Tensor):
            raise ValueError("give a dtype, e.g. spacing(1.0, torch.bfloat16), or pass a tensor")
        dtype = x.dtype
    dtype = as_float_dtype(dtype)
    mantissa = bit_layout(dtype).mantissa
    eps = 2.0**-mantissa  # torch.finfo's eps, cross-checked
    info = torch.finfo(dtype)
    tiny = info.smallest_normal
    # Past the largest value plus half its gap a cast overflows: to inf, to NaN, or (e4m3fn in
    # recent PyTorch versions) to the largest value. Refuse, rather than depend on the version.
    top_gap = 2.0 ** (math.frexp(info.max)[1] - 1 - mantissa)  # max is in [2^k, 2^(k+1))
    exact = torch.as_tensor(x).to(torch.float64).abs()
    if not torch.isfinite(exact).all():
        raise ValueError("spacing is defined for finite values only (got inf or NaN)")
    if (exact > info.max + top_gap / 2).any():
        raise ValueError(
            f"x is beyond the largest {dtype_name(dtype)} ({info.max:g}): it overflows, so it "
            "has no neighbour to measure"
        )
    values = torch.as_tensor(x).to(dtype).to(torch.float64).abs()
    if not torch.isfinite(values).all():  # exactly max + half the top gap: rounds to inf
        raise ValueError("spacing is defined for finite values only (x rounds to inf)")
    _, exponent = torch.frexp(values)  # |x| = f * 2^exponent with f in [0.5, 1)
    normal_gap = torch.ldexp(torch.full_like(values, eps), exponent - 1)
    return torch.where(values < tiny, torch.full_like(values, tiny * eps), normal_gap)


# --------------------------------------------------------------------------------------------
# Accumulating in low precision
# --------------------------------------------------------------------------------------------


def _check_increment(increment: object) -> None:
    if isinstance(increment, bool) or not isinstance(increment, (int, float)):
        raise TypeError(f"increment must be a number such as 0.01, got {increment!r}")
    if not math.isfinite(increment):
        raise ValueError(f"increment must be a finite number, got {increment}")


def running_sum(increment: float, steps: int, dtype: torch.dtype | str) -> Float[torch.Tensor, " steps"]:
    """Partial sums of `steps` additions of `increment`, each rounded to `dtype` (float64 out)."""
    dtype = as_float_dtype(dtype)
    _check_increment(increment)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    total = torch.zeros((), dtype=dtype)
    step = torch.tensor(increment, dtype=dtype)  # the increment is stored in dtype too
    history = torch.empty(steps, dtype=dtype)
    for i in range(steps):
        total = total + step  # one rounding to dtype per addition, as a bf16 accumulator would do
        history[i] = total
    return history.to(torch.float64)


def stall_value(increment: float, dtype: torch.dtype | str) -> float:
    """The power of two at which a running sum of `increment` in `dtype` stops growing.

    Adding `increment` to s changes nothing once the increment is at most half the gap between
    s and its neighbour: the exact sum rounds back to s (an exact tie rounds to even, which keeps
    a power of two). The gap doubles at each power of two, so the sum sticks at the first power
    of two p with increment <= spacing(p) / 2.
    """
    dtype = as_float_dtype(dtype)
    _check_increment(increment)
    step = float(torch.tensor(increment, dtype=dtype))
    if not step > 0:
        raise ValueError(f"increment must round to a positive {dtype_name(dtype)}, got {increment}")
    info = torch.finfo(dtype)
    # No power of two below the increment can stall the sum (spacing(p) / 2 < p / 2 there).
    power = 2.0 ** math.floor(math.log2(step))
    while power <= info.max:
        if step <= float(spacing(power, dtype)) / 2:
            return power
        power *= 2
    raise ValueError(f"increment {increment} never stalls below the largest {dtype_name(dtype)}")


def stuck_after(history: Float[torch.Tensor, " steps"]) -> int | None:
    """Additions a running sum takes to reach the value it then keeps; None if it never stops."""
    if not isinstance(history, torch.Tensor) or history.dim() != 1:
        raise TypeError(f"history must be a 1-D tensor of partial sums (running_sum's result), "
                        f"got {type(history).__name__}")
    repeats = (history[1:] == history[:-1]).nonzero()
    # history[k] is the sum after k + 1 additions; it first equals the next one at k = repeats[0].
    return int(repeats[0]) + 1 if len(repeats) else None


# --------------------------------------------------------------------------------------------
# Figures (matplotlib is imported when a figure is drawn, not with the module)
# --------------------------------------------------------------------------------------------

_PART_COLOURS = {"sign": "#D55E00", "exponent": "#0072B2", "mantissa": "#009E73"}


def plot_bit_layouts(dtypes: Sequence[torch.dtype] = LECTURE_DTYPES) -> "Figure":
    """One bar per dtype, split into its sign, exponent and mantissa bits, to scale: a Figure."""
    import matplotlib.pyplot as plt

    _check_dtype_list(dtypes)
    layouts = [bit_layout(d) for d in dtypes]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for row, layout in enumerate(layouts):
        left = 0
        for part, colour in _PART_COLOURS.items():
            width = getattr(layout, part)
            ax.barh(row, width, left=left, color=colour, edgecolor="white", linewidth=2,
                    label=part if row == 0 else None)
            if width:  # e8m0fnu has no sign and no mantissa: nothing to label
                ax.text(left + width / 2, row, str(width), ha="center", va="center",
                        color="white", fontweight="bold")
            left += width
    ax.set_yticks(range(len(layouts)), [dtype_name(as_float_dtype(d)) for d in dtypes])
    ax.invert_yaxis()
    ax.set_xlim(0, max(layout.bits for layout in layouts))
    ax.set_xlabel("bits")
    ax.set_title("How each format spends its bits (read from torch.finfo)")
    ax.legend(loc="lower right", ncols=3)
    ax.grid(False)
    return fig


def _spacing_curve(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive values of `dtype` and the gap above each, both float64, for a spacing plot."""
    if dtype.itemsize <= 2:  # every value, and the exact gap above it
        values = representable_values(dtype)
        xs = values[values > 0][:-1]
        return xs, spacing(xs, dtype)
    # Too many values to list: 3000 points over the range, each with its true neighbour.
    xs = torch.logspace(-46, 38.5, 3000, dtype=torch.float64).to(dtype)
    xs = xs[(xs > 0) & torch.isfinite(xs)]
    gaps = torch.nextafter(xs, torch.full_like(xs, math.inf)).double() - xs.double()
    return xs.double(), gaps


SPACING_PLOT_DTYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16,
                       torch.float8_e5m2, torch.float8_e4m3fn)


def plot_spacing(dtypes: Sequence[torch.dtype] = SPACING_PLOT_DTYPES) -> "Figure":
    """The gap above each value, absolute (whole range) and relative (zoomed), log-log: a Figure."""
    import matplotlib.pyplot as plt

    _check_dtype_list(dtypes)
    fig, (ax_abs, ax_rel) = plt.subplots(1, 2, figsize=(13, 5))
    for dtype in dtypes:
        xs, gaps = _spacing_curve(as_float_dtype(dtype))
        ax_abs.step(xs, gaps, where="post", label=dtype_name(dtype))
        ax_rel.step(xs, gaps / xs, where="post", linewidth=1.2, label=dtype_name(dtype))
    for ax in (ax_abs, ax_rel):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("value |x|")
    ax_abs.set_xlim(1e-46, 1e39)
    ax_rel.set_xlim(1e-9, 1e6)
    ax_rel.set_ylim(1e-17, 2)
    ax_abs.set_ylabel("gap to the next number")
    ax_rel.set_ylabel("gap / value")
    ax_abs.set_title("Absolute spacing, whole range")
    ax_rel.set_title("Relative spacing (precision), zoomed")
    ax_abs.legend(loc="upper left", fontsize=10)
    fig.tight_layout()
    return fig


def plot_running_sums(sums: dict[torch.dtype, torch.Tensor], increment: float) -> "Figure":
    """Running sums of `increment` per dtype against the exact sum, each stall marked: a Figure."""
    import matplotlib.pyplot as plt

    if not isinstance(sums, dict) or not sums:
        raise TypeError(f"sums must be a dict of dtype -> running_sum(...) result, got "
                        f"{type(sums).__name__}")
    _check_increment(increment)
    fig, ax = plt.subplots(figsize=(9, 4.8))
    steps = len(next(iter(sums.values())))
    step_numbers = torch.arange(1, steps + 1)
    top = max(float(history.max()) for history in sums.values())
    for dtype, history in sums.items():
        ax.plot(step_numbers, history, label=dtype_name(dtype))
        stuck = stuck_after(history)
        if stuck is not None:  # point at the stall from above and to the right
            value = float(history[stuck - 1])
            ax.annotate(f"{dtype_name(dtype)} stuck at {value:g}", xy=(stuck, value),
                        xytext=(stuck + 0.12 * steps, value + 0.1 * top),
                        arrowprops={"arrowstyle": "->"})
    ax.plot(step_numbers, step_numbers * increment, color="black", linestyle=":", label="exact")
    ax.set_xlabel(f"number of additions of {increment:g}")
    ax.set_ylabel("running sum")
    ax.set_title("A running sum in low precision stops growing")
    ax.legend(loc="upper left")
    return fig


# --------------------------------------------------------------------------------------------
# GPU memory, as the CUDA caching allocator counts it
# --------------------------------------------------------------------------------------------


def cuda_bytes_allocated_by(make: Callable[[], T], device: torch.device | str) -> tuple[int, T]:
    """Bytes torch.cuda.memory_allocated grows by while make() runs on `device`, and its result."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"device must be a CUDA device: torch.cuda.memory_allocated counts only "
                         f"CUDA memory, got {device}")
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    result = make()
    torch.cuda.synchronize(device)  # kernels run asynchronously: wait before reading the count
    return torch.cuda.memory_allocated(device) - before, result


# --------------------------------------------------------------------------------------------
# "Check yourself" exercises
# --------------------------------------------------------------------------------------------

EXERCISES = Exercises("02")

ACTIVATION_SHAPE = (32, 2048, 12288)  # batch, sequence length, GPT-3 model width


def _activation_gib(bytes_per_element: float, unit: int = 2**30) -> float:
    """Exercise 1's answer with `bytes_per_element` (2 for bf16) in `unit`s (GiB by default)."""
    return math.prod(ACTIVATION_SHAPE) * bytes_per_element / unit


@EXERCISES.checker(1, "GiB of a bf16 activation tensor",
                   wants="a number of GiB (2^30 bytes), within 2%")
def _check_activation_gib(answer: object) -> Feedback:
    bf16 = torch.bfloat16.itemsize
    return check_number(
        answer,
        tensor_bytes(ACTIVATION_SHAPE, torch.bfloat16) / 2**30,
        hints={
            _activation_gib(torch.float32.itemsize): "that is the fp32 size: a bf16 element "
            "takes 2 bytes, not 4.",
            _activation_gib(torch.float64.itemsize): "that is the float64 size (8 bytes, "
            "Python's float): a bf16 element takes 2 bytes.",
            _activation_gib(1): "a bf16 element takes 2 bytes (16 bits), not 1.",
            _activation_gib(torch.finfo(torch.bfloat16).bits): "that counts bits (16 per "
            "element): a byte is 8 bits, so a bf16 element is 2 bytes.",
            _activation_gib(bf16, unit=1): "that is in bytes: divide by 2^30 for GiB.",
            _activation_gib(bf16, unit=2**20): "that is in MiB: divide by 1024 for GiB.",
        },
        unit="GiB",
    )


# Exercise 2 asks about the lecture's five formats only.
_FORMATS_TEXT = "fp32, fp16, bf16, e4m3fn and e5m2"


@EXERCISES.checker(2, "which formats keep 1e-8 nonzero",
                   wants=f"a list of torch dtypes from the five formats ({_FORMATS_TEXT}), "
                         "exactly the right ones")
def _check_holds_1e8(answer: object) -> Feedback:
    if isinstance(answer, torch.dtype):
        return wrong(f"got one dtype, {answer}: give a list, even of one: [{answer}].")
    if isinstance(answer, (str, torch.Tensor)) or not isinstance(answer, Iterable):
        shown = f"the text {answer!r}" if isinstance(answer, str) else \
            f"an answer of type {type(answer).__name__}"
        return wrong(f"expected a list of dtypes such as [torch.float32], got {shown}.")
    chosen = set()
    for d in answer:
        try:
            chosen.add(as_float_dtype(d))
        except (TypeError, ValueError):
            return wrong(f"{d!r} is not a floating-point dtype: give a list of dtypes such as "
                         "[torch.float32, torch.float16].")
    # A list computed over every dtype (float64 included) answers another question.
    others = sorted(chosen - set(LECTURE_DTYPES), key=dtype_name)
    if others:
        names = ", ".join(dtype_name(d) for d in others)
        them = "them" if len(others) > 1 else "it"
        return wrong(f"{names}: not among the five formats asked about ({_FORMATS_TEXT}); "
                     f"leave {them} out.")
    expected = {d for d in LECTURE_DTYPES if torch.tensor(1e-8, dtype=d).item() != 0}
    if chosen == expected:
        return CORRECT
    extra, missing = sorted(chosen - expected, key=str), sorted(expected - chosen, key=str)
    if extra:
        d = extra[0]
        return wrong(
            f"{dtype_name(d)} rounds 1e-8 to 0: its smallest positive number is "
            f"{smallest_subnormal(d):.3g} and 1e-8 is less than half of it."
        )
    d = missing[0]
    why = " Range comes from exponent bits, not total bits." if d.itemsize == 2 else ""
    return wrong(f"{dtype_name(d)} keeps 1e-8: its smallest positive number is "
                 f"{smallest_subnormal(d):.3g}.{why}")


EX3_INCREMENT = 0.001


def _whole_gap_stall(increment: float, dtype: torch.dtype) -> float:
    """The stall with the rule misremembered: the first power of two whose gap exceeds the step."""
    step = float(torch.tensor(increment, dtype=dtype))
    power = 2.0 ** math.floor(math.log2(step))
    while step > float(spacing(power, dtype)):
        power *= 2
    return power


@EXERCISES.checker(3, "where a bf16 running sum of 0.001 stalls",
                   wants="the value the sum gets stuck at (a power of two), exactly")
def _check_stall(answer: object) -> Feedback:
    expected = stall_value(EX3_INCREMENT, torch.bfloat16)
    additions = stuck_after(running_sum(EX3_INCREMENT, 1000, torch.bfloat16))
    # fp16 with 0.001 and bf16 with 0.01 both stall at 4: one hint names both.
    return check_number(
        answer,
        expected,
        rel_tol=0,
        hints={
            stall_value(0.01, torch.bfloat16): "4 is where a bf16 running sum of 0.01 stalls "
            "(and an fp16 sum of 0.001); a bf16 sum of 0.001 stops at a smaller power of two.",
            stall_value(EX3_INCREMENT, torch.float32): "that is where an fp32 sum stalls; the "
            "question is about bf16.",
            _whole_gap_stall(EX3_INCREMENT, torch.bfloat16): "the sum stops where the increment "
            "is at most *half* the gap (it rounds back down), not a whole gap: one power of "
            "two higher.",
            10_000 * EX3_INCREMENT: "10 is what an exact (or fp32) sum of 10,000 additions of "
            "0.001 reaches: the bf16 running sum stops long before.",
            additions: f"{additions} is the number of additions before it stops; the question "
            "asks for the value of the sum there.",
        },
    )


def param_bytes_reference(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Bytes of all of `model`'s parameters if each were stored in `dtype`."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters()) * as_float_dtype(dtype).itemsize


@EXERCISES.checker(4, "param_bytes(model, dtype)",
                   wants="a function (model, dtype) -> the number of bytes (an int), exactly")
def _check_param_bytes(fn: object) -> Feedback:
    if not callable(fn):
        return wrong(f"expected the function param_bytes(model, dtype) itself (its name, no "
                     f"call, no quotes), got a {type(fn).__name__}.")
    # Parameters on the meta device: shapes without memory, so large layers cost nothing.
    cases = [
        (torch.nn.Linear(1000, 300, device="meta"), torch.bfloat16),
        (torch.nn.Sequential(torch.nn.Linear(4096, 16384, bias=False, device="meta"),
                             torch.nn.Linear(16384, 4096, device="meta")), torch.float8_e4m3fn),
    ]
    for model, dtype in cases:
        got = fn(model, dtype)
        if got is None:
            return UNANSWERED
        expected = param_bytes_reference(model, dtype)
        value = as_number(got, "bytes")
        if isinstance(value, Feedback):
            return wrong(f"your function returned {got!r}: return one number, the bytes.")
        got = value
        if got == expected:
            continue
        count = sum(p.numel() for p in model.parameters())
        weights_only = sum(p.numel() for n, p in model.named_parameters() if "bias" not in n)
        slips = {
            weights_only * dtype.itemsize: "you counted only the weight matrices: biases are "
            "parameters too.",
            count * 4: "you used the parameters' own fp32 size (4 bytes): use `dtype`'s bytes "
            "per element, dtype.itemsize.",
            count: "that is the number of parameters: multiply by bytes per element.",
            count * torch.finfo(dtype).bits: "that counts bits: divide by 8, or use "
            "dtype.itemsize (bytes per element).",
            count * 2: "that is 2 bytes per parameter whatever the dtype: use dtype.itemsize.",
        }
        # Checked in order, and never a slip that equals the right answer (fp8 is 1 byte).
        for value, hint in slips.items():
            if got == value and value != expected:
                return wrong(hint)
        return wrong(f"for a {dtype_name(dtype)} model expected {expected} bytes, got {got!r}.")
    return CORRECT


def _first_integer_missed(significant_bits: int) -> int:
    """The smallest positive integer a float with this many significant bits cannot hold."""
    return 2**significant_bits + 1


@EXERCISES.checker(5, "smallest positive integer bf16 cannot hold",
                   wants="an int, exactly")
def _check_first_gap(answer: object) -> Feedback:
    mantissa = bit_layout(torch.bfloat16).mantissa
    expected = _first_integer_missed(mantissa + 1)  # + 1: the implicit leading bit
    return check_number(
        answer,
        expected,
        rel_tol=0,
        hints={
            expected - 1: f"{expected - 1} is a power of two: bf16 holds it exactly. Look just "
            "above it, where the gap between neighbours becomes 2.",
            _first_integer_missed(bit_layout(torch.float16).mantissa + 1): "that is the answer "
            "for fp16 (10 mantissa bits); bf16 has 7.",
            _first_integer_missed(bit_layout(torch.float32).mantissa + 1): "that is the answer "
            "for fp32 (23 mantissa bits); bf16 has 7.",
            _first_integer_missed(mantissa): f"{_first_integer_missed(mantissa)} fits: with 7 "
            "stored mantissa bits plus the implicit leading 1, bf16 has 8 significant bits.",
        },
    )
