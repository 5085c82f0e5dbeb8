"""Tests for lecture_utils.mixed_precision (notebook 08)."""

from __future__ import annotations

import math
import re
import unittest.mock

import pytest
import torch

from lecture_utils import mixed_precision as mp
from lecture_utils.exercises import CORRECT, UNANSWERED
from lecture_utils.flops import Timing, fp8_matmul_supported, scaled_matmul_fp8
from lecture_utils.mixed_precision import (
    EXERCISES,
    PRECISIONS,
    SavedForBackward,
    accumulate_gradients,
    checkpointed_forward,
    checkpointing_peak_bytes,
    compare_precisions,
    count_zeros,
    float_format,
    format_precision_table,
    fp8_matmul,
    mse_loss,
    quantize_fp8,
    saved_for_backward,
)
from lecture_utils.models import Cruncher
from lecture_utils.optimizers import peak_new_memory


@pytest.fixture
def model_and_batch():
    torch.manual_seed(0)
    return Cruncher(16, 4), torch.randn(8, 16), torch.randn(8)


def test_float_format_matches_the_ieee_layouts():
    assert float_format(torch.float32)["exponent_bits"] == 8
    assert float_format(torch.bfloat16)["exponent_bits"] == 8
    assert float_format(torch.bfloat16)["mantissa_bits"] == 7
    assert float_format(torch.float16)["exponent_bits"] == 5
    assert float_format(torch.float16)["smallest_normal"] == 2.0**-14
    assert float_format(torch.float16)["smallest_subnormal"] == 2.0**-24
    assert float_format(torch.float8_e4m3fn)["mantissa_bits"] == 3
    assert float_format(torch.float8_e4m3fn)["max"] == 448


def test_float_format_rejects_non_floats():
    with pytest.raises(TypeError, match="floating torch.dtype"):
        float_format(torch.int32)
    with pytest.raises(TypeError, match="floating torch.dtype"):
        float_format("bf16")


def test_count_zeros_skips_missing_gradients():
    assert count_zeros([torch.tensor([0.0, 1.0, 0.0]), None, torch.zeros(2, 2)]) == 6


def test_saved_for_backward_counts_activations_and_parameters(model_and_batch):
    model, x, _ = model_and_batch
    saved = saved_for_backward(lambda: model(x), model.parameters())
    assert isinstance(saved, SavedForBackward)
    assert saved.activation_bytes == (4 + 1) * 8 * 16 * 4  # x and each layer's output
    assert saved.parameter_bytes == (3 * 16 * 16 + 16) * 4  # layer 1 needs no grad of x
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = saved_for_backward(lambda: model(x), model.parameters())
    assert low.activation_bytes == 5 * 8 * 16 * 2 + (3 * 16 * 16 + 16) * 2  # + bf16 weights
    assert low.parameter_bytes == 0


def test_saved_for_backward_rejects_non_callables():
    with pytest.raises(TypeError, match="function to call"):
        saved_for_backward(torch.ones(2))


def test_checkpointed_forward_keeps_segment_inputs_and_matches(model_and_batch):
    model, x, _ = model_and_batch
    plain = model(x)
    for segment, kept in ((1, 5), (2, 3), (3, 3), (4, 2)):
        out = checkpointed_forward(model, x, segment)
        torch.testing.assert_close(out, plain)
        saved = saved_for_backward(lambda s=segment: checkpointed_forward(model, x, s),
                                   model.parameters())
        assert saved.activation_bytes == kept * 8 * 16 * 4


def test_checkpointed_forward_gives_the_same_gradients(model_and_batch):
    model, x, _ = model_and_batch
    model(x).sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    checkpointed_forward(model, x, 2).sum().backward()
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)


def test_checkpointed_forward_rejects_bad_input(model_and_batch):
    model, x, _ = model_and_batch
    with pytest.raises(ValueError, match="segment_size must be positive"):
        checkpointed_forward(model, x, 0)
    with pytest.raises(TypeError, match="needs a Cruncher"):
        checkpointed_forward(torch.nn.Linear(16, 16), x, 1)


