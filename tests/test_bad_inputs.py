"""Bad inputs to the course's public helpers: each gets a clear error that names the argument.

One table, CASES, one section per module. A case is
    bad(id, lambda: call(...), ErrorType, r"regex the message must match", argument="name")
where the regex mentions the argument and `argument` (by default the regex's first word) must
appear in the message. Append new cases to a module's section, or add a section.

The exercise checkers are the other half: whatever a student passes to EXERCISES.check, no
exception escapes (see the end of this file).
"""

import contextlib
import functools
import importlib
import io
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from lecture_utils import device as dev
from lecture_utils import distributed as D
from lecture_utils import dtypes as dt
from lecture_utils import exercises as ex
from lecture_utils import flops as fl
from lecture_utils import gradients as gr
from lecture_utils import hardware as hw
from lecture_utils import mixed_precision as mp
from lecture_utils import models as mo
from lecture_utils import napkin as nk
from lecture_utils import optimizers as op
from lecture_utils import profiling as pr
from lecture_utils import tensors as te
from lecture_utils import training as trn
from lecture_utils import transformer as tr
from lecture_utils.hardware import UnknownGPUError, UnknownLinkError  # documented lookups

ROOT = Path(__file__).resolve().parent.parent
NAN, INF = float("nan"), float("inf")


class Case(NamedTuple):
    id: str
    call: Any  # a function of no arguments that must raise
    error: type[Exception]
    match: str  # a regex the message must match
    argument: str  # the argument's name, which the message must contain
    marks: tuple = ()


def bad(id: str, call: Any, error: type[Exception], match: str, argument: str | None = None,
        marks: tuple = ()) -> Case:
    """A case; `argument` defaults to the first word of `match`."""
    if argument is None:
        argument = re.match(r"\w+", match).group()
    return Case(id, call, error, match, argument, marks)


# --- small things the cases share, made once and only when a case needs them ------------------


def _params() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2))]


@functools.cache
def _cruncher() -> mo.Cruncher:
    return mo.Cruncher(4, 2, generator=torch.Generator().manual_seed(0))


def _batch(batch: int = 4, dim: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, dim, generator=generator), torch.randn(batch, generator=generator)


def _sgd() -> op.SGD:
    return op.SGD(_cruncher().parameters(), lr=0.01)


def _linear_head() -> torch.nn.Module:
    """A model whose prediction is (batch, 1): the other way round from the Cruncher's (batch,)."""
    return torch.nn.Linear(4, 1)


@functools.cache
def _tiny_cfg() -> tr.TransformerConfig:
    return tr.preset("gpt2-small").replace(vocab_size=32, context_length=8, d_model=16,
                                           num_layers=1, num_heads=2, num_kv_heads=2, d_ff=32)


@functools.cache
def _transformer() -> tr.Transformer:
    torch.manual_seed(0)
    return tr.Transformer(_tiny_cfg())


def _ids(*shape: int) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.long)


@functools.cache
def _stats() -> list[pr.OperatorStats]:
    return pr.operator_stats(pr.profile_once(lambda: torch.ones(4, 4) @ torch.ones(4, 4)))


def _fp8(*shape: int) -> torch.Tensor:
    return torch.ones(shape).to(fl.FP8)


_ONE = torch.tensor(1.0)
_NO_CUDA = (pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA"),)

CASES: list[Case] = []

# --- tensors (notebook 01) ----------------------------------------------------------------------

CASES += [
    bad("tensors/contiguous_strides-None", lambda: te.contiguous_strides(None), TypeError,
        r"shape must be a sequence of sizes"),
    bad("tensors/contiguous_strides-negative", lambda: te.contiguous_strides((2, -1)),
        ValueError, r"a shape holds sizes >= 0", "shape"),
    bad("tensors/storage_index-not-a-tensor", lambda: te.storage_index([1, 2], (0,)), TypeError,
        r"x must be a torch.Tensor, got list"),
    bad("tensors/storage_index-too-few", lambda: te.storage_index(torch.zeros(3, 2), (1,)),
        ValueError, r"index \(1,\) has 1 entries but x has 2 dimensions"),
    bad("tensors/storage_index-float", lambda: te.storage_index(torch.zeros(3), (1.0,)),
        TypeError, r"index entries must be ints"),
    bad("tensors/same_storage-None", lambda: te.same_storage(torch.zeros(1), None), TypeError,
        r"y must be a torch.Tensor"),
    bad("tensors/causal_mask-zero", lambda: te.causal_mask(0), ValueError,
        r"seq_len must be a positive int, got 0"),
    bad("tensors/causal_mask-float", lambda: te.causal_mask(2.0), ValueError,
        r"seq_len must be a positive int, got 2.0"),
    bad("tensors/sliding_window-str", lambda: te.sliding_window_mask_reference(4, "2"),
        ValueError, r"window must be >= 1 .*got '2'"),
    bad("tensors/to_heads-not-dividing", lambda: te.to_heads_reference(torch.zeros(2, 3, 8), 3),
        ValueError, r"num_heads must be a positive int that divides .* \(8\), got 3"),
    bad("tensors/to_heads-2d", lambda: te.to_heads_reference(torch.zeros(3, 8), 2), ValueError,
        r"x must be \(batch, seq, heads \* hidden\), got shape \(3, 8\)"),
    bad("tensors/draw_strides-empty", lambda: te.draw_strides(torch.zeros(0, 3)), ValueError,
        r"x has shape \(0, 3\)", "x"),
    bad("tensors/attention_scores-mismatched-hidden",
        lambda: te.attention_scores(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5)), TypeError,
        r"parameter 'k'", "k"),
]

# --- dtypes (notebook 02) ---------------------------------------------------------------------

CASES += [
    bad("dtypes/tensor_bytes-int-shape", lambda: dt.tensor_bytes(5), TypeError,
        r"shape must be a sequence of sizes such as \(4, 8\), got 5"),
    bad("dtypes/tensor_bytes-str-dtype", lambda: dt.tensor_bytes((2, 3), "bf16"), TypeError,
        r"dtype must be a torch.dtype"),
    bad("dtypes/format_bytes-unit", lambda: dt.format_bytes(10, "gb"), ValueError,
        r"unknown unit 'gb'", "unit"),
    bad("dtypes/format_bytes-unit-list", lambda: dt.format_bytes(10, ["GB"]), ValueError,
        r"unknown unit \['GB'\]", "unit"),
    bad("dtypes/format_bytes-nan", lambda: dt.format_bytes(NAN), ValueError,
        r"num_bytes must be a finite number >= 0, got nan"),
    bad("dtypes/format_bytes-negative-digits", lambda: dt.format_bytes(10, digits=-1),
        ValueError, r"digits must be an int >= 0"),
    bad("dtypes/format_bytes-float-digits", lambda: dt.format_bytes(10, digits=1.5), ValueError,
        r"digits must be an int >= 0 .*got 1.5"),
    bad("dtypes/dtype_name-str", lambda: dt.dtype_name("bf16"), TypeError,
        r"dtype must be a torch.dtype"),
    bad("dtypes/as_float_dtype-unknown-name", lambda: dt.as_float_dtype("bogus"), ValueError,
        r"unknown dtype name 'bogus'", "dtype"),
    bad("dtypes/as_float_dtype-int", lambda: dt.as_float_dtype(torch.int32), ValueError,
        r"int32 is not a floating-point dtype", "dtype"),
    bad("dtypes/as_float_dtype-None", lambda: dt.as_float_dtype(None), TypeError,
        r"dtype: expected a torch.dtype"),
    bad("dtypes/dtype_table-str", lambda: dt.dtype_table("bf16"), TypeError,
        r"dtypes must be a list of dtypes, e.g. \[torch.bfloat16\]"),
    bad("dtypes/finfo_table-one-dtype", lambda: dt.finfo_table(torch.bfloat16), TypeError,
        r"dtypes must be a list of dtypes"),
    bad("dtypes/format_table-ragged", lambda: dt.format_table([{"a": 1}, {"b": 2}]), ValueError,
        r"rows must all have the same keys"),
    bad("dtypes/format_table-not-dicts", lambda: dt.format_table([1]), TypeError,
        r"rows must be a list of dicts"),
    bad("dtypes/spacing-no-dtype", lambda: dt.spacing(1.0), ValueError, r"give a dtype",
        "dtype"),
    bad("dtypes/spacing-overflow", lambda: dt.spacing(1e6, torch.float16), ValueError,
        r"x is beyond the largest float16"),
    bad("dtypes/running_sum-str", lambda: dt.running_sum("0.1", 10, torch.bfloat16), TypeError,
        r"increment must be a number such as 0.01, got '0.1'"),
    bad("dtypes/running_sum-nan", lambda: dt.running_sum(NAN, 3, "bf16"), ValueError,
        r"increment must be a finite number, got nan"),
    bad("dtypes/running_sum-steps", lambda: dt.running_sum(0.1, 0, "bf16"), ValueError,
        r"steps must be a positive int, got 0"),
    bad("dtypes/stall_value-bool", lambda: dt.stall_value(True, "bf16"), TypeError,
        r"increment must be a number"),
    bad("dtypes/stall_value-inf", lambda: dt.stall_value(INF, "bf16"), ValueError,
        r"increment must be a finite number"),
    bad("dtypes/stall_value-zero", lambda: dt.stall_value(0.0, "bf16"), ValueError,
        r"increment must round to a positive bfloat16"),
    bad("dtypes/stall_value-dtype", lambda: dt.stall_value(0.01, None), TypeError,
        r"dtype: expected a torch.dtype"),
    bad("dtypes/param_bytes_reference-None",
        lambda: dt.param_bytes_reference(None, torch.bfloat16), TypeError,
        r"model must be an nn.Module"),
    bad("dtypes/stuck_after-list", lambda: dt.stuck_after([1.0, 1.0]), TypeError,
        r"history must be a 1-D tensor of partial sums"),
    bad("dtypes/plot_bit_layouts-one-dtype", lambda: dt.plot_bit_layouts(torch.bfloat16),
        TypeError, r"dtypes must be a list of dtypes"),
    bad("dtypes/plot_running_sums-list", lambda: dt.plot_running_sums([], 0.01), TypeError,
        r"sums must be a dict of dtype"),
    bad("dtypes/cuda_bytes_allocated_by-cpu",
        lambda: dt.cuda_bytes_allocated_by(lambda: None, "cpu"), ValueError,
        r"device must be a CUDA device"),
]

