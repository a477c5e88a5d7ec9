"""Pick the device, dtype and attention kernel from what torch reports.

CUDA first, then Apple MPS, then a Huawei NPU (torch_npu), else CPU. float16 is the
default on accelerators (TEI's choice), float32 on CPU where half precision is slower
and less exact. Asking for a device that is absent fails at start with a clear message.

On a machine with several GPUs, BentoML runs one worker per GPU (tei_bento/bento.py), but
BentoML 1.4 gives every worker of a service the same CUDA_VISIBLE_DEVICES (all the GPUs the
service declared), so each worker pins itself to one GPU from its worker index.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from tei_bento.settings import available_cores

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype
    attention: str

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def _npu_available() -> bool:
    try:
        import torch_npu  # noqa: F401  (registers the npu device with torch)
    except ImportError:
        return False
    return bool(getattr(torch, "npu", None) and torch.npu.is_available())


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def available_devices() -> list[str]:
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    if _npu_available():
        found.append("npu")
    found.append("cpu")
    return found


def cuda_device_count() -> int:
    """GPUs this process may use (honours CUDA_VISIBLE_DEVICES); 0 on a CPU-only torch.

    torch counts through NVML when it can, so the BentoML arbiter process that only sizes
    its workers does not create a CUDA context.
    """
    try:
        return int(torch.cuda.device_count())
    except RuntimeError:  # pragma: no cover - broken driver: behave as a CPU machine
        return 0


def gpu_for_worker(worker_index: int | None, gpu_count: int) -> int | None:
    """The GPU a BentoML worker owns: worker N (1-based, circus's WID) takes GPU N-1.

    Wraps around when there are more workers than GPUs (several workers share a GPU then).
    None when there is no GPU or the process is not a BentoML worker.
    """
    if gpu_count <= 0 or worker_index is None:
        return None
    return (worker_index - 1) % gpu_count


def pin_worker_gpu(worker_index: int | None) -> int | None:
    """Make this worker's GPU torch's current CUDA device, before the model is loaded."""
    index = gpu_for_worker(worker_index, cuda_device_count() if torch.cuda.is_available() else 0)
    if index is not None:
        torch.cuda.set_device(index)
        log.info("BentoML worker %s runs on cuda:%s", worker_index, index)
    return index


def choose_placement(device: str = "auto", dtype: str | None = None) -> Placement:
    present = available_devices()
    if device == "auto":
        device = present[0]
    elif device not in present:
        raise RuntimeError(
            f"Device `{device}` was asked for but is not available here "
            f"(torch {torch.__version__} sees: {', '.join(present)})."
        )
    if dtype is None:
        dtype = "float32" if device == "cpu" else "float16"
    if device == "cpu":
        torch.set_num_threads(available_cores())
    if device == "cuda":  # the GPU pin_worker_gpu chose, or cuda:0; /info reports which
        return Placement(
            torch.device("cuda", torch.cuda.current_device()), DTYPES[dtype], attention="sdpa"
        )
    return Placement(torch.device(device), DTYPES[dtype], attention="sdpa")
