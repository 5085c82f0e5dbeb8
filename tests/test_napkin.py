import itertools
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lecture_utils import napkin
from lecture_utils.exercises import CORRECT, UNANSWERED
from lecture_utils.hardware import lookup_gpu

REPO = Path(__file__).resolve().parents[1]
TRAIN_TIME = ["train-time", "--params", "70e9", "--tokens", "15e12", "--gpus", "1024"]


def test_lecture_answers():
    assert round(napkin.training_days(70e9, 15e12, 1024, "H100 SXM", "bf16", 0.5)) == 144
    assert napkin.max_parameters(8, 80e9, napkin.bytes_per_parameter("adamw").total) == 40e9


def test_training_flops_is_six_n_d():
    assert napkin.training_flops(2, 3) == 36


def test_bytes_per_parameter():
    assert napkin.bytes_per_parameter("adamw").total == 16
    assert napkin.bytes_per_parameter("sgd").total == 8
    assert napkin.bytes_per_parameter("AdaGrad").total == 12
    mixed = napkin.bytes_per_parameter("adam", "mixed")
    assert (mixed.weights, mixed.weights_copy, mixed.gradients, mixed.total) == (4, 2, 4, 18)
    assert napkin.bytes_per_parameter("adam", "mixed_bf16_grads").total == 16
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        napkin.bytes_per_parameter("lion")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        napkin.bytes_per_parameter("adam", "fp8")


@pytest.mark.parametrize("call, match", [
    (lambda: napkin.training_flops(-1, 10), "num_parameters must be a finite number > 0"),
    (lambda: napkin.training_flops(10, 0), "num_tokens must be a finite number > 0"),
    (lambda: napkin.training_days(1, 1, 0), "num_gpus must be a finite number > 0"),
    (lambda: napkin.training_days(1, 1, 1, mfu=1.5), "at most 1"),
    (lambda: napkin.max_parameters(8, -80e9, 16), "memory_per_gpu must be a finite number > 0"),
])
def test_bad_input_says_what_is_wrong(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_types_and_unknown_gpu():
    with pytest.raises(TypeError, match="must be a number"):
        napkin.training_flops("70e9", 1)
    with pytest.raises(KeyError, match="no datasheet entry"):
        napkin.training_days(1, 1, 1, gpu="TPU v5")


def test_cli(capsys):
    napkin.main(TRAIN_TIME)
    out = capsys.readouterr().out
    assert "143.9 days" in out
    assert "GPU: H100 SXM, dense bf16 peak 989.4 TFLOP/s" in out
    assert "source: NVIDIA H100 Tensor Core GPU Architecture whitepaper" in out
    napkin.main(["max-params", "--gpus", "8"])
    out = capsys.readouterr().out
    assert "memory: 8 x H100 SXM (80 GB each, datasheet; --memory-gb to override)" in out
    assert "16 bytes per parameter, adamw in fp32" in out and "40.0 B parameters" in out
    napkin.main(["max-params", "--gpus", "8", "--zero-stage", "0"])
    out = capsys.readouterr().out
    assert "(DDP, nothing split)\n  -> 5.0 B parameters" in out
    napkin.main(["max-params", "--gpus", "8", "--zero-stage", "1", "--precision", "mixed_bf16_grads"])
    assert "(ZeRO-1, optimizer state split)\n  -> 14.5 B" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        napkin.main(["max-params", "--gpus", "8", "--zero-stage", "2", "--bytes-per-param", "12"])
    assert "give --optimizer and --precision" in capsys.readouterr().err
    napkin.main(["max-params", "--gpus", "8", "--memory-gb", "141", "--optimizer", "sgd"])
    out = capsys.readouterr().out
    assert "memory: 8 x 141 GB (given by --memory-gb)" in out and "141.0 B parameters" in out
    napkin.main(["max-params", "--gpus", "8", "--optimizer", "AdaGrad", "--gpu", "a100 80gb"])
    out = capsys.readouterr().out
    assert "8 x A100 80GB (80 GB each" in out and "12 bytes per parameter, adagrad" in out
    napkin.main(["max-params", "--gpus", "8", "--bytes-per-param", "10"])
    assert "10 bytes per parameter, given by --bytes-per-param" in capsys.readouterr().out


def test_cli_lines_fit_a_notebook_output_area(capsys):
    from lecture_utils.hardware import GPUS

    for name, spec in GPUS.items():
        dtype = "bf16" if "bf16" in spec.dense_flops else "fp16"
        napkin.main([*TRAIN_TIME, "--gpu", name, "--dtype", dtype])
        napkin.main(["max-params", "--gpus", "1024", "--gpu", name, "--optimizer", "momentum",
                     "--precision", "mixed_bf16_grads", "--zero-stage", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 4 * len(GPUS)
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)


def test_cli_errors_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        napkin.main(["train-time", "--params", "70e9", "--tokens", "1e12", "--gpus", "8",
                     "--gpu", "TPU"])
    assert exit_info.value.code == 2
    assert "argument --gpu: no GPU named 'TPU'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        napkin.main(["--help"])
    assert "train-time" in capsys.readouterr().out


def _usage_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        napkin.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--mfu", "1.5", "argument --mfu: must be in (0, 1], got 1.5"),
    ("--mfu", "0", "argument --mfu: must be in (0, 1], got 0"),
    ("--mfu", "nan", "argument --mfu: must be a finite number, got nan"),
    ("--gpus", "0", "argument --gpus: must be a whole number >= 1, got 0"),
    ("--gpus", "-8", "argument --gpus: must be a whole number >= 1, got -8"),
    ("--gpus", "8.5", "argument --gpus: must be a whole number >= 1, got 8.5"),
    ("--params", "0", "argument --params: must be > 0, got 0"),
    ("--params", "inf", "argument --params: must be a finite number, got inf"),
    ("--tokens", "lots", "argument --tokens: must be a number such as 8 or 70e9, got 'lots'"),
    ("--dtype", "fp7", "argument --dtype: unknown dtype 'fp7'; use one of fp64, fp32, tf32"),
])
def test_train_time_refuses_bad_values_naming_the_flag(capsys, flag, value, message):
    # A flag given twice: argparse checks both values and keeps the last.
    assert message in _usage_error(capsys, [*TRAIN_TIME, flag, value])


