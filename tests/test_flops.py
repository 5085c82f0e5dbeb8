"""Tests for lecture_utils.flops (notebook 03)."""

import math
import time

import pytest
import torch
import torch.nn.functional as F

from lecture_utils import hardware
from lecture_utils.flops import (
    COMPUTE_REFERENCES,
    EXERCISES,
    FP8,
    SECONDS_PER_DAY,
    SECONDS_PER_WEEK,
    arithmetic_intensity,
    arithmetic_intensity_elementwise,
    arithmetic_intensity_matmul,
    benchmark,
    count_flops,
    float32_matmul_precision,
    flops_by_operator,
    flops_delivered,
    fp8_matmul_supported,
    make_elementwise_add,
    make_matmul,
    matmul_flops,
    measure_times,
    mfu,
    ridge_point,
    roofline,
    time_block,
)

# ---------------------------------------------------------------------------- counting FLOPs


def test_matmul_flops_is_two_m_n_k():
    assert matmul_flops(2, 3, 4) == 48
    assert matmul_flops(16384, 32768, 8192) == 8_796_093_022_208


@pytest.mark.parametrize("bad", [0, -3])
def test_matmul_flops_rejects_non_positive_sizes(bad):
    with pytest.raises(ValueError, match="must be a positive size"):
        matmul_flops(2, bad, 4)


@pytest.mark.parametrize("bad", [2.0, "2", True])
def test_matmul_flops_rejects_non_ints(bad):
    with pytest.raises(TypeError, match="must be an int"):
        matmul_flops(bad, 3, 4)


@pytest.mark.parametrize(
    "fn, args, expected",
    [
        (torch.matmul, (torch.ones(5, 6), torch.ones(6, 7)), 2 * 5 * 6 * 7),
        (torch.bmm, (torch.ones(3, 5, 6), torch.ones(3, 6, 7)), 3 * 2 * 5 * 6 * 7),
        (F.linear, (torch.ones(5, 6), torch.ones(7, 6), torch.ones(7)), 2 * 5 * 6 * 7),
        (torch.add, (torch.ones(5, 6), torch.ones(5, 6)), 0),
    ],
)
def test_count_flops_matches_formula(fn, args, expected):
    assert count_flops(fn, *args) == expected


def test_count_flops_on_meta_tensors_needs_no_memory():
    x, w = torch.empty(16384, 32768, device="meta"), torch.empty(32768, 8192, device="meta")
    assert count_flops(torch.matmul, x, w) == matmul_flops(16384, 32768, 8192)


def test_count_flops_rejects_non_callables():
    with pytest.raises(TypeError, match="needs a function"):
        count_flops(torch.ones(3))


def test_flops_by_operator_names_the_operator():
    x, w, b = torch.ones(5, 6), torch.ones(7, 6), torch.ones(7)
    assert flops_by_operator(F.linear, x, w, b) == {"aten.addmm": 2 * 5 * 6 * 7}
    assert flops_by_operator(torch.add, x, x) == {}
    with pytest.raises(TypeError, match="needs a function"):
        flops_by_operator(None)


# ------------------------------------------------------------------ budgets and delivery


def test_compute_references():
    assert set(COMPUTE_REFERENCES) == {"GPT-3", "GPT-4", "EU AI Act", "US EO 14110"}
    assert COMPUTE_REFERENCES["GPT-3"].flops == 3.14e23
    assert COMPUTE_REFERENCES["EU AI Act"].flops == 1e25
    assert COMPUTE_REFERENCES["US EO 14110"].flops == 1e26
    assert "revoked" in COMPUTE_REFERENCES["US EO 14110"].what
    assert "speculative" in COMPUTE_REFERENCES["GPT-4"].what


def test_flops_delivered_eight_h100s_for_a_week():
    week = flops_delivered("H100 SXM", "bf16", 8, SECONDS_PER_WEEK, 1.0)
    assert math.isclose(week, 8 * 989.4e12 * 604800)
    spec = hardware.lookup_gpu("H100 SXM")
    assert flops_delivered(spec, torch.bfloat16, 8, SECONDS_PER_WEEK, 0.5) == week / 2


