import math

import pytest
import torch

from lecture_utils.exercises import CORRECT, UNANSWERED
from lecture_utils.flops import count_flops
from lecture_utils.models import Cruncher, cruncher_num_parameters
from lecture_utils.optimizers import (
    EXERCISES,
    OPTIMIZERS,
    PRECISIONS,
    SGD,
    STATE_TENSORS_PER_PARAMETER,
    TIMELINE_PARTS,
    AdaGrad,
    Adam,
    LectureAdaGrad,
    Momentum,
    RMSProp,
    bytes_per_element,
    bytes_per_parameter,
    bytes_per_parameter_table,
    make_optimizer,
    max_difference_after_training,
    measure_training_memory,
    optimizer_state_tensors,
    peak_new_memory,
    plot_memory_timeline,
    plot_quadratic_race,
    predict_peak_training_memory,
    predict_training_memory,
    quadratic_trajectory,
    saved_activation_count,
    saved_for_backward,
    storage_bytes,
    train_step,
    training_memory_timeline,
)

SMALL = {"steps": 5, "dim": 16, "num_layers": 2, "batch_size": 8}


def _batch(batch_size=8, dim=16, dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, dim, generator=generator).to(dtype)
    return x, torch.randn(batch_size, generator=generator).to(dtype)


# --- the optimizers against torch.optim ------------------------------------------------------


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda p: SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (lambda p: Momentum(p, lr=0.1, momentum=0.9),
         lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        (lambda p: AdaGrad(p, lr=0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
        (lambda p: RMSProp(p, lr=0.01, alpha=0.9), lambda p: torch.optim.RMSprop(p, lr=0.01,
                                                                               alpha=0.9)),
        (lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    ],
    ids=["sgd", "momentum", "adagrad", "rmsprop", "adam"],
)
def test_each_optimizer_matches_its_torch_twin(ours, theirs):
    assert max_difference_after_training(ours, theirs, **SMALL) == 0.0


def test_lecture_adagrad_puts_eps_inside_the_sqrt_and_differs_from_torch():
    difference = max_difference_after_training(
        lambda p: LectureAdaGrad(p, lr=0.01), lambda p: torch.optim.Adagrad(p, lr=0.01), **SMALL
    )
    assert difference > 1e-4
    p = torch.nn.Parameter(torch.zeros(1))
    p.grad = torch.full((1,), 1e-3)
    LectureAdaGrad([p], lr=1.0).step()
    assert math.isclose(p.item(), -1e-3 / math.sqrt(1e-6 + 1e-5), rel_tol=1e-5)


def test_adagrad_keeps_sum_sq_grad_and_round_trips_through_a_checkpoint():
    model = Cruncher(8, 1)
    optimizer = AdaGrad(model.parameters(), lr=0.1)
    train_step(model, optimizer, *_batch(dim=8))
    assert all(set(state) == {"sum_sq_grad"} for state in optimizer.state.values())
    fresh = AdaGrad(model.parameters(), lr=0.1)
    fresh.load_state_dict(optimizer.state_dict())
    for p in model.parameters():
        assert torch.equal(fresh.state[p]["sum_sq_grad"], optimizer.state[p]["sum_sq_grad"])


def test_step_skips_parameters_without_gradients_and_returns_the_closure_loss():
    used, unused = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = Adam([used, unused], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (used**2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() == 2.0
    assert torch.equal(unused.detach(), torch.ones(2)) and unused not in optimizer.state
    assert torch.allclose(used.detach(), torch.full((2,), 0.9))


def test_sparse_gradients_are_refused():
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.zeros(3).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        SGD([p]).step()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: SGD(p, lr=0), "lr must be a finite number > 0"),
        (lambda p: AdaGrad(p, lr=-1), "lr must be a finite number > 0"),
        (lambda p: AdaGrad(p, eps=-1e-3), "eps must be a finite number >= 0"),
        (lambda p: Momentum(p, momentum=1.0), r"momentum must be a number in \[0, 1\)"),
        (lambda p: RMSProp(p, alpha=1.5), r"alpha must be a number in \[0, 1\)"),
        (lambda p: Adam(p, betas=(0.9, 1.0)), r"betas\[1\] \(beta2\) must be a number in \[0, 1\)"),
        (lambda p: make_optimizer("lion", p), "unknown optimizer 'lion'"),
    ],
)
def test_bad_hyperparameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make([torch.nn.Parameter(torch.zeros(1))])


def test_make_optimizer_knows_every_name():
    for name, cls in OPTIMIZERS.items():
        assert type(make_optimizer(name.upper(), [torch.nn.Parameter(torch.zeros(1))])) is cls


# --- the 2-D quadratic -------------------------------------------------------------------------


def test_sgd_on_the_quadratic_follows_the_closed_form():
    path = quadratic_trajectory(lambda p: SGD(p, lr=0.03), (-8.0, 1.5), (1.0, 50.0), 20)
    assert path.shape == (21, 2) and path.dtype == torch.float64
    expected = torch.tensor([-8.0 * 0.97**20, 1.5 * (1 - 1.5) ** 20], dtype=torch.float64)
    assert torch.allclose(path[-1], expected, rtol=1e-12, atol=0)


def test_adam_first_step_is_lr_along_each_axis():
    path = quadratic_trajectory(lambda p: Adam(p, lr=0.5), (-8.0, 1.5), (1.0, 50.0), 1)
    assert torch.allclose((path[1] - path[0]).abs(), torch.full((2,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"curvatures": (0.0, 1.0)}, r"curvatures\[0\] \(a\) must be a finite number > 0"),
        ({"steps": 0}, "steps must be a positive int"),
    ],
)
def test_quadratic_trajectory_rejects_bad_input(kwargs, match):
    args = {"start": (1.0, 1.0), "curvatures": (1.0, 2.0), "steps": 3} | kwargs
    with pytest.raises(ValueError, match=match):
        quadratic_trajectory(lambda p: SGD(p), **args)


