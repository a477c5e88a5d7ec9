"""Quantized embeddings (int8, uint8, binary, ubinary), as sentence-transformers makes them.

TEI declined these (#219); vector stores take them and they cut memory 4-32x. The numbers are
`sentence_transformers.quantization.quantize_embeddings`': int8 / uint8 put each dimension's
[min, max] into 256 buckets (floor, clipped), binary / ubinary pack the signs 8 to a byte.

Buckets need ranges, and a single request is no sample to take them from, so the server
takes them from a calibration set: by default the 128 texts in `data/calibration.jsonl`
(96 short queries and 32 passages of English prose from the Python standard library's
docstrings, the benchmark corpus's kinds), embedded once at start-up; `--calibration-texts
FILE` gives your own (one text per line, or JSONL with a `text` field), and
`--quantization-ranges FILE` gives the ranges outright (JSON `[[min, ...], [max, ...]]`).
Ranges follow each request's `normalize` and `dimensions` (the calibration vectors are cut
and normalized the same way), and `/info` shows the default ones.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary"]
EMBEDDING_TYPES: tuple[str, ...] = ("float", "int8", "uint8", "binary", "ubinary")
CALIBRATION_FILE = Path(__file__).resolve().parent / "data" / "calibration.jsonl"
NORM_EPS = 1e-12


def read_texts(path: Path) -> list[str]:
    """One text per line, or JSONL whose objects carry a `text` field."""
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            texts.append(str(json.loads(line)["text"]))
        else:
            texts.append(line)
    if not texts:
        raise RuntimeError(f"{path}: no calibration texts")
    return texts


def read_ranges(path: Path) -> np.ndarray:
    ranges = np.asarray(json.loads(Path(path).read_text()), dtype=np.float32)
    if ranges.ndim != 2 or ranges.shape[0] != 2:
        raise RuntimeError(f"{path}: quantization ranges must be [[min, ...], [max, ...]]")
    return ranges


def ranges_of(vectors: np.ndarray) -> np.ndarray:
    return np.vstack((vectors.min(axis=0), vectors.max(axis=0))).astype(np.float32)


def quantize(vectors: np.ndarray, embedding_type: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """`vectors` (n, d) float32 as `embedding_type`; `ranges` (2, d) for int8 / uint8."""
    if embedding_type == "float":
        return vectors.astype(np.float32, copy=False)
    if embedding_type in ("int8", "uint8"):
        assert ranges is not None
        starts = ranges[0]
        steps = (ranges[1] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        buckets = np.clip(np.floor((vectors - starts) / steps), 0, 255)
        return buckets.astype(np.uint8) if embedding_type == "uint8" else (buckets - 128).astype(np.int8)
    if embedding_type == "binary":
        return (np.packbits(vectors > 0, axis=-1) - 128).astype(np.int8)
    if embedding_type == "ubinary":
        return np.packbits(vectors > 0, axis=-1)
    raise ValueError(f"unknown embedding type {embedding_type!r}")


def float_base64(vector: np.ndarray) -> str:
    """Little-endian float32 bytes, base64: OpenAI's `encoding_format: base64` and Cohere's."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()


@dataclass
class Calibration:
    """Calibration vectors of one model (pooled, unnormalized, full size) or given ranges."""

    source: str
    vectors: np.ndarray | None = None
    given: np.ndarray | None = None
    _ranges: dict[tuple[bool, int | None], np.ndarray] = field(default_factory=dict)

    def ranges(self, normalize: bool, dimensions: int | None) -> np.ndarray:
        if self.given is not None:
            return self.given[:, :dimensions] if dimensions else self.given
        key = (normalize, dimensions)
        if key not in self._ranges:
            assert self.vectors is not None
            vectors = self.vectors[:, :dimensions] if dimensions else self.vectors
            if normalize:
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.maximum(norms, NORM_EPS)
            self._ranges[key] = ranges_of(vectors.astype(np.float32))
        return self._ranges[key]

    def describe(self) -> dict:
        """What `/info` shows: where the ranges come from, and the default ones (normalized)."""
        ranges = self.ranges(True, None)
        return {
            "calibration": self.source,
            "int8_ranges": ranges.tolist(),
        }
