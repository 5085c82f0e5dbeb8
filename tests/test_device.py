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


# ------------------------------------------------------------------ sizes that fit the GPU


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA GPU with 15 GiB free and a T4's 8.1 TFLOP/s fp32 peak, without a GPU."""
    monkeypatch.delenv(dev.SCALE_ENV, raising=False)
    monkeypatch.setattr(dev, "free_gpu_bytes", lambda device: 15 * dev.GIB)
    monkeypatch.setattr(dev, "gpu_fp32_flops", lambda device: 8.1e12)
    return torch.device("cuda")


def test_needs_validates_and_prints_in_gib():
    assert str(dev.Needs(19 * dev.GIB, 1e15)) == "19.0 GiB of GPU memory and 1,000 TFLOP in fp32"
    assert str(dev.Needs(dev.GIB)) == "1.0 GiB of GPU memory"
    for bad in (-1, float("nan"), float("inf"), "1e9", True):
        with pytest.raises(ValueError, match="memory_bytes must be a finite number"):
            dev.Needs(bad)
    with pytest.raises(ValueError, match="fp32_flops"):
        dev.Needs(1.0, -5)


def test_by_scale_takes_the_lecture_size_only_where_it_fits(fake_gpu):
    fits = dev.Needs(memory_bytes=10 * dev.GIB, fp32_flops=1e14)  # 25 s at half of 8.1e12
    too_big = dev.Needs(memory_bytes=19 * dev.GIB)  # notebook 04 on a 16 GB T4
    too_slow = dev.Needs(memory_bytes=dev.GIB, fp32_flops=1e15)  # 247 s
    assert dev.by_scale(small=1, lecture=2, device=fake_gpu, needs=fits) == 2
    assert dev.by_scale(small=1, lecture=2, device=fake_gpu, needs=too_big) == 1
    assert dev.by_scale(small=1, lecture=2, device=fake_gpu, needs=too_slow) == 1
    assert dev.by_scale(small=1, lecture=2, device=torch.device("cpu"), needs=fits) == 1
    assert "15.0 GiB free" in dev.explain_scale(too_big, fake_gpu)
    assert "about 247 s" in dev.explain_scale(too_slow, fake_gpu)
    assert "the lecture's sizes" in dev.explain_scale(fits, fake_gpu)
    assert "no CUDA GPU" in dev.explain_scale(fits, torch.device("cpu"))


def test_lecture_scale_env_overrides_the_fit(fake_gpu, monkeypatch):
    too_big = dev.Needs(memory_bytes=100 * dev.GIB)
    monkeypatch.setenv(dev.SCALE_ENV, "lecture")
    assert dev.by_scale(small=1, lecture=2, device=fake_gpu, needs=too_big) == 2
    assert "$LECTURE_SCALE=lecture chooses" in dev.explain_scale(too_big, fake_gpu)
    monkeypatch.setenv(dev.SCALE_ENV, "small")
    assert dev.by_scale(small=1, lecture=2, device=fake_gpu, needs=dev.Needs(1)) == 1


def test_lecture_scale_fits_rejects_a_bare_number():
    with pytest.raises(TypeError, match="needs must be a Needs"):
        dev.lecture_scale_fits(19e9, torch.device("cpu"))


def test_parse_device_names_what_is_wrong():
    assert dev.parse_device(" cpu ") == torch.device("cpu")
    with pytest.raises(ValueError, match="'gpu0' is not a device"):
        dev.parse_device("gpu0")
    if not torch.backends.mps.is_available():
        with pytest.raises(RuntimeError, match="MPS is not available"):
            dev.parse_device("mps")


def test_supports_dtype_on_the_cpu():
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        assert dev.supports_dtype("cpu", dtype)


def test_get_device_skips_an_mps_without_bf16(monkeypatch):
    monkeypatch.delenv(dev.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(dev, "supports_dtype", lambda device, dtype: dtype != torch.bfloat16)
    assert dev.get_device() == torch.device("mps")
    assert dev.get_device(dtypes=(torch.float16,)) == torch.device("mps")
    with pytest.warns(UserWarning, match="cannot compute in bfloat16.*macOS 14"):
        assert dev.get_device(dtypes=(torch.bfloat16,)) == torch.device("cpu")


def test_gpu_fp32_flops_takes_the_datasheet_figure(monkeypatch):
    from lecture_utils.hardware import lookup_gpu

    monkeypatch.setattr(dev, "current_gpu", lambda: lookup_gpu("T4"))
    assert dev.gpu_fp32_flops.__wrapped__("cuda") == 8.1e12
