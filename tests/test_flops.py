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
    MATMUL_FORMATS,
    SECONDS_PER_DAY,
    SECONDS_PER_WEEK,
    Sweep,
    Timing,
    arithmetic_intensity,
    arithmetic_intensity_elementwise,
    arithmetic_intensity_matmul,
    benchmark,
    calls_per_block,
    cold_and_warm_report,
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
    plot_roofline,
    plot_throughput,
    rate_and_mfu,
    ridge_point,
    roofline,
    sweep_matmuls,
    throughput_trend,
    time_block,
    time_it,
    time_matmul_format,
    time_without_and_with_sync,
    timing_threads,
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
    # The fastest of 3 warm-up calls sets the estimate: one call alone may be descheduled.
    measure_times(lambda: calls.append(1), device="cpu", warmup=3, repeats=2, number=None)
    assert len(calls) > 3 + 2  # a near-instant function runs many times per block
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
#
# Every wrong answer below is computed by making the mistake, not copied from the hint table.

H100_BF16, H100_BF16_SPARSE, H100_FP32 = 989.4e12, 1978.9e12, 66.9e12
LECTURE_FLOPS = 2 * 16384 * 32768 * 8192


def _verdict(number, answer):
    return EXERCISES.feedback(number, answer)


def _assert_hint(number, answer, *phrases):
    verdict = _verdict(number, answer)
    assert verdict.correct is False, (answer, verdict)
    for phrase in phrases:
        assert phrase in verdict.message, (answer, verdict.message)


def _three_figures(x):
    return float(f"{x:.3g}")


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_exercises_give_clear_verdicts_for_nan_text_and_none(number):
    assert _verdict(number, None).correct is None
    assert "nan (not a number)" in _verdict(number, float("nan")).message
    text = _verdict(number, "42")
    assert text.correct is False and "raised" not in text.message
    assert ("text" in text.message) or ("function itself" in text.message)


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_every_exercise_says_what_it_wants(number):
    wants = EXERCISES.exercises[number].wants
    assert wants and ("within" in wants or "exact" in wants)


def test_exercise_1_matmul_flops():
    b, d, k = 16384, 32768, 8192
    assert _verdict(1, LECTURE_FLOPS).correct is True
    assert _verdict(1, 8.80e12).correct is True  # 3 significant figures
    assert _verdict(1, LECTURE_FLOPS - b * k).correct is True  # n - 1 adds per output: pedantic
    _assert_hint(1, b * d * k, "only the multiplies")  # one FLOP per multiply-add
    _assert_hint(1, 2 * b * d, "K is missing")
    _assert_hint(1, b * d + d * k, "input elements")
    assert "10^-3" in _verdict(1, LECTURE_FLOPS / 1e3).message  # in TFLOPs? no: in kFLOPs


def test_exercise_2_mfu():
    right = LECTURE_FLOPS / 0.03 / H100_BF16
    assert _verdict(2, right).correct is True
    assert _verdict(2, _three_figures(right)).correct is True  # 0.296
    assert _verdict(2, 0.30).correct is True  # the lecture's own two figures
    multiplies_only = (LECTURE_FLOPS / 2) / 0.03 / H100_BF16
    sparse_peak = LECTURE_FLOPS / 0.03 / H100_BF16_SPARSE
    # The two slips give the same MFU, so their one hint names both.
    for slip in (multiplies_only, sparse_peak):
        _assert_hint(2, slip, "only the multiplies", "with sparsity")
    _assert_hint(2, 100 * right, "not a percent")
    _assert_hint(2, LECTURE_FLOPS / 0.03 / H100_FP32, "fp32 peak")
    _assert_hint(2, H100_BF16 / (LECTURE_FLOPS / 0.03), "peak over the achieved")
    _assert_hint(2, LECTURE_FLOPS / H100_BF16, "time is missing")


def _days(flops_per_parameter_token=6, peak=H100_BF16, fraction=0.4, seconds=86400):
    return (flops_per_parameter_token * 70e9 * 15e12 / (1024 * peak * fraction)) / seconds


