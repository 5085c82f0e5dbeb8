import subprocess
import sys

import pytest
import torch

from lecture_utils import hardware as hw

REQUIRED = ["T4", "V100 SXM2 16GB", "V100 SXM2 32GB", "A10", "L4", "A100 40GB", "A100 80GB",
            "H100 SXM", "H100 PCIe", "H200", "B200", "RTX 4090"]


def test_table_has_the_course_gpus_with_sources():
    for name in REQUIRED:
        spec = hw.GPUS[name]
        assert spec.source and spec.memory_bytes > 0 and spec.memory_bandwidth > 0
        assert set(spec.dense_flops) <= set(hw.DTYPES)


def test_sparse_figures_are_kept_apart_and_twice_dense():
    for spec in hw.GPUS.values():
        for dtype, sparse in spec.sparse_flops.items():
            # The whitepapers round each figure on its own: 1,978.9 is not 2 x 989.4 exactly.
            assert sparse == pytest.approx(2 * spec.dense_flops[dtype], rel=1e-4)
            assert spec.peak_flops(dtype) == spec.dense_flops[dtype]


def test_h100_whitepaper_values():
    h100 = hw.lookup_gpu("H100 SXM")
    assert "H100 Tensor Core GPU Architecture whitepaper" in h100.source
    assert h100.dense_flops == {"fp64": 66.9e12, "fp32": 66.9e12, "tf32": 494.7e12,
                                "bf16": 989.4e12, "fp16": 989.4e12, "fp8": 1978.9e12}
    assert h100.sparse_flops == {"tf32": 989.4e12, "bf16": 1978.9e12, "fp16": 1978.9e12,
                                 "fp8": 3957.8e12}
    assert h100.peak_flops(torch.float32) == 66.9e12
    assert h100.peak_flops(torch.bfloat16) == 989.4e12
    assert h100.memory_bytes == 80e9 and h100.memory_bandwidth == 3.35e12


def test_h200_has_h100_sxm_compute_and_its_own_memory():
    h200, h100 = hw.GPUS["H200"], hw.GPUS["H100 SXM"]
    assert h200.dense_flops == h100.dense_flops and h200.sparse_flops == h100.sparse_flops
    assert h200.memory_bytes == 141e9 and "H200" in h200.source


def test_memory_is_the_vendor_label_and_nvidia_smi_is_kept_beside():
    a100, h100 = hw.GPUS["A100 80GB"], hw.GPUS["H100 SXM"]
    assert a100.memory_label == h100.memory_label == "80 GB"
    assert hw.GPUS["H200"].memory_label == "141 GB"
    assert (a100.nvidia_smi_mib, h100.nvidia_smi_mib) == (81_920, 81_559)
    # Only these two were read off real GPUs; the others are left unknown, not guessed.
    assert [s.name for s in hw.GPUS.values() if s.nvidia_smi_mib] == ["A100 80GB", "H100 SXM"]
    # The decimal-GB convention undercounts what the GPU holds by about 6-7 %.
    for spec in (a100, h100):
        shortfall = 1 - spec.memory_bytes / (spec.nvidia_smi_mib * hw.MIB)
        assert 0.06 < shortfall < 0.07


def test_v100_sizes_are_two_entries():
    small, large = hw.GPUS["V100 SXM2 16GB"], hw.GPUS["V100 SXM2 32GB"]
    assert small.dense_flops == large.dense_flops
    assert small.memory_bandwidth == large.memory_bandwidth == 900e9
    assert (small.memory_bytes, large.memory_bytes) == (16e9, 32e9)


@pytest.mark.parametrize("device_name, expected", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB"),
    ("NVIDIA A100 80GB PCIe", "A100 80GB"),
    ("Tesla T4", "T4"),
    ("Tesla V100-SXM2-32GB", "V100 SXM2 32GB"),
    ("Tesla V100-SXM2-16GB", "V100 SXM2 16GB"),
    ("V100 16GB", "V100 SXM2 16GB"),
    ("NVIDIA A10", "A10"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA B200", "B200"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("h100 sxm", "H100 SXM"),
    ("v100sxm2 16gb", "V100 SXM2 16GB"),
])
def test_lookup_by_cuda_device_name(device_name, expected):
    assert hw.lookup_gpu(device_name).name == expected