def test_flops_delivered_rejects_bad_input():
    with pytest.raises(ValueError, match="mfu is a fraction"):
        flops_delivered("H100 SXM", "bf16", 8, SECONDS_PER_DAY, 50)
    with pytest.raises(ValueError, match="num_gpus must be a positive size"):
        flops_delivered("H100 SXM", "bf16", 0, SECONDS_PER_DAY, 0.5)
    with pytest.raises(ValueError, match="seconds must be a finite number > 0"):
        flops_delivered("H100 SXM", "bf16", 8, 0, 0.5)
    with pytest.raises(hardware.UnknownGPUError, match="no datasheet entry"):
        flops_delivered("GTX 9999", "bf16", 8, SECONDS_PER_DAY, 0.5)
    with pytest.raises(ValueError, match="no bf16 figure"):
        flops_delivered("T4", "bf16", 8, SECONDS_PER_DAY, 0.5)


def test_mfu():
    assert math.isclose(mfu(66.9e12, 1.0, 66.9e12), 1.0)
    assert math.isclose(mfu(8.796093022208e12, 0.03, 989.4e12), 0.2963, rel_tol=1e-3)
    with pytest.raises(ValueError, match="seconds must be a finite number > 0"):
        mfu(1e12, 0.0, 1e12)
    with pytest.raises(ValueError, match="peak must be a finite number > 0"):
        mfu(1e12, 1.0, float("nan"))


# -------------------------------------------------------------------------------- timing


def test_time_block_is_seconds_per_call():
    calls = []
    seconds = time_block(lambda: calls.append(time.sleep(0.001)), 3, torch.device("cpu"))
    assert len(calls) == 3 and 0.001 <= seconds < 0.05


def test_measure_times_calls_warmup_then_blocks():
    calls = []
    times = measure_times(lambda: calls.append(1), device="cpu", warmup=2, repeats=4, number=3)
    assert len(times) == 4 and all(t >= 0 for t in times)
    assert len(calls) == 2 + 4 * 3


def test_measure_times_picks_enough_calls_per_block():
    calls = []
    measure_times(lambda: calls.append(1), device="cpu", warmup=0, repeats=2, number=None)
    assert len(calls) > 1 + 2  # a near-instant function runs many times per block
    calls.clear()
    measure_times(lambda: calls.append(time.sleep(0.002)), device="cpu", warmup=2, repeats=2)
    assert len(calls) == 2 + 2  # a slow one once per block, and no extra call to estimate it


def test_measure_times_estimates_from_the_fastest_warmup_call():
    calls = []

    def fn():  # the last warm-up call is slow, as if another process took the core
        calls.append(1)
        if len(calls) == 2:
            time.sleep(0.02)

    measure_times(fn, device="cpu", warmup=2, repeats=1)
    assert len(calls) > 2 + 1  # many calls per block: the slow call did not set the estimate


def test_benchmark_returns_the_median_per_call():
    seconds = benchmark(lambda: time.sleep(0.002), device="cpu", warmup=1, repeats=3, number=1)
    assert 0.002 <= seconds < 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"warmup": -1}, "warmup must be an int >= 0"),
        ({"repeats": 0}, "repeats must be an int >= 1"),
        ({"number": 0}, "number .* must be an int >= 1 or None"),
    ],
)
def test_benchmark_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        benchmark(lambda: None, device="cpu", **kwargs)


def test_benchmark_rejects_non_callables():
    with pytest.raises(TypeError, match="zero-argument function"):
        benchmark(3.0, device="cpu")


def test_float32_matmul_precision_restores_the_setting():
    before = torch.get_float32_matmul_precision()
    with pytest.raises(RuntimeError), float32_matmul_precision("high"):
        assert torch.get_float32_matmul_precision() == "high"
        raise RuntimeError("boom")
    assert torch.get_float32_matmul_precision() == before
    with (
        pytest.raises(ValueError, match="'highest', 'high' or 'medium'"),
        float32_matmul_precision("tf32"),
    ):
        pass


