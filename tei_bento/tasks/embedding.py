"""Dense embedders: pooled token states, then the folder's Dense modules, then normalize."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tei_bento.errors import BackendError, ValidationError
from tei_bento.model.dense import load_dense_stack
from tei_bento.model.pooling import pool
from tei_bento.quantization import EMBEDDING_TYPES, Calibration, quantize
from tei_bento.settings import Pooling
from tei_bento.tasks.base import BatchOutput, ModelFolder, Route, Task, finite

NORM_EPS = 1e-12  # torch.nn.functional.normalize's eps, as sentence-transformers uses


def normalize(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), NORM_EPS)


@dataclass(frozen=True)
class EmbedJob:
    """One vector: the first `dimensions` values (Matryoshka), normalized if asked, then
    quantized to `embedding_type` (int8 / uint8 with `ranges`)."""

    normalize: bool = True
    dimensions: int | None = None
    embedding_type: str = "float"
    ranges: np.ndarray | None = None
    needs_token_states = False

    def extract(self, output: BatchOutput, row: int) -> np.ndarray:
        return self.finish(finite(output.vectors[row]))

    def finish(self, vector: np.ndarray) -> np.ndarray:
        """A pooled vector (one input's, or its windows' mean) as the request asked for it."""
        if self.dimensions is not None:
            vector = vector[: self.dimensions]
        vector = normalize(vector) if self.normalize else vector
        if self.embedding_type != "float":
            return quantize(vector[None, :].astype(np.float32), self.embedding_type, self.ranges)[0]
        return vector


def embed_job(
    size: int,
    normalize: bool = True,
    dimensions: int | None = None,
    embedding_type: str = "float",
    calibration: Calibration | None = None,
) -> EmbedJob:
    if dimensions is not None:
        if dimensions <= 0:
            raise ValidationError("`dimensions` should be positive")
        if dimensions > size:
            raise ValidationError("`dimensions` should be smaller than the maximum embedding dimension.")
    if embedding_type not in EMBEDDING_TYPES:
        raise ValidationError(f"`embedding_type` must be one of {', '.join(EMBEDDING_TYPES)}")
    ranges = None
    if embedding_type in ("int8", "uint8"):
        if calibration is None:
            raise BackendError("int8 / uint8 embeddings need the model's calibration, which is missing")
        ranges = calibration.ranges(normalize, dimensions)
    return EmbedJob(normalize=normalize, dimensions=dimensions, embedding_type=embedding_type, ranges=ranges)


@dataclass(frozen=True)
class WindowJob:
    """One window of a chunked input: its pooled vector as it is; the engine pools the
    windows and hands the mean to the input's EmbedJob."""

    needs_token_states = False

    def extract(self, output: BatchOutput, row: int) -> np.ndarray:
        return np.asarray(finite(output.vectors[row]), dtype=np.float32)


@dataclass(frozen=True)
class TokenStatesJob:
    needs_token_states = True

    def extract(self, output: BatchOutput, row: int) -> np.ndarray:
        return finite(output.token_states[row])


class EmbeddingTask(Task):
    name = "embedding"
    auto_class = "AutoModel"
    network_output = "last_hidden_state"
    routes = frozenset({Route.EMBED, Route.EMBED_ALL})
    invocation_route = Route.EMBED
    quantizable = True
    chunkable = True

    def __init__(self, folder: ModelFolder) -> None:
        super().__init__(folder)
        dense_path = folder.settings.dense_path
        dirs = [folder.path / dense_path] if dense_path else folder.st_config.dense_dirs
        hidden = int(getattr(self.config, "hidden_size", 0) or 0)
        self.dense, self._size = load_dense_stack(dirs, folder.device, hidden)
        self.calibration: Calibration | None = None  # set by the engine at start-up

    @classmethod
    def matches(cls, config: Any, pooling: Pooling) -> bool:
        return True  # the registry's last resort: anything without a head embeds

    @property
    def embedding_size(self) -> int:
        return self._size

    def window_job(self) -> WindowJob:
        return WindowJob()

    def join_windows(self, job: EmbedJob, values: list[np.ndarray], weights: list[int]) -> np.ndarray:
        """The windows' pooled vectors, averaged weighted by their token counts, then the
        request's dimensions / normalize / embedding_type as for one vector."""
        mean = np.average(np.stack(values), axis=0, weights=np.asarray(weights, dtype=np.float64))
        return job.finish(mean.astype(np.float32))

    def job(self, route: Route, **options: Any) -> Any:
        if route is Route.EMBED_ALL:
            return TokenStatesJob()
        return embed_job(
            self._size,
            options.get("normalize", True),
            options.get("dimensions"),
            options.get("embedding_type", "float"),
            self.calibration,
        )

    def head(
        self, output: torch.Tensor, mask: torch.Tensor, pool_mask: torch.Tensor, want_states: list[bool]
    ) -> BatchOutput:
        pooled = pool(output, pool_mask, self.pooling)
        if self.dense is not None:
            pooled = self.dense(pooled)  # float32 weights on float32 pooled vectors
        result = BatchOutput(pooled.cpu().numpy())
        if any(want_states):
            lengths = mask.sum(dim=1).tolist()
            states = output.float().cpu().numpy()
            result.token_states = [
                states[row, : lengths[row]] if wanted else np.empty(0, dtype=np.float32)
                for row, wanted in enumerate(want_states)
            ]
        return result

    def model_type(self) -> dict[str, Any]:
        return {"embedding": {"pooling": self.pooling.tei_name}}
