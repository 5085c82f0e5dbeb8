import math

import pytest
import torch

from lecture_utils.exercises import CORRECT, UNANSWERED
from lecture_utils.models import Cruncher, cruncher_num_parameters
from lecture_utils.optimizers import (
    EXERCISES,
    OPTIMIZERS,
    PRECISIONS,
    SGD,
    STATE_TENSORS_PER_PARAMETER,
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


def test_exercise_1_adagrad_state_bytes():
    P = cruncher_num_parameters(1024, 4)
    assert _feedback(1, 4 * P) == CORRECT
    assert "head" in _feedback(1, 4 * 4 * 1024 * 1024).message
    assert "4 bytes" in _feedback(1, P).message
    assert _feedback(1, None) == UNANSWERED


def test_exercise_2_adam_bytes_per_parameter():
    assert _feedback(2, 16) == CORRECT
    assert "two averages" in _feedback(2, 12).message
    assert "mixed-precision" in _feedback(2, 18).message
    assert _feedback(2, None) == UNANSWERED


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


def test_exercise_3_rmsprop_step():
    assert _feedback(3, _rmsprop_right) == CORRECT
    assert "inside the square root" in _feedback(3, _rmsprop_eps_inside).message
    assert "alpha weighs the old average" in _feedback(3, _rmsprop_swapped).message
    assert "AdaGrad" in _feedback(3, _rmsprop_adagrad).message
    assert _feedback(3, lambda *args: None) == UNANSWERED
    assert "pair" in _feedback(3, lambda *args: args[0]).message
    assert "function itself" in _feedback(3, 3.0).message


def test_exercise_4_training_step_memory():
    D, L, B = 2048, 8, 1024
    P = cruncher_num_parameters(D, L)
    assert _feedback(4, predict_training_memory(D, L, B, "adam")["total"]) == CORRECT
    assert "B*D*L" in _feedback(4, 4 * (P + B * D * L + P + 2 * P)).message
    assert _feedback(4, None) == UNANSWERED


def test_exercise_5_step_flops():
    D, L, B = 512, 4, 256
    P = cruncher_num_parameters(D, L)
    assert _feedback(5, 6 * B * P - 2 * B * D * D) == CORRECT
    assert "never runs" in _feedback(5, 6 * B * P).message
    assert _feedback(5, None) == UNANSWERED


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