@pytest.mark.parametrize("batch", [16, 48, 128])
@pytest.mark.parametrize("segment", [None, 1, 2, 4])
def test_checkpointing_peak_bytes_matches_the_measured_peak(batch, segment):
    torch.manual_seed(0)
    model, x = Cruncher(16, 4), torch.randn(batch, 16)

    def step():  # the output is not kept: it is freed as soon as .sum() has read it
        (model(x) if segment is None else checkpointed_forward(model, x, segment)).sum().backward()

    assert peak_new_memory(step) == checkpointing_peak_bytes(16, 4, batch, segment)


def test_checkpointing_peak_bytes_at_b_equal_8d():
    # L + 1 = 9 activations without checkpointing, L/s + s = 6 with segments of 2 or 4.
    a, w, extra = 4 * 8 * 64 * 64, 4 * 64 * 64, 4 * (64 + 2)
    assert checkpointing_peak_bytes(64, 8, 8 * 64) == 9 * a + w + extra
    assert checkpointing_peak_bytes(64, 8, 8 * 64, 2) == 6 * a + w + extra
    assert checkpointing_peak_bytes(64, 8, 8 * 64, 4) == 6 * a + w + extra


def test_checkpointing_peak_bytes_rejects_bad_input():
    with pytest.raises(ValueError, match="does not divide"):
        checkpointing_peak_bytes(16, 4, 16, 3)
    with pytest.raises(ValueError, match="batch_size >= dim"):
        checkpointing_peak_bytes(16, 4, 8)
    with pytest.raises(ValueError, match="segment_size must be positive"):
        checkpointing_peak_bytes(16, 4, 16, 0)
    with pytest.raises(TypeError, match="dim must be an int"):
        checkpointing_peak_bytes(16.0, 4, 16)


def test_accumulate_gradients_matches_the_full_batch(model_and_batch):
    model, x, y = model_and_batch
    full = mse_loss(model, x, y)
    full.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, x, y, 4)
    assert math.isclose(loss, full.item(), rel_tol=1e-5)
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)
    model.zero_grad(set_to_none=True)
    accumulate_gradients(model, x, y, 4, scale_loss=False)
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, 4 * g)


def test_accumulate_gradients_rejects_uneven_splits(model_and_batch):
    model, x, y = model_and_batch
    with pytest.raises(ValueError, match="equal micro-batches"):
        accumulate_gradients(model, x, y, 3)
    with pytest.raises(ValueError, match="num_micro_batches must be positive"):
        accumulate_gradients(model, x, y, 0)


def _cpu_has_scaled_mm() -> bool:
    try:
        a8, scale = quantize_fp8(torch.ones(16, 16))
        scaled_matmul_fp8(a8, scale, a8, scale)
    except (RuntimeError, NotImplementedError):
        return False
    return True


def test_quantize_fp8_maps_the_largest_value_to_fp8_max():
    x = torch.tensor([[-3.0, 1.5], [0.25, 2.0]])
    x8, scale = quantize_fp8(x)
    assert x8.dtype == torch.float8_e4m3fn
    assert math.isclose(float(scale), 3.0 / 448, rel_tol=1e-6)
    assert float(x8.float().abs().max()) == 448
    with pytest.raises(ValueError, match="inf or NaN"):
        quantize_fp8(torch.tensor([1.0, float("inf")]))
    with pytest.raises(TypeError, match="floating tensor"):
        quantize_fp8(torch.ones(2, dtype=torch.int64))


def test_scaled_matmul_fp8_checks_its_operands():
    a8, scale = quantize_fp8(torch.ones(16, 32))
    with pytest.raises(TypeError, match="quantize_fp8"):
        scaled_matmul_fp8(torch.ones(16, 32), scale, a8, scale)
    with pytest.raises(ValueError, match=r"\(m x n\) @ \(n x k\)"):
        scaled_matmul_fp8(a8, scale, a8, scale)
    b8, _ = quantize_fp8(torch.ones(32, 24))
    with pytest.raises(ValueError, match="multiple of 16"):
        scaled_matmul_fp8(a8, scale, b8, scale)


