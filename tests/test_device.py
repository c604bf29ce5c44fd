"""The one device rule (waveglow.device.check_device) that the Vocoder, infer.py, evaluate and training use."""

from __future__ import annotations

import pytest
import torch

from waveglow.device import DeviceError, auto_precisions, check_device, cpu_has_native_bf16


def _fake_gpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("name", ["cuda", "auto", None])
def test_bare_cuda_and_auto_take_this_process_gpu(monkeypatch, name):
    _fake_gpus(monkeypatch, 4)
    monkeypatch.setenv("LOCAL_RANK", "2")  # torchrun's third process on this machine
    assert check_device(name) == torch.device("cuda", 2)
    monkeypatch.delenv("LOCAL_RANK")
    assert check_device(name) == torch.device("cuda", 0)


def test_named_devices_are_kept_and_checked(monkeypatch):
    _fake_gpus(monkeypatch, 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert check_device("cuda:1") == torch.device("cuda", 1)  # an explicit index wins over LOCAL_RANK
    assert check_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match=r"train.device cuda:7: this machine has 4 CUDA device\(s\)"):
        check_device("cuda:7", option="train.device")
    monkeypatch.setenv("LOCAL_RANK", "5")  # more processes than GPUs: named, not a torch assert later
    with pytest.raises(DeviceError, match=r"--device cuda:5: this machine has 4"):
        check_device("cuda")


def test_no_gpu(monkeypatch):
    _fake_gpus(monkeypatch, 0)
    assert check_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="train.device cuda: no CUDA device is available"):
        check_device("cuda", option="train.device")
    with pytest.raises(DeviceError, match="--device gpu0: not a device name"):
        check_device("gpu0")


AMX = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile amx_bf16\n\n"
ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n\n"
AVX2 = "processor\t: 0\nmodel name\t: Intel(R) Core\nflags\t\t: fpu avx2 fma\n\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n\n"


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [(AMX, ("fp32", "bf16")), (ZEN4, ("fp32", "bf16")), (AVX2, ("fp32",)), (ARM, ("fp32",)), ("", ("fp32",))],
)
def test_auto_precisions_on_a_cpu_offer_bf16_only_where_it_is_native(cpuinfo, expected):
    assert cpu_has_native_bf16(cpuinfo) == (expected == ("fp32", "bf16"))
    assert auto_precisions(torch.device("cpu"), cpuinfo) == expected


def test_auto_precisions_on_cuda_and_other_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert auto_precisions(torch.device("cuda", 0), AVX2) == ("bf16",)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert auto_precisions(torch.device("cuda", 0), AMX) == ("fp16",)
    assert auto_precisions(torch.device("mps"), AMX) == ("fp32",)
