"""ColBERT multi-vector models as PyLate saves them: one normalized vector per token.

What `pylate.models.ColBERT(folder).encode(texts, is_query=...)` computes, from the folder's
`config_sentence_transformers.json` (query / document prefix, lengths, query expansion,
attention to expansion tokens, skiplist) and its Dense projection:

- the text is stripped and tokenized with the special tokens, cut to `length - 1` tokens,
  and the prefix token (`[Q] ` / `[D] `) goes in right after the first token;
- a query is padded to `query_length` with the mask token (query expansion), those tokens
  attended only where `attend_to_expansion_tokens`, and every token's vector is kept;
- a document keeps its tokens that are not skiplist words (punctuation by default);
- each kept token's projected vector is L2-normalized.

A folder is served this way when its modules.json has PyLate's Dense or its
config_sentence_transformers.json says `"similarity_fn_name": "MaxSim"` with a query prefix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tei_bento.engine.tokenization import PreparedInput, special_ends
from tei_bento.errors import EmptyError, ValidationError
from tei_bento.model.dense import load_dense_stack
from tei_bento.settings import Pooling
from tei_bento.tasks.base import BatchOutput, ModelFolder, Route, Task, finite

DEFAULT_SKIPLIST = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def is_colbert_folder(path: Path) -> bool:
    modules = json.loads((path / "modules.json").read_text()) if (path / "modules.json").is_file() else []
    if any(str(m.get("type", "")).startswith("pylate.") for m in modules):
        return True
    config = _read(path / "config_sentence_transformers.json")
    return config.get("similarity_fn_name") == "MaxSim" and "query_prefix" in config


@dataclass(frozen=True)
class MultiVectorJob:
    """One input's token vectors: all of a query's, a document's but its skiplist tokens."""

    is_query: bool
    skiplist: frozenset[int]
    needs_token_states = True

    def extract(self, output: BatchOutput, row: int) -> np.ndarray:
        states = finite(output.token_states[row])
        if self.is_query:
            return states
        keep = [token not in self.skiplist for token in output.ids[row]]
        return states[np.asarray(keep, dtype=bool)]


class ColBERTTask(Task):
    name = "multi_vector"
    auto_class = "AutoModel"
    network_output = "last_hidden_state"
    routes = frozenset({Route.EMBED_MULTI_VECTOR})
    invocation_route = Route.EMBED_MULTI_VECTOR

    def __init__(self, folder: ModelFolder) -> None:
        super().__init__(folder)
        config = _read(folder.path / "config_sentence_transformers.json")
        self.query_prefix: str = config.get("query_prefix", "[Q] ")
        self.document_prefix: str = config.get("document_prefix", "[D] ")
        self.query_length = int(config.get("query_length") or 32)
        self.document_length = int(config.get("document_length") or 180)
        self.do_query_expansion = bool(config.get("do_query_expansion", True))
        self.attend_to_expansion = bool(config.get("attend_to_expansion_tokens", False)) and self.do_query_expansion
        self.skiplist_words: list[str] = config.get("skiplist_words") or DEFAULT_SKIPLIST
        hidden = int(getattr(self.config, "hidden_size", 0) or 0)
        self.dense, self._size = load_dense_stack(folder.st_config.dense_dirs, folder.device, hidden)
        self.tokenizer: Any = None  # bound at load time

    @classmethod
    def matches(cls, config: Any, pooling: Pooling) -> bool:
        return False  # chosen by `is_colbert_folder`

    @property
    def embedding_size(self) -> int:
        return self._size

    def bind_tokenizer(self, tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer.to_str())  # this task's own copy
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        token_config = _read(self.folder.path / "tokenizer_config.json")

        def token_id(token: str | None) -> int | None:
            return None if not token else self.tokenizer.token_to_id(token)

        unk = token_id(token_config.get("unk_token"))
        self.mask_id = token_id(token_config.get("mask_token")) or token_id(token_config.get("eos_token")) or 0
        self.prefix_ids = {True: token_id(self.query_prefix), False: token_id(self.document_prefix)}
        # PyLate maps a word the vocabulary lacks to the unknown token, as convert_tokens_to_ids does
        skipped = (token_id(word) for word in self.skiplist_words)
        self.skiplist = frozenset(i if i is not None else unk for i in skipped) - {None}
        self.ends = special_ends(self.tokenizer)
        return None

    def format_inputs(self, route: Route, inputs: list[Any], **options: Any) -> list[Any]:
        is_query = bool(options.get("is_query", True))
        refuse_long = bool(options.get("refuse_long", False))
        return [self._prepare(value, is_query, refuse_long) for value in inputs]

    def _prepare(self, value: Any, is_query: bool, refuse_long: bool) -> PreparedInput:
        if not isinstance(value, str):
            raise ValidationError("multi-vector inputs must be texts")
        text = value.strip()  # sentence-transformers strips what it tokenizes
        if not text:
            raise EmptyError("`inputs` cannot be empty")
        length = self.query_length if is_query else self.document_length
        prefix_id = self.prefix_ids[is_query]
        budget = length - (1 if prefix_id is not None else 0) - len(self.ends[0]) - len(self.ends[1])
        content = self.tokenizer.encode(text, add_special_tokens=False).ids
        if len(content) > budget:
            if refuse_long:
                raise ValidationError(f"`inputs` must have less than {budget} tokens. Given: {len(content)}")
            content = content[:budget]
        ids = [*self.ends[0], *content, *self.ends[1]]
        if prefix_id is not None:
            ids = [*ids[:1], prefix_id, *ids[1:]]
        attended = len(ids)
        if is_query and self.do_query_expansion:
            ids += [self.mask_id] * (length - len(ids))
            if self.attend_to_expansion:
                attended = len(ids)
        return PreparedInput(ids, [0] * len(ids), attended, len(value))

    def job(self, route: Route, **options: Any) -> MultiVectorJob:
        return MultiVectorJob(bool(options.get("is_query", True)), self.skiplist)

    def head(
        self, output: torch.Tensor, mask: torch.Tensor, pool_mask: torch.Tensor, want_states: list[bool]
    ) -> BatchOutput:
        states = output.float()
        if self.dense is not None:
            states = self.dense(states)
        states = torch.nn.functional.normalize(states, p=2, dim=-1).cpu().numpy()
        lengths = pool_mask.sum(dim=1).tolist()
        return BatchOutput(np.empty((len(lengths), 0), dtype=np.float32), [states[row, : lengths[row]] for row in range(len(lengths))])

    def model_type(self) -> dict[str, Any]:
        return {
            self.name: {
                "dimension": self._size,
                "query_length": self.query_length,
                "document_length": self.document_length,
                "query_prefix": self.query_prefix,
                "document_prefix": self.document_prefix,
            }
        }