@pytest.mark.skipif(not _cpu_has_scaled_mm(), reason="this torch has no CPU fp8 matmul")
def test_fp8_matmul_is_close_to_fp32():
    torch.manual_seed(0)
    a, b = torch.randn(32, 64), torch.randn(64, 48)
    out = fp8_matmul(a, b)
    assert out.dtype == torch.bfloat16 and out.shape == (32, 48)
    error = (out.float() - a @ b).norm() / (a @ b).norm()
    assert error < 0.1  # e4m3 keeps 3 mantissa bits: a few percent per element


def test_fp8_is_not_supported_off_cuda():
    assert not fp8_matmul_supported("cpu")


def test_compare_precisions_on_cpu():
    runs = compare_precisions(16, 2, 16, precisions=["fp32", "bf16"], num_steps=4, repeats=1,
                              device="cpu")
    assert [r.precision for r in runs] == ["fp32", "bf16"]
    for run in runs:
        assert len(run.losses) == 4 and run.peak_memory_bytes is None
        assert run.step_seconds > 0 and run.losses[-1] < run.losses[0]
        # forward 2BD^2 L + 2BD, backward twice that less the first layer's input gradient
        assert run.step_flops == 6 * 16 * 16 * 16 * 2 - 2 * 16 * 16 * 16 + 6 * 16 * 16
    assert runs[0].losses[0] == pytest.approx(runs[1].losses[0], rel=0.05)  # same model, data
    table = format_precision_table(runs, gpu_name="H100 SXM")
    assert table.splitlines()[0].split()[0] == "precision" and len(table.splitlines()) == 3
    assert "1.00x" in table.splitlines()[1]


def test_compare_precisions_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown precision"):
        compare_precisions(16, 2, 16, precisions=["fp64"], device="cpu")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        compare_precisions(16, 2, 16, precisions=["tf32"], device="cpu")
    with pytest.raises(ValueError, match="dim must be positive"):
        compare_precisions(0, 2, 16, device="cpu")
    with pytest.raises(ValueError, match="no runs"):
        format_precision_table([])
    assert PRECISIONS == ("fp32", "tf32", "bf16", "fp16")


def _message(number, answer):
    return EXERCISES.feedback(number, answer).message


def test_every_exercise_says_what_answer_it_wants():
    assert all(exercise.wants for exercise in EXERCISES.exercises.values())
    assert "exactly" in EXERCISES.exercises[2].wants and "exactly" in EXERCISES.exercises[3].wants
    assert "2%" in EXERCISES.exercises[1].wants and "2%" in EXERCISES.exercises[4].wants


@pytest.mark.parametrize("number", [1, 2, 3, 4])
@pytest.mark.parametrize("junk, says", [
    (float("nan"), "got nan"), ("many", "text"), (None, "not answered yet"),
])
def test_number_exercises_name_a_bad_answer(number, junk, says):
    if number in (2, 4) and junk is not None:  # a pair: each half is screened
        junk = (junk, junk)
    assert says in _message(number, junk)


def test_exercise_1():
    batch, dim, layers = 2048, 4096, 8
    fp32 = torch.zeros(layers + 1, batch, dim)  # the activations: x, then each layer's output
    right = fp32.nbytes - fp32.bfloat16().nbytes
    assert EXERCISES.feedback(1, right) is CORRECT
    assert EXERCISES.feedback(1, float(f"{right:.3g}")) is CORRECT  # 3 significant figures
    assert EXERCISES.feedback(1, right * 1.03).correct is False
    # Each typical slip, made: its answer gets the hint about that slip.
    forgot_x = fp32[1:].nbytes - fp32[1:].bfloat16().nbytes
    assert "L + 1" in _message(1, forgot_x)
    assert "what fp32 stores" in _message(1, fp32.nbytes)
    assert "number of activation elements" in _message(1, fp32.numel())
    assert EXERCISES.feedback(1, None) is UNANSWERED


