import math

import pytest

from lecture_utils import napkin
from lecture_utils.exercises import CORRECT, UNANSWERED


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
    napkin.main(["train-time", "--params", "70e9", "--tokens", "15e12", "--gpus", "1024"])
    assert "143.9 days" in capsys.readouterr().out
    napkin.main(["max-params", "--gpus", "8"])
    assert "40.0 B parameters" in capsys.readouterr().out
    napkin.main(["max-params", "--gpus", "8", "--zero-stage", "0"])
    out = capsys.readouterr().out
    assert "(DDP, nothing split) -> 5.0 B parameters" in out
    napkin.main(["max-params", "--gpus", "8", "--zero-stage", "1", "--precision", "mixed_bf16_grads"])
    assert "(ZeRO-1, optimizer state split) -> 14.5 B" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        napkin.main(["max-params", "--gpus", "8", "--zero-stage", "2", "--bytes-per-param", "12"])
    assert "give --optimizer and --precision" in capsys.readouterr().err
    napkin.main(["max-params", "--gpus", "8", "--memory-gb", "141", "--optimizer", "sgd"])
    assert "141.0 B parameters" in capsys.readouterr().out


def test_cli_errors_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        napkin.main(["train-time", "--params", "70e9", "--tokens", "1e12", "--gpus", "8",
                     "--gpu", "TPU"])
    assert exit_info.value.code == 2
    assert "no datasheet entry for GPU 'TPU'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        napkin.main(["--help"])
    assert "train-time" in capsys.readouterr().out


def test_exercise_checkers():
    ex = napkin.EXERCISES
    assert ex.feedback(1, 6 * 7e9 * 2e12) is CORRECT
    assert "forward pass only" in ex.feedback(1, 2 * 7e9 * 2e12).message
    expected_days = 6 * 7e9 * 2e12 / (256 * 312e12 * 0.4 * 86400)
    assert ex.feedback(2, expected_days) is CORRECT
    assert "sparsity" in ex.feedback(2, expected_days / 2).message
    assert ex.feedback(3, 4 * 80e9 / 12) is CORRECT
    assert "AdamW" in ex.feedback(3, 4 * 80e9 / 16).message
    assert math.isclose(1024 * 989.5e12 * 0.5 / 420e9, 1.2063e6, rel_tol=1e-4)
    assert ex.feedback(4, 1024 * 989.5e12 * 0.5 / 420e9) is CORRECT
    assert ex.feedback(5, 0.7) is CORRECT
    assert "larger" in ex.feedback(5, 0.175).message
    for n in range(1, 6):
        assert ex.feedback(n, None) is UNANSWERED