def test_max_difference_after_training_rejects_bad_steps():
    with pytest.raises(ValueError, match="steps must be a positive int"):
        max_difference_after_training(SGD, SGD, steps=0)


# --- memory of a training step ----------------------------------------------------------------


def test_bytes_per_element():
    assert bytes_per_element(torch.float32) == 4 and bytes_per_element(torch.bfloat16) == 2
    with pytest.raises(TypeError, match="torch.dtype"):
        bytes_per_element("float32")


def test_storage_bytes_counts_a_shared_storage_once():
    x = torch.zeros(4, 8)
    assert storage_bytes([x, x.t(), x[1:]]) == 128
    with pytest.raises(TypeError, match="tensors must hold only tensors"):
        storage_bytes([x, 3])


def test_saved_for_backward_lists_input_weights_activations_and_loss_vectors():
    model = Cruncher(4, 2)
    saved = saved_for_backward(model, *_batch(batch_size=2, dim=4))
    assert saved == [
        ("x (input)", (2, 4)),
        ("layers.1.weight", (4, 4)),
        ("activation", (2, 4)),
        ("final.weight", (4, 1)),
        ("activation", (2, 4)),
        ("activation", (2,)),
        ("y (target)", (2,)),
    ]


def test_the_lecture_example_is_48_bytes_above_the_lecture_formula():
    P = cruncher_num_parameters(4, 2)
    assert 4 * (P + 2 * 4 * 2 + P + P) == 496
    assert predict_training_memory(4, 2, 2)["total"] == 544
    assert saved_activation_count(4, 2, 2) == 2 * 4 * 3 + 2 * 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_predicted_memory_equals_the_live_storages(name, dtype):
    torch.manual_seed(0)
    model = Cruncher(16, 3).to(dtype)
    optimizer = make_optimizer(name, model.parameters())
    measured = measure_training_memory(model, optimizer, *_batch(dtype=dtype))
    assert measured == predict_training_memory(16, 3, 8, name, dtype)
    assert measured["optimizer_state"] == STATE_TENSORS_PER_PARAMETER[name] * measured["parameters"]


