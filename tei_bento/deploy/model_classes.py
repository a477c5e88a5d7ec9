"""The model classes that size a deployment, and the guess of a model's class from its id.

One table for configs/ (`python -m tei_bento.deploy.presets`) and `tei-bento truss`. Imports
only sizing.py, so both writers can import it: truss.py imports this, presets.py imports both.
"""

from __future__ import annotations

import dataclasses

from tei_bento.deploy.sizing import DeployTask, ModelClass

# name, example, task, parameters (M), hidden, layers, MLP, max input, vocab, decoder
_TABLE = [
    ("bert-small", "BAAI/bge-small-en-v1.5", "embed", 33.4, 384, 12, 1536, 512, 30522, False),
    ("bert-base", "BAAI/bge-base-en-v1.5", "embed", 109.5, 768, 12, 3072, 512, 30522, False),
    ("bert-large", "BAAI/bge-large-en-v1.5", "embed", 335.1, 1024, 24, 4096, 512, 30522, False),
    ("decoder-1.5b", "Alibaba-NLP/gte-Qwen2-1.5B-instruct", "embed",
     1543.3, 1536, 28, 8960, 8192, 151646, True),
    ("decoder-7b", "intfloat/e5-mistral-7b-instruct", "embed",
     7110.7, 4096, 32, 14336, 4096, 32000, True),
    ("reranker-base", "BAAI/bge-reranker-base", "rerank", 278.0, 768, 12, 3072, 512, 250002, False),
    ("reranker-large", "BAAI/bge-reranker-v2-m3", "rerank",
     567.8, 1024, 24, 4096, 8192, 250002, False),
]  # fmt: skip
MODEL_CLASSES: dict[str, ModelClass] = {
    row[0]: ModelClass(*row[:9], decoder=row[9], inputs_per_request=16 if row[2] == "rerank" else 1)
    for row in _TABLE
}


def guess_model_class(model_id: str, task: DeployTask) -> ModelClass:
    """A class from the model id's usual naming; `--model-class` overrides a wrong guess."""
    name = model_id.lower()
    if task == "rerank":
        large = any(word in name for word in ("large", "m3", "v2", "gemma"))
        return for_task(MODEL_CLASSES["reranker-large" if large else "reranker-base"], task)
    if any(word in name for word in ("7b", "8b", "mistral", "llama")):
        found = "decoder-7b"
    elif any(word in name for word in ("1.5b", "1_5b", "qwen", "0.6b", "2b")):
        found = "decoder-1.5b"
    elif any(word in name for word in ("small", "minilm", "mini", "tiny")):
        found = "bert-small"
    elif "large" in name:
        found = "bert-large"
    else:
        found = "bert-base"
    return for_task(MODEL_CLASSES[found], task)


def for_task(model: ModelClass, task: DeployTask) -> ModelClass:
    """The same shape serving another task (a BERT-base sized classifier, say)."""
    if model.task == task:
        return model
    return dataclasses.replace(model, task=task, inputs_per_request=16 if task == "rerank" else 1)
