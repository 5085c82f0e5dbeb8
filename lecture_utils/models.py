"""Notebook 05: parameters, initialization and the Cruncher (a deep linear network)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
from jaxtyping import Float
from torch import nn

from lecture_utils.dtypes import get_memory_usage
from lecture_utils.exercises import (
    CORRECT,
    DEFAULT_REL_TOL,
    UNANSWERED,
    Exercises,
    Feedback,
    check_count,
    check_number,
    tolerance_text,
    wrong,
)

# How a (fan_in, fan_out) weight is drawn. Each name says the distribution and its scale:
#   standard_normal  N(0, 1): the naive choice; x @ w grows like sqrt(fan_in)
#   lecun_normal     N(0, 1/fan_in): keeps unit scale (the lecture's fix; the course default)
#   xavier_normal    N(0, 2/(fan_in + fan_out)): Glorot & Bengio's compromise of both fans
#   trunc_normal     lecun_normal cut at +-3 standard deviations (no outliers)
#   pytorch_default  U(-1/sqrt(fan_in), 1/sqrt(fan_in)): what torch.nn.Linear does
Init = Literal["standard_normal", "lecun_normal", "xavier_normal", "trunc_normal", "pytorch_default"]
INITS: tuple[str, ...] = get_args(Init)
TRUNCATE_AT = 3.0  # trunc_normal cuts at this many standard deviations


def _check_size(name: str, value: int, minimum: int = 1) -> None:
    """Raise if `value` is not an int >= minimum (a layer size or a count)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(INITS)}")


def init_std(init: Init, fan_in: int, fan_out: int) -> float:
    """The standard deviation of one weight drawn with `init` (before any truncation)."""
    _check_init(init)
    _check_size("fan_in", fan_in)
    _check_size("fan_out", fan_out)
    if init == "standard_normal":
        return 1.0
    if init == "xavier_normal":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init == "pytorch_default":
        # U(-b, b) has variance b^2 / 3; here b = 1/sqrt(fan_in).
        return 1.0 / math.sqrt(3.0 * fan_in)
    return 1.0 / math.sqrt(fan_in)  # lecun_normal and trunc_normal


def new_weight(
    fan_in: int,
    fan_out: int,
    init: Init = "lecun_normal",
    *,
    generator: torch.Generator | None = None,
) -> Float[torch.Tensor, "fan_in fan_out"]:
    """A fresh (fan_in, fan_out) weight drawn with `init`, laid out so that y = x @ w."""
    std = init_std(init, fan_in, fan_out)
    if init == "trunc_normal":
        # a and b are absolute bounds, not multiples of std: scale them by std ourselves.
        weight = torch.empty(fan_in, fan_out)
        return nn.init.trunc_normal_(
            weight, std=std, a=-TRUNCATE_AT * std, b=TRUNCATE_AT * std, generator=generator
        )
    if init == "pytorch_default":
        bound = 1.0 / math.sqrt(fan_in)
        return torch.empty(fan_in, fan_out).uniform_(-bound, bound, generator=generator)
    weight = torch.randn(fan_in, fan_out, generator=generator)
    if init == "lecun_normal":
        return weight / math.sqrt(fan_in)  # kept as a division: same values as the lecture's code
    if init == "xavier_normal":
        return weight * std
    return weight  # standard_normal


class Linear(nn.Module):
    """y = x @ weight, weight of shape (input_dim, output_dim), drawn with `init`."""

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        *,
        init: Init = "lecun_normal",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_size("input_dim", input_dim)
        _check_size("output_dim", output_dim)
        # Wrapping the tensor in nn.Parameter registers it with the module (parameters(),
        # state_dict(), .to(device)) and sets requires_grad=True so autograd tracks it.
        self.weight = nn.Parameter(new_weight(input_dim, output_dim, init, generator=generator))

    def forward(self, x: Float[torch.Tensor, "... d_in"]) -> Float[torch.Tensor, "... d_out"]:
        return x @ self.weight


