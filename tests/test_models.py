"""Tests for lecture_utils.models (notebook 05)."""

import math

import pytest
import torch
from torch import nn

from lecture_utils.exercises import CORRECT, UNANSWERED
from lecture_utils.models import (
    EXERCISES,
    INITS,
    TRUNCATE_AT,
    Cruncher,
    Linear,
    activation_scales,
    cruncher_num_parameters,
    init_std,
    initialize_,
    new_weight,
    num_parameters,
    output_std,
    parameter_bytes,
    truncated_normal_std,
)

# --- init_std and new_weight -------------------------------------------------------------------


def test_init_std_formulas():
    assert init_std("standard_normal", 100, 7) == 1.0
    assert init_std("lecun_normal", 100, 7) == 0.1
    assert init_std("trunc_normal", 100, 7) == 0.1
    assert math.isclose(init_std("xavier_normal", 100, 7), math.sqrt(2 / 107))
    assert math.isclose(init_std("pytorch_default", 100, 7), 1 / math.sqrt(300))


def test_init_std_bad_input():
    with pytest.raises(ValueError, match="unknown init 'he'"):
        init_std("he", 4, 4)
    with pytest.raises(ValueError, match="fan_in must be >= 1"):
        init_std("lecun_normal", 0, 4)
    with pytest.raises(TypeError, match="fan_out must be an int"):
        init_std("lecun_normal", 4, 4.0)


@pytest.mark.parametrize("init", INITS)
def test_new_weight_shape_and_std(init):
    g = torch.Generator().manual_seed(0)
    w = new_weight(512, 256, init, generator=g)
    assert w.shape == (512, 256) and w.dtype == torch.float32
    expected = init_std(init, 512, 256)
    if init == "trunc_normal":
        expected *= truncated_normal_std(TRUNCATE_AT)
    assert math.isclose(w.std().item(), expected, rel_tol=0.01)  # 131072 samples: SE 0.2%


def test_new_weight_default_matches_the_lecture_draw():
    torch.manual_seed(3)
    w = new_weight(64, 32)
    torch.manual_seed(3)
    assert torch.equal(w, torch.randn(64, 32) / math.sqrt(64))


def test_new_weight_bounds():
    g = torch.Generator().manual_seed(0)
    w = new_weight(256, 256, "trunc_normal", generator=g)
    assert w.abs().max() <= TRUNCATE_AT / 16
    w = new_weight(256, 256, "pytorch_default", generator=g)
    assert w.abs().max() <= 1 / 16


def test_pytorch_default_matches_nn_linear():
    layer = nn.Linear(400, 300)
    assert layer.weight.abs().max() <= 1 / math.sqrt(400)
    assert math.isclose(layer.weight.std().item(), init_std("pytorch_default", 400, 300),
                        rel_tol=0.01)


# --- Linear and Cruncher -----------------------------------------------------------------------


def test_linear_registers_its_weight_and_computes_x_at_w():
    layer = Linear(5, 3)
    assert isinstance(layer.weight, nn.Parameter) and layer.weight.requires_grad
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    x = torch.randn(2, 5)
    assert torch.equal(layer(x), x @ layer.weight)


def test_linear_bad_input():
    with pytest.raises(ValueError, match="input_dim must be >= 1"):
        Linear(0, 3)
    with pytest.raises(TypeError, match="output_dim must be an int"):
        Linear(3, 2.5)
    with pytest.raises(ValueError, match="unknown init"):
        Linear(3, 3, init="zeros")


def test_cruncher_state_dict_count_and_forward():
    model = Cruncher(dim=8, num_layers=3)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {"layers.0.weight": (8, 8), "layers.1.weight": (8, 8),
                      "layers.2.weight": (8, 8), "final.weight": (8, 1)}
    assert num_parameters(model) == cruncher_num_parameters(8, 3) == 3 * 64 + 8
    assert parameter_bytes(model) == 4 * (3 * 64 + 8)
    assert parameter_bytes(model.to(torch.bfloat16)) == 2 * (3 * 64 + 8)
    assert model(torch.randn(5, 8, dtype=torch.bfloat16)).shape == (5,)