# --- flops (notebook 03) ----------------------------------------------------------------------

CASES += [
    bad("flops/matmul_flops-zero", lambda: fl.matmul_flops(0, 1, 1), ValueError,
        r"m must be a positive size, got 0"),
    bad("flops/matmul_flops-str", lambda: fl.matmul_flops(1, "1", 1), TypeError,
        r"n must be an int, got str"),
    bad("flops/flops_delivered-percent", lambda: fl.flops_delivered("H100 SXM", "bf16", 1, 1, 50),
        ValueError, r"mfu is a fraction of the peak"),
    bad("flops/flops_delivered-inf-seconds",
        lambda: fl.flops_delivered("H100 SXM", "bf16", 1, INF, 0.5), ValueError,
        r"seconds must be a finite number > 0, got inf"),
    bad("flops/flops_delivered-unknown-gpu",
        lambda: fl.flops_delivered("bogus", "bf16", 1, 1, 0.5), UnknownGPUError,
        r"no datasheet entry for GPU 'bogus'", "gpu"),
    bad("flops/mfu-nan", lambda: fl.mfu(NAN, 1, 1), ValueError,
        r"flops must be a finite number > 0, got nan"),
    bad("flops/mfu-str", lambda: fl.mfu(1, "1", 1), TypeError, r"seconds must be a number"),
    bad("flops/time_block-zero-calls", lambda: fl.time_block(lambda: None, 0, "cpu"), ValueError,
        r"number must be a positive size, got 0"),
    bad("flops/time_block-device-name", lambda: fl.time_block(lambda: None, 1, "gpu"),
        ValueError, r"'gpu' is not a device", "device"),
    bad("flops/time_block-device-None", lambda: fl.time_block(lambda: None, 1, None), TypeError,
        r"device must be a name such as 'cpu'"),
    bad("flops/measure_times-warmup", lambda: fl.measure_times(lambda: None, warmup=-1),
        ValueError, r"warmup must be an int >= 0, got -1"),
    bad("flops/measure_times-device", lambda: fl.measure_times(lambda: None, device="gpu"),
        ValueError, r"'gpu' is not a device", "device"),
    bad("flops/make_matmul-cuda-missing", lambda: fl.make_matmul(4, torch.float32, "cuda"),
        RuntimeError, r"device 'cuda' asks for CUDA, but CUDA is not available", marks=_NO_CUDA),
    bad("flops/benchmark-repeats-str", lambda: fl.benchmark(lambda: None, repeats="3"),
        ValueError, r"repeats must be an int >= 1, got '3'"),
    bad("flops/time_each_call_cold-calls", lambda: fl.time_each_call_cold(lambda: None, calls=0),
        ValueError, r"calls must be a positive size"),
    bad("flops/float32_matmul_precision-name",
        lambda: fl.float32_matmul_precision("low").__enter__(), ValueError,
        r"precision must be 'highest', 'high' or 'medium', got 'low'"),
    bad("flops/scaled_matmul_fp8-None",
        lambda: fl.scaled_matmul_fp8(None, _ONE, _fp8(16, 16), _ONE), TypeError,
        r"a8 must be a tensor"),
    bad("flops/scaled_matmul_fp8-float-scale",
        lambda: fl.scaled_matmul_fp8(_fp8(16, 16), 1.0, _fp8(16, 16), 1.0), TypeError,
        r"scale_a must be a tensor"),
    bad("flops/scaled_matmul_fp8-fp32-operands",
        lambda: fl.scaled_matmul_fp8(torch.ones(16, 16), _ONE, torch.ones(16, 16), _ONE),
        TypeError, r"a8 and b8 must be torch.float8_e4m3fn"),
    bad("flops/scaled_matmul_fp8-int-out",
        lambda: fl.scaled_matmul_fp8(_fp8(16, 16), _ONE, _fp8(16, 16), _ONE, torch.int32),
        TypeError, r"out_dtype must be a floating torch.dtype"),
    bad("flops/make_elementwise_add-int", lambda: fl.make_elementwise_add(4, torch.int32, "cpu"),
        TypeError, r"dtype must be a floating torch.dtype"),
    bad("flops/make_elementwise_add-device",
        lambda: fl.make_elementwise_add(4, torch.float32, "gpu"), ValueError,
        r"'gpu' is not a device", "device"),
    bad("flops/arithmetic_intensity_matmul-half-byte",
        lambda: fl.arithmetic_intensity_matmul(4, 0.5), TypeError,
        r"dtype_bytes must be an int, got float"),
    bad("flops/ridge_point-nan", lambda: fl.ridge_point(NAN, 1), ValueError,
        r"peak must be a finite number > 0"),
    bad("flops/roofline-inf", lambda: fl.roofline(1, 1, INF), ValueError,
        r"bandwidth must be a finite number > 0, got inf"),
    bad("flops/fp8_matmul_supported-None", lambda: fl.fp8_matmul_supported(None), TypeError,
        r"device must be a name"),
    bad("flops/time_it-threads-zero", lambda: fl.time_it(lambda: None, device="cpu", threads=0),
        ValueError, r"threads must be a positive size"),
    bad("flops/time_without_and_with_sync-None",
        lambda: fl.time_without_and_with_sync(None, device="cpu"), TypeError,
        r"need a zero-argument function", "function"),
    bad("flops/Sweep-lengths", lambda: fl.Sweep("fp32", torch.float32, (8, 16), ()), ValueError,
        r"sizes and timings must be non-empty and of one length"),
]

# --- gradients (notebook 04) ------------------------------------------------------------------

CASES += [
    bad("gradients/squared_error_gradient-None",
        lambda: gr.squared_error_gradient(None, torch.ones(3), 1.0), TypeError,
        r"x must be a floating-point tensor, got None"),
    bad("gradients/squared_error_gradient-list",
        lambda: gr.squared_error_gradient(torch.ones(3), [1.0, 2.0, 3.0], 1.0), TypeError,
        r"w must be a floating-point tensor"),
    bad("gradients/squared_error_gradient-int-tensors",
        lambda: gr.squared_error_gradient(torch.ones(3, dtype=torch.long),
                                          torch.ones(3, dtype=torch.long), 1),
        TypeError, r"x must be a floating-point tensor, got a torch.int64 tensor"),
    bad("gradients/squared_error_gradient-lengths",
        lambda: gr.squared_error_gradient(torch.ones(3), torch.ones(2), 1.0), ValueError,
        r"x and w must be vectors of one length, got \(3,\) and \(2,\)"),
    bad("gradients/squared_error_gradient-str-target",
        lambda: gr.squared_error_gradient(torch.ones(3), torch.ones(3), "1"), TypeError,
        r"target must be a number, got '1'"),
    bad("gradients/two_layer_num_parameters-zero", lambda: gr.two_layer_num_parameters(0, 2),
        ValueError, r"D must be a positive size"),
    bad("gradients/two_layer_matmuls-flag", lambda: gr.two_layer_matmuls(1, 2, 3, "no"),
        TypeError, r"input_requires_grad must be True or False, got 'no'"),
    bad("gradients/make_two_layer_tensors-device",
        lambda: gr.make_two_layer_tensors(1, 2, 3, device="gpu"), ValueError,
        r"'gpu' is not a device", "device"),
    bad("gradients/make_two_layer_tensors-int",
        lambda: gr.make_two_layer_tensors(1, 2, 3, dtype=torch.int32), TypeError,
        r"dtype must be a floating torch.dtype"),
    bad("gradients/measure_flops_per_op-equal-sizes",
        lambda: gr.measure_flops_per_op(2, 2, 3, input_requires_grad=False), ValueError,
        r"B, D, K must all differ"),
    bad("gradients/record_ops-None", lambda: gr.record_ops(None), TypeError,
        r"fn must be a function"),
    bad("gradients/phase_totals-None", lambda: gr.phase_totals(None), TypeError,
        r"flops must be \{phase"),
    bad("gradients/phase_totals-flat", lambda: gr.phase_totals({"forward": 3}), TypeError,
        r"flops must be"),
    bad("gradients/plot_flops_breakdown-str-unit",
        lambda: gr.plot_flops_breakdown({"a": {}}, "1", "x"), ValueError,
        r"unit must be a positive number of FLOPs, got '1'"),
    bad("gradients/plot_flops_breakdown-no-columns",
        lambda: gr.plot_flops_breakdown({}, 1, "x"), ValueError,
        r"columns must be a non-empty dict"),
    bad("gradients/chain-dims-None",
        lambda: gr.measured_linear_chain_backward_flops(2, None, False), TypeError,
        r"dims must be a list of sizes"),
    bad("gradients/chain-dims-zero",
        lambda: gr.measured_linear_chain_backward_flops(2, [2, 0], False), ValueError,
        r"dims\[1\] must be a positive size", "dims"),
    bad("gradients/time_ratio_conclusion-float",
        lambda: gr.time_ratio_conclusion(1.0, 2.0, 1.2), TypeError,
        r"forward and backward must be Timings", "forward"),
    bad("gradients/time_ratio_conclusion-ratio-zero",
        lambda: gr.time_ratio_conclusion(fl.Timing((1.0,)), fl.Timing((1.0,)), 0), ValueError,
        r"flop_ratio must be a finite number > 0, got 0"),
]

