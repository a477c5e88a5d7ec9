"""SPLADE sparse embedders: a masked LM whose logits are max-pooled over the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tei_bento.errors import WrongModelTypeError
from tei_bento.model.pooling import splade
from tei_bento.settings import Pooling
from tei_bento.tasks.base import BatchOutput, ModelFolder, Route, Task, architectures, finite
from tei_bento.tasks.embedding import embed_job


@dataclass(frozen=True)
class SparseJob:
    needs_token_states = False

    def extract(self, output: BatchOutput, row: int) -> tuple[np.ndarray, np.ndarray]:
        vector = finite(output.vectors[row])
        indices = np.flatnonzero(vector)
        return indices, vector[indices]


class SpladeTask(Task):
    name = "splade"  # /info reports it as TEI does: an embedder with `splade` pooling
    auto_class = "AutoModelForMaskedLM"
    network_output = "logits"
    routes = frozenset({Route.EMBED_SPARSE})
    fallback_routes = frozenset({Route.EMBED})  # the whole vocabulary-sized vector, as TEI
    invocation_route = Route.EMBED_SPARSE

    def __init__(self, folder: ModelFolder) -> None:
        if not any(a.endswith("ForMaskedLM") for a in architectures(folder.config)):
            raise RuntimeError("`--pooling splade` needs a *ForMaskedLM model")
        super().__init__(folder)

    @classmethod
    def matches(cls, config: Any, pooling: Pooling) -> bool:
        return pooling is Pooling.SPLADE

    @property
    def embedding_size(self) -> int:
        return int(self.config.vocab_size)

    def check(self, route: Route, **options: Any) -> None:
        if route is Route.EMBED_ALL:
            raise WrongModelTypeError("`embed_all` is not available for SPLADE models")
        super().check(route, **options)
        if route is Route.EMBED and options.get("normalize", True):
            raise WrongModelTypeError("`normalize` is not available for SPLADE models")
        if options.get("embedding_type", "float") != "float":
            raise WrongModelTypeError("`embedding_type` is not available for SPLADE models")

    def job(self, route: Route, **options: Any) -> Any:
        if route is Route.EMBED:
            return embed_job(self.embedding_size, False, options.get("dimensions"))
        return SparseJob()

    def head(
        self, output: torch.Tensor, mask: torch.Tensor, pool_mask: torch.Tensor, want_states: list[bool]
    ) -> BatchOutput:
        return BatchOutput(splade(output, mask).cpu().numpy())

    def model_type(self) -> dict[str, Any]:
        return {"embedding": {"pooling": Pooling.SPLADE.tei_name}}
