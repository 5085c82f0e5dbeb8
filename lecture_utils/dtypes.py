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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Shaped

from lecture_utils.exercises import CORRECT, UNANSWERED, Exercises, check_number, wrong

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


# --------------------------------------------------------------------------------------------
# "Check yourself" exercises
# --------------------------------------------------------------------------------------------

EXERCISES = Exercises("02")

ACTIVATION_SHAPE = (32, 2048, 12288)  # batch, sequence length, GPT-3 model width


@EXERCISES.checker(1, "GiB of a bf16 activation tensor")
def _check_activation_gib(answer: object) -> object:
    expected = tensor_bytes(ACTIVATION_SHAPE, torch.bfloat16) / 2**30
    return check_number(
        answer,
        expected,
        hints={
            2 * expected: "that is the fp32 size: a bf16 element takes 2 bytes, not 4.",
            expected / 2: "a bf16 element takes 2 bytes (16 bits), not 1.",
            expected * 2**30: "that is in bytes: divide by 2^30 for GiB.",
        },
        unit="GiB",
    )


@EXERCISES.checker(2, "which formats keep 1e-8 nonzero")
def _check_holds_1e8(answer: object) -> object:
    if answer is None:
        return UNANSWERED
    try:
        chosen = {as_float_dtype(d) for d in answer}
    except (TypeError, ValueError) as e:
        return wrong(f"give a list of dtypes such as [torch.float32]: {e}")
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
    if missing:
        d = missing[0]
        return wrong(
            f"{dtype_name(d)} keeps 1e-8: its smallest positive number is "
            f"{smallest_subnormal(d):.3g}. Range comes from exponent bits, not total bits."
        )
    return wrong("compare 1e-8 with each format's smallest subnormal number.")


@EXERCISES.checker(3, "where a bf16 running sum of 0.001 stalls")
def _check_stall(answer: object) -> object:
    expected = stall_value(0.001, torch.bfloat16)
    return check_number(
        answer,
        expected,
        rel_tol=0,
        hints={
            stall_value(0.01, torch.bfloat16): "4.0 is where a running sum of 0.01 stalls; 0.001 "
            "is 10x smaller, so it stops at a smaller power of two.",
            10.0: "10 is the exact sum of 10000 x 0.001: the bf16 running sum stops long before.",
        },
    )


def param_bytes_reference(model: torch.nn.Module, dtype: torch.dtype) -> int:
    """Bytes of all of `model`'s parameters if each were stored in `dtype`."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters()) * as_float_dtype(dtype).itemsize


@EXERCISES.checker(4, "param_bytes(model, dtype)")
def _check_param_bytes(fn: object) -> object:
    if fn is None or not callable(fn):
        return UNANSWERED
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
        if got == expected:
            continue
        weights_only = sum(p.numel() for n, p in model.named_parameters() if "bias" not in n)
        if got == weights_only * dtype.itemsize:
            return wrong("you counted only the weight matrices: biases are parameters too.")
        if got == sum(p.numel() for p in model.parameters()) * 4:
            return wrong("you used the parameters' own fp32 size (4 bytes): use `dtype`'s "
                         "bytes per element, dtype.itemsize.")
        if got == sum(p.numel() for p in model.parameters()):
            return wrong("that is the number of parameters: multiply by bytes per element.")
        return wrong(f"for a {dtype_name(dtype)} model expected {expected} bytes, got {got}.")
    return CORRECT


@EXERCISES.checker(5, "smallest positive integer bf16 cannot hold")
def _check_first_gap(answer: object) -> object:
    layout = bit_layout(torch.bfloat16)
    expected = 2 ** (layout.mantissa + 1) + 1
    return check_number(
        answer,
        expected,
        rel_tol=0,
        hints={
            2 ** (layout.mantissa + 1): "256 is a power of two: bf16 holds it exactly. Look just "
            "above it, where the gap between neighbours becomes 2.",
            2**11 + 1: "2049 is the answer for fp16 (10 mantissa bits); bf16 has 7.",
            2**7 + 1: "129 fits: with 7 stored mantissa bits plus the implicit leading 1, bf16 "
            "has 8 significant bits.",
        },
    )