@pytest.mark.parametrize("extra, message", [
    (["--memory-gb", "0"], "argument --memory-gb: must be > 0, got 0"),
    (["--memory-gb", "-80"], "argument --memory-gb: must be > 0, got -80"),
    (["--memory-gb", "inf"], "argument --memory-gb: must be a finite number, got inf"),
    (["--bytes-per-param", "0"], "argument --bytes-per-param: must be > 0, got 0"),
    (["--optimizer", "lion"], "argument --optimizer: invalid choice: 'lion'"),
    (["--precision", "fp8"], "argument --precision: invalid choice: 'fp8'"),
    (["--gpu", "A100"], "did you mean A100 40GB, A100 80GB"),
])
def test_max_params_refuses_bad_values_naming_the_flag(capsys, extra, message):
    err = _usage_error(capsys, ["max-params", "--gpus", "8", *extra])
    assert message in err
    if extra[0] == "--optimizer":
        assert "adagrad" in err and "sgd" in err  # the valid choices


def test_a_missing_dtype_figure_names_the_flags(capsys):
    err = _usage_error(capsys, [*TRAIN_TIME, "--gpu", "T4"])
    assert "argument --dtype: T4 has no bf16 figure" in err and "--dtype or --gpu" in err


@pytest.mark.parametrize("typo, close", [
    ("H10 SXM", "did you mean H100 SXM?"),
    ("A100", "did you mean A100 40GB, A100 80GB"),
    ("NVIDIA H100 80GB HBM3", "did you mean H100 SXM"),
])
def test_gpu_flag_is_exact_and_lists_close_names(capsys, typo, close):
    err = _usage_error(capsys, [*TRAIN_TIME, "--gpu", typo])
    assert f"argument --gpu: no GPU named {typo!r}" in err and close in err
    assert "Known: T4, V100 SXM2 16GB" in err