# --- models (notebook 05) ---------------------------------------------------------------------

CASES += [
    bad("models/init_std-unknown", lambda: mo.init_std("bogus", 2, 2), ValueError,
        r"unknown init 'bogus'", "init"),
    bad("models/init_std-fan_in", lambda: mo.init_std("lecun_normal", 0, 2), ValueError,
        r"fan_in must be >= 1, got 0"),
    bad("models/Linear-init", lambda: mo.Linear(2, 2, init="xavier"), ValueError,
        r"unknown init 'xavier'", "init"),
    bad("models/Cruncher-dim", lambda: mo.Cruncher(0, 1), ValueError, r"dim must be >= 1"),
    bad("models/Cruncher-negative-layers", lambda: mo.Cruncher(2, -1), ValueError,
        r"num_layers must be >= 0, got -1"),
    bad("models/Cruncher-float-layers", lambda: mo.Cruncher(2, 1.0), TypeError,
        r"num_layers must be an int, got float"),
    bad("models/cruncher_num_parameters-str", lambda: mo.cruncher_num_parameters("2", 1),
        TypeError, r"dim must be an int, got str"),
    bad("models/num_parameters-tensor", lambda: mo.num_parameters(torch.zeros(2)), TypeError,
        r"model: num_parameters needs an nn.Module, got Tensor"),
    bad("models/parameter_bytes-None", lambda: mo.parameter_bytes(None), TypeError,
        r"model: parameter_bytes needs an nn.Module"),
    bad("models/initialize_-None", lambda: mo.initialize_(None, "lecun_normal"), TypeError,
        r"model must be an nn.Module"),
    bad("models/initialize_-no-course-Linear",
        lambda: mo.initialize_(torch.nn.Linear(2, 2), "lecun_normal"), ValueError,
        r"no lecture_utils.models.Linear layer in this model", "model"),
    bad("models/output_std-seed", lambda: mo.output_std(4, "lecun_normal", seed="a"), TypeError,
        r"seed must be an int, got str"),
    bad("models/truncated_normal_std-inf", lambda: mo.truncated_normal_std(INF), ValueError,
        r"bound must be positive and finite"),
    bad("models/truncated_normal_std-str", lambda: mo.truncated_normal_std("2"), TypeError,
        r"bound must be a number, got str"),
]

# --- optimizers (notebook 06) -----------------------------------------------------------------

CASES += [
    bad("optimizers/Adam-one-beta", lambda: op.Adam(_params(), betas=(0.9,)), ValueError,
        r"betas must be a pair such as \(0.9, 0.999\), got 1 values"),
    bad("optimizers/Adam-three-betas", lambda: op.Adam(_params(), betas=(0.9, 0.9, 0.9)),
        ValueError, r"betas must be a pair .*got 3 values"),
    bad("optimizers/Adam-float-betas", lambda: op.Adam(_params(), betas=0.9), TypeError,
        r"betas must be a pair such as \(0.9, 0.999\), got 0.9"),
    bad("optimizers/Adam-None-betas", lambda: op.Adam(_params(), betas=None), TypeError,
        r"betas must be a pair"),
    bad("optimizers/Adam-beta1-one", lambda: op.Adam(_params(), betas=(1.0, 0.999)), ValueError,
        r"betas\[0\] \(beta1\) must be a number in \[0, 1\), got 1.0", "betas"),
    bad("optimizers/Adam-beta2-nan", lambda: op.Adam(_params(), betas=(0.9, NAN)), ValueError,
        r"betas\[1\] \(beta2\) must be a number in \[0, 1\), got nan", "betas"),
    bad("optimizers/Adam-str-betas", lambda: op.Adam(_params(), betas="ab"), TypeError,
        r"betas must be a pair"),
    bad("optimizers/SGD-lr-inf", lambda: op.SGD(_params(), lr=INF), ValueError,
        r"lr must be a finite number > 0, got inf"),
    bad("optimizers/SGD-lr-nan", lambda: op.SGD(_params(), lr=NAN), ValueError,
        r"lr must be a finite number > 0, got nan"),
    bad("optimizers/SGD-lr-str", lambda: op.SGD(_params(), lr="0.1"), ValueError,
        r"lr must be a finite number > 0, got '0.1'"),
    bad("optimizers/SGD-lr-bool", lambda: op.SGD(_params(), lr=True), ValueError,
        r"lr must be a finite number > 0, got True"),
    bad("optimizers/Adam-lr-inf", lambda: op.Adam(_params(), lr=INF), ValueError,
        r"lr must be a finite number > 0"),
    bad("optimizers/LectureAdaGrad-lr-inf", lambda: op.LectureAdaGrad(_params(), lr=INF),
        ValueError, r"lr must be a finite number > 0"),
    bad("optimizers/SGD-a-model", lambda: op.SGD(_cruncher()), TypeError,
        r"params must be the model's parameters, e.g. model.parameters\(\), not the Cruncher"),
    bad("optimizers/SGD-None", lambda: op.SGD(None), TypeError,
        r"params must be an iterable of parameters"),
    bad("optimizers/Momentum-one", lambda: op.Momentum(_params(), momentum=1.0), ValueError,
        r"momentum must be a number in \[0, 1\)"),
    bad("optimizers/Momentum-str", lambda: op.Momentum(_params(), momentum="0.9"), ValueError,
        r"momentum must be a number in \[0, 1\), got '0.9'"),
    bad("optimizers/AdaGrad-eps-inf", lambda: op.AdaGrad(_params(), eps=INF), ValueError,
        r"eps must be a finite number >= 0, got inf"),
    bad("optimizers/RMSProp-eps-inf", lambda: op.RMSProp(_params(), eps=INF), ValueError,
        r"eps must be a finite number >= 0"),
    bad("optimizers/RMSProp-alpha-None", lambda: op.RMSProp(_params(), alpha=None), ValueError,
        r"alpha must be a number in \[0, 1\), got None"),
    bad("optimizers/make_optimizer-unknown", lambda: op.make_optimizer("adamw", _params()),
        ValueError, r"unknown optimizer 'adamw'", "optimizer"),
    bad("optimizers/make_optimizer-None", lambda: op.make_optimizer(None, _params()),
        ValueError, r"unknown optimizer None", "optimizer"),
    bad("optimizers/make_optimizer-weight_decay",
        lambda: op.make_optimizer("adam", _params(), weight_decay=0.1), TypeError,
        r"adam has no hyperparameter weight_decay; it takes lr, betas, eps", "weight_decay"),
    bad("optimizers/make_optimizer-momentum-for-sgd",
        lambda: op.make_optimizer("sgd", _params(), momentum=0.9), TypeError,
        r"sgd has no hyperparameter momentum; it takes lr", "momentum"),
    bad("optimizers/train_step-no-optimizer",
        lambda: op.train_step(_cruncher(), None, *_batch()), TypeError,
        r"optimizer must be a torch.optim.Optimizer"),
    bad("optimizers/train_step-column-target",
        lambda: op.train_step(_cruncher(), _sgd(), _batch()[0], torch.zeros(4, 1)), ValueError,
        r"y has shape \(4, 1\) but the prediction has shape \(4,\)"),
    bad("optimizers/train_step-short-target",
        lambda: op.train_step(_cruncher(), _sgd(), _batch()[0], torch.zeros(3)), ValueError,
        r"y has shape \(3,\) but the prediction has shape \(4,\)"),
    bad("optimizers/train_step-wrong-dim",
        lambda: op.train_step(_cruncher(), _sgd(), *_batch(dim=5)), ValueError,
        r"x must be \(batch, 4\) for this Cruncher of dim 4, got shape \(4, 5\)"),
    bad("optimizers/train_step-float64",
        lambda: op.train_step(_cruncher(), _sgd(), _batch()[0].double(), _batch()[1]),
        ValueError, r"x is torch.float64 but the model's weights are torch.float32"),
    bad("optimizers/train_step-x-None", lambda: op.train_step(_cruncher(), _sgd(), None,
                                                              _batch()[1]),
        TypeError, r"x must be a floating-point tensor of inputs, got NoneType"),
    bad("optimizers/train_step-empty-batch",
        lambda: op.train_step(_cruncher(), _sgd(), torch.zeros(0, 4), torch.zeros(0)),
        ValueError, r"x must hold at least one example"),
    bad("optimizers/max_difference-make_a",
        lambda: op.max_difference_after_training(None, op.SGD, steps=1, dim=2), TypeError,
        r"make_a must be a function"),
    bad("optimizers/max_difference-bool-steps",
        lambda: op.max_difference_after_training(op.SGD, op.SGD, steps=True), ValueError,
        r"steps must be a positive int, got True"),
    bad("optimizers/max_difference-seed",
        lambda: op.max_difference_after_training(op.SGD, op.SGD, steps=1, seed="a"), TypeError,
        r"seed must be an int"),
    bad("optimizers/quadratic-one-curvature",
        lambda: op.quadratic_trajectory(op.SGD, (1.0, 2.0), (1.0,), 3), ValueError,
        r"curvatures must be a pair"),
    bad("optimizers/quadratic-inf-curvature",
        lambda: op.quadratic_trajectory(op.SGD, (1.0, 2.0), (1.0, INF), 3), ValueError,
        r"curvatures\[1\] \(b\) must be a finite number > 0, got inf", "curvatures"),
    bad("optimizers/quadratic-nan-start",
        lambda: op.quadratic_trajectory(op.SGD, (NAN, 2.0), (1.0, 2.0), 3), ValueError,
        r"start\[0\] must be a finite number, got nan", "start"),
    bad("optimizers/quadratic-make-None",
        lambda: op.quadratic_trajectory(None, (1.0, 2.0), (1.0, 2.0), 3), TypeError,
        r"make must be a function"),
    bad("optimizers/storage_bytes-None", lambda: op.storage_bytes(None), TypeError,
        r"tensors must be an iterable of tensors"),
    bad("optimizers/storage_bytes-ints", lambda: op.storage_bytes([1]), TypeError,
        r"tensors must hold only tensors, got a int"),
    bad("optimizers/optimizer_state_tensors-None", lambda: op.optimizer_state_tensors(None),
        TypeError, r"optimizer must be a torch.optim.Optimizer"),
    bad("optimizers/saved_for_backward-column-target",
        lambda: op.saved_for_backward(_cruncher(), _batch()[0], torch.zeros(4, 1)), ValueError,
        r"y has shape \(4, 1\) but the prediction has shape \(4,\)"),
    bad("optimizers/saved_for_backward-model-None",
        lambda: op.saved_for_backward(None, *_batch()), TypeError,
        r"model must be an nn.Module"),
    bad("optimizers/timeline-no-layers", lambda: op.training_memory_timeline(4, 0, 2),
        ValueError, r"num_layers must be >= 1 for the timeline"),
    bad("optimizers/peak-no-layers", lambda: op.predict_peak_training_memory(4, 0, 2),
        ValueError, r"num_layers must be >= 1 for the timeline"),
    bad("optimizers/predict_training_memory-adamw",
        lambda: op.predict_training_memory(4, 1, 2, optimizer="adamw"), ValueError,
        r"unknown optimizer 'adamw'", "optimizer"),
    bad("optimizers/bytes_per_element-str", lambda: op.bytes_per_element("bf16"), TypeError,
        r"dtype must be a torch.dtype"),
    bad("optimizers/measure_peak-cuda-missing",
        lambda: op.measure_peak_training_memory(4, 1, 2, device="cuda"), RuntimeError,
        r"device 'cuda' asks for CUDA, but CUDA is not available", marks=_NO_CUDA),
]

