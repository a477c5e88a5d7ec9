"""Device, dtype and worker placement for each kind of machine, by faking what torch reports.

No test here needs an accelerator: torch.cuda / torch.backends.mps / torch_npu are patched,
so the same assertions hold on a laptop, in CI and on a GPU box.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest
import torch

from tei_bento import bento
from tei_bento.model import device
from tei_bento.settings import Settings, available_cores


@dataclass
class FakeMachine:
    """What the patched torch reports, and what the code under test asked of it."""

    cuda: int = 0
    mps: bool = False
    npu: bool = False
    current: int = 0
    threads: list[int] = field(default_factory=list)
    set_devices: list[int] = field(default_factory=list)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """Call with the hardware to fake: machine(cuda=2), machine(mps=True), ..."""

    def make(cuda: int = 0, mps: bool = False, npu: bool = False) -> FakeMachine:
        fake = FakeMachine(cuda, mps, npu)

        def set_device(index: int) -> None:
            fake.set_devices.append(index)
            fake.current = index

        monkeypatch.setattr(torch.cuda, "is_available", lambda: fake.cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: fake.cuda)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: fake.current)
        monkeypatch.setattr(torch.cuda, "set_device", set_device)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: fake.mps)
        monkeypatch.setattr(torch, "set_num_threads", fake.threads.append)
        if npu:  # what importing torch_npu does: name the privateuse1 backend, add torch.npu
            if torch._C._get_privateuse1_backend_name() != "npu":
                torch.utils.rename_privateuse1_backend("npu")  # once per process, as torch_npu
            monkeypatch.setitem(sys.modules, "torch_npu", types.ModuleType("torch_npu"))
            npu_module = types.SimpleNamespace(is_available=lambda: True)
            monkeypatch.setattr(torch, "npu", npu_module, raising=False)
        else:
            monkeypatch.setitem(sys.modules, "torch_npu", None)  # import fails
        return fake

    return make


def test_cpu_machine_uses_float32_and_every_available_core(machine):
    fake = machine()
    placement = device.choose_placement()
    assert placement.device == torch.device("cpu")
    assert placement.dtype == torch.float32 and placement.attention == "sdpa"
    assert fake.threads == [available_cores()]


def test_cuda_machine_uses_float16_on_the_current_gpu(machine):
    machine(cuda=1)
    placement = device.choose_placement()
    assert placement.device == torch.device("cuda", 0)
    assert placement.dtype == torch.float16 and placement.dtype_name == "float16"


def test_cuda_wins_over_mps_and_npu(machine):
    machine(cuda=1, mps=True, npu=True)
    assert device.available_devices() == ["cuda", "mps", "npu", "cpu"]
    assert device.choose_placement().device.type == "cuda"


@pytest.mark.parametrize("kind", ["mps", "npu"])
def test_other_accelerators_use_float16(machine, kind):
    machine(**{kind: True})
    placement = device.choose_placement()
    assert placement.device == torch.device(kind)
    assert placement.dtype == torch.float16


def test_dtype_can_be_asked_for(machine):
    machine(cuda=1)
    assert device.choose_placement(dtype="bfloat16").dtype == torch.bfloat16
    machine()
    assert device.choose_placement("cpu", "float16").dtype == torch.float16


def test_cpu_can_be_forced_on_a_gpu_machine(machine):
    machine(cuda=2)
    placement = device.choose_placement("cpu")
    assert placement.device == torch.device("cpu") and placement.dtype == torch.float32


@pytest.mark.parametrize("kind", ["cuda", "mps", "npu"])
def test_asking_for_an_absent_device_fails_clearly(machine, kind):
    machine()
    with pytest.raises(RuntimeError, match=rf"Device `{kind}` was asked for but is not available"):
        device.choose_placement(kind)


def test_serve_with_an_absent_device_exits_with_the_reason(machine, monkeypatch):
    """`tei-bento serve --device cuda` on a machine without CUDA stops before serving."""
    from tei_bento import cli

    machine()
    monkeypatch.delenv("DEVICE", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--device", "cuda", "--port", "1"])
    assert "Device `cuda` was asked for but is not available" in str(exited.value)


def test_device_env_var_is_the_same_setting(monkeypatch):
    monkeypatch.setenv("DEVICE", "npu")
    assert Settings().device == "npu"


@pytest.mark.parametrize(
    ("worker", "gpus", "expected"),
    [(1, 4, 0), (4, 4, 3), (5, 4, 0), (2, 1, 0), (None, 4, None), (1, 0, None)],
)
def test_each_worker_owns_one_gpu(worker, gpus, expected):
    assert device.gpu_for_worker(worker, gpus) == expected


def test_worker_pins_its_gpu_before_loading(machine):
    fake = machine(cuda=4)
    assert bento.pin_worker(Settings(), worker_index=3) == 2
    assert fake.set_devices == [2]
    assert device.choose_placement().device == torch.device("cuda", 2)


def test_worker_on_cpu_never_touches_cuda(machine):
    fake = machine(cuda=4)
    assert bento.pin_worker(Settings(device="cpu"), worker_index=3) is None
    assert fake.set_devices == []


def test_service_config_cpu_machine_runs_one_worker(machine):
    machine()
    config = bento.service_config(Settings())
    assert config["workers"] == 1 and "resources" not in config


def test_service_config_runs_one_worker_per_gpu(machine):
    machine(cuda=4)
    config = bento.service_config(Settings())
    assert config["workers"] == 4 and config["resources"] == {"gpu": 4}


def test_service_config_forced_cpu_ignores_the_gpus(machine):
    machine(cuda=4)
    config = bento.service_config(Settings(device="cpu"))
    assert config["workers"] == 1 and "resources" not in config


def test_bentoml_hands_every_worker_all_gpus(monkeypatch):
    """Why workers pin themselves: BentoML 1.4's allocator gives the service's GPUs to every
    worker in one CUDA_VISIBLE_DEVICES instead of one GPU each."""
    import bentoml
    from _bentoml_impl.server import allocator

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv(allocator.DISABLE_GPU_ALLOCATION_ENV, raising=False)

    @bentoml.service(**bento.service_config(Settings(), gpus=4))
    class Probe:
        @bentoml.api
        def echo(self, text: str) -> str:
            return text

    Probe.inject_config()
    resources = {"nvidia.com/gpu": [0, 1, 2, 3], "cpu": 8}
    monkeypatch.setattr(allocator, "system_resources", lambda: resources)
    workers, env = allocator.ResourceAllocator().get_worker_env(Probe)
    assert workers == 4
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