def test_exercise_3_training_days():
    right = _days()
    assert math.isclose(right, 179.9, rel_tol=1e-3)
    assert _verdict(3, right).correct is True
    assert _verdict(3, 180).correct is True  # 3 significant figures
    for slip in (_days(flops_per_parameter_token=3), _days(peak=H100_BF16_SPARSE)):
        _assert_hint(3, slip, "only the multiplies", "with sparsity")
    _assert_hint(3, _days(fraction=1.0), "MFU is missing")  # left out
    mfu_multiplied = 6 * 70e9 * 15e12 * 0.4 / (1024 * H100_BF16) / 86400  # x MFU, not / MFU
    _assert_hint(3, mfu_multiplied, "you multiplied by the MFU")
    _assert_hint(3, _days(fraction=40), "not a percent")
    _assert_hint(3, _days(flops_per_parameter_token=2), "forward pass")
    _assert_hint(3, _days(peak=H100_FP32), "fp32 peak")
    _assert_hint(3, _days(seconds=1), "in seconds")
    _assert_hint(3, _days(seconds=3600), "in hours")


def test_exercise_3_hints_are_told_apart():
    slips = [_days(flops_per_parameter_token=3), _days(fraction=1.0),
             6 * 70e9 * 15e12 * 0.4 / (1024 * H100_BF16) / 86400, _days(fraction=40),
             _days(flops_per_parameter_token=2), _days(peak=H100_FP32)]
    messages = [_verdict(3, slip).message for slip in slips]
    assert len(set(messages)) == len(messages)


def test_exercise_4_add_intensity():
    assert _verdict(4, 1 / 6).correct is True
    assert _verdict(4, 0.167).correct is True
    _assert_hint(4, 1 / (2 * 2), "count the output")  # read a and b, no write of c
    _assert_hint(4, 1 / (3 * 4), "fp32")
    _assert_hint(4, 1 / 2, "one element's 2 bytes")
    _assert_hint(4, 1 / 3, "bytes, not elements")
    _assert_hint(4, 1 / (3 * 16), "not bits")
    _assert_hint(4, 3 * 2 / 1, "bytes per FLOP")


def test_exercise_5_matmul_intensity():
    def right(m, n, k, dtype_bytes):
        return 2 * m * n * k / ((m * n + n * k + m * k) * dtype_bytes)

    def no_bytes(m, n, k, dtype_bytes):
        return 2 * m * n * k / (m * n + n * k + m * k)

    def half_the_flops(m, n, k, dtype_bytes):
        return m * n * k / ((m * n + n * k + m * k) * dtype_bytes)

    def no_output(m, n, k, dtype_bytes):
        return 2 * m * n * k / ((m * n + n * k) * dtype_bytes)

    def square_only(m, n, k, dtype_bytes):
        return arithmetic_intensity_matmul(n, dtype_bytes)

    def stub(m, n, k, dtype_bytes):
        return None

    def text(m, n, k, dtype_bytes):
        return "0.5"

    assert _verdict(5, right).correct is True
    _assert_hint(5, no_bytes, "bytes per element")
    _assert_hint(5, half_the_flops, "2*m*n*k")
    _assert_hint(5, no_output, "count the output")
    _assert_hint(5, square_only, "square-matrix formula")
    _assert_hint(5, text, "returned '0.5'")
    assert _verdict(5, stub).correct is None
    assert _verdict(5, None).correct is None
    assert _verdict(5, 3.0).correct is False