def test_cruncher_with_no_layers_is_the_head():
    model = Cruncher(dim=4, num_layers=0)
    assert list(model.state_dict()) == ["final.weight"]
    x = torch.randn(3, 4)
    assert torch.equal(model(x), (x @ model.final.weight).squeeze(-1))


def test_cruncher_generator_makes_it_reproducible():
    a = Cruncher(16, 2, init="trunc_normal", generator=torch.Generator().manual_seed(1))
    b = Cruncher(16, 2, init="trunc_normal", generator=torch.Generator().manual_seed(1))
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_cruncher_bad_input():
    with pytest.raises(ValueError, match="num_layers must be >= 0"):
        Cruncher(4, -1)
    with pytest.raises(ValueError, match="dim must be >= 1"):
        Cruncher(0, 2)
    with pytest.raises(ValueError, match="num_layers must be >= 0"):
        cruncher_num_parameters(4, -2)
    with pytest.raises(TypeError, match="dim must be an int"):
        cruncher_num_parameters(True, 2)


def test_counting_needs_a_module():
    with pytest.raises(TypeError, match="needs an nn.Module, got Tensor"):
        num_parameters(torch.zeros(3))
    with pytest.raises(TypeError, match="needs an nn.Module, got list"):
        parameter_bytes([])


def test_initialize_redraws_in_place():
    model = Cruncher(32, 2)
    weight = model.layers[0].weight
    initialize_(model, "standard_normal", generator=torch.Generator().manual_seed(0))
    assert model.layers[0].weight is weight  # the same Parameter, new values
    assert weight.std().item() > 0.8
    initialize_(model, "lecun_normal")
    assert weight.std().item() < 0.3


def test_initialize_bad_input():
    with pytest.raises(ValueError, match="found no lecture_utils.models.Linear"):
        initialize_(nn.Linear(3, 3), "lecun_normal")
    with pytest.raises(ValueError, match="unknown init"):
        initialize_(Cruncher(4, 1), "ones")


# --- measurements ------------------------------------------------------------------------------


def test_output_std_grows_like_sqrt_fan_in_without_scaling():
    assert math.isclose(output_std(1024, "standard_normal"), 32, rel_tol=0.05)
    assert math.isclose(output_std(1024, "lecun_normal"), 1, rel_tol=0.05)
    assert math.isclose(output_std(1024, "pytorch_default"), 1 / math.sqrt(3), rel_tol=0.05)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        output_std(16, "lecun_normal", batch=0)


def test_activation_scales():
    lecun = activation_scales(64, 4, "lecun_normal", batch=64)
    naive = activation_scales(64, 4, "standard_normal", batch=64)
    assert len(lecun) == 5
    for depth, (a, b) in enumerate(zip(lecun, naive)):
        assert math.isclose(b, a * 8**depth, rel_tol=1e-4)  # same draws, scaled by sqrt(64)
    with pytest.raises(ValueError, match="num_layers must be >= 0"):
        activation_scales(8, -1, "lecun_normal")


def test_truncated_normal_std():
    assert math.isclose(truncated_normal_std(3.0), 0.98658, abs_tol=5e-6)
    assert math.isclose(truncated_normal_std(1.0), 0.53956, abs_tol=5e-6)
    assert truncated_normal_std(40.0) == 1.0
    z = torch.randn(1_000_000, generator=torch.Generator().manual_seed(0))
    kept = z[z.abs() <= 2.0]
    assert math.isclose(kept.std().item(), truncated_normal_std(2.0), rel_tol=0.005)
    with pytest.raises(ValueError, match="bound must be positive"):
        truncated_normal_std(0.0)
    with pytest.raises(TypeError, match="bound must be a number"):
        truncated_normal_std("3")


# --- exercises ---------------------------------------------------------------------------------


def _verdict(number, answer):
    return EXERCISES.feedback(number, answer)


def _three_figures(x: float) -> float:
    return float(f"{x:.3g}")


def _assert_junk_gets_clear_verdicts(number, text_word="text"):
    assert _verdict(number, None) == UNANSWERED
    assert "not a number" in _verdict(number, math.nan).message
    assert text_word in _verdict(number, "32").message


