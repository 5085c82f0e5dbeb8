import pytest
import torch

from lecture_utils import device as dev


def test_get_device_defaults_to_best_available(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert dev.get_device().type == expected


def test_get_device_env_override(monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV, "cpu")
    assert dev.get_device() == torch.device("cpu")


def test_get_device_rejects_bad_env(monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV, "tpu-please")
    with pytest.raises(ValueError, match="not a device"):
        dev.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_forced_cuda_without_cuda(monkeypatch):
    monkeypatch.setenv(dev.DEVICE_ENV, "cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        dev.get_device()


def test_problem_scale_follows_device(monkeypatch):
    monkeypatch.delenv(dev.SCALE_ENV, raising=False)
    assert dev.problem_scale(torch.device("cpu")) == "small"
    assert dev.problem_scale(torch.device("cuda")) == "lecture"
    assert dev.problem_scale(torch.device("mps")) == "small"


def test_by_scale_picks_and_env_overrides(monkeypatch):
    monkeypatch.delenv(dev.SCALE_ENV, raising=False)
    assert dev.by_scale(small=1, lecture=2, device=torch.device("cpu")) == 1
    assert dev.by_scale(small=1, lecture=2, device=torch.device("cuda")) == 2
    monkeypatch.setenv(dev.SCALE_ENV, "lecture")
    assert dev.by_scale(small=1, lecture=2, device=torch.device("cpu")) == 2
    monkeypatch.setenv(dev.SCALE_ENV, "huge")
    with pytest.raises(ValueError, match="not a scale"):
        dev.by_scale(small=1, lecture=2)


def test_synchronize_and_describe_on_cpu():
    dev.synchronize("cpu")  # a no-op, must not fail
    assert dev.describe_device(torch.device("cpu")).startswith("cpu:")
