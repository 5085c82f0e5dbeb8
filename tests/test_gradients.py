import itertools
import math
import re

import matplotlib
import pytest
import torch

from lecture_utils import gradients as g
from lecture_utils.exercises import CORRECT, UNANSWERED
from lecture_utils.flops import Timing

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


def test_time_forward_backward_returns_timings_taken_on_one_thread(monkeypatch):
    times = g.time_forward_backward(8, 16, 4, input_requires_grad=True, device="cpu",
                                    warmup=0, repeats=3)
    assert set(times) == {"forward", "backward"}
    assert all(isinstance(t, Timing) and len(t.times) == 3 and t.median > 0
               for t in times.values())
    seen = []
    forward = g.two_layer_forward
    monkeypatch.setattr(g, "two_layer_forward",
                        lambda *a: seen.append(torch.get_num_threads()) or forward(*a))
    g.time_forward_backward(8, 16, 4, input_requires_grad=False, device="cpu", warmup=0,
                            repeats=1)
    assert seen[1:] and set(seen[1:]) == {1}  # seen[0]: the graph, built before timing


def _timing(median, spread=0.05):
    return Timing((median * (1 - spread), median, median * (1 + spread)))


def test_time_ratio_conclusion_agrees_within_the_spread():
    text = g.time_ratio_conclusion(_timing(1.0), _timing(1.25), 1.2)
    assert text == ("backward / forward time 1.25 (1.13-1.38): agrees with the FLOP ratio 1.2 "
                    "within its spread")


def test_time_ratio_conclusion_says_which_side_the_time_ratio_falls():
    slower = g.time_ratio_conclusion(_timing(1.0), _timing(2.06), 1.2)
    assert all(len(line) <= 100 for line in slower.splitlines())
    slower = " ".join(slower.split())
    assert "above the FLOP ratio 1.2" in slower and "backward pass ran slower" in slower
    faster = " ".join(g.time_ratio_conclusion(_timing(1.0), _timing(1.2), 2.0, 50).split())
    assert "below the FLOP ratio 2.0" in faster and "backward pass ran faster" in faster
    # At the edge, the printed range decides: 1.2004 prints as 1.20, which holds 1.2.
    edge = g.time_ratio_conclusion(Timing((1.0,)), Timing((1.2004,)), 1.2)
    assert "(1.20-1.20): agrees" in edge
    # A wide spread is no evidence either way.
    assert "agrees" in g.time_ratio_conclusion(_timing(1.0, 0.4), _timing(2.0, 0.4), 1.2)


def test_time_ratio_conclusion_rejects_bad_input():
    with pytest.raises(TypeError, match="forward and backward must be Timings"):
        g.time_ratio_conclusion(1.0, _timing(1.0), 1.2)
    with pytest.raises(ValueError, match="flop_ratio must be a finite number > 0"):
        g.time_ratio_conclusion(_timing(1.0), _timing(1.0), float("nan"))


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
    assert g.EXERCISES.feedback(2, 8.40e22) == CORRECT  # 3 significant figures
    assert g.EXERCISES.feedback(3, 4 * 4096 * 4096 * 11008) == CORRECT
    assert g.EXERCISES.feedback(3, 7.39e11) == CORRECT  # 3 significant figures
    assert g.EXERCISES.feedback(4, "x.grad") == CORRECT
    assert g.EXERCISES.feedback(4, " X.grad ") == CORRECT
    assert g.EXERCISES.feedback(5, backward_flops) == CORRECT


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_exercises_unanswered(number):
    assert g.EXERCISES.feedback(number, None) == UNANSWERED


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_exercises_say_what_they_want_and_name_nan_and_text(number):
    wants = g.EXERCISES.exercises[number].wants
    assert wants and ("within" in wants or "exact" in wants or "string" in wants)
    assert "nan (not a number)" in g.EXERCISES.feedback(number, float("nan")).message
    text = g.EXERCISES.feedback(number, "forty-two")
    assert text.correct is False and "raised" not in text.message


def test_exercise_5_unanswered_stub():
    assert g.EXERCISES.feedback(5, lambda batch, dims, needs: None) == UNANSWERED


# The mistakes, each made in code: x = [2, -1, 4], w = [1, 1, 1], target 2 (exercise 1).
X1, W1, TARGET1 = [2.0, -1.0, 4.0], [1.0, 1.0, 1.0], 2.0
R1 = sum(a * b for a, b in zip(X1, W1, strict=True)) - TARGET1  # the residual, 3
LAYER3 = 4096 * 4096 * 11008  # exercise 3: tokens x d_in x d_out


def _chain(batch, dims, input_requires_grad, *, per_madd=2, first_input=None, inputs=True,
           forward=False):
    """Exercise 5's backward FLOPs, with a mistake when asked."""
    total = 0
    for layer, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        total += per_madd * batch * d_in * d_out * (2 if forward else 1)
        wants_input = layer > 0 or (input_requires_grad if first_input is None else first_input)
        if inputs and wants_input:
            total += per_madd * batch * d_in * d_out
    return total


@pytest.mark.parametrize("number, answer, hint", [
    (1, [-R1 * x for x in X1], "sign is flipped"),  # target - x @ w
    (1, [2 * R1 * x for x in X1], "0.5 in front"),  # the 2 of the square kept
    (1, [(R1 + TARGET1) * x for x in X1], "target is missing"),
    (1, X1, "multiply by the residual"),
    (1, [R1] * 3, "residual alone"),
    (1, [R1 * w for w in W1], "residual times w"),
    (1, [1.0, 2.0], "expected 3 numbers"),
    (1, object(), "expected a list of 3 numbers"),
    (1, [1.0, float("nan"), 2.0], "nan"),
    (2, 2 * 7e9 * 2e12, "forward pass alone"),
    (2, 4 * 7e9 * 2e12, "backward pass alone"),
    (2, 3 * 7e9 * 2e12, "only the multiplies"),
    (2, 7e9 * 2e12, "6 in all"),
    (3, 2 * LAYER3, "only one of them"),  # the weight gradient alone
    (3, 2 * LAYER3, "1 FLOP per multiply-add"),  # two matmuls at 1 FLOP per multiply-add
    (3, 6 * LAYER3, "forward \\+ backward"),
    (3, LAYER3, "a quarter"),
    (4, "w1.grad", "optimizer needs its gradient"),
    (4, "h1.grad", "on the way to w1.grad"),
    (4, 3, "as a string"),
    (5, lambda b, dims, r: _chain(b, dims, r, first_input=True), "first layer's input gradient"),
    (5, lambda b, dims, r: _chain(b, dims, r, first_input=False), "also computes"),
    (5, lambda b, dims, r: _chain(b, dims, r, inputs=False), "only the weight gradients"),
    (5, lambda b, dims, r: _chain(b, dims, r, forward=True), "forward \\+ backward"),
    (5, lambda b, dims, r: _chain(b, dims, r, per_madd=1), "2 FLOPs"),
    (5, lambda b, dims, r: "many", "returned 'many'"),
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