def test_exercise_1_parameter_count():
    d, n = 4096, 8
    right = cruncher_num_parameters(d, n)
    assert _verdict(1, right) == CORRECT
    rounded = _verdict(1, _three_figures(right))  # an exact count: 1.34e8 is not enough
    assert rounded.correct is False and "must be exact" in rounded.message
    layers_only = d * d * n  # the mistake: no head
    assert "left out the head" in _verdict(1, layers_only).message
    square_head = d * d * n + d * d  # the mistake: a D x D head
    assert "D parameters, not D^2" in _verdict(1, square_head).message
    in_bytes = right * torch.finfo(torch.float32).bits // 8
    assert "float32 bytes" in _verdict(1, in_bytes).message
    d_per_layer = d * n + d  # the mistake: D weights a layer
    assert "D^2 weights, not D" in _verdict(1, d_per_layer).message
    _assert_junk_gets_clear_verdicts(1)


def test_exercise_2_output_std():
    n = 1024
    assert _verdict(2, math.sqrt(n)) == CORRECT
    assert _verdict(2, _three_figures(math.sqrt(n) * 1.004)) == CORRECT
    variance = sum(1.0 for _ in range(n))  # the mistake: n unit variances, no square root
    assert "take its square root" in _verdict(2, variance).message
    lecun_output = math.sqrt(n * (1 / math.sqrt(n)) ** 2)  # the mistake: LeCun weights
    assert "1/sqrt(fan_in) scaling" in _verdict(2, lecun_output).message
    lecun_weight = init_std("lecun_normal", n, n)  # the mistake: a weight's std
    assert "LeCun-scaled weight" in _verdict(2, lecun_weight).message
    _assert_junk_gets_clear_verdicts(2)


def test_exercise_3_default_init_depth():
    depth, fan_in = 10, 1024
    per_layer = math.sqrt(fan_in) * init_std("pytorch_default", fan_in, fan_in)
    assert _verdict(3, per_layer**depth) == CORRECT
    assert _verdict(3, _three_figures(per_layer**depth)) == CORRECT
    assert "factor on the variance" in _verdict(3, (per_layer**2) ** depth).message
    bound_as_std = math.sqrt(fan_in) * (1 / math.sqrt(fan_in))  # the mistake: std = bound
    assert "not variance preserving" in _verdict(3, bound_as_std**depth).message
    narrow_uniform = math.sqrt(fan_in) * math.sqrt((1 / math.sqrt(fan_in)) ** 2 / 12)
    assert "not b^2 / 12" in _verdict(3, narrow_uniform**depth).message
    assert "10 of them" in _verdict(3, per_layer ** (depth + 1)).message  # the head counted
    assert "one layer" in _verdict(3, per_layer).message
    _assert_junk_gets_clear_verdicts(3)


def test_exercise_4_truncated_normal_std():
    c = 2.0
    phi = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    right = math.sqrt(1 - 2 * c * phi / math.erf(c / math.sqrt(2)))
    assert _verdict(4, right) == CORRECT
    assert _verdict(4, _three_figures(right)) == CORRECT
    assert "+-3 sigma" in _verdict(4, truncated_normal_std(3.0)).message
    assert "variance" in _verdict(4, right**2).message
    assert "below 1" in _verdict(4, 1.0).message  # the mistake: the tails carry no variance
    assert "probability mass" in _verdict(4, math.erf(c / math.sqrt(2))).message
    upper_mass = (1 + math.erf(c / math.sqrt(2))) / 2  # the mistake: Phi(c), one tail only
    assert "2 Phi(2) - 1" in _verdict(4, math.sqrt(1 - 2 * c * phi / upper_mass)).message
    no_root_two = math.sqrt(1 - 2 * c * phi / math.erf(c))  # the mistake: erf(c)
    assert "erf(c / sqrt(2))" in _verdict(4, no_root_two).message
    _assert_junk_gets_clear_verdicts(4)


RIGHT_INITS = {
    "normal": lambda i, o: torch.randn(i, o) / math.sqrt(i),
    "uniform": lambda i, o: torch.rand(i, o).sub(0.5) * math.sqrt(12 / i),
    "torch layout": lambda i, o: nn.init.kaiming_normal_(torch.empty(o, i),
                                                         nonlinearity="linear").T,
}