# --- mixed_precision (notebook 08) ------------------------------------------------------------

CASES += [
    bad("mixed_precision/mse_loss-column-target",
        lambda: mp.mse_loss(_cruncher(), _batch()[0], torch.zeros(4, 1)), ValueError,
        r"y has shape \(4, 1\) but the prediction has shape \(4,\)"),
    bad("mixed_precision/mse_loss-column-prediction",
        lambda: mp.mse_loss(_linear_head(), *_batch()), ValueError,
        r"y has shape \(4,\) but the prediction has shape \(4, 1\)"),
    bad("mixed_precision/mse_loss-list-target",
        lambda: mp.mse_loss(_cruncher(), _batch()[0], [0.0] * 4), TypeError,
        r"y must be a tensor of targets, got list"),
    bad("mixed_precision/mse_loss-empty", lambda: mp.mse_loss(_cruncher(), torch.zeros(0, 4),
                                                              torch.zeros(0)),
        ValueError, r"x must hold at least one example"),
    bad("mixed_precision/accumulate-column-target",
        lambda: mp.accumulate_gradients(_cruncher(), _batch()[0], torch.zeros(4, 1), 2),
        ValueError, r"y has shape \(2, 1\) but the prediction has shape \(2,\)"),
    bad("mixed_precision/accumulate-column-prediction",
        lambda: mp.accumulate_gradients(_linear_head(), *_batch(), 2), ValueError,
        r"y has shape \(2,\) but the prediction has shape \(2, 1\)"),
    bad("mixed_precision/accumulate-short-target",
        lambda: mp.accumulate_gradients(_cruncher(), _batch()[0], torch.zeros(2), 2), ValueError,
        r"y must hold one target per row of x \(4\), got shape \(2,\)"),
    bad("mixed_precision/accumulate-x-None",
        lambda: mp.accumulate_gradients(_cruncher(), None, torch.zeros(4), 2), TypeError,
        r"x must be a floating-point tensor"),
    bad("mixed_precision/accumulate-uneven",
        lambda: mp.accumulate_gradients(_cruncher(), *_batch(), 3), ValueError,
        r"does not split into num_micro_batches=3", "num_micro_batches"),
    bad("mixed_precision/accumulate-scale_loss-str",
        lambda: mp.accumulate_gradients(_cruncher(), *_batch(), 2, scale_loss="no"), TypeError,
        r"scale_loss must be True or False, got 'no'"),
    bad("mixed_precision/quantize_fp8-empty", lambda: mp.quantize_fp8(torch.zeros(0)),
        ValueError, r"x is empty \(shape \(0,\)\)"),
    bad("mixed_precision/quantize_fp8-int",
        lambda: mp.quantize_fp8(torch.zeros(3, dtype=torch.long)), TypeError,
        r"needs x to be a floating tensor, got torch.int64", "x"),
    bad("mixed_precision/quantize_fp8-list", lambda: mp.quantize_fp8([1.0, 2.0]), TypeError,
        r"needs x to be a floating tensor, got list", "x"),
    bad("mixed_precision/quantize_fp8-nan",
        lambda: mp.quantize_fp8(torch.tensor([1.0, NAN])), ValueError, r"x holds inf or NaN"),
    bad("mixed_precision/compare_precisions-str",
        lambda: mp.compare_precisions(4, 1, 4, precisions="bf16", device="cpu"), TypeError,
        r"precisions must be a list of names, e.g. \['bf16'\], not the string 'bf16'"),
    bad("mixed_precision/compare_precisions-empty",
        lambda: mp.compare_precisions(4, 1, 4, precisions=[], device="cpu"), ValueError,
        r"precisions must name at least one of"),
    bad("mixed_precision/compare_precisions-fp8",
        lambda: mp.compare_precisions(4, 1, 4, precisions=["fp8"], device="cpu"), ValueError,
        r"unknown precision 'fp8' in precisions", "precisions"),
    bad("mixed_precision/compare_precisions-lr-inf",
        lambda: mp.compare_precisions(4, 1, 4, precisions=["fp32"], lr=INF, device="cpu"),
        ValueError, r"lr must be a finite number > 0, got inf"),
    bad("mixed_precision/compare_precisions-device",
        lambda: mp.compare_precisions(4, 1, 4, precisions=["fp32"], device="gpu"), ValueError,
        r"'gpu' is not a device", "device"),
    bad("mixed_precision/compare_precisions-seed",
        lambda: mp.compare_precisions(4, 1, 4, precisions=["fp32"], seed="a", device="cpu"),
        TypeError, r"seed must be an int"),
    bad("mixed_precision/compare_precisions-no-layers",
        lambda: mp.compare_precisions(4, 0, 4, device="cpu"), ValueError,
        r"num_layers must be positive, got 0"),
    bad("mixed_precision/checkpointing_peak-no-layers",
        lambda: mp.checkpointing_peak_bytes(4, 0, 8), ValueError,
        r"num_layers must be positive, got 0"),
    bad("mixed_precision/checkpointing_peak-segment",
        lambda: mp.checkpointing_peak_bytes(4, 2, 8, 3), ValueError,
        r"segment_size 3 does not divide num_layers 2"),
    bad("mixed_precision/checkpointed_forward-wrong-dim",
        lambda: mp.checkpointed_forward(_cruncher(), torch.zeros(2, 5), 1), ValueError,
        r"x must be \(batch, 4\)"),
    bad("mixed_precision/count_zeros-ints", lambda: mp.count_zeros([0, 1]), TypeError,
        r"tensors must hold only tensors, got \['int'\]"),
    bad("mixed_precision/count_zeros-one-tensor", lambda: mp.count_zeros(torch.zeros(3)),
        TypeError, r"tensors must be a list of tensors"),
    bad("mixed_precision/saved_for_backward-parameters-None",
        lambda: mp.saved_for_backward(lambda: None, None), TypeError,
        r"parameters must be a list of tensors"),
    bad("mixed_precision/format_precision_table-ints", lambda: mp.format_precision_table([1]),
        TypeError, r"runs must be the list of PrecisionRun"),
    bad("mixed_precision/PrecisionRun-no-losses",
        lambda: mp.PrecisionRun("fp32", 1.0, 1, None, []), ValueError,
        r"losses must hold at least one loss"),
    bad("mixed_precision/PrecisionRun-zero-seconds",
        lambda: mp.PrecisionRun("fp32", 0.0, 1, None, [1.0]), ValueError,
        r"step_seconds must be a number > 0"),
    bad("mixed_precision/float_format-name", lambda: mp.float_format("bf16"), TypeError,
        r"float_format needs a floating torch.dtype, got 'bf16'", "dtype"),
    bad("mixed_precision/format_float_table-empty", lambda: mp.format_float_table({}), ValueError,
        r"formats must name at least one dtype"),
    bad("mixed_precision/format_checkpointing_costs-ints",
        lambda: mp.format_checkpointing_costs([1]), TypeError,
        r"costs must be the list of CheckpointingCost"),
    bad("mixed_precision/gpu_checkpointing_peaks-cpu",
        lambda: mp.gpu_checkpointing_peaks(4, 1, 4, {"none": None}, "cpu"), ValueError,
        r"device must be a CUDA GPU"),
    bad("mixed_precision/grad_scaler_steps-zero-interval",
        lambda: mp.grad_scaler_steps(_cruncher(), [], growth_interval=0), ValueError,
        r"growth_interval must be positive, got 0"),
    bad("mixed_precision/format_step_timings-untimed",
        lambda: mp.format_step_timings([mp.PrecisionRun("fp32", 1.0, 1, None, [1.0])]),
        ValueError, r"runs must be compare_precisions' runs, each with its step_timing"),
    bad("mixed_precision/plot_precision_runs-empty", lambda: mp.plot_precision_runs([], "t"),
        ValueError, r"no runs to plot", "runs"),
]