def test_optimizer_state_tensors_include_torch_step_counters():
    model = Cruncher(8, 1)
    optimizer = torch.optim.Adam(model.parameters())
    train_step(model, optimizer, *_batch(dim=8))
    assert len(optimizer_state_tensors(optimizer)) == 3 * 2  # step, exp_avg, exp_avg_sq


@pytest.mark.parametrize(
    "sizes, match",
    [((0, 2, 4), "dim must be >= 1"), ((4, -1, 4), "num_layers must be >= 0"),
     ((4, 2, 0), "batch_size must be >= 1")],
)
def test_memory_predictors_reject_bad_sizes(sizes, match):
    for predictor in (predict_training_memory, training_memory_timeline,
                      predict_peak_training_memory):
        with pytest.raises(ValueError, match=match):
            predictor(*sizes)
    with pytest.raises(TypeError, match="dim must be an int"):
        predict_training_memory(4.0, 2, 4)
    with pytest.raises(ValueError, match="unknown optimizer"):
        predict_training_memory(4, 2, 4, optimizer="lbfgs")


def test_timeline_peak_moves_from_backward_to_the_step_as_the_batch_shrinks():
    def peak_moment(batch_size):
        timeline = training_memory_timeline(64, 4, batch_size)
        return max(timeline, key=lambda m: sum(timeline[m].values()))

    assert peak_moment(256) == "backward: layer 4"
    assert peak_moment(4) == "optimizer step"
    timeline = training_memory_timeline(64, 4, 256, "sgd")
    assert predict_peak_training_memory(64, 4, 256, "sgd") == max(
        sum(parts.values()) for parts in timeline.values()
    )
    assert timeline["optimizer step"]["update temporary"] == 0


@pytest.mark.parametrize("name, batch_size", [("adagrad", 256), ("adam", 8), ("momentum", 64)])
def test_peak_new_memory_agrees_with_the_timeline(name, batch_size):
    torch.manual_seed(0)
    model = Cruncher(64, 3)
    optimizer = make_optimizer(name, model.parameters())
    x, y = _batch(batch_size=batch_size, dim=64)
    train_step(model, optimizer, x, y)
    before = storage_bytes([*model.parameters(), *optimizer_state_tensors(optimizer), x, y])
    measured = before + peak_new_memory(lambda: train_step(model, optimizer, x, y))
    excess = measured - predict_peak_training_memory(64, 3, batch_size, name)
    assert 0 <= excess <= 4 * (batch_size + 1)  # the loss and backward's seed gradient


def test_peak_new_memory_of_a_temporary_and_bad_input():
    assert peak_new_memory(lambda: torch.zeros(256) + 1) == 2 * 1024
    with pytest.raises(TypeError, match="needs a function"):
        peak_new_memory(3)


def test_train_step_leaves_the_new_gradients():
    model = Cruncher(8, 2)
    loss = train_step(model, SGD(model.parameters()), *_batch(dim=8))
    assert loss.ndim == 0 and not loss.requires_grad
    assert all(p.grad is not None for p in model.parameters())


# --- bytes per parameter -----------------------------------------------------------------------


def test_bytes_per_parameter_table():
    table = bytes_per_parameter_table()
    assert table["adam"] == {"fp32": 16, "mixed": 18, "mixed_bf16_grads": 16}
    assert table["sgd"] == {"fp32": 8, "mixed": 10, "mixed_bf16_grads": 8}
    assert table["adagrad"]["fp32"] == 12
    assert set(table) == set(OPTIMIZERS) and all(set(row) == set(PRECISIONS)
                                                 for row in table.values())
    mixed = bytes_per_parameter("adam", "mixed")
    assert mixed.weights_copy == 2 and mixed.total == 18


def test_bytes_per_parameter_rejects_unknown_precision():
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        bytes_per_parameter("adam", "fp8")


