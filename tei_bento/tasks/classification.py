"""Sequence classifiers: rerankers (one label) and classifiers (several), scored as TEI does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tei_bento.settings import Pooling
from tei_bento.tasks.base import BatchOutput, ModelFolder, Route, Task, architectures, finite


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


@dataclass(frozen=True)
class ScoreJob:
    """Label scores: softmax over labels, sigmoid for a single label, or raw logits.

    These are the activations sentence-transformers' CrossEncoder and TEI apply by default.
    """

    raw_scores: bool = False
    needs_token_states = False

    def extract(self, output: BatchOutput, row: int) -> np.ndarray:
        logits = finite(output.vectors[row]).astype(np.float64)
        if self.raw_scores:
            return logits
        return sigmoid(logits) if logits.shape[0] == 1 else softmax(logits)


def is_sequence_classifier(config: Any) -> bool:
    return any(a.endswith("ForSequenceClassification") for a in architectures(config))


class ClassifierTask(Task):
    name = "classifier"
    auto_class = "AutoModelForSequenceClassification"
    network_output = "logits"
    routes = frozenset({Route.PREDICT})
    invocation_route = Route.PREDICT

    def __init__(self, folder: ModelFolder) -> None:
        super().__init__(folder)
        labels = getattr(self.config, "id2label", None) or {}
        self.id2label = {int(k): v for k, v in labels.items()}

    @classmethod
    def matches(cls, config: Any, pooling: Pooling) -> bool:
        return is_sequence_classifier(config)

    def label(self, index: int) -> str:
        return self.id2label.get(index, f"LABEL_{index}")

    def job(self, route: Route, **options: Any) -> ScoreJob:
        return ScoreJob(bool(options.get("raw_scores", False)))

    def head(
        self, output: torch.Tensor, mask: torch.Tensor, pool_mask: torch.Tensor, want_states: list[bool]
    ) -> BatchOutput:
        return BatchOutput(output.float().cpu().numpy())

    def model_type(self) -> dict[str, Any]:
        labels = {str(k): v for k, v in sorted(self.id2label.items())}
        return {self.name: {"id2label": labels, "label2id": {v: int(k) for k, v in labels.items()}}}


class RerankerTask(ClassifierTask):
    """A sequence classifier with exactly one label (TEI's rule): scores (query, text) pairs."""

    name = "reranker"
    routes = frozenset({Route.RERANK})
    fallback_routes = frozenset({Route.PREDICT})  # a classifier, where one is served, first
    invocation_route = Route.RERANK

    @classmethod
    def matches(cls, config: Any, pooling: Pooling) -> bool:
        return is_sequence_classifier(config) and getattr(config, "num_labels", 2) == 1