def test_exercise_2():
    def smallest_scale(value, threshold):
        return next(2**e for e in range(64) if value * 2**e >= threshold)

    fp16, bf16 = torch.finfo(torch.float16), torch.finfo(torch.bfloat16)
    right = (smallest_scale(3e-8, fp16.smallest_normal), smallest_scale(3e-8, bf16.smallest_normal))
    assert right == (2048, 1) and EXERCISES.feedback(2, right) is CORRECT
    assert EXERCISES.feedback(2, [2048.0, 1.0]) is CORRECT
    # Each typical slip, made: its answer gets the hint about that slip.
    rounded_down = 2 ** math.floor(math.log2(fp16.smallest_normal / 3e-8))
    assert "still below" in _message(2, (rounded_down, 1))
    subnormal = smallest_scale(3e-8, fp16.smallest_normal * fp16.eps)  # 2^-24, the smallest
    assert "subnormal" in _message(2, (subnormal, 1))
    same_as_fp16 = (right[0], right[0])  # bf16 treated like fp16
    assert "2^-126" in _message(2, same_as_fp16)
    exponents = tuple(int(math.log2(s)) for s in right)
    assert "exponents" in _message(2, exponents)
    assert "power of two" in _message(2, (2000, 1))
    assert EXERCISES.feedback(2, None) is UNANSWERED
    assert EXERCISES.feedback(2, (None, None)) is UNANSWERED  # the student's stub
    assert "both" in _message(2, (2048, None))
    assert "pair" in _message(2, 2048)
    # the claim behind the answer, in torch's own numbers
    assert 3e-8 * 2048 >= torch.finfo(torch.float16).smallest_normal > 3e-8 * 1024


