"""Load a model folder onto a device and run one padded forward pass.

This is the only module that calls the network: the engine hands it token ids of a batch
and gets back float32 arrays (pooled vectors, token states, sparse vectors or logits).
Padding is on the right with the model's own pad id, so learned absolute positions
(BERT, RoBERTa's padding-offset positions) and causal models see the same positions as
when a text runs alone, and pooling masks the padding out.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tei_bento.model.dense import load_dense
from tei_bento.model.device import Placement
from tei_bento.model.pooling import pool, splade
from tei_bento.model.st_config import SentenceTransformerConfig
from tei_bento.model.tasks import Task, auto_class

log = logging.getLogger(__name__)

ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert"}


@dataclass
class ForwardOutput:
    """Per-batch results, rows in the order of the batch's sequences."""

    pooled: np.ndarray | None = None
    token_states: list[np.ndarray] = field(default_factory=list)
    sparse: np.ndarray | None = None
    logits: np.ndarray | None = None


def max_positions(config: Any) -> int | None:
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    if getattr(config, "model_type", "") in ROBERTA_LIKE:
        limit -= (getattr(config, "pad_token_id", None) or 0) + 1
    return limit


class LoadedModel:
    def __init__(
        self,
        folder: Path,
        config: Any,
        task: Task,
        pooling: str,
        placement: Placement,
        st_config: SentenceTransformerConfig,
        dense_path: str | None = None,
    ) -> None:
        self.task = task
        self.pooling = pooling
        self.placement = placement
        self.config = config
        self.pad_token_id = _pad_token_id(config)
        self.network = self._load_network(folder, task, placement)
        parameters = inspect.signature(self.network.forward).parameters
        self.accepts_token_type_ids = "token_type_ids" in parameters
        self.dense = self._load_dense(folder, st_config, dense_path)
        self.hidden_size = int(getattr(config, "hidden_size", 0) or 0)
        self.embedding_size = self._embedding_size()

    # -- loading ---------------------------------------------------------------------

    @staticmethod
    def _load_network(folder: Path, task: Task, placement: Placement) -> torch.nn.Module:
        loader = auto_class(task)
        kwargs = dict(dtype=placement.dtype)
        try:
            network = loader.from_pretrained(
                folder, attn_implementation=placement.attention, **kwargs
            )
        except (ValueError, ImportError) as exc:  # architecture without SDPA support
            log.warning("Falling back to eager attention: %s", exc)
            network = loader.from_pretrained(folder, attn_implementation="eager", **kwargs)
        return network.to(placement.device).eval()

    def _load_dense(
        self, folder: Path, st_config: SentenceTransformerConfig, dense_path: str | None
    ) -> torch.nn.Module | None:
        if self.task is not Task.EMBEDDING:
            return None
        dirs = [folder / dense_path] if dense_path else st_config.dense_dirs
        if not dirs:
            return None
        layers = [load_dense(d) for d in dirs]
        return torch.nn.Sequential(*layers).to(self.placement.device).eval()

    def _embedding_size(self) -> int:
        if self.task is Task.SPLADE:
            return int(self.config.vocab_size)
        if self.dense is not None:
            return int(self.dense[-1][0].out_features)
        return self.hidden_size

    def onnx_by_default(self) -> bool:
        """Where `--backend auto` picks ONNX Runtime: float32 BERT-family encoders on CPU.

        There ORT's fused graph computes the same float32 numbers as the torch network in
        a fraction of the time on small batches (5.5 ms against 14 ms traced for a
        17-token text through all-MiniLM-L6-v2 on 2 vCPUs) and faster at saturation."""
        from tei_bento.model.positional import BERT_FAMILY

        if self.placement.device.type != "cpu" or self.placement.dtype != torch.float32:
            return False
        if getattr(self.config, "model_type", "") not in BERT_FAMILY:
            return False
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    def use_onnx(self, folder: Path, quantize: str | None, encode: Any, verify: bool = False) -> Any:
        """Swap the torch network for an ONNX Runtime one (CPU only); returns its report.

        With `verify`, the swap happens only if the ONNX model reproduces the torch network
        on batches of unseen shapes (see `reproduces`); otherwise OnnxMismatch is raised and
        the torch network stays."""
        from tei_bento.model.onnx_backend import OnnxMismatch, build_onnx_network
        from tei_bento.model.positional import reproduces
        from tei_bento.settings import available_cores

        if self.placement.device.type != "cpu":
            raise RuntimeError("`--backend onnx` runs on CPU; use the torch backend on accelerators")
        network, report = build_onnx_network(
            folder,
            self.task,
            self.config,
            self.accepts_token_type_ids,
            quantize,
            available_cores(),
            encode,
        )
        if verify and not reproduces(
            network, self.network, self.task, self.config, self.pad_token_id, self.accepts_token_type_ids
        ):
            raise OnnxMismatch("the ONNX model's outputs differ from the torch network's")
        self.network = network
        return report

    def use_torchscript(self) -> bool:
        """Swap the eager network for a checked TorchScript trace; True when it was swapped.

        CPU only: there the per-op Python is what a small batch waits on. Call it on the
        model thread, since tracing runs the network (one OpenMP team per thread)."""
        from tei_bento.model.torchscript import trace_network

        if self.placement.device.type != "cpu" or not isinstance(self.network, torch.nn.Module):
            return False
        traced = trace_network(
            self.network, self.task, self.config, self.pad_token_id, self.accepts_token_type_ids
        )
        if traced is None:
            return False
        self.network = traced
        return True

    # -- inference -------------------------------------------------------------------

    def padded_tensors(
        self, ids: list[list[int]], type_ids: list[list[int]] | None
    ) -> dict[str, torch.Tensor]:
        """Right-pad a batch into tensors on the model's device."""
        longest = max(len(x) for x in ids)
        batch = np.full((len(ids), longest), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            batch[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        device = self.placement.device
        tensors = {
            "input_ids": torch.from_numpy(batch).to(device),
            "attention_mask": torch.from_numpy(mask).to(device),
        }
        if self.accepts_token_type_ids and type_ids is not None:
            types = np.zeros((len(ids), longest), dtype=np.int64)
            for row, seq in enumerate(type_ids):
                types[row, : len(seq)] = seq
            tensors["token_type_ids"] = torch.from_numpy(types).to(device)
        return tensors

    @torch.inference_mode()
    def forward(
        self,
        ids: list[list[int]],
        type_ids: list[list[int]] | None = None,
        want_token_states: list[bool] | None = None,
    ) -> ForwardOutput:
        tensors = self.padded_tensors(ids, type_ids)
        mask = tensors["attention_mask"]
        output = self.network(**tensors)
        if self.task in (Task.RERANKER, Task.CLASSIFIER):
            return ForwardOutput(logits=output.logits.float().cpu().numpy())
        if self.task is Task.SPLADE:
            return ForwardOutput(sparse=splade(output.logits, mask).cpu().numpy())
        states = output.last_hidden_state
        pooled = pool(states, mask, self.pooling)
        if self.dense is not None:
            pooled = self.dense(pooled)  # float32 weights on float32 pooled vectors
        result = ForwardOutput(pooled=pooled.cpu().numpy())
        if want_token_states and any(want_token_states):
            lengths = mask.sum(dim=1).tolist()
            states_cpu = states.float().cpu().numpy()
            result.token_states = [
                states_cpu[row, : lengths[row]] if wanted else np.empty(0, dtype=np.float32)
                for row, wanted in enumerate(want_token_states)
            ]
        return result


def _pad_token_id(config: Any) -> int:
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = getattr(config, "eos_token_id", None)
        if isinstance(pad, list):
            pad = pad[0]
    return int(pad or 0)