# --- transformer (notebook 09) ----------------------------------------------------------------

CASES += [
    bad("transformer/config-name-None", lambda: tr.gpt2_config(None, 16, 1, 2), TypeError,
        r"name must be a string"),
    bad("transformer/make_norm-None", lambda: tr.make_norm(None), TypeError,
        r"cfg must be a TransformerConfig"),
    bad("transformer/rope_tables-odd", lambda: tr.rope_tables(3, 4, 1e4), ValueError,
        r"head_dim=3 must be even", "head_dim"),
    bad("transformer/rope_tables-theta", lambda: tr.rope_tables(4, 4, 0), ValueError,
        r"rope_theta must be a number > 1, got 0", "theta"),
    bad("transformer/rope_tables-context", lambda: tr.rope_tables(4, -1, 1e4), ValueError,
        r"context_length must be positive, got -1"),
    bad("transformer/apply_rope-mismatch",
        lambda: tr.apply_rope(torch.ones(1, 4, 2, 8), *tr.rope_tables(6, 4, 1e4)), ValueError,
        r"x must be \(b, t, h, d\) and cos, sin both \(t, d\)"),
    bad("transformer/RMSNorm-zero", lambda: tr.RMSNorm(0), ValueError,
        r"dim must be positive, got 0"),
    bad("transformer/RMSNorm-eps", lambda: tr.RMSNorm(4, eps=-1), ValueError,
        r"eps must be a finite number >= 0, got -1"),
    bad("transformer/KVCache-layer",
        lambda: tr.KVCache(_tiny_cfg(), 1, 4).store(5, torch.zeros(1, 1, 2, 8),
                                                    torch.zeros(1, 1, 2, 8)),
        ValueError, r"layer must be an int in 0..0, got 5"),
    bad("transformer/KVCache-negative-layer",
        lambda: tr.KVCache(_tiny_cfg(), 1, 4).store(-1, torch.zeros(1, 1, 2, 8),
                                                     torch.zeros(1, 1, 2, 8)),
        ValueError, r"layer must be an int in 0..0, got -1"),
    bad("transformer/KVCache-heads",
        lambda: tr.KVCache(_tiny_cfg(), 1, 4).store(0, torch.zeros(1, 1, 3, 8),
                                                    torch.zeros(1, 1, 3, 8)),
        ValueError, r"k must be \(batch, tokens, 2, 8\) for this cache, got \(1, 1, 3, 8\)"),
    bad("transformer/KVCache-dtype", lambda: tr.KVCache(_tiny_cfg(), 1, 4, dtype="fp7"),
        ValueError, r"unknown dtype name 'fp7'", "dtype"),
    bad("transformer/forward-cache-int", lambda: _transformer()(_ids(1, 3), cache=3), TypeError,
        r"cache must be a KVCache or None, got int"),
    bad("transformer/forward-bool-ids",
        lambda: _transformer()(torch.zeros(1, 3, dtype=torch.bool)), TypeError,
        r"ids must be a \(batch, seq_len\) integer tensor of token ids"),
    bad("transformer/forward-id-too-large", lambda: _transformer()(torch.tensor([[40]])),
        ValueError, r"token ids in ids must be in \[0, 32\)", "ids"),
    bad("transformer/loss-target-too-large",
        lambda: tr.language_model_loss(_transformer(), _ids(1, 3), torch.full((1, 3), 40)),
        ValueError, r"token ids in targets must be in \[0, 32\)", "targets"),
    bad("transformer/loss-float-targets",
        lambda: tr.language_model_loss(_transformer(), _ids(1, 3), torch.zeros(1, 3)),
        TypeError, r"targets must be a \(batch, seq_len\) integer tensor"),
    bad("transformer/loss-targets-shape",
        lambda: tr.language_model_loss(_transformer(), _ids(1, 3), _ids(1, 2)), ValueError,
        r"targets must have the shape of ids, \(1, 3\)"),
    bad("transformer/loss-model-None",
        lambda: tr.language_model_loss(None, _ids(1, 3), _ids(1, 3)), TypeError,
        r"model must be a Transformer"),
    bad("transformer/generate-use_cache-str",
        lambda: tr.generate(_transformer(), _ids(1, 3), 2, use_cache="no"), TypeError,
        r"use_cache must be True or False, got 'no'"),
    bad("transformer/generate-model-None", lambda: tr.generate(None, _ids(1, 3), 2), TypeError,
        r"model must be a Transformer"),
    bad("transformer/layer_parameters-None", lambda: tr.layer_parameters(None), TypeError,
        r"cfg must be a TransformerConfig"),
    bad("transformer/plain_log_ticks-None", lambda: tr.plain_log_ticks(None), TypeError,
        r"axes must be matplotlib axes"),
    bad("transformer/forward_flops-batch", lambda: tr.forward_flops(_tiny_cfg(), 0, 4),
        ValueError, r"batch must be positive, got 0"),
    bad("transformer/estimate_mfu-seconds",
        lambda: tr.estimate_mfu(_tiny_cfg(), 1, 4, 0, gpu="H100 SXM"), ValueError,
        r"step_seconds must be a finite number > 0"),
    bad("transformer/plot_flops_vs_context-empty",
        lambda: tr.plot_flops_vs_context(_tiny_cfg(), []), ValueError,
        r"seq_lens must be a non-empty list"),
    bad("transformer/plot_parameter_shares-str",
        lambda: tr.plot_parameter_shares("gpt2-small"), ValueError,
        r"names must be a non-empty list"),
    bad("transformer/plot_training_memory-empty",
        lambda: tr.plot_training_memory_vs_batch(_tiny_cfg(), 4, []), ValueError,
        r"batches must be a non-empty list"),
]

# --- profiling (notebook 10) ------------------------------------------------------------------

CASES += [
    bad("profiling/profiler_flops-None", lambda: pr.profiler_flops(None), TypeError,
        r"prof must be a finished profile"),
    bad("profiling/operator_stats-None", lambda: pr.operator_stats("profile"), TypeError,
        r"prof must be a finished profile, as profile_once\(fn\) returns, got str"),
    bad("profiling/find_operator-missing", lambda: pr.find_operator(_stats(), "aten::conv2d"),
        pr.UnknownOperatorError, r"no operator named 'aten::conv2d' in this profile", "name"),
    bad("profiling/find_operator-name-None", lambda: pr.find_operator(_stats(), None),
        TypeError, r"name must be an operator's name"),
    bad("profiling/find_operator-stats-None", lambda: pr.find_operator(None, "aten::mm"),
        TypeError, r"stats must be the list operator_stats\(prof\) returns"),
    bad("profiling/format_operator_table-times",
        lambda: pr.format_operator_table(_stats(), times="no"), TypeError,
        r"times must be True or False, got 'no'"),
    bad("profiling/format_operator_table-by",
        lambda: pr.format_operator_table(_stats(), by="bogus"), ValueError,
        r"by must be one of the OperatorStats numbers"),
    bad("profiling/export_trace-None", lambda: pr.export_trace(None, "x"), TypeError,
        r"prof must be a finished profile"),
    bad("profiling/trace_event_names-not-json",
        lambda: pr.trace_event_names(ROOT / "README.md"), ValueError,
        r"path '.*README.md' is not a Chrome trace"),
    bad("profiling/trace_event_names-not-a-trace",
        lambda: pr.trace_event_names(ROOT / "notebooks" / "00_napkin_math.ipynb"), ValueError,
        r"path '.*' is JSON but not a Chrome trace: it has no traceEvents"),
    bad("profiling/by_category-None", lambda: pr.by_category(None), TypeError,
        r"snapshot must be a MemTracker snapshot"),
    bad("profiling/memory_by_phase-optimizer-None",
        lambda: pr.memory_by_phase(lambda: torch.ones(1, requires_grad=True).sum(), None),
        TypeError, r"optimizer must be a torch.optim.Optimizer"),
    bad("profiling/growth_per_call-missing-category",
        lambda: pr.growth_per_call([{}, {}]), TypeError, r"after must be the list"),
    bad("profiling/growth_per_call-one", lambda: pr.growth_per_call([1]), ValueError,
        r"need the memory after at least 2 calls", "after"),
    bad("profiling/format_reconciliation-None", lambda: pr.format_reconciliation(None),
        TypeError, r"rec must be a Reconciliation"),
    bad("profiling/parameter_tensors-None", lambda: pr.parameter_tensors(None), TypeError,
        r"cfg must be a TransformerConfig"),
    bad("profiling/time_matmuls-int", lambda: pr.time_matmuls(4), ValueError,
        r"sizes must name at least one matrix size"),
    bad("profiling/allocated_over_time-None", lambda: pr.allocated_over_time(None), ValueError,
        r"expected a CUDA memory snapshot", "snapshot"),
    bad("profiling/allocated_over_time-bad-events",
        lambda: pr.allocated_over_time({"device_traces": [[{"x": 1}]]}), ValueError,
        r"snapshot's trace events must have an action and a size"),
    bad("profiling/plot_memory_by_phase-bad",
        lambda: pr.plot_memory_by_phase({"a": {}}, "t"), ValueError,
        r"phases must be what memory_by_phase returns"),
    bad("profiling/plot_matmul_overhead-empty", lambda: pr.plot_matmul_overhead([]),
        ValueError, r"timings must be the non-empty list"),
    bad("profiling/MatmulTiming-no-times", lambda: pr.MatmulTiming(4, ()), ValueError,
        r"times must hold at least one"),
    bad("profiling/overhead_summary-empty", lambda: pr.overhead_summary([]), ValueError,
        r"timings must be the non-empty list"),
    bad("profiling/format_matmul_timing-None", lambda: pr.format_matmul_timing(None, 1e-6),
        TypeError, r"timing must be one MatmulTiming"),
    bad("profiling/format_matmul_timing-overhead", lambda: pr.format_matmul_timing(
        pr.MatmulTiming(4, (1e-6,)), 0), ValueError, r"overhead must be a finite number"),
    bad("profiling/overhead_crossover-nan", lambda: pr.overhead_crossover(NAN, 1), ValueError,
        r"overhead_seconds must be a finite number > 0"),
    bad("profiling/launch_vs_kernel-cpu", lambda: pr.launch_vs_kernel(4, "cpu"), ValueError,
        r"needs a CUDA device .*got cpu", "device"),
    bad("profiling/predicted_peak-no-layers", lambda: pr.predicted_peak_by_category(4, 0, 2),
        ValueError, r"num_layers must be >= 1"),
    bad("profiling/cruncher_step_flops-no-layers", lambda: pr.cruncher_step_flops(4, 0, 2),
        ValueError, r"num_layers must be positive"),
]

