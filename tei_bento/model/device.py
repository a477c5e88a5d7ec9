"""Pick the device, dtype and attention kernel from what torch reports.

CUDA first, then Apple MPS, then a Huawei NPU (torch_npu), else CPU. float16 is the
default on accelerators (TEI's choice), float32 on CPU where half precision is slower
and less exact. Asking for a device that is absent fails at start with a clear message.
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
    return Placement(torch.device(device), DTYPES[dtype], attention="sdpa")
