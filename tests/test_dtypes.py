"""Tests for lecture_utils.dtypes (notebook 02)."""

import math

import pytest
import torch

from lecture_utils import dtypes
from lecture_utils.dtypes import (
    EXERCISES,
    FLOAT_DTYPES,
    LECTURE_DTYPES,
    BitLayout,
    as_float_dtype,
    bit_layout,
    cuda_bytes_allocated_by,
    dtype_name,
    dtype_table,
    finfo_table,
    format_bytes,
    format_table,
    get_memory_usage,
    param_bytes_reference,
    plot_bit_layouts,
    plot_running_sums,
    plot_spacing,
    representable_values,
    running_sum,
    smallest_subnormal,
    spacing,
    stall_value,
    stuck_after,
    tensor_bytes,
)

# Formats whose torch.finfo entry agrees with the layout in their name (see test below).
_FINFO_BROKEN = {
    d for d in FLOAT_DTYPES if d == torch.float8_e5m2fnuz and torch.finfo(d).eps != 0.25
}
GOOD_DTYPES = [d for d in FLOAT_DTYPES if d not in _FINFO_BROKEN]
SMALL_DTYPES = [d for d in GOOD_DTYPES if d.itemsize <= 2]


# ------------------------------------------------------------------------------------ memory


def test_get_memory_usage_is_numel_times_element_size():
    assert get_memory_usage(torch.zeros(4, 8)) == 128
    assert get_memory_usage(torch.zeros(4, 8, dtype=torch.bfloat16)) == 64
    assert get_memory_usage(torch.zeros(4, 8, dtype=torch.float8_e4m3fn)) == 32
    assert get_memory_usage(torch.zeros(0, 8)) == 0


def test_get_memory_usage_rejects_non_tensors():
    with pytest.raises(TypeError, match="needs a torch.Tensor, got list"):
        get_memory_usage([1.0, 2.0])


def test_tensor_bytes_matches_a_real_tensor_and_allocates_nothing():
    assert tensor_bytes((4, 8), torch.float16) == get_memory_usage(torch.zeros(4, 8).half())
    assert tensor_bytes((12288 * 4, 12288)) == 9 * 2**28  # GPT-3 feed-forward matrix, fp32
    assert tensor_bytes(()) == 4


@pytest.mark.parametrize("shape", [(4, -1), (2.5, 3), (True, 2)])
def test_tensor_bytes_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="sizes >= 0"):
        tensor_bytes(shape)


def test_tensor_bytes_rejects_non_dtypes():
    with pytest.raises(TypeError, match="must be a torch.dtype"):
        tensor_bytes((2, 2), "bf16")


def test_format_bytes_means_its_unit():
    n = 9 * 2**28
    assert format_bytes(n, "GB") == "2.42 GB"
    assert format_bytes(n, "GiB") == "2.25 GiB"
    assert format_bytes(n, "GiB", digits=4) == "2.2500 GiB"
    assert format_bytes(512, "B", digits=0) == "512 B"
    assert format_bytes(2**20, "MiB") == "1.00 MiB"
    assert format_bytes(10**6, "MB") == "1.00 MB"


def test_format_bytes_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown unit 'gb'.*GiB"):
        format_bytes(1, "gb")
    with pytest.raises(ValueError, match=">= 0"):
        format_bytes(-1)
    with pytest.raises(ValueError, match="finite"):
        format_bytes(math.inf)
    with pytest.raises(TypeError, match="must be a number"):
        format_bytes("12")


# ------------------------------------------------------------------------------------ dtypes


def test_dtype_name_and_aliases():
    assert dtype_name(torch.bfloat16) == "bfloat16"
    assert as_float_dtype("bf16") is torch.bfloat16
    assert as_float_dtype("FP32") is torch.float32
    assert as_float_dtype("torch.float8_e5m2") is torch.float8_e5m2
    assert as_float_dtype("e4m3") is torch.float8_e4m3fn
    assert as_float_dtype(torch.float16) is torch.float16


