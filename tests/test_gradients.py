import itertools
import math
import re

import matplotlib
import pytest
import torch

from lecture_utils import gradients as g
from lecture_utils.exercises import CORRECT, UNANSWERED

matplotlib.use("Agg")

LECTURE = (16384, 32768, 8192)


def test_squared_error_gradient_matches_the_lecture_and_autograd():
    x = torch.tensor([1.0, 2.0, 3.0])
    w = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    loss = 0.5 * (x @ w - 5).pow(2)
    loss.backward()
    by_hand = g.squared_error_gradient(x, w, 5.0)
    assert by_hand.tolist() == [1.0, 2.0, 3.0]
    assert torch.equal(by_hand, w.grad)


def test_squared_error_gradient_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="vectors of one length"):
        g.squared_error_gradient(torch.ones(3), torch.ones(4), 1.0)


def test_matmuls_by_hand():
    B, D, K = 2, 3, 5
    names = [m.name for m in g.two_layer_matmuls(B, D, K, input_requires_grad=True)]
    assert names[-1] == "x.grad = h1.grad @ w1.T" and len(names) == 6
    assert len(g.two_layer_matmuls(B, D, K, input_requires_grad=False)) == 5
    assert g.Matmul("backward", "w2.grad", "2·B·D·K", D, B, K).flops == 2 * B * D * K
    assert g.two_layer_num_parameters(D, K) == D * D + D * K


@pytest.mark.parametrize("needs_grad", [False, True])
def test_two_layer_flops_totals(needs_grad):
    B, D, K = LECTURE
    params = g.two_layer_num_parameters(D, K)
    totals = g.phase_totals(g.two_layer_flops(B, D, K, needs_grad))
    assert totals["forward"] == 2 * B * params
    expected_backward = 4 * B * params if needs_grad else 4 * B * D * K + 2 * B * D * D
    assert totals["backward"] == expected_backward


