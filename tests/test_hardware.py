import pytest
import torch

from lecture_utils import hardware as hw

REQUIRED = ["T4", "V100 SXM2", "A10", "L4", "A100 40GB", "A100 80GB", "H100 SXM", "H100 PCIe",
            "H200", "B200", "RTX 4090"]


def test_table_has_the_course_gpus_with_sources():
    for name in REQUIRED:
        spec = hw.GPUS[name]
        assert spec.source and spec.memory_bytes > 0 and spec.memory_bandwidth > 0
        assert set(spec.dense_flops) <= set(hw.DTYPES)


def test_sparse_figures_are_kept_apart_and_twice_dense():
    for spec in hw.GPUS.values():
        for dtype, sparse in spec.sparse_flops.items():
            assert sparse == 2 * spec.dense_flops[dtype]
            assert spec.peak_flops(dtype) == spec.dense_flops[dtype]


def test_h100_datasheet_values():
    h100 = hw.lookup_gpu("H100 SXM")
    assert h100.peak_flops("bf16") == 989.5e12
    assert h100.sparse_flops["bf16"] == 1979e12
    assert h100.peak_flops(torch.float32) == 67e12
    assert h100.peak_flops("fp8") == 1979e12
    assert h100.memory_bytes == 80e9 and h100.memory_bandwidth == 3.35e12


@pytest.mark.parametrize("device_name, expected", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB"),
    ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-32GB", "V100 SXM2"),
    ("NVIDIA A10", "A10"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA B200", "B200"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("h100 sxm", "H100 SXM"),
])
def test_lookup_by_cuda_device_name(device_name, expected):
    assert hw.lookup_gpu(device_name).name == expected


def test_unknown_gpu_says_what_to_do():
    with pytest.raises(hw.UnknownGPUError, match="no datasheet entry.*GPUSpec"):
        hw.lookup_gpu("NVIDIA H100 NVL")
    with pytest.raises(TypeError, match="non-empty string"):
        hw.lookup_gpu("")


def test_dtype_normalization_and_errors():
    assert hw.normalize_dtype("bfloat16") == "bf16"
    assert hw.normalize_dtype(torch.float8_e4m3fn) == "fp8"
    assert hw.normalize_dtype("torch.float16") == "fp16"
    with pytest.raises(ValueError, match="unknown dtype"):
        hw.normalize_dtype("fp7")
    with pytest.raises(ValueError, match="no datasheet peak"):
        hw.normalize_dtype(torch.int8)
    with pytest.raises(TypeError, match="str or torch.dtype"):
        hw.normalize_dtype(16)


def test_missing_dtype_on_a_gpu_is_explained():
    with pytest.raises(ValueError, match="T4 has no bf16"):
        hw.peak_flops("T4", "bf16")


def test_current_gpu_without_cuda_is_none():
    if not torch.cuda.is_available():
        assert hw.current_gpu() is None