def test_gpu_flag_folds_case_and_spaces(capsys):
    napkin.main([*TRAIN_TIME, "--gpu", "h100sxm"])
    assert "1024 x H100 SXM at 50%" in capsys.readouterr().out


def test_zero_arithmetic_equals_distributed():
    from lecture_utils.distributed import max_parameters_sharded

    grid = itertools.product((1, 2, 8, 1024), range(4), napkin.OPTIMIZER_STATES, napkin.PRECISIONS)
    for gpus, stage, optimizer, precision in grid:
        assert napkin._max_parameters_zero(gpus, 80e9, stage, optimizer, precision) == (
            pytest.approx(max_parameters_sharded(gpus, 80e9, stage, optimizer, precision),
                          rel=1e-12)), (gpus, stage, optimizer, precision)


def test_preset_names_equal_transformer_presets():
    from lecture_utils.transformer import PRESETS

    assert sorted(napkin._PRESET_NAMES) == sorted(PRESETS)


def _run_cli(*args: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *flags, "-m", "lecture_utils.napkin", *args],
                          capture_output=True, text=True, check=True, cwd=REPO)


@pytest.mark.parametrize("args", [TRAIN_TIME, ["max-params", "--gpus", "8"]])
def test_cli_does_not_import_torch(args):
    run = _run_cli(*args, flags=("-X", "importtime"))
    # -X importtime writes one line per module: "import time: self | cumulative | name".
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()}
    assert "lecture_utils.hardware" in imported  # (napkin itself runs as __main__)
    heavy = {m for m in imported if m.split(".")[0] in ("torch", "numpy", "matplotlib")}
    assert not heavy, f"the napkin command line imported {sorted(heavy)}"


def test_train_time_answers_at_once():
    seconds = []
    for _ in range(3):  # the median of 3, so a busy machine does not make it flake
        start = time.perf_counter()
        _run_cli(*TRAIN_TIME)
        seconds.append(time.perf_counter() - start)
    assert statistics.median(seconds) < 0.5, seconds


def sig3(x: float) -> float:
    """`x` rounded to 3 significant figures, as a careful student writes it."""
    return float(f"{x:.3g}")


def _feedback(number, answer):
    return napkin.EXERCISES.feedback(number, answer)


H100_DENSE, H100_SPARSE = 989.4e12, 1978.9e12  # bf16, from the whitepaper and datasheet
A100_DENSE, A100_SPARSE = 312e12, 624e12


def test_constants():
    assert napkin.SECONDS_PER_DAY == 86_400
    assert napkin.TRAINING_FLOPS_PER_PARAM_TOKEN == 2 + 4 == 6
    assert napkin.PRECISIONS == ("fp32", "mixed", "mixed_bf16_grads")
    assert lookup_gpu("H100 SXM").memory_bytes == 80e9  # the datasheet's 80 GB, read as 80e9


def test_exercise_1_training_flops():
    n, d = 7e9, 2e12
    assert _feedback(1, 6 * n * d) is CORRECT and _feedback(1, sig3(6 * n * d)) is CORRECT
    assert _feedback(1, 8.4e22) is CORRECT
    assert "forward pass only" in _feedback(1, 2 * n * d).message
    assert "backward pass only" in _feedback(1, 4 * n * d).message
    multiplies = (1 + 2) * n * d  # one multiply forward, two backward per parameter and token
    assert "multiplies only" in _feedback(1, multiplies).message
    assert "not 1" in _feedback(1, n * d).message