@pytest.mark.parametrize("call, error, match", [
    (lambda: g.two_layer_flops(0, 2, 3, False), ValueError, "B must be a positive size"),
    (lambda: g.two_layer_flops(1, -2, 3, False), ValueError, "D must be a positive size"),
    (lambda: g.two_layer_flops(1, 2, 3.0, False), TypeError, "K must be an int"),
    (lambda: g.two_layer_flops(True, 2, 3, False), TypeError, "B must be an int"),
    (lambda: g.two_layer_flops(1, 2, 3, "yes"), TypeError, "input_requires_grad must be True"),
    (lambda: g.two_layer_num_parameters(0, 3), ValueError, "D must be a positive size"),
    (lambda: g.make_two_layer_tensors(1, 2, 0), ValueError, "K must be a positive size"),
    (lambda: g.measure_flops_per_op(4, 4, 3, input_requires_grad=False), ValueError,
     "B, D, K must all differ"),
    (lambda: g.measured_linear_chain_backward_flops(4, [3], False), ValueError,
     "at least one output size"),
    (lambda: g.measured_linear_chain_backward_flops(4, [3, 0], False), ValueError,
     r"dims\[1\] must be a positive size"),
    (lambda: g.plot_flops_breakdown({"a": {"x": 1}}, 0, "u"), ValueError, "unit must be"),
])
def test_bad_input_says_what_is_wrong(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_tensors_and_forward_shapes():
    x, w1, w2 = g.make_two_layer_tensors(4, 6, 2, input_requires_grad=True, device="meta")
    assert x.is_meta and x.requires_grad and w1.is_leaf and w2.requires_grad
    h1, h2, loss = g.two_layer_forward(x, w1, w2)
    assert h1.shape == (4, 6) and h2.shape == (4, 2) and loss.shape == ()


def test_record_ops_counts_each_matmul():
    a, b = torch.ones(2, 3), torch.ones(3, 4)
    records = g.record_ops(lambda: (a @ b).pow(2))
    assert [(r.op, r.flops) for r in records] == [("aten.mm", 2 * 2 * 3 * 4), ("aten.pow", 0)]
    assert records[0].input_shapes == ((2, 3), (3, 4)) and records[0].output_shapes == ((2, 4),)


@pytest.mark.parametrize("needs_grad", [False, True])
def test_measured_equals_by_hand_at_lecture_size_on_meta(needs_grad):
    B, D, K = LECTURE
    measured = g.measure_flops_per_op(B, D, K, input_requires_grad=needs_grad)
    assert measured == g.two_layer_flops(B, D, K, needs_grad)


def test_measured_equals_by_hand_on_cpu():
    measured = g.measure_flops_per_op(6, 5, 3, input_requires_grad=True, device="cpu")
    assert measured == g.two_layer_flops(6, 5, 3, True)


def test_time_forward_backward_returns_seconds():
    times = g.time_forward_backward(8, 16, 4, input_requires_grad=True, device="cpu",
                                    warmup=0, repeats=1)
    assert set(times) == {"forward", "backward"} and all(t > 0 for t in times.values())


def test_plot_flops_breakdown_draws_one_bar_per_segment():
    fig = g.plot_flops_breakdown({"f": {"a": 2, "b": 1}, "b": {"a": 4}}, 1, "FLOPs")
    assert len(fig.axes[0].patches) == 3
    matplotlib.pyplot.close(fig)


def test_chain_backward_flops_matches_two_layer_network():
    B, D, K = 8, 16, 4
    for needs_grad in (False, True):
        backward = g.phase_totals(g.two_layer_flops(B, D, K, needs_grad))["backward"]
        assert g.measured_linear_chain_backward_flops(B, [D, D, K], needs_grad) == backward


def backward_flops(batch, dims, input_requires_grad):
    total = 0
    for layer, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        total += 2 * batch * d_in * d_out
        if layer > 0 or input_requires_grad:
            total += 2 * batch * d_in * d_out
    return total


def test_exercise_answers_are_correct():
    assert g.EXERCISES.feedback(1, [6.0, -3.0, 12.0]) == CORRECT
    assert g.EXERCISES.feedback(1, torch.tensor([6.0, -3.0, 12.0])) == CORRECT
    assert g.EXERCISES.feedback(2, 6 * 7e9 * 2e12) == CORRECT
    assert g.EXERCISES.feedback(3, 4 * 4096 * 4096 * 11008) == CORRECT
    assert g.EXERCISES.feedback(4, "x.grad") == CORRECT
    assert g.EXERCISES.feedback(4, " X.grad ") == CORRECT
    assert g.EXERCISES.feedback(5, backward_flops) == CORRECT


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_exercises_unanswered(number):
    assert g.EXERCISES.feedback(number, None) == UNANSWERED


def test_exercise_5_unanswered_stub():
    assert g.EXERCISES.feedback(5, lambda batch, dims, needs: None) == UNANSWERED


@pytest.mark.parametrize("number, answer, hint", [
    (1, [-6.0, 3.0, -12.0], "sign is flipped"),
    (1, [12.0, -6.0, 24.0], "0.5 in front"),
    (1, [2.0, -1.0, 4.0], "multiply by the residual"),
    (1, [1.0, 2.0], "expected 3 numbers"),
    (2, 2 * 7e9 * 2e12, "forward pass alone"),
    (2, 4 * 7e9 * 2e12, "backward pass alone"),
    (3, 2 * 4096 * 4096 * 11008, "You counted one"),
    (3, 6 * 4096 * 4096 * 11008, "forward \\+ backward"),
    (3, 4096 * 4096 * 11008, "multiply-add is 2 FLOPs"),
    (4, "w1.grad", "optimizer needs its gradient"),
    (4, "h1.grad", "on the way to w1.grad"),
    (4, 3, "as a string"),
    (5, lambda b, dims, r: 4 * b * sum(x * y for x, y in itertools.pairwise(dims)),
     "first layer's input gradient"),
    (5, lambda b, dims, r: 2 * b * sum(x * y for x, y in itertools.pairwise(dims)),
     "only the weight gradients"),
    (5, 42, "the function itself"),
])
def test_exercise_hints(number, answer, hint):
    feedback = g.EXERCISES.feedback(number, answer)
    assert feedback.correct is False
    assert re.search(hint, feedback.message), feedback.message


def test_ratios_in_the_notebook():
    B, D, K = LECTURE
    t = g.phase_totals(g.two_layer_flops(B, D, K, False))
    assert math.isclose(t["backward"] / t["forward"], 1.2)


@pytest.mark.parametrize("input_requires_grad", [False, True])
def test_two_layer_peak_bytes_matches_the_measured_peak(input_requires_grad):
    from lecture_utils.gradients import time_forward_backward, two_layer_peak_bytes
    from lecture_utils.optimizers import peak_new_memory

    b, d, k = 48, 96, 24
    measured = peak_new_memory(lambda: time_forward_backward(
        b, d, k, input_requires_grad=input_requires_grad, device="cpu", warmup=1, repeats=1))
    # Exact up to the loss's two scalars (the loss and its seed gradient), 4 bytes each.
    assert measured - two_layer_peak_bytes(b, d, k, input_requires_grad) == 8


def test_two_layer_peak_bytes_at_lecture_scale():
    from lecture_utils.gradients import two_layer_peak_bytes

    assert two_layer_peak_bytes(16384, 32768, 8192, True) == 19_864_223_744  # 18.5 GiB
    assert two_layer_peak_bytes(16384, 32768, 8192, False) == 17_716_740_096
    with pytest.raises(ValueError):
        two_layer_peak_bytes(0, 2, 2, True)