def test_notebook_03_datasheet_figures():
    """The H100 SXM figures notebook 03's prose quotes."""
    h100 = hardware.lookup_gpu("H100 SXM")
    assert (hardware.peak_flops("H100 SXM", "bf16"), h100.sparse_flops["bf16"]) \
        == (989.4e12, 1978.9e12)
    assert hardware.peak_flops("H100 SXM", "fp32") == 66.9e12
    assert h100.memory_bandwidth == 3.35e12
    assert SECONDS_PER_WEEK == 7 * SECONDS_PER_DAY == 604_800


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
    assert timings["warm_median"] == timings["warm"].median > 0
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
    assert compare_timings("a", fast, "a again", fast) == \
        "a and a again agree within their spread (medians 1.000x apart)"
    assert "(medians 2.00x apart)" in compare_timings("a", Timing((1.0, 1.0, 3.0)), "b",
                                                       Timing((2.0, 2.0, 2.0)))
    # Spreads that do not overlap only beyond the 3 printed figures agree, as a reader sees them.
    almost = Timing((1.2346e-3, 1.25e-3, 1.26e-3))
    assert "agree" in compare_timings("a", Timing((1.2e-3, 1.22e-3, 1.2344e-3)), "b", almost)
    # Medians 0.5% apart with spreads apart: three decimals, never "1.00x faster".
    assert compare_timings("a", Timing((1.23e-3,) * 5), "b", Timing((1.236e-3,) * 5)) == \
        "a is 1.005x faster than b (their spreads do not overlap)"
    with pytest.raises(ValueError, match="times must be"):
        Timing(())


# ------------------------------------------------------- timing on a busy machine, conclusions


def test_timing_threads_runs_a_cpu_block_on_one_thread_and_restores_the_count():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), timing_threads("cpu"):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with timing_threads("cpu", threads=None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a positive size"):
        with timing_threads("cpu", threads=0):
            pass


def test_time_it_times_on_one_thread():
    seen = []
    timing = time_it(lambda: seen.append(torch.get_num_threads()), device="cpu", repeats=4,
                     number=2)
    assert set(seen) == {1} and len(timing.times) == 4
    seen.clear()
    time_it(lambda: seen.append(torch.get_num_threads()), device="cpu", repeats=1, number=1,
            threads=None)
    assert seen[-1] == torch.get_num_threads()


def test_calls_per_block_fills_a_millisecond():
    assert calls_per_block(1e-4) == 10 and calls_per_block(1.0) == 1
    assert calls_per_block(0.0) == 10_000


def test_time_without_and_with_sync_takes_the_two_in_turn():
    order = []
    without, with_sync = time_without_and_with_sync(lambda: order.append(1), device="cpu",
                                                    warmup=1, repeats=3)
    assert len(without.times) == len(with_sync.times) == 3
    slow_without, slow_with = time_without_and_with_sync(lambda: time.sleep(0.002),
                                                         device="cpu", warmup=1, repeats=2)
    # On a CPU the call returns when it is done: both ways measure the whole call.
    assert slow_without.median >= 0.002 and slow_with.median >= 0.002
    with pytest.raises(ValueError, match="repeats must be a positive size"):
        time_without_and_with_sync(lambda: None, device="cpu", repeats=0)


def _sweep(medians, spread=0.02, sizes=None):
    """A Sweep whose FLOP/s at each size are `medians` (GFLOP/s), each +-`spread` (relative)."""
    sizes = sizes or [16 * 2**i for i in range(len(medians))]
    timings = []
    for n, rate in zip(sizes, medians, strict=True):
        t = 2 * n**3 / (rate * 1e9)
        timings.append(Timing((t * (1 - spread), t * (1 - spread), t, t * (1 + spread),
                               t * (1 + spread))))
    return Sweep("fp32", torch.float32, tuple(sizes), tuple(timings))


def _trend(sweep, width=100):
    """throughput_trend's text on one line, and each of its lines at most `width` long."""
    text = throughput_trend(sweep, width)
    assert all(len(line) <= width for line in text.splitlines()), text
    return " ".join(text.split())


def test_throughput_trend_steady_rise():
    text = _trend(_sweep([1, 4, 16, 40]))
    assert text.startswith("fp32: FLOP/s rises at every step, 40x from n = 16 to n = 128")


def test_throughput_trend_never_calls_a_v_steady():
    text = _trend(_sweep([20, 5, 2, 10, 40]), width=60)
    assert "rises at every step" not in text and "not rise steadily" in text
    assert "drops from n = 16 to 32, n = 32 to 64" in text and "highest at n = 256" in text


def test_throughput_trend_rise_with_a_level_step():
    text = _trend(_sweep([1, 4, 4.01, 16]))
    assert "but not at every step: level" in text and "n = 32 to 64" in text


def test_throughput_trend_fall_and_no_trend():
    assert "falls 10x" in _trend(_sweep([50, 20, 5]))
    flat = _trend(_sweep([10, 30, 10.1]))
    assert "no clear trend" in flat and "highest at n = 32" in flat
    assert "one size only" in _trend(_sweep([3]))


def test_throughput_trend_counts_overlapping_spreads_as_level():
    noisy = _trend(_sweep([10, 11, 12], spread=0.3))
    assert noisy.startswith("fp32: no clear trend")
    assert "but not at every step" in _trend(_sweep([10, 11, 30], spread=0.3), width=50)


def test_sweep_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="sizes and timings must be"):
        Sweep("fp32", torch.float32, (16, 32), (Timing((1.0,)),))


