"""What to compute for one queued input, and how to cut its answer out of a batch output.

Extraction runs on the model thread, right after the forward pass, so per-input numeric
work (truncating dimensions, normalizing, sparsifying, softmax) stays off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tei_bento.errors import BackendError
from tei_bento.model.loaded_model import ForwardOutput


def finite(values: np.ndarray) -> np.ndarray:
    """A NaN or infinity fails this input only, with TEI's Backend error (424)."""
    if not np.isfinite(values).all():
        raise BackendError("inference returned NaN or infinite values")
    return values


NORM_EPS = 1e-12  # torch.nn.functional.normalize's eps, as sentence-transformers uses


def normalize(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), NORM_EPS)


@dataclass(frozen=True)
class EmbedJob:
    normalize: bool = True
    dimensions: int | None = None
    needs_token_states = False

    def extract(self, output: ForwardOutput, row: int) -> np.ndarray:
        dense = output.pooled if output.pooled is not None else output.sparse
        assert dense is not None
        vector = finite(dense[row])
        if self.dimensions is not None:
            vector = vector[: self.dimensions]
        return normalize(vector) if self.normalize else vector


@dataclass(frozen=True)
class TokenStatesJob:
    needs_token_states = True

    def extract(self, output: ForwardOutput, row: int) -> np.ndarray:
        return finite(output.token_states[row])


@dataclass(frozen=True)
class SparseJob:
    needs_token_states = False

    def extract(self, output: ForwardOutput, row: int) -> tuple[np.ndarray, np.ndarray]:
        assert output.sparse is not None
        vector = finite(output.sparse[row])
        indices = np.flatnonzero(vector)
        return indices, vector[indices]


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


@dataclass(frozen=True)
class ScoreJob:
    """Classifier scores: softmax over labels, sigmoid for a single label, or raw logits.

    These are the activations sentence-transformers' CrossEncoder and TEI apply by default.
    """

    raw_scores: bool = False
    needs_token_states = False

    def extract(self, output: ForwardOutput, row: int) -> np.ndarray:
        assert output.logits is not None
        logits = finite(output.logits[row]).astype(np.float64)
        if self.raw_scores:
            return logits
        return sigmoid(logits) if logits.shape[0] == 1 else softmax(logits)