# --- distributed (notebook 11) ----------------------------------------------------------------

CASES += [
    bad("distributed/sharded_parts-float", lambda: D.sharded_parts(1.0), ValueError,
        r"zero_stage must be one of \(0, 1, 2, 3\)"),
    bad("distributed/sharded_parts-precision", lambda: D.sharded_parts(1, "bf16"), ValueError,
        r"unknown precision 'bf16'", "precision"),
    bad("distributed/bytes_per_gpu-nan", lambda: D.bytes_per_gpu(NAN, 8, 1), ValueError,
        r"num_parameters must be a finite number > 0"),
    bad("distributed/bytes_per_gpu-no-gpus", lambda: D.bytes_per_gpu(1e9, 0, 1), ValueError,
        r"num_gpus must be >= 1"),
    bad("distributed/ring-unknown", lambda: D.ring_bytes_per_gpu("allreduce", 1, 8), ValueError,
        r"unknown collective 'allreduce'", "collective"),
    bad("distributed/step_time-mfu", lambda: D.step_time(1e9, 1e3, 8, 1, "NVLink 4", mfu=2),
        ValueError, r"mfu is a fraction of the peak"),
    bad("distributed/payload_by_kind-ints", lambda: D.payload_by_kind([1]), TypeError,
        r"calls must be a list of Collective"),
    bad("distributed/cruncher_and_batch-None", lambda: D.cruncher_and_batch(None), TypeError,
        r"config must be a TrainConfig, got NoneType"),
    bad("distributed/predicted_rank_bytes-None",
        lambda: D.predicted_rank_bytes("ddp", None, 2), TypeError,
        r"config must be a TrainConfig"),
    bad("distributed/storage_bytes-ints", lambda: D.storage_bytes([1]), TypeError,
        r"tensors must hold only tensors"),
    bad("distributed/zero_partition-negative", lambda: D.zero_partition([-1], 2), ValueError,
        r"numels must be parameter sizes"),
    bad("distributed/StrategyRun-rank",
        lambda: D.StrategyRun("ddp", 1, 10, [{"collectives": []}], 0.0).collectives(3),
        ValueError, r"rank must be in 0..0, got 3"),
    bad("distributed/wrap_for_strategy-unknown",
        lambda: D.wrap_for_strategy(_cruncher(), "zero2", 0.1), ValueError,
        r"unknown strategy 'zero2'", "strategy"),
    bad("distributed/format_rank_bytes-None",
        lambda: D.format_rank_bytes(None, D.TrainConfig()), TypeError,
        r"runs must be the dict measure_strategies returns"),
    bad("distributed/plot_step_times-str-links",
        lambda: D.plot_step_times(1e9, 1e3, 8, links="NVLink 4"), TypeError,
        r"links must be a non-empty list of link names"),
    bad("distributed/stage_step_times-number-link",
        lambda: D.stage_step_times(1e9, 1e3, 8, links=["NVLink 4", 450e9]), TypeError,
        r"links must be a non-empty list of link names"),
    bad("distributed/TrainConfig-lr", lambda: D.TrainConfig(lr=INF), ValueError,
        r"lr must be a finite number > 0, got inf"),
    bad("distributed/run_on_ranks-world_size",
        lambda: D.run_on_ranks(D.all_reduce_rank_ids, 0), ValueError,
        r"world_size must be >= 1, got 0"),
    bad("distributed/run_on_ranks-lambda", lambda: D.run_on_ranks(lambda r, w: r, 2),
        ValueError, r"fn must be a top-level function of an importable module"),
    bad("distributed/StepTime-phases", lambda: D.StepTime({}, {}), ValueError,
        r"compute must give seconds for each phase"),
    bad("distributed/measure_strategies-str", lambda: D.measure_strategies(2, "ddp"),
        ValueError, r"strategies must be a non-empty list"),
]

# --- device -------------------------------------------------------------------------------------

CASES += [
    bad("device/parse_device-None", lambda: dev.parse_device(None), TypeError,
        r"device must be a name such as 'cpu' or 'cuda:0', or a torch.device; got None"),
    bad("device/parse_device-unknown", lambda: dev.parse_device("gpu0"), ValueError,
        r"'gpu0' is not a device", "device"),
    bad("device/as_device-int", lambda: dev.as_device(3), TypeError, r"device must be a name"),
    bad("device/supports_dtype-name", lambda: dev.supports_dtype("cpu", "bf16"), TypeError,
        r"dtype must be a torch.dtype"),
    bad("device/get_device-index", lambda: dev.get_device(-1), ValueError,
        r"index must be a GPU number >= 0, got -1"),
    bad("device/get_device-dtypes-str", lambda: dev.get_device(dtypes="bf16"), TypeError,
        r"dtypes must be a tuple of torch dtypes"),
    bad("device/Needs-negative", lambda: dev.Needs(-1), ValueError,
        r"Needs.memory_bytes must be a finite number >= 0", "memory_bytes"),
    bad("device/Needs-nan-flops", lambda: dev.Needs(1, fp32_flops=NAN), ValueError,
        r"Needs.fp32_flops must be a finite number >= 0", "fp32_flops"),
    bad("device/by_scale-number", lambda: dev.by_scale(1, 2, needs=3), TypeError,
        r"needs must be a Needs"),
    bad("device/explain_scale-None", lambda: dev.explain_scale(None), TypeError,
        r"needs must be a Needs"),
    bad("device/lecture_scale_fits-device", lambda: dev.lecture_scale_fits(dev.Needs(1), "gpu"),
        ValueError, r"'gpu' is not a device", "device"),
    bad("device/synchronize-unknown", lambda: dev.synchronize("gpu"), ValueError,
        r"'gpu' is not a device", "device"),
    bad("device/free_gpu_bytes-cpu", lambda: dev.free_gpu_bytes("cpu"), ValueError,
        r"free_gpu_bytes needs a CUDA device, got device 'cpu'", "device"),
    bad("device/describe_device-cuda-missing", lambda: dev.describe_device("cuda"),
        RuntimeError, r"device 'cuda' asks for CUDA, but CUDA is not available",
        marks=_NO_CUDA),
]

# --- exercises ----------------------------------------------------------------------------------

CASES += [
    bad("exercises/check-unknown-number", lambda: op.EXERCISES.check(99, 1),
        ex.UnknownExerciseError,
        r"notebook 06 has no exercise 99 \(it has 1, 2, 3, 4, 5\): pass the exercise's number",
        "number"),
    bad("exercises/feedback-str-number", lambda: dt.EXERCISES.feedback("1", 1),
        ex.UnknownExerciseError, r"has no exercise '1' .*number"),
    bad("exercises/feedback-list-number", lambda: tr.EXERCISES.feedback([1], 1),
        ex.UnknownExerciseError, r"has no exercise \[1\] .*number"),
]

# --- training (notebook 07) -------------------------------------------------------------------


@functools.cache
def _byte_model() -> trn.ByteModel:
    return trn.ByteModel(4, 1)


def _tokens() -> np.ndarray:
    return np.arange(100, dtype=np.uint16) % 256