# Each mistake made in code, and a phrase of the hint it must get (and no other mistake gets).
INIT_MISTAKES = {
    "no scaling": (lambda i, o: torch.randn(i, o), "grows like sqrt(fan_in)"),
    "divided by fan_in": (lambda i, o: torch.randn(i, o) / i, "you divided by fan_in"),
    "scaled by fan_out": (lambda i, o: torch.randn(i, o) / math.sqrt(o), "scaled by fan_out"),
    "torch.nn.init on (fan_in, fan_out)": (
        lambda i, o: nn.init.kaiming_normal_(torch.empty(i, o), nonlinearity="linear"),
        "scaled by fan_out"),
    "He": (lambda i, o: torch.randn(i, o) * math.sqrt(2 / i), "He (Kaiming)"),
    "He from torch.nn.init": (lambda i, o: nn.init.kaiming_normal_(torch.empty(o, i)).T,
                              "He (Kaiming)"),
    "Xavier": (lambda i, o: nn.init.xavier_normal_(torch.empty(i, o)), "Xavier/Glorot"),
    "nn.Linear's default": (lambda i, o: nn.Linear(i, o, bias=False).weight.T, "1/sqrt(3)"),
    "a constant off": (lambda i, o: 0.5 * torch.randn(i, o) / math.sqrt(i), "constant is off"),
}


@pytest.mark.parametrize("init", RIGHT_INITS.values(), ids=RIGHT_INITS)
def test_exercise_5_accepts_a_unit_scale_init(init):
    assert _verdict(5, init) == CORRECT


@pytest.mark.parametrize("mistake", INIT_MISTAKES, ids=list(INIT_MISTAKES))
def test_exercise_5_names_each_mistake_and_only_it(mistake):
    init, phrase = INIT_MISTAKES[mistake]
    message = _verdict(5, init).message
    assert phrase in message, message
    others = {p for name, (_, p) in INIT_MISTAKES.items() if p != phrase}
    assert not any(other in message for other in others), message


def test_exercise_5_he_init_is_not_called_a_fan_out_mistake():
    # With fan_in = 64 and fan_out = 32, He's output std sqrt(2) equals sqrt(fan_in / fan_out):
    # one fan_in alone cannot tell the two apart.
    assert "fan_out" not in _verdict(5, lambda i, o: torch.randn(i, o) * math.sqrt(2 / i)).message


def test_exercise_5_bad_functions():
    assert "shape" in _verdict(5, lambda i, o: torch.randn(o, i) / math.sqrt(i)).message
    assert "same thing" in _verdict(5, lambda i, o: torch.ones(i, o) / math.sqrt(i)).message
    assert "torch.Tensor" in _verdict(5, lambda i, o: [[0.0]]).message
    assert "inf or nan" in _verdict(5, lambda i, o: torch.full((i, o), math.inf)).message
    assert "raised ZeroDivisionError" in _verdict(5, lambda i, o: 1 / 0).message
    assert _verdict(5, lambda i, o: None) == UNANSWERED
    _assert_junk_gets_clear_verdicts(5, text_word="function itself")


def test_exercise_5_leaves_the_global_rng_alone_and_is_reproducible():
    torch.manual_seed(0)
    expected = torch.randn(3)
    torch.manual_seed(0)
    verdicts = {_verdict(5, lambda i, o: torch.randn(i, o) * 0.9 / math.sqrt(i)).message
                for _ in range(2)}
    assert torch.equal(torch.randn(3), expected)
    assert len(verdicts) == 1


def test_the_stubs_are_unanswered():
    for number in (1, 2, 3, 4):
        assert _verdict(number, None) == UNANSWERED

    def unit_scale_init(fan_in: int, fan_out: int) -> torch.Tensor:
        return None  # a random (fan_in, fan_out) tensor

    assert _verdict(5, unit_scale_init) == UNANSWERED


def test_every_exercise_says_what_answer_it_wants():
    wants = {n: e.wants for n, e in EXERCISES.exercises.items()}
    assert all(wants.values()), wants
    assert "exactly" in wants[1] and "2%" in wants[2] and "0.1%" in wants[4]


# --- numbers the notebook's prose states -------------------------------------------------------


def test_prose_numbers_of_notebook_05():
    assert math.sqrt(16384) == 128  # the output std for n = 16384
    assert round(1 / math.sqrt(3), 3) == 0.577  # nn.Linear's per-layer factor
    assert 3 ** (16 // 2) == 6561  # what the default init loses over 16 layers