def test_exercise_2_training_days():
    flops = 6 * 7e9 * 2e12
    days = flops / (256 * A100_DENSE * 0.4 * 86400)
    assert round(days, 1) == 30.4
    for answer in (days, sig3(days), 30.0):  # "30 days" is 1.4% off: a fine napkin answer
        assert _feedback(2, answer) is CORRECT, answer
    assert _feedback(2, 29.5).correct is False  # 3% off
    half = _feedback(2, flops / (256 * A100_SPARSE * 0.4 * 86400)).message
    assert "'with sparsity' peak (624" in half and "dense 312" in half
    multiplies_only = _feedback(2, 3 * 7e9 * 2e12 / (256 * A100_DENSE * 0.4 * 86400))
    assert multiplies_only.message == _feedback(2, days / 2).message  # the same value, one hint
    assert "forward pass only" in _feedback(2, 2 * 7e9 * 2e12 / (256 * A100_DENSE * 0.4 * 86400)
                                            ).message
    no_mfu = flops / (256 * A100_DENSE * 86400)
    assert "full peak" in _feedback(2, no_mfu).message
    multiplied = flops / (256 * A100_DENSE * 86400) * 0.4
    assert "multiplied by the MFU" in _feedback(2, multiplied).message
    assert "in seconds" in _feedback(2, days * 86400).message
    assert "in hours" in _feedback(2, days * 24).message
    assert "days, within 2%" in napkin.EXERCISES.exercises[2].wants


def test_exercise_3_adagrad_parameters():
    memory = 4 * 80e9
    assert _feedback(3, memory / 12) is CORRECT and _feedback(3, sig3(memory / 12)) is CORRECT
    physical = _feedback(3, 4 * 80 * 2**30 / 12)  # 80 GiB: accepted, and said so
    assert physical.correct is True and "80 GiB" in physical.message
    assert "80e9" in physical.message and "both are fine" in physical.message
    for gpu_memory in (80e9, 80 * 2**30):  # the same slips under either reading of 80 GB
        total = 4 * gpu_memory
        assert "AdamW" in _feedback(3, total / (4 + 4 + 4 + 4)).message
        assert "sum of squared gradients" in _feedback(3, total / (4 + 4)).message
        assert "weights only" in _feedback(3, total / 4).message
        assert "mixed-precision" in _feedback(3, total / (4 + 2 + 4 + 4)).message
        assert "one GPU" in _feedback(3, gpu_memory / 12).message


def test_exercise_4_tokens_per_second():
    delivered = 1024 * H100_DENSE * 0.5
    right = delivered / (6 * 70e9)
    assert math.isclose(right, 1.2062e6, rel_tol=1e-4)
    assert _feedback(4, right) is CORRECT and _feedback(4, sig3(right)) is CORRECT
    twice = [1024 * H100_DENSE / (6 * 70e9),  # MFU left out
             1024 * H100_SPARSE * 0.5 / (6 * 70e9),  # the sparse peak
             delivered / (3 * 70e9)]  # multiplies only
    for answer in twice:
        message = _feedback(4, answer).message
        assert "twice the answer" in message and "MFU" in message and "sparsity" in message
        assert "dense 989.4" in message and "multiplies only" in message
    assert "divided by the MFU" in _feedback(4, 1024 * H100_DENSE / 0.5 / (6 * 70e9)).message
    assert "forward pass only" in _feedback(4, delivered / (2 * 70e9)).message
    assert "not 1" in _feedback(4, delivered / 70e9).message
    assert "one GPU" in _feedback(4, H100_DENSE * 0.5 / (6 * 70e9)).message


def test_exercise_5_mfu_against_the_dense_peak():
    right = 0.35 * 1979e12 / H100_DENSE
    assert _feedback(5, right) is CORRECT and _feedback(5, 0.7) is CORRECT
    assert "larger" in _feedback(5, 0.35 * H100_DENSE / 1979e12).message
    assert "unchanged" in _feedback(5, 0.35).message
    assert "a percent" in _feedback(5, 100 * right).message


@pytest.mark.parametrize("number", range(1, 6))
def test_exercise_verdicts_on_unanswered_and_junk(number):
    assert _feedback(number, None) is UNANSWERED
    assert "got nan (not a number)" in _feedback(number, float("nan")).message
    assert "got the text 'a lot'" in _feedback(number, "a lot").message
    assert "expected a number" in _feedback(number, [1, 2]).message
    wants = napkin.EXERCISES.exercises[number].wants
    assert "within 2%" in wants