def test_as_float_dtype_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown dtype name 'bf17'"):
        as_float_dtype("bf17")
    with pytest.raises(ValueError, match="int32 is not a floating-point dtype.*iinfo"):
        as_float_dtype(torch.int32)
    with pytest.raises(ValueError, match="not a floating-point"):
        as_float_dtype("complex64")
    with pytest.raises(TypeError, match="expected a torch.dtype"):
        as_float_dtype(3.0)


@pytest.mark.skipif(not hasattr(torch, "float4_e2m1fn_x2"), reason="no packed fp4 dtype")
def test_as_float_dtype_rejects_packed_formats():
    with pytest.raises(ValueError, match="has no torch.finfo"):
        as_float_dtype(torch.float4_e2m1fn_x2)


def test_dtype_table_rows():
    rows = dtype_table()
    assert [r["dtype"] for r in rows] == [dtype_name(d) for d in FLOAT_DTYPES]
    by_name = {r["dtype"]: r for r in rows}
    assert by_name["float64"]["bytes of 4x8"] == 256
    assert by_name["bfloat16"]["bits"] == 16 and by_name["bfloat16"]["bytes/element"] == 2
    assert by_name["float8_e8m0fnu"]["bytes of 4x8"] == 32
    assert dtype_table([torch.float32], shape=(2, 3))[0]["bytes of 2x3"] == 24
    with pytest.raises(ValueError, match="not a floating-point"):
        dtype_table([torch.int8])


def test_format_table():
    text = format_table([{"a": 1, "bb": 0.123456}, {"a": 22, "bb": 3.0}])
    assert text.splitlines() == [" a      bb", " 1  0.1235", "22       3"]
    with pytest.raises(ValueError, match="at least one row"):
        format_table([])


# ---------------------------------------------------------------------------- layout, finfo


@pytest.mark.parametrize(
    "dtype, layout",
    [
        (torch.float64, BitLayout(1, 11, 52)),
        (torch.float32, BitLayout(1, 8, 23)),
        (torch.float16, BitLayout(1, 5, 10)),
        (torch.bfloat16, BitLayout(1, 8, 7)),
        (torch.float8_e4m3fn, BitLayout(1, 4, 3)),
        (torch.float8_e5m2, BitLayout(1, 5, 2)),
        (torch.float8_e4m3fnuz, BitLayout(1, 4, 3)),
        (torch.float8_e8m0fnu, BitLayout(0, 8, 0)),
    ],
)
def test_bit_layout(dtype, layout):
    assert bit_layout(dtype) == layout
    assert layout.bits == 8 * dtype.itemsize


@pytest.mark.skipif(not _FINFO_BROKEN, reason="torch.finfo(float8_e5m2fnuz) is right here")
def test_bit_layout_refuses_a_wrong_finfo_entry():
    with pytest.raises(ValueError, match="name says 2: this torch.finfo entry is wrong"):
        bit_layout(torch.float8_e5m2fnuz)


def test_smallest_subnormal_and_finfo_table():
    assert smallest_subnormal(torch.float16) == 2.0**-24
    assert smallest_subnormal(torch.bfloat16) == 2.0**-133
    assert smallest_subnormal(torch.float8_e4m3fn) == 2.0**-9
    assert smallest_subnormal(torch.float8_e5m2) == 2.0**-16
    rows = {r["dtype"]: r for r in finfo_table()}
    assert list(rows) == [dtype_name(d) for d in LECTURE_DTYPES]
    assert rows["float16"]["max"] == 65504.0
    assert rows["float8_e4m3fn"]["max"] == 448.0
    assert rows["float8_e5m2"]["max"] == 57344.0
    assert rows["bfloat16"]["max"] == (2 - 2.0**-7) * 2.0**127
    assert rows["bfloat16"]["s/e/m"] == "1/8/7"


@pytest.mark.parametrize("dtype", SMALL_DTYPES, ids=dtype_name)
def test_representable_values_agree_with_finfo(dtype):
    values = representable_values(dtype)
    assert values.dtype == torch.float64
    assert bool((values[1:] > values[:-1]).all())
    assert values[-1].item() == torch.finfo(dtype).max
    assert smallest_subnormal(dtype) in values[:2].tolist()  # after 0 (e8m0fnu has no 0)