CASES += [
    bad("training/seed_everything-str", lambda: trn.seed_everything("1"), TypeError, r"seed must be an int"),
    bad("training/seed_everything-negative", lambda: trn.seed_everything(-1), ValueError,
        r"seed must be in \[0, 2\*\*32\)"),
    bad("training/make_generator-negative", lambda: trn.make_generator(-1), ValueError,
        r"seed must be in \[0, 2\*\*64\)"),
    bad("training/make_generator-too-large", lambda: trn.make_generator(2**64), ValueError,
        r"seed must be in \[0, 2\*\*64\)"),
    bad("training/make_generator-float", lambda: trn.make_generator(1.5), TypeError, r"seed must be an int"),
    bad("training/count_windows-zero", lambda: trn.count_windows(0, 8), ValueError,
        r"num_tokens must be a positive int"),
    bad("training/count_windows-str", lambda: trn.count_windows(100, "8"), TypeError,
        r"context_length must be an int"),
    bad("training/get_batch-no-generator", lambda: trn.get_batch(_tokens(), 2, 8, "cpu", None), TypeError,
        r"generator must be a torch.Generator"),
    bad("training/get_batch-list", lambda: trn.get_batch(list(_tokens()), 2, 8, "cpu",
                                                trn.make_generator(0)),
        TypeError, r"data must be a 1-D NumPy array"),
    bad("training/get_batch-2d", lambda: trn.get_batch(_tokens().reshape(10, 10), 2, 8, "cpu",
                                              trn.make_generator(0)),
        ValueError, r"data must be a 1-D array of tokens, got shape \(10, 10\)"),
    bad("training/get_batch-zero-batch", lambda: trn.get_batch(_tokens(), 0, 8, "cpu",
                                                      trn.make_generator(0)),
        ValueError, r"batch_size must be a positive int"),
    bad("training/get_batch-context-too-long", lambda: trn.get_batch(_tokens(), 2, 500, "cpu",
                                                            trn.make_generator(0)),
        ValueError, r"cannot fill one window .* shorter context_length", "context_length"),
    bad("training/ByteModel-zero-dim", lambda: trn.ByteModel(0, 1), ValueError, r"dim must be a positive"),
    bad("training/ByteModel-negative-layers", lambda: trn.ByteModel(4, -1), ValueError,
        r"num_layers must be an int >= 0"),
    bad("training/ByteModel-token-past-vocab", lambda: _byte_model()(torch.tensor([[256]])), ValueError,
        r"tokens holds token id 256, but the vocabulary has 256 ids"),
    bad("training/ByteModel-negative-token", lambda: _byte_model()(torch.tensor([[-1]])), ValueError,
        r"tokens holds token id -1"),
    bad("training/next_token_loss-shape", lambda: trn.next_token_loss(
        torch.zeros(2, 3, 256), torch.zeros(2, 4, dtype=torch.long)), ValueError,
        r"targets must have shape logits.shape\[:-1\] = \(2, 3\), got \(2, 4\)"),
    bad("training/train-zero-steps", lambda: trn.train(
        _byte_model(), torch.optim.SGD(_byte_model().parameters(), lr=0.1), _tokens(),
        trn.make_generator(0), steps=0, batch_size=2, context_length=8),
        ValueError, r"steps must be a positive int"),
    bad("training/save_checkpoint-negative-step", lambda: trn.save_checkpoint(
        Path("c.pt"), _byte_model(), torch.optim.SGD(_byte_model().parameters(), lr=0.1), step=-1),
        ValueError, r"step must be an int >= 0"),
    bad("training/save_checkpoint-model-str", lambda: trn.save_checkpoint(
        Path("c.pt"), "model", torch.optim.SGD(_byte_model().parameters(), lr=0.1), step=0),
        TypeError, r"model must be a torch.nn.Module"),
    bad("training/save_checkpoint-optimizer-str", lambda: trn.save_checkpoint(
        Path("c.pt"), _byte_model(), "adam", step=0), TypeError,
        r"optimizer must be a torch.optim.Optimizer"),
    bad("training/save_checkpoint-no-directory", lambda: trn.save_checkpoint(
        ROOT / "no such directory" / "c.pt", _byte_model(),
        torch.optim.SGD(_byte_model().parameters(), lr=0.1), step=0),
        FileNotFoundError, r"the directory for c.pt does not exist: create it", "c.pt"),
    bad("training/save_checkpoint-onto-directory", lambda: trn.save_checkpoint(
        ROOT / "tests", _byte_model(), torch.optim.SGD(_byte_model().parameters(), lr=0.1),
        step=0), IsADirectoryError, r"checkpoint 'tests' is a directory", "tests"),
    bad("training/read_checkpoint-missing", lambda: trn.read_checkpoint(ROOT / "none.pt"),
        trn.CheckpointError, r"checkpoint 'none.pt' does not exist", "none.pt"),
    bad("training/read_checkpoint-directory", lambda: trn.read_checkpoint(ROOT / "tests"),
        trn.CheckpointError, r"checkpoint 'tests' is a directory, not a checkpoint file", "tests"),
    bad("training/load_checkpoint-model-str", lambda: trn.load_checkpoint(ROOT / "none.pt", "model"),
        TypeError, r"model must be a torch.nn.Module"),
    bad("training/load_tokens-missing", lambda: trn.load_tokens(ROOT / "none.bin"), FileNotFoundError,
        r"no token file none.bin: run `python data/make_tokens.py`", "none.bin"),
    bad("training/empirical_entropies-one-token", lambda: trn.empirical_entropies(np.array([1])),
        ValueError, r"need a 1-D array of at least 2 tokens", "tokens"),
    bad("training/create_sparse_file-zero", lambda: trn.create_sparse_file(ROOT / "x.bin", 0), ValueError,
        r"num_bytes must be a positive int"),
    bad("training/sample_sparse_file-no-batches",
        lambda: trn.sample_sparse_file(ROOT, 10, num_batches=0, batch_size=1, context_length=1),
        ValueError, r"num_batches must be a positive int"),
    bad("training/moving_average-zero-window", lambda: trn.moving_average([1.0], window=0),
        ValueError, r"window must be a positive int"),
    bad("training/plot_resumes-stop_at", lambda: trn.plot_resumes([1.0, 2.0], {}, stop_at=5),
        ValueError, r"stop_at must be a step inside the run"),
    bad("training/flip_exponent_bit-float64",
        lambda: trn.flip_exponent_bit(b"", torch.zeros(2, dtype=torch.float64)), TypeError,
        r"tensor must be a float32 tensor"),
]

# --- napkin and hardware (notebook 00), and the napkin command line --------------------------

CASES += [
    bad("napkin/training_flops-zero", lambda: nk.training_flops(0, 1e9), ValueError,
        r"num_parameters must be a finite number > 0"),
    bad("napkin/training_flops-str", lambda: nk.training_flops("7e9", 1e9), TypeError,
        r"num_parameters must be a number, got str"),
    bad("napkin/training_flops-nan", lambda: nk.training_flops(NAN, 1e9), ValueError,
        r"num_parameters must be a finite number > 0, got nan"),
    bad("napkin/training_days-mfu-above-one", lambda: nk.training_days(7e9, 1e12, 8, mfu=1.5),
        ValueError, r"mfu is a fraction of the peak, at most 1"),
    bad("napkin/training_days-zero-gpus", lambda: nk.training_days(7e9, 1e12, 0), ValueError,
        r"num_gpus must be a finite number > 0"),
    bad("napkin/training_days-unknown-gpu", lambda: nk.training_days(7e9, 1e12, 8, gpu="H1000"),
        UnknownGPUError, r"no datasheet entry for GPU 'H1000'", "H1000"),
    bad("napkin/training_days-unknown-dtype", lambda: nk.training_days(7e9, 1e12, 8, dtype="fp7"),
        ValueError, r"unknown dtype 'fp7'; use one of", "dtype"),
    bad("napkin/training_days-no-bf16-on-T4", lambda: nk.training_days(7e9, 1e12, 8, gpu="T4",
                                                                dtype="bf16"),
        ValueError, r"T4 has no bf16 figure on its datasheet", "bf16"),
    bad("napkin/bytes_per_parameter-optimizer", lambda: nk.bytes_per_parameter("adamax"), ValueError,
        r"unknown optimizer 'adamax'; use one of", "optimizer"),
    bad("napkin/bytes_per_parameter-precision", lambda: nk.bytes_per_parameter("adamw", "bf16"),
        ValueError, r"unknown precision 'bf16'; use one of", "precision"),
    bad("napkin/max_parameters-negative-memory", lambda: nk.max_parameters(8, -1, 16), ValueError,
        r"memory_per_gpu must be a finite number > 0"),
    bad("napkin/max_parameters-inf-bytes", lambda: nk.max_parameters(8, 80e9, INF), ValueError,
        r"bytes_per_param must be a finite number > 0, got inf"),
    bad("hardware/lookup_gpu-empty", lambda: hw.lookup_gpu(""), TypeError,
        r"GPU name must be a non-empty string", "GPU name"),
    bad("hardware/lookup_gpu-GH200", lambda: hw.lookup_gpu("NVIDIA GH200 480GB"), UnknownGPUError,
        r"'NVIDIA GH200 480GB': GH200 is a Grace Hopper superchip", "GH200"),
    bad("hardware/lookup_gpu-H200-NVL", lambda: hw.lookup_gpu("NVIDIA H200 NVL"), UnknownGPUError,
        r"the H200 NVL runs at lower clocks", "H200 NVL"),
    bad("hardware/lookup_gpu-ambiguous-V100", lambda: hw.lookup_gpu("V100"), UnknownGPUError,
        r"GPU name 'V100' is ambiguous: it could be V100 SXM2 16GB or V100 SXM2 32GB", "V100"),
    bad("hardware/gpu_by_name-other-part", lambda: hw.gpu_by_name("GH200"), UnknownGPUError,
        r"no GPU named 'GH200' in the table: GH200 is a Grace Hopper superchip", "GH200"),
    bad("hardware/gpu_by_name-typo", lambda: hw.gpu_by_name("H10 SXM"), UnknownGPUError,
        r"no GPU named 'H10 SXM' in the table; did you mean H100 SXM", "H10 SXM"),
    bad("hardware/peak_flops-int-dtype", lambda: hw.peak_flops("H100 SXM", 16), TypeError,
        r"dtype must be a str or torch.dtype"),
    bad("hardware/peak_flops-int8", lambda: hw.peak_flops("H100 SXM", torch.int8), ValueError,
        r"no datasheet peak for torch.int8; floating dtypes only", "int8"),
    bad("hardware/lookup_link-unknown", lambda: hw.lookup_link("NVLink 9"), UnknownLinkError,
        r"no interconnect named 'NVLink 9'; use one of", "NVLink 9"),
    bad("hardware/lookup_link-none", lambda: hw.lookup_link(None), TypeError,
        r"link name must be a non-empty string", "link name"),
]