@pytest.mark.parametrize("device_name, why", [
    ("NVIDIA GH200 480GB", "Grace Hopper"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA GB200", "Grace Blackwell"),
    ("Tesla V100-PCIE-16GB", "other clocks"),
    ("Tesla V100S-PCIE-32GB", "other clocks"),
    ("NVIDIA GeForce RTX 4090 D", "fewer SMs"),
])
def test_a_different_part_is_refused_with_the_reason(device_name, why):
    with pytest.raises(hw.UnknownGPUError, match=f"no datasheet entry.*{why}.*GPUSpec"):
        hw.lookup_gpu(device_name)


@pytest.mark.parametrize("name, entries", [
    ("Tesla V100", "V100 SXM2 16GB or V100 SXM2 32GB"),
    ("V100 SXM2", "V100 SXM2 16GB or V100 SXM2 32GB"),
    ("A100", "A100 40GB or A100 80GB"),
])
def test_an_ambiguous_name_is_refused_listing_the_entries(name, entries):
    with pytest.raises(hw.UnknownGPUError, match=f"ambiguous.*{entries}"):
        hw.lookup_gpu(name)


def test_current_gpu_is_none_for_a_refused_part(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in ("NVIDIA GH200 480GB", "NVIDIA H200 NVL", "Tesla V100"):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda name=name: name)
        assert hw.current_gpu() is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "NVIDIA H200")
    assert hw.current_gpu() is hw.GPUS["H200"]


def test_unknown_gpu_says_what_to_do():
    with pytest.raises(hw.UnknownGPUError, match="no datasheet entry.*GPUSpec"):
        hw.lookup_gpu("TPU v5")
    with pytest.raises(TypeError, match="non-empty string"):
        hw.lookup_gpu("")


@pytest.mark.parametrize("name, expected", [
    ("H100 SXM", "H100 SXM"), ("h100sxm", "H100 SXM"), ("  a100 80GB ", "A100 80GB"),
    ("RTX4090", "RTX 4090"),
])
def test_gpu_by_name_is_exact_with_case_and_spaces_folded(name, expected):
    assert hw.gpu_by_name(name) is hw.GPUS[expected]


@pytest.mark.parametrize("name, suggested", [
    ("H10 SXM", "did you mean H100 SXM?"),
    ("A100", "did you mean A100 40GB, A100 80GB"),
    ("H100", "did you mean H100 SXM, H100 PCIe"),
    ("NVIDIA H100 80GB HBM3", "did you mean H100 SXM"),  # a CUDA name: never taken, suggested
])
def test_gpu_by_name_never_guesses_and_suggests(name, suggested):
    with pytest.raises(hw.UnknownGPUError) as info:
        hw.gpu_by_name(name)
    message = str(info.value)
    assert f"no GPU named {name!r}" in message and suggested in message
    assert "Known: T4, V100 SXM2 16GB" in message  # the full list
    with pytest.raises(hw.UnknownGPUError, match=r"'TPU' in the table\. Known:"):
        hw.gpu_by_name("TPU")
    with pytest.raises(TypeError, match="non-empty string"):
        hw.gpu_by_name(" ")


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


def test_torch_dtypes_read_by_name_match_torch():
    expected = {torch.float64: "fp64", torch.float32: "fp32", torch.bfloat16: "bf16",
                torch.float16: "fp16", torch.float8_e4m3fn: "fp8", torch.float8_e5m2: "fp8"}
    for dtype, key in expected.items():
        assert hw.normalize_dtype(dtype) == key
    for dtype in (torch.int64, torch.bool, torch.complex64):
        with pytest.raises(ValueError, match="no datasheet peak"):
            hw.normalize_dtype(dtype)


def test_importing_hardware_does_not_import_torch():
    code = "import sys, lecture_utils.hardware as h; h.peak_flops('H100 SXM', 'bf16'); " \
           "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_dtype_on_a_gpu_is_explained():
    with pytest.raises(ValueError, match="T4 has no bf16"):
        hw.peak_flops("T4", "bf16")


def test_current_gpu_without_cuda_is_none():
    if not torch.cuda.is_available():
        assert hw.current_gpu() is None