# --- exercises -------------------------------------------------------------------------------


def _feedback(number, answer):
    return EXERCISES.feedback(number, answer)


def _assert_junk_gets_clear_verdicts(number, text_word="text"):
    assert _feedback(number, None) == UNANSWERED
    assert "not a number" in _feedback(number, math.nan).message
    assert text_word in _feedback(number, "16").message


def test_exercise_1_adagrad_state_bytes():
    D, L = 1024, 4
    model = Cruncher(D, L)
    optimizer = AdaGrad(model.parameters())
    train_step(model, optimizer, *_batch(dim=D))
    right = storage_bytes(optimizer_state_tensors(optimizer))
    assert _feedback(1, right) == CORRECT
    assert "must be exact" in _feedback(1, float(f"{right:.3g}")).message
    layers_only = storage_bytes(optimizer.state[p]["sum_sq_grad"]
                                for p in model.layers.parameters())
    assert "left out the head" in _feedback(1, layers_only).message
    elements = sum(t.numel() for t in optimizer_state_tensors(optimizer))
    assert "each float32 takes 4 bytes" in _feedback(1, elements).message
    weights = storage_bytes(model.parameters())
    for two_tensors in (2 * right, weights + right):  # Adam's two sums; the weights and the sum
        assert "one sum per parameter" in _feedback(1, two_tensors).message
    weights_grads_state = right + weights + storage_bytes(p.grad for p in model.parameters())
    assert "state alone" in _feedback(1, weights_grads_state).message
    _assert_junk_gets_clear_verdicts(1)


def test_exercise_2_adam_bytes_per_parameter():
    assert _feedback(2, bytes_per_parameter("adam", "fp32").total) == CORRECT
    assert "must be exact" not in _feedback(2, 16.0).message
    fp32 = 4
    assert "three 4-byte tensors" in _feedback(2, fp32 + fp32 + fp32).message  # one average
    for two_tensors in (2 * fp32, fp32 + fp32):  # m and v alone; weights and gradients alone
        assert "two 4-byte tensors" in _feedback(2, two_tensors).message
    assert "weights alone" in _feedback(2, fp32).message
    assert "mixed-precision" in _feedback(2, bytes_per_parameter("adam", "mixed").total).message
    with_bf16_grads_copy = bytes_per_parameter("adam", "mixed").total + 2
    assert "bf16 copy of the gradients" in _feedback(2, with_bf16_grads_copy).message
    fp64 = torch.finfo(torch.float64).bits // 8
    assert "float64" in _feedback(2, 4 * fp64).message
    _assert_junk_gets_clear_verdicts(2)


def _rmsprop_right(param, grad, square_avg, lr, alpha, eps):
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    return param - lr * grad / (square_avg.sqrt() + eps), square_avg


def _rmsprop_eps_inside(param, grad, square_avg, lr, alpha, eps):
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    return param - lr * grad / (square_avg + eps).sqrt(), square_avg


def _rmsprop_swapped(param, grad, square_avg, lr, alpha, eps):
    square_avg = (1 - alpha) * square_avg + alpha * grad * grad
    return param - lr * grad / (square_avg.sqrt() + eps), square_avg


def _rmsprop_adagrad(param, grad, square_avg, lr, alpha, eps):
    square_avg = square_avg + grad * grad
    return param - lr * grad / (square_avg.sqrt() + eps), square_avg


def _rmsprop_step_first(param, grad, square_avg, lr, alpha, eps):
    new_param = param - lr * grad / (square_avg.sqrt() + eps)
    return new_param, alpha * square_avg + (1 - alpha) * grad * grad


def _rmsprop_no_sqrt(param, grad, square_avg, lr, alpha, eps):
    square_avg = alpha * square_avg + (1 - alpha) * grad * grad
    return param - lr * grad / (square_avg + eps), square_avg


def _rmsprop_in_place(param, grad, square_avg, lr, alpha, eps):
    square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    return param.addcdiv_(grad, square_avg.sqrt().add_(eps), value=-lr), square_avg


