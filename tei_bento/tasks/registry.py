"""Every task, in the order a folder is matched against them (the first match wins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tei_bento.settings import ModelSettings, Pooling
from tei_bento.tasks.base import Task, architectures
from tei_bento.tasks.classification import ClassifierTask, RerankerTask
from tei_bento.tasks.colbert import ColBERTTask, is_colbert_folder
from tei_bento.tasks.embedding import EmbeddingTask
from tei_bento.tasks.llm_reranker import LLMRerankerTask, claims_folder
from tei_bento.tasks.splade import SpladeTask

TASKS: tuple[type[Task], ...] = (RerankerTask, ClassifierTask, SpladeTask, EmbeddingTask)


def detect_task(
    config: Any, pooling: Pooling, settings: ModelSettings | None = None, path: Path | None = None
) -> type[Task]:
    """Tasks chosen by folder and settings first (an LLM reranker is a causal LM like a
    decoder embedder), then the first whose config test matches."""
    if settings is not None and path is not None:
        if is_colbert_folder(path):
            return ColBERTTask
        if claims_folder(settings, path, config):
            return LLMRerankerTask
    return next(task for task in TASKS if task.matches(config, pooling))


def default_pooling(config: Any) -> Pooling:
    """TEI pools CLS when a folder names no pooling; decoders can only pool the last token."""
    causal = any(a.endswith("ForCausalLM") for a in architectures(config))
    if getattr(config, "is_decoder", False) or causal:
        return Pooling.LAST_TOKEN
    return Pooling.CLS