def _cli(*argv: str) -> None:
    """Run the napkin command line; a usage error comes back as a ValueError with its message."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            nk.main(list(argv))
        except SystemExit as e:
            if e.code:
                raise ValueError(stderr.getvalue().strip().splitlines()[-1]) from None


_TIME = ("train-time", "--params", "7e9", "--tokens", "1e12", "--gpus", "8")
CASES += [
    bad("cli/zero-params", lambda: _cli("train-time", "--params", "0", "--tokens", "1e12",
                                        "--gpus", "8"),
        ValueError, r"argument --params: must be > 0, got 0", "--params"),
    bad("cli/negative-tokens", lambda: _cli("train-time", "--params", "7e9", "--tokens", "-1",
                                            "--gpus", "8"),
        ValueError, r"argument --tokens: must be > 0, got -1", "--tokens"),
    bad("cli/fractional-gpus", lambda: _cli("train-time", "--params", "7e9", "--tokens", "1e12",
                                            "--gpus", "2.5"),
        ValueError, r"argument --gpus: must be a whole number >= 1, got 2.5", "--gpus"),
    bad("cli/mfu-above-one", lambda: _cli(*_TIME, "--mfu", "1.5"), ValueError,
        r"argument --mfu: must be in \(0, 1\], got 1.5", "--mfu"),
    bad("cli/nan-mfu", lambda: _cli(*_TIME, "--mfu", "nan"), ValueError,
        r"argument --mfu: must be a finite number, got nan", "--mfu"),
    bad("cli/inf-params", lambda: _cli("train-time", "--params", "inf", "--tokens", "1e12",
                                       "--gpus", "8"),
        ValueError, r"argument --params: must be a finite number", "--params"),
    bad("cli/word-for-number", lambda: _cli("train-time", "--params", "abc", "--tokens", "1e12",
                                            "--gpus", "8"),
        ValueError, r"argument --params: must be a number such as 8 or 70e9, got 'abc'",
        "--params"),
    bad("cli/gpu-typo", lambda: _cli(*_TIME, "--gpu", "H10"), ValueError,
        r"argument --gpu: no GPU named 'H10' in the table; did you mean H100 SXM", "--gpu"),
    bad("cli/cuda-name-not-guessed", lambda: _cli(*_TIME, "--gpu", "H1000"), ValueError,
        r"argument --gpu: no GPU named 'H1000'", "--gpu"),
    bad("cli/unknown-dtype", lambda: _cli(*_TIME, "--dtype", "fp7"), ValueError,
        r"argument --dtype: unknown dtype 'fp7'; use one of", "--dtype"),
    bad("cli/dtype-the-gpu-lacks", lambda: _cli(*_TIME, "--gpu", "T4", "--dtype", "bf16"),
        ValueError, r"argument --dtype: T4 has no bf16 figure", "--dtype"),
    bad("cli/gpu-other-part", lambda: _cli("max-params", "--gpus", "8", "--gpu", "GH200"),
        ValueError, r"argument --gpu: no GPU named 'GH200' in the table: GH200 is a Grace Hopper",
        "--gpu"),
    bad("cli/zero-memory", lambda: _cli("max-params", "--gpus", "8", "--memory-gb", "0"),
        ValueError, r"argument --memory-gb: must be > 0, got 0", "--memory-gb"),
    bad("cli/zero-bytes-per-param", lambda: _cli("max-params", "--gpus", "8",
                                                 "--bytes-per-param", "0"),
        ValueError, r"argument --bytes-per-param: must be > 0, got 0", "--bytes-per-param"),
    bad("cli/unknown-optimizer", lambda: _cli("max-params", "--gpus", "8", "--optimizer",
                                              "adamax"),
        ValueError, r"argument --optimizer: invalid choice: 'adamax'", "--optimizer"),
    bad("cli/zero-stage-4", lambda: _cli("max-params", "--gpus", "8", "--zero-stage", "4"),
        ValueError, r"argument --zero-stage: invalid choice: 4", "--zero-stage"),
    bad("cli/bytes-per-param-with-stage-1", lambda: _cli(
        "max-params", "--gpus", "8", "--zero-stage", "1", "--bytes-per-param", "16"),
        ValueError, r"argument --bytes-per-param: --zero-stage 1 or 2 splits", "--bytes-per-param"),
    bad("cli/zero-gpus", lambda: _cli("max-params", "--gpus", "0"), ValueError,
        r"argument --gpus: must be a whole number >= 1, got 0", "--gpus"),
    bad("cli/unknown-preset", lambda: _cli("transformer", "--preset", "llama5"), ValueError,
        r"argument --preset: invalid choice: 'llama5'", "--preset"),
    bad("cli/zero-seq-len", lambda: _cli("transformer", "--preset", "llama3-8b", "--seq-len", "0"),
        ValueError, r"argument --seq-len: .*must be positive, got 0", "--seq-len"),
    bad("cli/unknown-gpu-for-kv-cache", lambda: _cli("transformer", "--preset", "llama3-8b",
                                                     "--gpu", "X100"),
        ValueError, r"argument --gpu: no GPU named 'X100'", "--gpu"),
]


# ==============================================================================================


# Lookup errors that are documented classes of the course, with a message that reads well.
DOCUMENTED_LOOKUP_ERRORS = (UnknownGPUError, UnknownLinkError, ex.UnknownExerciseError,
                            pr.UnknownOperatorError)
RAW_ERRORS = (IndexError, AttributeError, KeyError)
RAW_MESSAGES = ("index out of range in self", "max(): Expected reduction dim",
                "object has no attribute", "not subscriptable", "unhashable type")


def _params_of(cases: list[Case]) -> list:
    return [pytest.param(c, id=c.id, marks=c.marks) for c in cases]


def test_case_ids_are_unique_and_name_their_module():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all("/" in i for i in ids)


@pytest.mark.parametrize("case", _params_of(CASES))
def test_bad_input_gets_a_clear_error(case):
    with pytest.raises(case.error, match=case.match):
        case.call()


@pytest.mark.parametrize("case", _params_of(CASES))
def test_error_names_the_argument_and_is_no_raw_lookup_error(case):
    assert case.argument.lower() in case.match.lower(), "the regex must mention the argument"
    try:
        case.call()
    except Exception as e:  # noqa: BLE001 (every kind is inspected below)
        error = e
    else:
        pytest.fail("no error raised")
    message = str(error)
    assert case.argument.lower() in message.lower(), message
    if isinstance(error, RAW_ERRORS):
        assert isinstance(error, DOCUMENTED_LOOKUP_ERRORS), f"{type(error).__name__}: {message}"
        assert not message.startswith(("'", '"')), "a KeyError's message printed in quotes"
    assert not any(raw in message for raw in RAW_MESSAGES), message


# --- the exercise checkers: no exception escapes, whatever the answer ---------------------------

EXERCISE_MODULES = ("napkin", "tensors", "dtypes", "flops", "gradients", "models", "optimizers",
                    "training", "mixed_precision", "transformer", "profiling", "distributed")


def _raises(*args: Any) -> Any:
    raise ZeroDivisionError("a student's function that fails")


JUNK_ANSWERS = {
    "nan": NAN,
    "inf": INF,
    "str": "forty-two",
    "list": [1, 2],
    "tensor": torch.tensor([1.0, 2.0]),
    "object": object(),
    "raising-function": _raises,
}


def _all_exercises() -> list:
    cases = []
    for name in EXERCISE_MODULES:
        exercises = importlib.import_module(f"lecture_utils.{name}").EXERCISES
        cases += [pytest.param(exercises, number, id=f"{name}.{number}")
                  for number in sorted(exercises.exercises)]
    return cases


@pytest.mark.parametrize("exercises, number", _all_exercises())
def test_exercise_checkers_never_raise(exercises, number, capsys):
    for what, answer in JUNK_ANSWERS.items():
        verdict = exercises.feedback(number, answer)
        assert isinstance(verdict, ex.Feedback), what
        assert verdict.correct is not True, (what, verdict)  # wrong, or "not answered"
        assert "cannot convert float" not in verdict.message, verdict  # NaN and inf are named
        if what != "raising-function":  # the checker itself says what is wrong, no traceback text
            assert "raised" not in verdict.message, (what, verdict)
        exercises.check(number, answer)
    exercises.check(number, None)
    # A verdict may wrap onto indented lines; each starts with its mark.
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert len(lines) == len(JUNK_ANSWERS) + 1
    assert all(line.startswith(("❌", "⏳")) for line in lines) and lines[-1].startswith("⏳")


def test_check_number_says_what_is_wrong_with_a_non_finite_or_non_scalar_answer():
    for answer in (NAN, torch.tensor(NAN)):
        assert "got nan (not a number)" in ex.check_number(answer, 2.0).message
    for answer in (INF, -INF):
        assert "finite" in ex.check_number(answer, 2.0).message
    assert "one number" in ex.check_number(torch.tensor([1.0, 2.0]), 2.0).message
    assert ex.check_number(1e308, 1e-300).correct is False  # a ratio that overflows