RMSPROP_MISTAKES = {
    "eps inside": (_rmsprop_eps_inside, "inside the square root"),
    "alpha swapped": (_rmsprop_swapped, "alpha weighs the old average"),
    "no decay": (_rmsprop_adagrad, "AdaGrad's running sum"),
    "old average": (_rmsprop_step_first, "stepped with the old average"),
    "no square root": (_rmsprop_no_sqrt, "not by the average itself"),
}


@pytest.mark.parametrize("right", [_rmsprop_right, _rmsprop_in_place], ids=["new", "in-place"])
def test_exercise_3_accepts_a_right_rmsprop_step(right):
    assert _feedback(3, right) == CORRECT


@pytest.mark.parametrize("mistake", RMSPROP_MISTAKES, ids=list(RMSPROP_MISTAKES))
def test_exercise_3_names_each_mistake_and_only_it(mistake):
    step, phrase = RMSPROP_MISTAKES[mistake]
    message = _feedback(3, step).message
    assert phrase in message
    assert not any(p in message for _, p in RMSPROP_MISTAKES.values() if p != phrase)


def test_exercise_3_bad_functions():
    assert _feedback(3, lambda *args: None) == UNANSWERED
    assert "pair" in _feedback(3, lambda *args: args[0]).message
    assert "two tensors" in _feedback(3, lambda *args: (1.0, 2.0)).message
    assert "raised ZeroDivisionError" in _feedback(3, lambda *args: 1 / 0).message
    _assert_junk_gets_clear_verdicts(3, text_word="function itself")


