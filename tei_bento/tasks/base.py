"""The task interface: everything that differs between an embedder, a reranker, ...

The engine, the backends and the HTTP routes are written once against this interface; a
new kind of model is a new subclass of `Task` in its own module plus one line in
`registry.py`. The head runs on the model thread right after the forward pass, and so do
the jobs, so per-input numeric work stays off the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from tei_bento.errors import BackendError, ValidationError, WrongModelTypeError
from tei_bento.model.st_config import SentenceTransformerConfig
from tei_bento.settings import ModelSettings, Pooling


class Route(str, Enum):
    """What a request asks a model to compute (several HTTP paths may share one)."""

    EMBED = "embed"  # /embed, /similarity, /v1/embeddings
    EMBED_ALL = "embed_all"
    EMBED_SPARSE = "embed_sparse"
    RERANK = "rerank"  # /rerank, /v1/rerank
    PREDICT = "predict"
    EMBED_MULTI_VECTOR = "embed_multi_vector"  # ColBERT token vectors


REFUSALS: dict[Route, str] = {
    Route.EMBED: "Model is not an embedding model",
    Route.EMBED_ALL: "Model is not an embedding model",
    Route.EMBED_SPARSE: "Model is not an embedding model with SPLADE pooling",
    Route.RERANK: "model is not a re-ranker model",
    Route.PREDICT: "Model is not a classifier model",
    Route.EMBED_MULTI_VECTOR: "Model is not a multi-vector (ColBERT) model",
}
"""TEI's 424 messages when a route does not fit the model."""


@dataclass
class BatchOutput:
    """A batch's results, rows in batch order: one vector per input (pooled embedding,
    SPLADE vector or logits), and each input's token states where a job asked for them."""

    vectors: np.ndarray
    token_states: list[np.ndarray] = field(default_factory=list)
    ids: list[list[int]] = field(default_factory=list)
    """Each row's token ids, as fed."""


class Job(Protocol):
    """What to compute for one queued input, and how its answer is cut out of the batch."""

    needs_token_states: bool

    def extract(self, output: BatchOutput, row: int) -> Any: ...


@dataclass(frozen=True)
class ModelFolder:
    """What a task reads off the folder it serves."""

    path: Path
    config: Any
    st_config: SentenceTransformerConfig
    pooling: Pooling
    settings: ModelSettings
    device: torch.device


def finite(values: np.ndarray) -> np.ndarray:
    """A NaN or infinity fails this input only, with TEI's Backend error (424)."""
    if not np.isfinite(values).all():
        raise BackendError("inference returned NaN or infinite values")
    return values


def architectures(config: Any) -> list[str]:
    return list(getattr(config, "architectures", None) or [])


class Task(ABC):
    """One kind of model, bound to the folder it serves."""

    name: ClassVar[str]
    """The task's name, and its key in `/info`'s `model_type`."""
    auto_class: ClassVar[str]
    """The transformers Auto class that loads the folder."""
    network_output: ClassVar[str]
    """The field of the transformers output the head reads (`last_hidden_state`, `logits`)."""
    routes: ClassVar[frozenset[Route]]
    """Routes this task serves, and where a model is picked for them by default."""
    fallback_routes: ClassVar[frozenset[Route]] = frozenset()
    """Routes it also answers, picked by default only when no model serves them outright."""
    invocation_route: ClassVar[Route]
    """What `POST /`, `/invocations` and `/vertex` do with this model."""

    def __init__(self, folder: ModelFolder) -> None:
        self.folder = folder
        self.config = folder.config
        self.pooling = folder.pooling

    @classmethod
    @abstractmethod
    def matches(cls, config: Any, pooling: Pooling) -> bool:
        """Whether a folder with this config, served with this pooling, is this task."""

    chunkable: ClassVar[bool] = False
    """Whether `--long-inputs chunk` may split its EMBED inputs into windows (dense pooled
    vectors average; a SPLADE vector or a score does not)."""
    quantizable: ClassVar[bool] = False
    """Whether `/embed` may ask for int8 / uint8 / binary vectors (the engine then calibrates
    the task at start-up: `calibration`)."""
    accepts_instruction: ClassVar[bool] = False
    """Whether requests may carry an `instruction` (LLM rerankers)."""

    def bind_tokenizer(self, tokenizer: Any) -> tuple[list[int], list[int]] | None:
        """Called once at load time with the model's tokenizer; a task may return token ids
        the tokenizer pool puts before and after every input (a chat template's ends)."""
        return None

    def format_inputs(self, route: Route, inputs: list[Any], **options: Any) -> list[Any]:
        """The inputs as the tokenizer should see them (a prompt template filled in)."""
        return inputs

    def window_job(self) -> Job:
        """A chunkable task's job for one window of a long input."""
        raise NotImplementedError

    def join_windows(self, job: Job, values: list[Any], weights: list[int]) -> Any:
        """A chunkable task's answer for one input from its windows' values."""
        raise NotImplementedError

    def serves(self, route: Route) -> bool:
        return route in self.routes or route in self.fallback_routes

    def check(self, route: Route, **options: Any) -> None:
        """TEI answers 424 with a Backend error when a route or option does not fit."""
        if not self.serves(route):
            raise WrongModelTypeError(REFUSALS[route])
        if options.get("instruction") is not None and not self.accepts_instruction:
            raise ValidationError("`instruction` is only available for LLM rerankers")

    @abstractmethod
    def job(self, route: Route, **options: Any) -> Job:
        """The job for one input of this route; validates the route's options (422)."""

    @abstractmethod
    def head(
        self, output: torch.Tensor, mask: torch.Tensor, pool_mask: torch.Tensor, want_states: list[bool]
    ) -> BatchOutput:
        """The batch's rows from the network output (`mask`: attention; `pool_mask`: the
        tokens pooling reads, prompts excluded where the folder says so)."""

    @abstractmethod
    def model_type(self) -> dict[str, Any]:
        """`/info`'s `model_type`."""

    @property
    def embedding_size(self) -> int | None:
        """Length of the vectors `/embed` answers; None where the task embeds nothing."""
        return None
