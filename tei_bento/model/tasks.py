"""What a model folder is for, decided the way TEI decides it.

A sequence classifier with one label is a reranker, with several a classifier; a masked
LM served with SPLADE pooling is a sparse embedder; anything else is a dense embedder.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class Task(str, Enum):
    EMBEDDING = "embedding"
    SPLADE = "splade"
    RERANKER = "reranker"
    CLASSIFIER = "classifier"


def detect_task(config: Any, pooling: str | None) -> Task:
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return Task.RERANKER if getattr(config, "num_labels", 2) == 1 else Task.CLASSIFIER
    if pooling == "splade":
        return Task.SPLADE
    return Task.EMBEDDING


def default_pooling(config: Any) -> str:
    """TEI pools CLS when a folder names no pooling; decoders can only pool the last token."""
    if getattr(config, "is_decoder", False) or _is_causal(config):
        return "last-token"
    return "cls"


def _is_causal(config: Any) -> bool:
    architectures = getattr(config, "architectures", None) or []
    return any(a.endswith("ForCausalLM") for a in architectures)


def auto_class(task: Task) -> Any:
    """The transformers Auto class that loads a folder for this task."""
    import transformers

    return {
        Task.EMBEDDING: transformers.AutoModel,
        Task.SPLADE: transformers.AutoModelForMaskedLM,
        Task.RERANKER: transformers.AutoModelForSequenceClassification,
        Task.CLASSIFIER: transformers.AutoModelForSequenceClassification,
    }[task]