def test_exercise_4_training_step_memory():
    D, L, B = 2048, 8, 1024
    P = cruncher_num_parameters(D, L)
    right = 4 * (P + P + 2 * P + B * D * (L + 1) + 2 * B)
    assert right == predict_training_memory(D, L, B, "adam")["total"]
    assert _feedback(4, right) == CORRECT
    assert "must be exact" in _feedback(4, float(f"{right:.3g}")).message
    lecture = 4 * (P + B * D * L + P + 2 * P)  # the mistake: the lecture's B*D*L activations
    assert "lecture's B*D*L" in _feedback(4, lecture).message
    assert "saves the input x" in _feedback(4, 4 * (4 * P + B * D * L + 2 * B)).message
    assert "prediction and the target" in _feedback(4, 4 * (4 * P + B * D * (L + 1))).message
    one_adam_average = 4 * (P + P + P + B * D * (L + 1) + 2 * B)
    no_gradients = 4 * (P + 2 * P + B * D * (L + 1) + 2 * B)
    for one_tensor_short in (one_adam_average, no_gradients):
        assert "one parameter-sized tensor short" in _feedback(4, one_tensor_short).message
    assert "left out Adam's state" in _feedback(4, 4 * (P + P + B * D * (L + 1) + 2 * B)).message
    assert "activations saved" in _feedback(4, 4 * 4 * P).message
    assert "count of elements" in _feedback(4, right // 4).message
    _assert_junk_gets_clear_verdicts(4)


def test_exercise_5_step_flops():
    D, L, B = 512, 4, 256
    model = Cruncher(D, L)
    x, y = _batch(B, D)
    counted = count_flops(lambda: torch.nn.functional.mse_loss(model(x), y).backward())
    assert _feedback(5, counted) == CORRECT
    assert _feedback(5, float(f"{counted:.3g}")) == CORRECT
    x_grad = x.clone().requires_grad_(True)  # the mistake: counting x's gradient matmul
    with_x_grad = count_flops(lambda: torch.nn.functional.mse_loss(model(x_grad), y).backward())
    assert "never runs" in _feedback(5, with_x_grad).message
    assert "counted it once" in _feedback(5, counted / 2).message  # a multiply-add as 1 FLOP
    assert "half of 6*B*P" in _feedback(5, with_x_grad / 2).message  # both mistakes
    forward = count_flops(lambda: torch.nn.functional.mse_loss(model(x), y))
    assert "forward pass alone" in _feedback(5, forward).message
    assert "backward pass alone;" in _feedback(5, counted - forward).message
    assert "4*B*P rule" in _feedback(5, with_x_grad - forward).message
    _assert_junk_gets_clear_verdicts(5)


def test_every_exercise_says_what_answer_it_wants_and_stubs_are_unanswered():
    for number, exercise in EXERCISES.exercises.items():
        assert exercise.wants, number
        assert _feedback(number, None) == UNANSWERED

    def rmsprop_step(param, grad, square_avg, lr, alpha, eps):
        """Return (new_param, new_square_avg) after one RMSProp step."""
        return None  # replace with your update

    assert _feedback(3, rmsprop_step) == UNANSWERED


@pytest.mark.parametrize("name, batch_size", [("adagrad", 1024), ("adam", 8), ("sgd", 64)])
def test_measure_peak_training_memory_on_the_cpu(name, batch_size):
    from lecture_utils.optimizers import measure_peak_training_memory

    measured = measure_peak_training_memory(64, 3, batch_size, name, "cpu")
    excess = measured - predict_peak_training_memory(64, 3, batch_size, name)
    assert 0 <= excess <= 4 * (batch_size + 1)


def test_measure_peak_training_memory_rejects_bad_input():
    from lecture_utils.optimizers import measure_peak_training_memory

    with pytest.raises(ValueError, match="unknown optimizer"):
        measure_peak_training_memory(8, 2, 4, "lion")
    with pytest.raises(ValueError):
        measure_peak_training_memory(0, 2, 4)


# --- figures -----------------------------------------------------------------------------------


def test_plot_quadratic_race_draws_each_path_over_the_contours():
    import matplotlib.pyplot as plt

    paths = {name: quadratic_trajectory(make, (-8.0, 1.5), (1.0, 50.0), 20)
             for name, make in {"SGD": lambda p: SGD(p, lr=0.03),
                                "Adam": lambda p: Adam(p, lr=0.5)}.items()}
    fig = plot_quadratic_race(paths, (1.0, 50.0))
    try:
        (ax,) = fig.axes
        assert len(ax.lines) == len(paths) + 2  # the paths, the start and the optimum
        assert [t.get_text().split(":")[0] for t in ax.get_legend().get_texts()] == list(paths)
        assert ax.collections  # the contour lines
        assert ax.get_title().startswith("20 steps on f(x, y) = (x² + 50 y²) / 2")
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="paths must map names"):
        plot_quadratic_race({"SGD": torch.zeros(3)}, (1.0, 50.0))


def test_plot_memory_timeline_stacks_the_parts_alive():
    import matplotlib.pyplot as plt

    timeline = training_memory_timeline(16, 2, 8, "adagrad")
    fig = plot_memory_timeline(timeline, "t", reference=("sum of the parts", 10_000))
    try:
        (ax,) = fig.axes
        alive = [p for p in TIMELINE_PARTS if any(parts[p] for parts in timeline.values())]
        assert len(ax.containers) == len(alive)  # one bar series per part that is ever alive
        assert all(len(bars) == len(timeline) for bars in ax.containers)
        assert len(ax.lines) == 1 and ax.lines[0].get_ydata()[0] == 10_000 / 1e6
        tops = [sum(parts.values()) / 1e6 for parts in timeline.values()]
        stacked = [max(b.get_y() + b.get_height() for b in bars) for bars in zip(*ax.containers)]
        assert all(math.isclose(t, s) for t, s in zip(tops, stacked))
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="timeline must be"):
        plot_memory_timeline({"x": {"parameters": 1}}, "t")


# --- numbers the notebook's prose states -------------------------------------------------------


def test_prose_numbers_of_notebook_06():
    assert 2 / 50.0 == 0.04  # SGD's largest stable learning rate on the bowl with b = 50
    assert math.isclose(math.sqrt(1e-5), 0.0032, rel_tol=0.02)  # the floor of the lecture's root