def test_sweep_matmuls_and_the_formats_on_a_cpu():
    sweep = sweep_matmuls("fp32", torch.float32, [8, 16], "cpu", repeats=2)
    assert sweep.sizes == (8, 16) and all(low <= mid <= high for low, mid, high in sweep.rates())
    assert [label for label, *_ in MATMUL_FORMATS] == ["fp32, TF32 off", "fp32, TF32 on",
                                                       "bf16", "fp16"]
    assert isinstance(time_matmul_format(16, torch.float32, "high", "cpu", repeats=2), Timing)
    assert time_matmul_format(16, FP8, "highest", "cpu").startswith("skipped: needs a CUDA GPU")


def test_rate_and_mfu():
    one_second = Timing((1.0, 1.0, 1.0))
    h100, t4 = hardware.lookup_gpu("H100 SXM"), hardware.lookup_gpu("T4")
    assert rate_and_mfu(1e12, one_second, None, "fp32") == \
        "1 TFLOP/s; no MFU (no datasheet peak for this device)"
    assert rate_and_mfu(33.45e12, one_second, h100, "fp32").endswith("66.9 TFLOP/s, MFU 0.50")
    assert "has no bf16 figure" in rate_and_mfu(1e12, one_second, t4, "bf16")


def test_cold_and_warm_report_fits_a_notebook_line():
    timings = {"cold": [0.008, 0.001, 0.001, 0.001, 0.001], "lecture_mean": 0.0024,
               "warm": Timing((0.001, 0.0011, 0.0009))}
    report = cold_and_warm_report("bf16", timings, 1e9, 1e12)
    assert report.splitlines()[0] == "bf16 warm: 1 ms (0.9-1.1)"
    assert "the first call is 67% of the 5" in report and "MFU 0.42 the lecture's way" in report
    assert "no MFU" in cold_and_warm_report("bf16", timings, 1e9, None)
    assert all(len(line) <= 100 for line in report.splitlines())


def test_plot_throughput_draws_each_sweep_and_peak():
    import matplotlib.pyplot as plt

    sweeps = [_sweep([1, 4, 16]), Sweep("bf16", torch.bfloat16, (16, 32), (Timing((1e-3,)),) * 2)]
    fig = plot_throughput(sweeps, gpu=hardware.lookup_gpu("H100 SXM"), device_type="cuda")
    ax = fig.axes[0]
    assert len(ax.containers) == 2  # an error bar per sweep
    assert len([line for line in ax.lines if line.get_linestyle() == "--"]) == 2  # two peaks
    assert ax.get_xscale() == "log" and "cuda" in ax.get_title()
    plt.close(fig)
    fig = plot_throughput(sweeps, gpu=None, device_type="cpu")
    assert not [line for line in fig.axes[0].lines if line.get_linestyle() == "--"]
    plt.close(fig)


def test_plot_roofline_draws_roofs_matmuls_and_adds():
    import matplotlib.pyplot as plt

    sweeps = [_sweep([1, 4, 16]), Sweep("bf16", torch.bfloat16, (16, 32), (Timing((1e-3,)),) * 2)]
    adds = {torch.float32: 1e9, torch.bfloat16: 2e9}
    fig = plot_roofline(hardware.lookup_gpu("H100 SXM"), sweeps, adds, device_type="cpu",
                        reference=True)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels.count("H100 SXM fp32 roof (reference)") == 1
    assert sum(label.startswith("matmul") for label in labels) == 2
    assert sum(label.startswith("elementwise add") for label in labels) == 2
    plt.close(fig)