def test_representable_value_counts():
    counts = {d: representable_values(d).numel() for d in LECTURE_DTYPES if d.itemsize <= 2}
    # 2^15 non-negative patterns, minus those with the top exponent (inf and NaN) where there
    # are any; e4m3fn keeps all but its one NaN pattern.
    assert counts == {
        torch.float16: 2**15 - 2**10,
        torch.bfloat16: 2**15 - 2**7,
        torch.float8_e4m3fn: 2**7 - 1,
        torch.float8_e5m2: 2**7 - 2**2,
    }


def test_representable_values_refuses_wide_formats():
    with pytest.raises(ValueError, match="too many to list"):
        representable_values(torch.float32)


# ------------------------------------------------------------------------------------ spacing


@pytest.mark.parametrize("dtype", SMALL_DTYPES, ids=dtype_name)
def test_spacing_matches_enumeration(dtype):
    values = representable_values(dtype)
    assert torch.equal(spacing(values[:-1], dtype), values[1:] - values[:-1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spacing_matches_nextafter(dtype):
    info = torch.finfo(dtype)
    lo, hi = math.log10(info.tiny) - 5, math.log10(info.max) - 1
    x = torch.logspace(lo, hi, 500, dtype=torch.float64).to(dtype)
    up = torch.nextafter(x, torch.full_like(x, math.inf))
    assert torch.equal(spacing(x), up.double() - x.double())


def test_spacing_scalars_and_signs():
    assert spacing(1.0, torch.bfloat16).item() == 2.0**-7
    assert spacing(-1.0, "fp16").item() == 2.0**-10
    assert spacing(0.0, torch.float8_e4m3fn).item() == 2.0**-9
    assert spacing(1000.0, torch.bfloat16).item() == 4.0
    assert spacing(torch.tensor([1.0, 3.0])).tolist() == [2.0**-23, 2.0**-22]


def test_spacing_rejects_bad_input():
    with pytest.raises(ValueError, match="give a dtype"):
        spacing(1.0)
    with pytest.raises(ValueError, match="finite values only"):
        spacing(torch.tensor([1.0, math.inf]))
    with pytest.raises(ValueError, match="not a floating-point"):
        spacing(1, torch.int64)


def test_spacing_refuses_values_that_overflow():
    # Past max + half the top gap a cast overflows (inf, NaN or saturation, by version).
    with pytest.raises(ValueError, match="beyond the largest float8_e4m3fn"):
        spacing(1000.0, torch.float8_e4m3fn)
    with pytest.raises(ValueError, match="beyond the largest float16"):
        spacing(70000.0, torch.float16)
    # Up to that point the value rounds down to the largest number, whose gap is returned.
    assert spacing(464.0, torch.float8_e4m3fn).item() == 32
    assert spacing(65519.0, torch.float16).item() == 32


# ------------------------------------------------------------------------------- accumulation


def test_running_sum_stalls_where_predicted():
    bf16 = running_sum(0.01, 500, torch.bfloat16)
    assert bf16[-1].item() == 4.0 == stall_value(0.01, torch.bfloat16)
    first_stuck = int((bf16[1:] == bf16[:-1]).nonzero()[0])
    assert first_stuck == 349  # 350 additions reach 4.0, where the true sum is 3.5
    fp16 = running_sum(0.01, 3000, torch.float16)
    assert fp16[-1].item() == 32.0 == stall_value(0.01, torch.float16)
    fp32 = running_sum(0.01, 100, torch.float32)
    assert math.isclose(fp32[-1].item(), 1.0, rel_tol=1e-6)


def test_stall_value():
    assert stall_value(0.001, torch.bfloat16) == 0.5
    assert stall_value(0.01, torch.float32) == 2.0**18
    assert stall_value(1.0, torch.bfloat16) == 256.0  # spacing 2 there: 1 + 1 ties, rounds to 256
    with pytest.raises(ValueError, match="must round to a positive float16"):
        stall_value(1e-9, torch.float16)


def _brute_force_stall(increment, dtype, max_steps=10_000):
    """Add `increment` in `dtype`, one rounding per addition, until the sum stops changing."""
    total, step = torch.zeros((), dtype=dtype), torch.tensor(increment, dtype=dtype)
    for _ in range(max_steps):
        new = total + step
        if new == total:
            return total.item()
        total = new
    raise AssertionError(f"no stall within {max_steps} additions of {increment} in {dtype}")


# 2^-8 and 2^-9 reach a power of two p where increment == spacing(p) / 2 exactly: the tie rounds
# to even, which keeps p (with `<` instead of `<=` the rule said 2p). 2^-24 is fp16's smallest
# subnormal: the sum climbs through the subnormals and ties at 2^-13.
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("increment", [2**-8, 2**-9, 3 * 2**-10, 0.01, 1e-3, 2**-4, 0.1, 2**-24],
                         ids=["2^-8", "2^-9", "3x2^-10", "0.01", "1e-3", "2^-4", "0.1", "2^-24"])
def test_stall_value_matches_summing_in_the_dtype(increment, dtype):
    assert stall_value(increment, dtype) == _brute_force_stall(increment, dtype)


def test_stall_value_on_exact_ties():
    assert stall_value(2**-8, torch.bfloat16) == 1.0  # spacing(1) = 2^-7: 1 + 2^-8 ties to 1
    assert stall_value(2**-9, torch.bfloat16) == 0.5
    assert stall_value(2**-8, torch.float16) == 8.0  # spacing(8) = 2^-7


def test_running_sum_rejects_bad_steps():
    with pytest.raises(ValueError, match="positive int"):
        running_sum(0.1, 0, torch.bfloat16)
    with pytest.raises(ValueError, match="not a floating-point"):
        running_sum(0.1, 3, torch.int32)


def test_stuck_after():
    assert stuck_after(running_sum(0.01, 500, torch.bfloat16)) == 350
    assert stuck_after(running_sum(0.01, 3000, torch.float16)) == 2798
    assert stuck_after(running_sum(0.01, 100, torch.float32)) is None
    assert stuck_after(torch.tensor([1.0, 1.0])) == 1
    with pytest.raises(TypeError, match="history must be a 1-D tensor"):
        stuck_after([1.0, 1.0])


# ------------------------------------------------------------------------------------ figures


@pytest.fixture
def close_figures():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_plot_bit_layouts(close_figures):
    fig = plot_bit_layouts(LECTURE_DTYPES)
    (ax,) = fig.axes
    assert len(ax.patches) == 3 * len(LECTURE_DTYPES)  # sign, exponent, mantissa per format
    assert [t.get_text() for t in ax.get_yticklabels()] == [dtype_name(d) for d in LECTURE_DTYPES]
    widths = [round(p.get_width()) for p in ax.patches]
    assert widths[:3] == [1, 8, 23] and ax.get_xlim() == (0, 32)
    labels = {t.get_text() for t in ax.texts}
    assert {"1", "8", "23", "5", "10", "7", "4", "3", "2"} == labels
    with pytest.raises(TypeError, match="list of dtypes"):
        plot_bit_layouts(torch.float32)


def test_plot_spacing(close_figures):
    fig = plot_spacing()
    ax_abs, ax_rel = fig.axes
    names = [dtype_name(d) for d in dtypes.SPACING_PLOT_DTYPES]
    assert [line.get_label() for line in ax_abs.lines] == names
    assert len(ax_rel.lines) == len(names)
    assert ax_abs.get_xscale() == ax_abs.get_yscale() == "log"
    bf16 = ax_abs.lines[names.index("bfloat16")]
    xs, gaps = bf16.get_xdata(), bf16.get_ydata()
    assert gaps[list(xs).index(1.0)] == 2.0**-7  # the gap above 1 is eps


def test_plot_running_sums(close_figures):
    sums = {d: running_sum(0.01, 3000, d) for d in (torch.bfloat16, torch.float16, torch.float32)}
    fig = plot_running_sums(sums, 0.01)
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.lines] == ["bfloat16", "float16", "float32", "exact"]
    notes = sorted(t.get_text() for t in ax.texts)
    assert notes == ["bfloat16 stuck at 4", "float16 stuck at 32"]  # fp32 never stalls here
    assert [a.xy for a in sorted(ax.texts, key=lambda t: t.get_text())] == [(350, 4.0),
                                                                             (2798, 32.0)]
    with pytest.raises(TypeError, match="sums must be a dict"):
        plot_running_sums([], 0.01)


def test_cuda_bytes_allocated_by_needs_a_cuda_device():
    with pytest.raises(ValueError, match="device must be a CUDA device"):
        cuda_bytes_allocated_by(lambda: torch.zeros(4), "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bytes_allocated_by_counts_the_allocator_blocks():
    grown, tensor = cuda_bytes_allocated_by(lambda: torch.zeros(1024, 1024, device="cuda"),
                                            "cuda")
    assert grown == 4 * 2**20 and tensor.device.type == "cuda"
    small, _ = cuda_bytes_allocated_by(lambda: torch.zeros(4, 8, device="cuda"), "cuda")
    assert small == 512  # 128 bytes, rounded up to the allocator's 512-byte blocks


# ---------------------------------------------------------------------------------- exercises


def _verdict(number, answer):
    return EXERCISES.feedback(number, answer)


def sig3(x: float) -> float:
    """`x` rounded to 3 significant figures, as a careful student writes it."""
    return float(f"{x:.3g}")


def test_exercise_1_activation_gib():
    elements = 32 * 2048 * 12288
    right = elements * 2 / 2**30
    assert right == 1.5 and _verdict(1, right).correct is True
    assert _verdict(1, sig3(right)).correct is True and _verdict(1, 1.52).correct is True
    assert _verdict(1, 1.55).correct is False  # 3.3% off
    assert "fp32" in _verdict(1, elements * 4 / 2**30).message
    assert "float64" in _verdict(1, elements * 8 / 2**30).message  # Python floats are 8 bytes
    assert "not 1" in _verdict(1, elements * 1 / 2**30).message
    assert "counts bits" in _verdict(1, elements * 16 / 2**30).message
    assert "in bytes" in _verdict(1, elements * 2).message
    assert "in MiB" in _verdict(1, elements * 2 / 2**20).message
    assert "GB (10^9 bytes) and GiB" in _verdict(1, elements * 2 / 1e9).message


def test_exercise_2_which_formats_hold_1e8():
    assert _verdict(2, [torch.float32, torch.bfloat16]).correct is True
    assert _verdict(2, ("fp32", "bf16")).correct is True
    hint = _verdict(2, [torch.float32, torch.bfloat16, torch.float16]).message
    assert "float16 rounds 1e-8 to 0" in hint
    assert "bfloat16 keeps 1e-8" in _verdict(2, [torch.float32]).message
    assert "exponent bits" in _verdict(2, [torch.float32]).message
    assert "exponent bits" not in _verdict(2, [torch.bfloat16]).message  # fp32 is missing
    # Computed over every dtype, float64 included: never the false "float64 rounds 1e-8 to 0".
    every = [d for d in FLOAT_DTYPES if torch.tensor(1e-8, dtype=d).item() != 0]
    assert torch.float64 in every
    message = _verdict(2, every).message
    assert "not among the five formats" in message and "rounds 1e-8 to 0" not in message
    assert "float64: not among" in _verdict(2, [torch.float64, torch.float32]).message
    assert "not a floating-point dtype" in _verdict(2, ["nonsense"]).message
    assert "give a list, even of one" in _verdict(2, torch.float32).message
    assert "got the text 'fp32'" in _verdict(2, "fp32").message


def test_exercise_3_bf16_stall():
    assert _verdict(3, 0.5).correct is True
    assert _verdict(3, 0.5 + 2**-8).correct is False  # exact: the sum is a power of two
    simulated = _brute_force_stall(0.001, torch.bfloat16)
    assert _verdict(3, simulated).correct is True
    for other in (_brute_force_stall(0.01, torch.bfloat16), _brute_force_stall(0.001,
                                                                                 torch.float16)):
        assert other == 4.0 and "0.01 stalls" in _verdict(3, other).message
        assert "fp16 sum of 0.001" in _verdict(3, other).message
    assert "fp32 sum stalls" in _verdict(3, stall_value(0.001, torch.float32)).message
    # The rule misremembered: the first power of two whose whole gap exceeds the increment.
    step = torch.tensor(0.001, dtype=torch.bfloat16).item()
    whole_gap = next(2.0**k for k in range(-12, 8) if step <= spacing(2.0**k, torch.bfloat16))
    assert whole_gap == 0.25 and "*half* the gap" in _verdict(3, whole_gap).message
    exact_sum = running_sum(0.001, 10_000, torch.float32)[-1].item()
    assert "exact (or fp32) sum" in _verdict(3, exact_sum).message
    history = running_sum(0.001, 1000, torch.bfloat16)
    additions = next(k for k in range(1, 1000) if history[k] == history[k - 1])
    assert "number of additions" in _verdict(3, additions).message


def test_exercise_4_param_bytes():
    def solution(model, dtype):
        return sum(p.numel() for p in model.parameters()) * dtype.itemsize

    def weights_only(model, dtype):
        return sum(p.numel() for n, p in model.named_parameters() if "bias" not in n) * (
            dtype.itemsize
        )

    def own_size(model, dtype):
        return sum(get_memory_usage(p) for p in model.parameters())

    def count(model, dtype):
        return sum(p.numel() for p in model.parameters())

    def bits(model, dtype):
        return count(model, dtype) * torch.finfo(dtype).bits

    def always_bf16(model, dtype):
        return count(model, dtype) * 2

    assert _verdict(4, solution).correct is True
    assert _verdict(4, param_bytes_reference).correct is True
    assert "biases" in _verdict(4, weights_only).message
    assert "fp32 size" in _verdict(4, own_size).message
    assert "number of parameters" in _verdict(4, count).message
    assert "counts bits" in _verdict(4, bits).message
    assert "whatever the dtype" in _verdict(4, always_bf16).message  # right for bf16 only
    assert _verdict(4, lambda model, dtype: None).correct is None
    assert "expected the function" in _verdict(4, "param_bytes").message


def test_exercise_5_first_integer_bf16_misses():
    assert _verdict(5, 257).correct is True and _verdict(5, 257.0).correct is True
    assert torch.tensor(257.0, dtype=torch.bfloat16).item() != 257.0
    assert torch.tensor(256.0, dtype=torch.bfloat16).item() == 256.0
    assert "power of two" in _verdict(5, 256).message

    def first_missed(dtype, start=1):
        n = torch.arange(start, start + 4096, dtype=torch.float64)
        return int(n[n.to(dtype).double() != n][0])

    assert first_missed(torch.bfloat16) == 257
    assert "fp16" in _verdict(5, first_missed(torch.float16)).message
    assert "fp32" in _verdict(5, first_missed(torch.float32, start=2**24 - 8)).message
    assert "implicit leading 1" in _verdict(5, 2**7 + 1).message  # 7 significant bits, not 8


@pytest.mark.parametrize("number", range(1, 6))
def test_exercise_verdicts_on_unanswered_and_junk(number):
    assert _verdict(number, None).correct is None
    assert "got nan (not a number)" in _verdict(number, float("nan")).message
    text = _verdict(number, "forty-two")
    assert text.correct is False and ("text" in text.message or "str" in text.message)
    wants = EXERCISES.exercises[number].wants
    assert ("within 2%" if number == 1 else "exactly") in wants


def test_every_exercise_has_a_checker():
    assert sorted(EXERCISES.exercises) == [1, 2, 3, 4, 5]
    assert dtypes.ACTIVATION_SHAPE == (32, 2048, 12288)
