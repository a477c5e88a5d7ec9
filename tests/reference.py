"""Reference numbers from sentence-transformers / transformers on the same folder."""

from __future__ import annotations

import numpy as np


def cosine_rows(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def assert_same_vectors(got, expected, min_cosine: float = 0.99999, atol: float = 1e-4) -> None:
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    cos = cosine_rows(got, expected)
    assert cos.min() >= min_cosine, cos
    np.testing.assert_allclose(got, expected, atol=atol, rtol=1e-3)


def without_normalize(model):
    """The same SentenceTransformer minus a trailing Normalize module (TEI's normalize=false)."""
    from sentence_transformers import SentenceTransformer

    modules = [m for m in model if type(m).__name__ != "Normalize"]
    return SentenceTransformer(modules=modules, device="cpu")


def assert_tei_error(response, status: int, message: str, error_type: str) -> None:
    """TEI's error contract: this status and exactly this body."""
    assert response.status_code == status, response.text
    assert response.json() == {"error": message, "error_type": error_type}