def _scale_after(overflows, clean_steps, growth_interval=2000):
    """The GradScaler rule, with its defaults: halve per overflow, double per interval."""
    return 2.0**16 * 0.5**overflows * 2.0 ** (clean_steps // growth_interval)


def test_exercise_3_agrees_with_a_real_grad_scaler():
    assert EXERCISES.feedback(3, _scale_after(3, 4000)) is CORRECT
    assert EXERCISES.feedback(3, 32768.0) is CORRECT
    assert EXERCISES.feedback(3, 3.28e4).correct is False  # exact: a power of two
    # Each typical slip, made: its answer gets the hint about that slip.
    assert "clean steps after the overflows grow" in _message(3, _scale_after(3, 0))
    assert "4000 clean steps double it twice" in _message(3, _scale_after(3, 4000, 4000))
    assert "halve the scale 3 times" in _message(3, _scale_after(0, 4000))
    assert "initial scale" in _message(3, _scale_after(0, 0))
    assert EXERCISES.feedback(3, None) is UNANSWERED
    # The same rule on a real scaler, with growth_interval 4 instead of 2000.
    p = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", growth_interval=4)
    for value in [float("inf")] * 3 + [1.0] * 8:
        optimizer.zero_grad()
        scaler.scale(p.sum() * value).backward()
        scaler.step(optimizer)
        scaler.update()
    assert scaler.get_scale() == _scale_after(3, 8, growth_interval=4)


def test_exercise_4():
    batch, dim, layers, segment = 1024, 8192, 48, 8
    activation = batch * dim * 4
    segments = layers // segment
    kept = (segments + 1) * activation
    layer_flops = 2 * batch * dim * dim
    extra = layer_flops * (layers - segments)
    assert EXERCISES.feedback(4, (kept, extra)) is CORRECT
    assert EXERCISES.feedback(4, (float(f"{kept:.3g}"), float(f"{extra:.3g}"))) is CORRECT
    # Each typical slip, made: its answer gets the hint about that slip.
    assert "head's input" in _message(4, (segments * activation, extra))
    assert "without checkpointing" in _message(4, ((layers + 1) * activation, extra))
    assert "4 bytes a number" in _message(4, ((segments + 1) * batch * dim * 2, extra))
    assert "6 segments" in _message(4, ((segment + 1) * activation, extra))
    assert "stops recomputing" in _message(4, (kept, layer_flops * layers))
    assert "only the forward" in _message(4, (kept, 3 * layer_flops * layers))
    assert "multiply and an add" in _message(4, (kept, batch * dim * dim * (layers - segments)))
    assert "not L - s = 40" in _message(4, (kept, layer_flops * (layers - segment)))
    assert _message(4, (kept, extra * 1.1)).startswith("not quite. the FLOPs:")
    assert EXERCISES.feedback(4, None) is UNANSWERED
    assert EXERCISES.feedback(4, (None, None)) is UNANSWERED  # the student's stub


def test_exercise_4_agrees_with_flop_counter(model_and_batch):
    from lecture_utils.flops import count_flops

    model, x, _ = model_and_batch
    plain = count_flops(lambda: model(x).sum().backward())
    for segment in (1, 2, 4):
        checkpointed = count_flops(
            lambda s=segment: checkpointed_forward(model, x, s).sum().backward())
        assert checkpointed - plain == 2 * 8 * 16 * 16 * (4 - 4 // segment)


def test_exercise_5():
    def right(model, x, y, k):
        return accumulate_gradients(model, x, y, k)

    def forgot(model, x, y, k):
        return accumulate_gradients(model, x, y, k, scale_loss=False)

    def divided_twice(model, x, y, k):
        for x_micro, y_micro in zip(x.chunk(k), y.chunk(k)):
            (mse_loss(model, x_micro, y_micro) / k / k).backward()
        return mse_loss(model, x, y).item()

    def zeroed_each_time(model, x, y, k):
        for x_micro, y_micro in zip(x.chunk(k), y.chunk(k)):
            model.zero_grad()
            (mse_loss(model, x_micro, y_micro) / k).backward()
        return mse_loss(model, x, y).item()

    def returns_the_sum(model, x, y, k):
        return k * accumulate_gradients(model, x, y, k)

    def returns_nothing(model, x, y, k):
        accumulate_gradients(model, x, y, k)

    def stub(model, x, y, k):
        return None

    def raises(model, x, y, k):
        raise ValueError("oops")

    assert EXERCISES.feedback(5, right) is CORRECT
    assert "3x too large" in _message(5, forgot)
    assert "3x too small" in _message(5, divided_twice)
    assert "only the last micro-batch" in _message(5, zeroed_each_time)
    assert "sum of the micro-batch losses" in _message(5, returns_the_sum)
    assert "now return the full batch's mean loss" in _message(5, returns_nothing)
    assert EXERCISES.feedback(5, stub) is UNANSWERED
    assert "raised ValueError: oops" in _message(5, raises)
    assert "function itself" in _message(5, 3)


def test_scaled_matmul_fp8_fast_accum_must_be_a_bool():
    a8, scale = quantize_fp8(torch.ones(16, 16))
    with pytest.raises(TypeError, match="use_fast_accum must be True or False"):
        scaled_matmul_fp8(a8, scale, a8, scale, use_fast_accum="yes")


# ----------------------------------------------------------------------------------------------
# The notebook's helpers


def test_format_float_table_has_a_row_per_format():
    table = mp.format_float_table({"fp32": torch.float32, "bf16": torch.bfloat16})
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["format", "bits", "exp", "mant"]
    assert lines[2].split()[:4] == ["bf16", "16", "8", "7"]
    assert all(len(line) <= 100 for line in lines)
    with pytest.raises(ValueError, match="at least one dtype"):
        mp.format_float_table({})


def test_autocast_output_dtypes_on_cpu():
    dtypes = mp.autocast_output_dtypes("cpu")
    assert list(dtypes) == list(mp.AUTOCAST_PROBES)
    assert dtypes["mm"] == torch.bfloat16 and dtypes["softmax"] == torch.bfloat16
    assert dtypes["mse_loss"] == dtypes["cross_entropy"] == torch.float32


def test_fp16_gradients_vanish_without_a_scaler():
    torch.manual_seed(0)
    model, x = Cruncher(16, 2), torch.randn(8, 16)
    elements = sum(p.numel() for p in model.parameters())
    assert count_zeros(mp.fp16_gradients(model, x, 2.0**-23, use_scaler=False)) == elements
    assert count_zeros(mp.fp16_gradients(model, x, 2.0**-23, use_scaler=True)) == 0
    model.zero_grad(set_to_none=True)
    (2.0**-23 * model(x).mean()).backward()  # fp32, for reference
    for got, p in zip(mp.fp16_gradients(model, x, 2.0**-23, use_scaler=True), model.parameters()):
        assert float((got - p.grad).norm() / p.grad.norm()) < 0.01


def test_grad_scaler_steps_skip_overflows_and_grow_back():
    torch.manual_seed(0)
    model, x = Cruncher(16, 2), torch.randn(8, 16)
    steps = mp.grad_scaler_steps(model, [("x", x), ("x * 1e5", x * 1e5)] + [("x", x)] * 3,
                                 growth_interval=3)
    rows = [(s.scale_before, s.loss_finite, s.updated, s.scale_after) for s in steps]
    assert rows[0] == (2.0**16, True, False, 2.0**15)  # the scaled gradients overflow
    assert rows[1] == (2.0**15, False, False, 2.0**14)  # the forward overflows
    assert [r[2] for r in rows[2:]] == [True] * 3 and rows[-1][3] == 2.0**15
    with pytest.raises(ValueError, match="growth_interval must be positive"):
        mp.grad_scaler_steps(model, [], growth_interval=0)


def test_checkpointed_backward_matches_the_plain_backward(model_and_batch):
    model, x, _ = model_and_batch
    mp.checkpointed_backward(model, x, None)
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    mp.checkpointed_backward(model, x, 2)
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g)
    # The output is not kept alive through backward: the peak is the predicted one.
    torch.manual_seed(0)
    wide, xw = Cruncher(16, 4), torch.randn(64, 16)
    for segment in (None, 2):
        wide.zero_grad(set_to_none=True)  # backward adds into existing gradients
        assert peak_new_memory(lambda s=segment: mp.checkpointed_backward(wide, xw, s)) == \
            checkpointing_peak_bytes(16, 4, 64, segment)


def test_checkpointing_costs_count_saved_bytes_and_extra_flops(model_and_batch):
    model, x, _ = model_and_batch  # D = 16, L = 4, B = 8
    costs = mp.checkpointing_costs(model, x, [1, 2, 4])
    assert [c.segment_size for c in costs] == [None, 1, 2, 4]
    assert [c.num_segments for c in costs] == [None, 4, 2, 1]
    assert [c.saved_bytes for c in costs] == [5 * 8 * 16 * 4, 5 * 8 * 16 * 4, 3 * 8 * 16 * 4,
                                              2 * 8 * 16 * 4]
    assert [c.extra_flops for c in costs] == [2 * 8 * 16 * 16 * (4 - n) for n in (4, 4, 2, 1)]
    assert all(c.flops - c.extra_flops == costs[0].flops for c in costs)
    assert all(p.grad is None for p in model.parameters())  # the counting runs left no gradient
    table = mp.format_checkpointing_costs(costs).splitlines()
    assert table[0].split() == ["segment", "segments", "saved", "bytes", "extra", "FLOPs", "extra"]
    assert table[1].split()[:2] == ["none", "-"]
    assert table[-1].split()[-1] == f"{costs[-1].extra_flops / costs[0].flops:.0%}"
    with pytest.raises(TypeError, match="CheckpointingCost"):
        mp.format_checkpointing_costs([1])


def test_gpu_checkpointing_peaks_needs_a_cuda_device():
    with pytest.raises(ValueError, match="device must be a CUDA GPU"):
        mp.gpu_checkpointing_peaks(16, 2, 16, {"none": None}, "cpu")


def test_time_accumulation_times_each_split(model_and_batch):
    model, x, y = model_and_batch
    threads = torch.get_num_threads()
    seen = []
    real_accumulate = mp.accumulate_gradients

    def spy(*args, **kwargs):  # records the thread count the timed calls run on
        seen.append(torch.get_num_threads())
        return real_accumulate(*args, **kwargs)

    with unittest.mock.patch.object(mp, "accumulate_gradients", spy):
        timings = mp.time_accumulation(model, x, y, [1, 2], repeats=3)
    assert seen and set(seen) == {1}  # one CPU thread while timing
    assert list(timings) == [1, 2] and all(isinstance(t, Timing) for t in timings.values())
    assert all(len(t.times) == 3 and t.median > 0 for t in timings.values())
    assert torch.get_num_threads() == threads
    assert all(p.grad is None for p in model.parameters())


def _run(precision: str, times: tuple[float, ...]) -> mp.PrecisionRun:
    timing = Timing(times)
    return mp.PrecisionRun(precision, timing.median, 100, None, [1.0, 0.5], timing)


def test_format_step_timings_prints_parsable_timings_and_computed_conclusions():
    fast, slow = (0.001, 0.0011, 0.0012, 0.0013), (0.01, 0.011, 0.012, 0.013)
    text = mp.format_step_timings([_run("fp32", fast), _run("bf16", slow)])
    lines = text.splitlines()
    assert re.fullmatch(r"fp32 step: [\d.]+ ms \([\d.]+-[\d.]+\)", lines[0])
    assert lines[2].startswith("fp32 step is ") and "faster than bf16 step" in lines[2]
    # Adversarial: spreads that overlap are never called faster, whatever the medians say.
    wide_a, wide_b = (0.001, 0.002, 0.003, 0.009), (0.002, 0.0025, 0.004, 0.01)
    text = mp.format_step_timings([_run("fp32", wide_a), _run("bf16", wide_b)])
    assert "agree within their spread" in text and "faster" not in text
    # One comparison per later run, each against the first.
    text = mp.format_step_timings([_run(p, fast) for p in ("fp32", "tf32", "bf16", "fp16")])
    assert len(text.splitlines()) == 4 + 3
    with pytest.raises(ValueError, match="step_timing"):
        mp.format_step_timings([mp.PrecisionRun("fp32", 1.0, 1, None, [1.0])])


def test_compare_precisions_reports_the_spread_of_its_step_times():
    runs = compare_precisions(16, 2, 16, precisions=["fp32"], num_steps=2, repeats=5,
                              device="cpu")
    timing = runs[0].step_timing
    assert len(timing.times) == 5 and runs[0].step_seconds == timing.median


def test_plot_precision_runs_draws_each_run_and_its_difference():
    import matplotlib.pyplot as plt

    runs = [_run("fp32", (1.0,)), _run("bf16", (1.0,)), _run("fp16", (1.0,))]
    fig = mp.plot_precision_runs(runs, "three runs")
    try:
        ax_loss, ax_diff = fig.axes
        assert len(ax_loss.get_lines()) == 3
        assert len(ax_diff.get_lines()) == 2 + 1  # the two others, and the zero line
        assert fig._suptitle.get_text() == "three runs"
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="no runs"):
        mp.plot_precision_runs([], "none")


@pytest.mark.skipif(not fp8_matmul_supported("cuda"), reason="needs a GPU with fp8 tensor cores")
def test_compare_fp8_matmul_on_a_gpu():
    result = mp.compare_fp8_matmul(1024, "cuda", repeats=3)
    assert result.flops == 2 * 1024**3 and result.fp8_error < 0.1 and result.bf16_error < 0.01
    assert result.bf16.median > 0 and result.fp8.median > 0
