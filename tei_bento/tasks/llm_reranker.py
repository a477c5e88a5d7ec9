"""LLM rerankers (Qwen3-Reranker kind): a causal LM asked whether a document meets a query.

The score is the model card's: the probability of "yes" over {"yes", "no"} at the last
token of the card's prompt (system prompt, `<Instruct>`, `<Query>`, `<Document>`, then the
assistant turn), that is sigmoid(logit_yes - logit_no). Only the two rows of the LM head
that matter are kept, so a batch costs the base model plus a 2 x hidden product instead of
a vocabulary-sized projection of every token.

The card pads on the left; this engine pads on the right and reads each row's last real
token, which a causal model computes the same way (RoPE positions only shift by a constant
under left padding, and attention scores depend on position differences).

A folder is served as an LLM reranker when it is a `*ForCausalLM` and either `--llm-reranker`
is set, its name contains "rerank" (as Qwen3-Reranker-0.6B's does), or it holds an
`llm_reranker.json` (the template below, any key overridden).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tei_bento.errors import ValidationError
from tei_bento.settings import ModelSettings, Pooling
from tei_bento.tasks.base import BatchOutput, ModelFolder, Route, Task, architectures
from tei_bento.tasks.classification import ScoreJob

TEMPLATE_FILE = "llm_reranker.json"


@dataclass(frozen=True)
class RerankTemplate:
    """The prompt around each (query, document) pair, as Qwen3-Reranker's card builds it."""

    prefix: str = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
        'Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
        "<|im_end|>\n<|im_start|>user\n"
    )
    suffix: str = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    body: str = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
    default_instruction: str = "Given a web search query, retrieve relevant passages that answer the query"
    yes_token: str = "yes"
    no_token: str = "no"

    @classmethod
    def for_folder(cls, path: Path) -> "RerankTemplate":
        file = path / TEMPLATE_FILE
        if not file.is_file():
            return cls()
        data = json.loads(file.read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise RuntimeError(f"{file}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return replace(cls(), **data)

    def format(self, query: str, document: str, instruction: str | None) -> str:
        return self.body.format(
            instruction=self.default_instruction if instruction is None else instruction,
            query=query,
            document=document,
        )


def is_causal_lm(config: Any) -> bool:
    return any(a.endswith("ForCausalLM") for a in architectures(config))


def claims_folder(settings: ModelSettings, path: Path, config: Any) -> bool:
    """Whether to serve this folder as an LLM reranker (see the module docstring)."""
    if settings.llm_reranker is False or not is_causal_lm(config):
        return False
    if settings.llm_reranker:
        return True
    names = (settings.model_id.rstrip("/").rsplit("/", 1)[-1], path.name)
    return any("rerank" in name.lower() for name in names) or (path / TEMPLATE_FILE).is_file()


def lm_head_rows(path: Path, config: Any, token_ids: list[int]) -> torch.Tensor:
    """Rows of the LM head (the input embeddings where the folder ties them) for `token_ids`."""
    from safetensors import safe_open

    tied = bool(getattr(config, "tie_word_embeddings", False))
    wanted = ("model.embed_tokens.weight", "embed_tokens.weight") if tied else ("lm_head.weight",)
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as weights:
            for name in wanted:
                if name in weights.keys():
                    return weights.get_tensor(name)[token_ids].float()
    raise RuntimeError(f"`{path}` has no {' or '.join(wanted)} in its safetensors files")


class LLMRerankerTask(Task):
    name = "reranker"  # /info reports TEI's reranker type, so TEI's clients read it as one
    auto_class = "AutoModel"  # the base model: the head keeps only the yes/no rows
    network_output = "last_hidden_state"
    routes = frozenset({Route.RERANK})
    fallback_routes = frozenset({Route.PREDICT})  # (query, document) pairs
    invocation_route = Route.RERANK
    accepts_instruction = True

    def __init__(self, folder: ModelFolder) -> None:
        super().__init__(folder)
        self.template = RerankTemplate.for_folder(folder.path)
        self._yes_no: torch.Tensor | None = None  # set by `bind_tokenizer`

    @classmethod
    def matches(cls, config: Any, pooling: Pooling) -> bool:
        return False  # chosen by `claims_folder`, never by config alone

    def label(self, index: int) -> str:
        return self.template.yes_token

    def bind_tokenizer(self, tokenizer: Any) -> tuple[list[int], list[int]]:
        """The yes/no rows of the head, and the prefix / suffix token ids the tokenizer pool
        puts around every input (tokenized apart, as the card does)."""
        ids = []
        for token in (self.template.yes_token, self.template.no_token):
            token_id = tokenizer.token_to_id(token)
            if token_id is None:
                raise RuntimeError(f"the tokenizer has no `{token}` token for the LLM reranker's answer")
            ids.append(token_id)
        rows = lm_head_rows(self.folder.path, self.config, ids)
        self._yes_no = rows.to(self.folder.device)
        prefix = tokenizer.encode(self.template.prefix, add_special_tokens=False).ids
        suffix = tokenizer.encode(self.template.suffix, add_special_tokens=False).ids
        return prefix, suffix

    def format_inputs(self, route: Route, inputs: list[Any], **options: Any) -> list[Any]:
        instruction = options.get("instruction")
        formatted = []
        for value in inputs:
            if not isinstance(value, tuple):
                raise ValidationError("an LLM reranker scores (query, document) pairs")
            formatted.append(self.template.format(value[0], value[1], instruction))
        return formatted

    def job(self, route: Route, **options: Any) -> ScoreJob:
        return ScoreJob(bool(options.get("raw_scores", False)))

    def head(
        self, output: torch.Tensor, mask: torch.Tensor, pool_mask: torch.Tensor, want_states: list[bool]
    ) -> BatchOutput:
        assert self._yes_no is not None, "bind_tokenizer runs at load time"
        last = mask.sum(dim=1) - 1
        states = output[torch.arange(output.shape[0], device=output.device), last].float()
        logits = states @ self._yes_no.T  # (batch, 2): yes, no
        return BatchOutput((logits[:, :1] - logits[:, 1:]).cpu().numpy().astype(np.float32))

    def model_type(self) -> dict[str, Any]:
        label = self.template.yes_token
        return {self.name: {"id2label": {"0": label}, "label2id": {label: 0}}}