def test_fp8_needs_a_recent_cuda_gpu():
    assert fp8_matmul_supported("cpu") is False


def test_make_matmul_multiplies_random_matrices():
    out = make_matmul(32, torch.float32, "cpu")()
    assert out.shape == (32, 32) and out.dtype == torch.float32
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(32, 32, generator=gen), torch.randn(32, 32, generator=gen)
    torch.testing.assert_close(out, a @ b)
    assert make_matmul(16, torch.bfloat16, "cpu")().dtype == torch.bfloat16


def test_make_matmul_fp8_uses_scaled_mm():
    with pytest.raises(ValueError, match="multiples of 16"):
        make_matmul(24, FP8, "cpu")
    try:
        out = make_matmul(32, FP8, "cpu")()
    except (RuntimeError, NotImplementedError) as e:  # no fp8 matmul on this CPU build
        pytest.skip(f"_scaled_mm unavailable here: {e}")
    assert out.shape == (32, 32) and out.dtype == torch.bfloat16


def test_make_matmul_rejects_bad_input():
    with pytest.raises(TypeError, match="floating torch.dtype"):
        make_matmul(16, torch.int32, "cpu")
    with pytest.raises(ValueError, match="n must be a positive size"):
        make_matmul(0, torch.float32, "cpu")


def test_make_elementwise_add():
    out = make_elementwise_add(8, torch.float32, "cpu")()
    assert torch.equal(out, torch.full((8, 8), 2.0))
    with pytest.raises(TypeError, match="floating torch.dtype"):
        make_elementwise_add(8, torch.int64, "cpu")


# ---------------------------------------------------------------- arithmetic intensity


def test_arithmetic_intensity_matmul():
    assert math.isclose(arithmetic_intensity_matmul(3, 2), 1.0)
    assert math.isclose(arithmetic_intensity_matmul(8192, 2), 2 * 8192 / 6)
    with pytest.raises(ValueError, match="dtype_bytes must be a positive size"):
        arithmetic_intensity_matmul(8, 0)


def test_arithmetic_intensity_elementwise():
    assert math.isclose(arithmetic_intensity_elementwise(2), 1 / 6)
    assert math.isclose(arithmetic_intensity_elementwise(4), 1 / 12)
    assert math.isclose(arithmetic_intensity_elementwise(2, num_inputs=1), 1 / 4)
    with pytest.raises(TypeError, match="dtype_bytes must be an int"):
        arithmetic_intensity_elementwise(2.5)


def test_arithmetic_intensity_and_roofline():
    assert arithmetic_intensity(10.0, 5.0) == 2.0
    with pytest.raises(ValueError, match="bytes_moved must be a finite number > 0"):
        arithmetic_intensity(1.0, 0)
    peak, bandwidth = 989.4e12, 3.35e12
    assert math.isclose(ridge_point(peak, bandwidth), 295.34, rel_tol=1e-4)
    assert roofline(1.0, peak, bandwidth) == bandwidth  # memory-bound
    assert roofline(1e4, peak, bandwidth) == peak  # compute-bound
    with pytest.raises(ValueError, match="intensity must be a finite number > 0"):
        roofline(-1.0, peak, bandwidth)


# ---------------------------------------------------------------------------- exercises


def _verdict(number, answer):
    return EXERCISES.feedback(number, answer)


def test_exercise_1():
    assert _verdict(1, 2 * 16384 * 32768 * 8192).correct is True
    hint = _verdict(1, 16384 * 32768 * 8192)
    assert hint.correct is False and "only the multiplies" in hint.message
    assert _verdict(1, None).correct is None


def test_exercise_2():
    flops = 2 * 16384 * 32768 * 8192
    assert _verdict(2, flops / 0.03 / 989.4e12).correct is True
    hint = _verdict(2, flops / 0.03 / 1978.9e12)
    assert hint.correct is False and "with sparsity" in hint.message
    assert "percent" in _verdict(2, 100 * flops / 0.03 / 989.4e12).message
    assert _verdict(2, None).correct is None