class Cruncher(nn.Module):
    """The lecture's deep linear model: num_layers D x D layers, then a D -> 1 head."""

    def __init__(
        self,
        dim: int,
        num_layers: int,
        *,
        init: Init = "lecun_normal",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_size("dim", dim)
        _check_size("num_layers", num_layers, minimum=0)
        self.layers = nn.ModuleList(
            [Linear(dim, dim, init=init, generator=generator) for _ in range(num_layers)]
        )
        self.final = Linear(dim, 1, init=init, generator=generator)

    def forward(self, x: Float[torch.Tensor, "batch dim"]) -> Float[torch.Tensor, " batch"]:
        for layer in self.layers:
            x = layer(x)
        return self.final(x).squeeze(-1)


def cruncher_num_parameters(dim: int, num_layers: int) -> int:
    """Parameters of a Cruncher: D^2 per layer plus D for the head."""
    _check_size("dim", dim)
    _check_size("num_layers", num_layers, minimum=0)
    return dim * dim * num_layers + dim


def _check_inputs(model: object, x: object) -> None:
    """Raise unless `model` is a module and `x` a non-empty batch of inputs it can take.

    For a Cruncher that means (batch, dim) with the weights' dtype and device (autocast may
    mix dtypes); any other module gets x as it is.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module such as Cruncher(dim, num_layers), got "
                        f"{type(model).__name__}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"x must be a floating-point tensor of inputs, got {what}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one example (batch, ...), got shape "
                         f"{tuple(x.shape)}")
    if not isinstance(model, Cruncher):
        return
    weight = model.final.weight
    if x.dim() != 2 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"x must be (batch, {weight.shape[0]}) for this Cruncher of dim "
                         f"{weight.shape[0]}, got shape {tuple(x.shape)}")
    if x.device != weight.device:
        raise ValueError(f"x is on {x.device} but the model is on {weight.device}: move one of "
                         "them, e.g. x.to(next(model.parameters()).device)")
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"x is {x.dtype} but the model's weights are {weight.dtype}: convert "
                         f"x with x.to({weight.dtype}) (or run under torch.autocast)")


def _check_target(prediction: torch.Tensor, y: object) -> torch.Tensor:
    """`prediction`, checked against the targets `y`: a tensor of the prediction's shape.

    An MSE loss would broadcast a (B, 1) target against a (B,) prediction into B x B
    differences, a wrong number with no error.
    """
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a tensor of targets, got {type(y).__name__}")
    if y.shape != prediction.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but the prediction has shape "
                         f"{tuple(prediction.shape)}: they must match (the loss would broadcast "
                         f"them); reshape y, e.g. y.reshape({tuple(prediction.shape)})")
    return prediction


def num_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in `model` (elements of all its parameters)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: num_parameters needs an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters())


def parameter_bytes(model: nn.Module) -> int:
    """Bytes held by the parameters of `model` (elements x bytes per element, summed)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: parameter_bytes needs an nn.Module, got {type(model).__name__}")
    return sum(get_memory_usage(p) for p in model.parameters())


@torch.no_grad()
def initialize_(
    model: nn.Module, init: Init, *, generator: torch.Generator | None = None
) -> nn.Module:
    """Redraw, in place, the weight of every course Linear layer in `model` with `init`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    _check_init(init)
    linears = [m for m in model.modules() if isinstance(m, Linear)]
    if not linears:
        raise ValueError("initialize_ found no lecture_utils.models.Linear layer in this model")
    for layer in linears:
        fan_in, fan_out = layer.weight.shape
        fresh = new_weight(fan_in, fan_out, init, generator=generator)
        layer.weight.copy_(fresh)  # copy_ keeps the Parameter, its device and its dtype
    return model


@torch.no_grad()
def output_std(
    fan_in: int, init: Init, *, batch: int = 256, fan_out: int = 64, seed: int = 0
) -> float:
    """Measured std of x @ w for x ~ N(0, 1) of shape (batch, fan_in) and w drawn with `init`."""
    _check_size("batch", batch)
    _check_size("seed", seed, minimum=0)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, fan_in, generator=generator)
    w = new_weight(fan_in, fan_out, init, generator=generator)
    return (x @ w).std().item()


@torch.no_grad()
def activation_scales(
    dim: int, depth: int, init: Init, *, batch: int = 256, seed: int = 0
) -> list[float]:
    """Std of the activations entering a Cruncher's layers and after each: depth + 1 numbers."""
    _check_size("batch", batch)
    generator = torch.Generator().manual_seed(seed)
    model = Cruncher(dim, depth, init=init, generator=generator)
    x = torch.randn(batch, dim, generator=generator)
    scales = [x.std().item()]
    for layer in model.layers:  # the D x D stack only; the head would squash to one number
        x = layer(x)
        scales.append(x.std().item())
    return scales


def truncated_normal_std(bound: float) -> float:
    """Std of a standard normal truncated to [-bound, bound] (bound in standard deviations)."""
    if isinstance(bound, bool) or not isinstance(bound, (int, float)):
        raise TypeError(f"bound must be a number, got {type(bound).__name__}")
    if not (bound > 0 and math.isfinite(bound)):
        raise ValueError(f"bound must be positive and finite (in standard deviations), got {bound}")
    if bound < 1e-3:
        # The formula below subtracts two numbers near 1; for a narrow cut the density is
        # nearly flat, and the variance is that of U(-c, c) corrected: c^2 / 3 (1 - 2 c^2 / 15).
        return bound * math.sqrt((1 - 2 * bound * bound / 15) / 3)
    density = math.exp(-bound * bound / 2) / math.sqrt(2 * math.pi)  # phi(bound)
    mass = math.erf(bound / math.sqrt(2))  # P(|Z| <= bound) = 2 Phi(bound) - 1
    # Var(Z | |Z| <= c) = 1 - 2 c phi(c) / (2 Phi(c) - 1): the cut tails carried that variance.
    return math.sqrt(1 - 2 * bound * density / mass)


# ---------------------------------------------------------------------------------------------
# "Check yourself" exercises of notebook 05.


EXERCISES = Exercises("05")

EXERCISE_1 = {"dim": 4096, "num_layers": 8}
EXERCISE_2 = {"fan_in": 1024}
EXERCISE_3 = {"dim": 1024, "depth": 10}
EXERCISE_4 = {"bound": 2.0}
EXERCISE_5 = {"fan_ins": (64, 1024, 4096), "fan_out": 32, "batch": 512}
EXERCISE_4_REL_TOL = 1e-3  # 3 significant figures of 0.8796 are within 0.06%; see the hints


@EXERCISES.checker(1, "parameters of a Cruncher", wants="an int (a number of parameters), exactly")
def _(answer):
    d, n = EXERCISE_1["dim"], EXERCISE_1["num_layers"]
    return check_count(
        answer,
        cruncher_num_parameters(d, n),
        hints={
            d * d * n: "you left out the head: it is a D x 1 matrix, D more parameters.",
            d * d * (n + 1): "the head maps D -> 1, so it has D parameters, not D^2.",
            4 * (d * d * n + d): "that is the size in float32 bytes; count parameters, not bytes.",
            d * n + d: "each D x D layer holds D^2 weights, not D.",
        },
        unit="parameters",
    )


@EXERCISES.checker(2, "output std under N(0, 1) weights",
                   wants=f"a number (a standard deviation), {tolerance_text(DEFAULT_REL_TOL)}")
def _(answer):
    n = EXERCISE_2["fan_in"]
    return check_number(
        answer,
        math.sqrt(n),
        hints={
            float(n): "that is the variance (a sum of n unit variances); take its square root.",
            1.0: "unit std is what 1/sqrt(fan_in) scaling gives; these weights are N(0, 1).",
            1 / math.sqrt(n): "that is the std of a LeCun-scaled weight, not of the output.",
        },
    )


@EXERCISES.checker(3, "scale after 10 PyTorch-default layers",
                   wants=f"a number (a factor), {tolerance_text(DEFAULT_REL_TOL)}")
def _(answer):
    depth = EXERCISE_3["depth"]
    per_layer = 1 / math.sqrt(3)  # sqrt(fan_in) terms, each weight of std 1/sqrt(3 fan_in)
    return check_number(
        answer,
        per_layer**depth,
        hints={
            per_layer ** (2 * depth): "that is the factor on the variance; the std shrinks by "
                                      "1/sqrt(3) a layer.",
            1.0: "nn.Linear's default is not variance preserving: a weight drawn from "
                 "U(-b, b) with b = 1/sqrt(fan_in) has std b/sqrt(3), not b.",
            (1 / math.sqrt(12)) ** depth: "a uniform on [-b, b] has variance (2b)^2 / 12 = "
                                          "b^2 / 3, not b^2 / 12.",
            per_layer ** (depth + 1): "count the D x D layers only: there are 10 of them.",
            per_layer: "that is one layer; the factor compounds over all 10 layers.",
        },
    )


@EXERCISES.checker(4, "std of a normal truncated at 2 sigma",
                   wants="a number (a standard deviation), to 3 significant figures "
                         f"({tolerance_text(EXERCISE_4_REL_TOL)})")
def _(answer):
    c = EXERCISE_4["bound"]
    expected = truncated_normal_std(c)
    density = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    below = (1 + math.erf(c / math.sqrt(2))) / 2  # Phi(c) = P(Z <= c)
    return check_number(
        answer,
        expected,
        rel_tol=EXERCISE_4_REL_TOL,  # tight: dividing by Phi(2) instead is only 0.35% off
        hints={
            expected**2: "that is the variance of the truncated normal; take its square root.",
            truncated_normal_std(TRUNCATE_AT): "that is the factor for +-3 sigma; this cut is "
                                               "at 2.",
            1.0: "cutting off the tails removes variance: the std must be below 1.",
            math.erf(c / math.sqrt(2)): "that is the probability mass kept, P(|Z| <= 2).",
            math.sqrt(1 - 2 * c * density / below): "you divided by Phi(2) = P(Z <= 2); the mass "
                                                    "kept is P(|Z| <= 2) = 2 Phi(2) - 1.",
            math.sqrt(1 - 2 * c * density / math.erf(c)): "P(|Z| <= c) is erf(c / sqrt(2)), "
                                                           "not erf(c).",
        },
    )


# The ways an init's output std can depend on fan_in, each the signature of one mistake:
# (output std as a function of fan_in and fan_out, what went wrong). The checker names one only
# if the measured std follows it at every fan_in tried.
_INIT_MISTAKES: tuple[tuple[Callable[[int, int], float], str], ...] = (
    (lambda i, o: math.sqrt(i),
     "the output std grows like sqrt(fan_in): divide N(0, 1) weights by sqrt(fan_in)."),
    (lambda i, o: 1 / math.sqrt(i),
     "the output std shrinks like 1/sqrt(fan_in): you divided by fan_in; divide by "
     "sqrt(fan_in)."),
    (lambda i, o: math.sqrt(i / o),
     "the output std is sqrt(fan_in / fan_out): you scaled by fan_out, but the sum runs over "
     "fan_in terms. (torch.nn.init does this to a (fan_in, fan_out) tensor: it reads fan_in "
     "from dimension 1, as in PyTorch's (fan_out, fan_in) layout.)"),
    (lambda i, o: math.sqrt(2),
     "the output std is sqrt(2) for every fan_in: that is He (Kaiming) init, std "
     "sqrt(2/fan_in), made for a ReLU, which zeroes half its inputs; a linear layer needs "
     "std 1/sqrt(fan_in)."),
    (lambda i, o: math.sqrt(2 * i / (i + o)),
     "that is Xavier/Glorot init, std sqrt(2/(fan_in + fan_out)): it gives unit output std only "
     "when fan_in = fan_out."),
    (lambda i, o: 1 / math.sqrt(3),
     "the output std is 1/sqrt(3) for every fan_in: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) "
     "(nn.Linear's default) has std 1/sqrt(3 fan_in); widen the bound to sqrt(3/fan_in)."),
)
_STD_TOLERANCE = 0.1  # the measured std has a standard error below 2% at these sizes


def _init_feedback(stds: dict[int, float], fan_out: int) -> Feedback:
    """The verdict on an init from its measured output std at each fan_in."""

    def follows(law: Callable[[int, int], float]) -> bool:
        return all(math.isclose(s, law(i, fan_out), rel_tol=_STD_TOLERANCE)
                   for i, s in stds.items())

    if follows(lambda i, o: 1.0):
        return CORRECT
    for law, hint in _INIT_MISTAKES:
        if follows(law):
            return wrong(hint)
    positive = min(stds.values()) > 0
    typical = math.exp(sum(math.log(s) for s in stds.values()) / len(stds)) if positive else 0.0
    if positive and follows(lambda i, o: typical):  # typical: the geometric mean
        return wrong(f"the output std is about {typical:.2f} for every fan_in: the scaling with "
                     f"fan_in is right, but the constant is off; multiply the weights by about "
                     f"{1 / typical:.2f}.")
    measured = ", ".join(f"{s:.3g}" for s in stds.values())
    fan_ins = ", ".join(str(i) for i in stds)
    return wrong(f"the output std is {measured} for fan_in = {fan_ins}; it should be 1 for each.")


@EXERCISES.checker(5, "an init with unit output std",
                   wants="a function (fan_in, fan_out) -> a random weight tensor of shape "
                         "(fan_in, fan_out)")
def _(init_fn):
    if not callable(init_fn):
        return wrong(f"pass the function itself, EXERCISES.check(5, unit_scale_init); got a "
                     f"value of type {type(init_fn).__name__}.")
    fan_out, batch = EXERCISE_5["fan_out"], EXERCISE_5["batch"]
    generator = torch.Generator().manual_seed(5)
    stds = {}
    with torch.random.fork_rng(devices=[]):  # the student's draws must not move the notebook's
        torch.manual_seed(5)  # and the verdict must not depend on where the notebook's RNG is
        for fan_in in EXERCISE_5["fan_ins"]:
            try:
                w = init_fn(fan_in, fan_out)
            except Exception as e:  # noqa: BLE001 (a student's bug gets a hint, not a traceback)
                return wrong(f"calling your function with ({fan_in}, {fan_out}) raised "
                             f"{type(e).__name__}: {e}.")
            if w is None:
                return UNANSWERED
            if not isinstance(w, torch.Tensor):
                return wrong(f"return a torch.Tensor, got {type(w).__name__}.")
            if tuple(w.shape) != (fan_in, fan_out):
                return wrong(
                    f"for fan_in={fan_in}, fan_out={fan_out} return shape ({fan_in}, {fan_out}) "
                    f"so that x @ w works; got {tuple(w.shape)}."
                )
            w = w.detach().float().cpu()
            if not torch.isfinite(w).all():
                return wrong("the weight holds inf or nan.")
            if w.std(dim=1).max() == 0:
                return wrong(
                    "every output column is the same: all units would compute the same thing "
                    "and get the same gradient. Draw the weights at random."
                )
            x = torch.randn(batch, fan_in, generator=generator)
            stds[fan_in] = (x @ w).std().item()
    return _init_feedback(stds, fan_out)
