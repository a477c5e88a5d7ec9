"""The one place that picks how a model's network runs.

`--quantize int8` or `--backend onnx`: ONNX Runtime, or a start-up error. `--backend auto`
(the default): ONNX Runtime for float32 BERT-family encoders on CPU once the exported graph
has reproduced the torch network (5.5 ms against 14 ms traced for a 17-token text through
all-MiniLM-L6-v2 on 2 vCPUs, and faster saturated), else torch. Where torch serves on CPU,
a checked TorchScript trace of BERT-family encoders (`--torchscript`), else eager.

Which thread runs what matters on a small CPU, because each thread that runs torch keeps
its own OpenMP team: the ONNX check runs the eager torch network on the calling thread, since
a torch team on the model thread competes with ONNX Runtime's own threads there (+0.4 ms
median per /embed request on 2 vCPUs when the check ran on the model thread); the trace
is taken on the model thread, where the traced graph will run (`on_model_thread`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from tei_bento.backends import onnx
from tei_bento.backends.base import Backend, Feeds
from tei_bento.backends.torch_eager import TorchBackend
from tei_bento.backends.torchscript import trace
from tei_bento.backends.verify import BERT_FAMILY, reproduces
from tei_bento.settings import ModelSettings, available_cores

log = logging.getLogger(__name__)


class OnnxMismatch(RuntimeError):
    """The exported graph does not reproduce the torch network (it is then not served)."""


def onnx_target(device: torch.device) -> onnx.OnnxTarget:
    if device.type != "cpu":
        raise RuntimeError("`--backend onnx` runs on CPU; use the torch backend on accelerators")
    return onnx.OnnxTarget(("CPUExecutionProvider",), available_cores(), device)


def onnx_by_default(eager: TorchBackend, config: Any, dtype: torch.dtype) -> bool:
    """Where `--backend auto` tries ONNX Runtime: float32 BERT-family encoders on CPU."""
    if eager.device.type != "cpu" or dtype != torch.float32:
        return False
    if getattr(config, "model_type", "") not in BERT_FAMILY:
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_backend(
    settings: ModelSettings,
    eager: TorchBackend,
    folder: Any,
    auto_class: str,
    config: Any,
    dtype: torch.dtype,
    pad_token_id: int,
    calibration: Callable[[list[str]], Feeds],
    on_model_thread: Callable[[Callable[[], Any]], Any] = lambda work: work(),
) -> Backend:
    quantize = None if settings.quantize == "none" else settings.quantize

    def build_onnx() -> onnx.OnnxBackend:
        return onnx.build_onnx_backend(
            folder, auto_class, eager.output, config, eager.input_names, quantize,
            onnx_target(eager.device), calibration,
        )  # fmt: skip

    if settings.backend == "onnx" or quantize:
        return build_onnx()
    if settings.backend == "auto" and onnx_by_default(eager, config, dtype):
        try:
            candidate = build_onnx()
            if not reproduces(candidate, eager, config, pad_token_id):
                raise OnnxMismatch("the ONNX model's outputs differ from the torch network's")
            log.info("Serving the model through ONNX Runtime (`--backend torch` opts out)")
            return candidate
        except Exception as exc:  # any export, optimizer or runtime failure: torch serves
            log.warning("ONNX Runtime not used, serving the torch network: %s", exc)
    if settings.torchscript and eager.device.type == "cpu":
        traced = on_model_thread(lambda: trace(eager, config, pad_token_id))
        if traced is not None:
            log.info("Serving a TorchScript trace of the network")
            return traced
    return eager