def test_exercise_3():
    days = 6 * 70e9 * 15e12 / (1024 * 989.4e12 * 0.5 * 86400)
    assert math.isclose(days, 143.9, rel_tol=1e-3)
    assert _verdict(3, days).correct is True
    assert _verdict(3, 144).correct is True
    hint = _verdict(3, days / 2)
    assert hint.correct is False and "sparsity" in hint.message
    assert "forward pass" in _verdict(3, days / 3).message
    assert "seconds" in _verdict(3, days * 86400).message
    assert _verdict(3, None).correct is None


def test_exercise_4():
    assert _verdict(4, 1 / 6).correct is True
    assert "output" in _verdict(4, 1 / 4).message
    assert "fp32" in _verdict(4, 1 / 12).message
    assert _verdict(4, None).correct is None


def test_exercise_5():
    def right(m, n, k, dtype_bytes):
        return 2 * m * n * k / ((m * n + n * k + m * k) * dtype_bytes)

    def no_bytes(m, n, k, dtype_bytes):
        return 2 * m * n * k / (m * n + n * k + m * k)

    def half_the_flops(m, n, k, dtype_bytes):
        return m * n * k / ((m * n + n * k + m * k) * dtype_bytes)

    def stub(m, n, k, dtype_bytes):
        return None

    assert _verdict(5, right).correct is True
    hint = _verdict(5, no_bytes)
    assert hint.correct is False and "bytes per element" in hint.message
    assert "2*m*n*k" in _verdict(5, half_the_flops).message
    assert _verdict(5, stub).correct is None
    assert _verdict(5, None).correct is None
    assert _verdict(5, 3.0).correct is False


def test_make_matmul_takes_a_rectangular_shape():
    out = make_matmul(32, torch.float32, "cpu", m=48, k=16)()
    assert out.shape == (48, 16)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(48, 32, generator=gen), torch.randn(32, 16, generator=gen)
    torch.testing.assert_close(out, a @ b)
    with pytest.raises(ValueError, match="m must be a positive size"):
        make_matmul(32, torch.float32, "cpu", m=0)
    with pytest.raises(ValueError, match="fp8_fast_accum is an option of fp8"):
        make_matmul(32, torch.float32, "cpu", fp8_fast_accum=True)
    with pytest.raises(ValueError, match=r"multiples of 16, got \(m, n, k\) = \(16, 32, 24\)"):
        make_matmul(32, FP8, "cpu", m=16, k=24)


def test_time_each_call_cold_and_warm():
    from lecture_utils.flops import time_cold_and_warm, time_each_call_cold

    calls = []
    seconds = time_each_call_cold(lambda: calls.append(time.sleep(0.002)), calls=3, device="cpu")
    assert len(seconds) == len(calls) == 3 and min(seconds) >= 0.002
    timings = time_cold_and_warm(make_matmul(16, torch.float32, "cpu"), device="cpu")
    assert len(timings["cold"]) == 5 and timings["first_call"] == timings["cold"][0]
    assert timings["lecture_mean"] == pytest.approx(sum(timings["cold"]) / 5)
    assert timings["warm_median"] > 0
    with pytest.raises(ValueError, match="calls must be a positive size"):
        time_each_call_cold(lambda: None, calls=0)
    with pytest.raises(TypeError, match="zero-argument function"):
        time_each_call_cold(None)


def test_timing_summary_and_a_conclusion_computed_from_it():
    from lecture_utils.flops import Timing, compare_timings

    fast, slow = Timing((1.0, 1.1, 1.2, 0.9, 5.0)), Timing((3.0, 3.2, 2.9, 3.1))
    assert fast.median == 1.1 and (fast.low, fast.high) == (1.0, 1.2)
    assert fast.format("s") == "1.1 s (1-1.2)"
    assert compare_timings("a", fast, "b", slow).startswith("a is 2.77x faster than b")
    assert compare_timings("b", slow, "a", fast).startswith("a is 2.77x faster than b")
    assert "agree within their spread" in compare_timings("a", fast, "a again", fast)
    with pytest.raises(ValueError, match="times must be"):
        Timing(())
