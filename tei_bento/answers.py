"""Engine results shaped as TEI's answers, for every door a request comes through.

The HTTP routes, the BentoML API methods (and gRPC after them) answer the same numbers in
the same order, so the shaping lives here once: TEI's sort (ascending, stable, then
reversed), the Cohere / Dify `results` form, label scores, SPARSE (index, value) pairs.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from tei_bento.errors import BackendError


def tei_order(scores: list[float]) -> list[int]:
    """Indices by descending score; ties keep TEI's order (later index first)."""
    return list(reversed(sorted(range(len(scores)), key=lambda i: scores[i])))


def check_finite(scores: list[float]) -> None:
    if any(math.isnan(s) for s in scores):
        raise BackendError("score is NaN")


def ranked(scores: list[float], top_n: int | None = None) -> list[int]:
    check_finite(scores)
    order = tei_order(scores)
    return order if top_n is None else order[:top_n]


def relevance_results(
    scores: list[float], texts: list[str], top_n: int | None, with_documents: bool
) -> list[dict[str, Any]]:
    """The Cohere / Jina / Dify / FastGPT `results`, best first."""
    return [
        {"index": i, "relevance_score": scores[i]}
        | ({"document": {"text": texts[i]}} if with_documents else {})
        for i in ranked(scores, top_n)
    ]


def tei_ranks(
    scores: list[float], texts: list[str], top_n: int | None, with_text: bool
) -> list[dict[str, Any]]:
    """TEI's `/rerank` answer: `[{"index", "score", "text"?}]`, best first."""
    return [
        {"index": i, "score": scores[i]} | ({"text": texts[i]} if with_text else {})
        for i in ranked(scores, top_n)
    ]


def label_scores(values: Any, label: Callable[[int], str]) -> list[dict[str, Any]]:
    """One input's `[{"score", "label"}]`, best first."""
    scores = [float(s) for s in values]
    return [{"score": scores[i], "label": label(i)} for i in ranked(scores)]


def sparse_values(indices: np.ndarray, values: np.ndarray) -> list[dict[str, Any]]:
    return [{"index": int(i), "value": float(v)} for i, v in zip(indices.tolist(), values.tolist())]


def cosine(source: np.ndarray, others: np.ndarray) -> np.ndarray:
    dots = others @ source
    norms = np.linalg.norm(others, axis=1) * np.linalg.norm(source)
    return np.where(dots == 0, 0.0, dots / np.maximum(norms, 1e-12)).astype(np.float32)
