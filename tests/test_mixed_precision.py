"""Tests for lecture_utils.mixed_precision (notebook 08)."""

from __future__ import annotations

import math

import pytest
import torch

from lecture_utils.exercises import CORRECT, UNANSWERED
from lecture_utils.flops import fp8_matmul_supported, scaled_matmul_fp8
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


def test_exercise_1():
    right = 9 * 2048 * 4096 * 2
    assert EXERCISES.feedback(1, right) is CORRECT
    assert "L + 1" in EXERCISES.feedback(1, 8 * 2048 * 4096 * 2).message
    assert EXERCISES.feedback(1, None) is UNANSWERED


def test_exercise_2():
    assert EXERCISES.feedback(2, (2048, 1)) is CORRECT
    assert "still below" in EXERCISES.feedback(2, (1024, 1)).message
    assert "2^-126" in EXERCISES.feedback(2, (2048, 2048)).message
    assert EXERCISES.feedback(2, None) is UNANSWERED
    assert EXERCISES.feedback(2, (None, None)) is UNANSWERED  # the student's stub
    assert "both" in EXERCISES.feedback(2, (2048, None)).message
    # the claim behind the answer, in torch's own numbers
    assert 3e-8 * 2048 >= torch.finfo(torch.float16).smallest_normal > 3e-8 * 1024


def test_exercise_3_agrees_with_a_real_grad_scaler():
    assert EXERCISES.feedback(3, 32768.0) is CORRECT
    assert "clean steps" in EXERCISES.feedback(3, 8192.0).message
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
    assert scaler.get_scale() == 2.0**16 * 0.5**3 * 2**2


def test_exercise_4():
    batch, dim, layers, segment = 1024, 8192, 48, 8
    kept = (layers // segment + 1) * batch * dim * 4
    extra = 2 * batch * dim * dim * (layers - layers // segment)
    assert EXERCISES.feedback(4, (kept, extra)) is CORRECT
    assert "head's input" in EXERCISES.feedback(4, (6 * batch * dim * 4, extra)).message
    assert "stops recomputing" in EXERCISES.feedback(
        4, (kept, 2 * batch * dim * dim * layers)).message
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

    def stub(model, x, y, k):
        return None

    assert EXERCISES.feedback(5, right) is CORRECT
    assert "3x too large" in EXERCISES.feedback(5, forgot).message
    assert EXERCISES.feedback(5, stub) is UNANSWERED
    assert "function itself" in EXERCISES.feedback(5, 3).message


def test_scaled_matmul_fp8_fast_accum_must_be_a_bool():
    a8, scale = quantize_fp8(torch.ones(16, 16))
    with pytest.raises(TypeError, match="use_fast_accum must be True or False"):
        scaled_matmul_fp8(a8, scale, a8, scale, use_fast_accum="yes")
