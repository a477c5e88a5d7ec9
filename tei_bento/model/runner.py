"""One padded forward pass: token ids of a batch in, the task's rows out.

Padding is on the right with the model's own pad id, so learned absolute positions (BERT,
RoBERTa's padding-offset positions) and causal models see the same positions as when a
text runs alone, and pooling masks the padding out. The backend runs the network; the
task's head turns its output into one row per input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tei_bento.backends.base import Backend, Feeds
from tei_bento.tasks.base import BatchOutput, Task

ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert"}


def max_positions(config: Any) -> int | None:
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    if getattr(config, "model_type", "") in ROBERTA_LIKE:
        limit -= (getattr(config, "pad_token_id", None) or 0) + 1
    return limit


def pad_token_id(config: Any) -> int:
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = getattr(config, "eos_token_id", None)
        if isinstance(pad, list):
            pad = pad[0]
    return int(pad or 0)


class ModelRunner:
    def __init__(self, backend: Backend, task: Task, pad_id: int) -> None:
        self.backend = backend
        self.task = task
        self.pad_id = pad_id

    def feeds(
        self,
        ids: list[list[int]],
        type_ids: list[list[int]] | None = None,
        attention_lengths: list[int | None] | None = None,
    ) -> Feeds:
        """The batch right-padded into host arrays, as the backend reads them; a row with an
        attention length attends to that many leading tokens only."""
        longest = max(len(x) for x in ids)
        batch = np.full((len(ids), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), longest), dtype=np.int64)
        for row, seq in enumerate(ids):
            batch[row, : len(seq)] = seq
            attended = attention_lengths[row] if attention_lengths else None
            mask[row, : len(seq) if attended is None else attended] = 1
        feeds = {"input_ids": batch, "attention_mask": mask}
        if "token_type_ids" in self.backend.input_names:
            types = np.zeros((len(ids), longest), dtype=np.int64)
            for row, seq in enumerate(type_ids or []):
                types[row, : len(seq)] = seq
            feeds["token_type_ids"] = types
        return feeds

    @torch.inference_mode()
    def forward(
        self,
        ids: list[list[int]],
        type_ids: list[list[int]] | None = None,
        prompt_lengths: list[int] | None = None,
        want_token_states: list[bool] | None = None,
        attention_lengths: list[int | None] | None = None,
    ) -> BatchOutput:
        partly_attended = attention_lengths is not None and any(n is not None for n in attention_lengths)
        feeds = self.feeds(ids, type_ids, attention_lengths if partly_attended else None)
        shape = feeds["attention_mask"].shape
        output = self.backend.forward(feeds)  # a torch backend leaves the mask it placed in feeds
        mask = torch.as_tensor(feeds["attention_mask"], device=output.device)
        pool_mask = mask
        if partly_attended:  # the head reads every real token, attended or not
            real = np.zeros(shape, dtype=np.int64)
            for row, seq in enumerate(ids):
                real[row, : len(seq)] = 1
            pool_mask = torch.from_numpy(real).to(output.device)
        if prompt_lengths and any(prompt_lengths):  # pool without the prompt's tokens
            pool_mask = mask.clone()
            for row, length in enumerate(prompt_lengths):
                pool_mask[row, :length] = 0
        result = self.task.head(output, mask, pool_mask, want_token_states or [False] * len(ids))
        result.ids = ids  # for jobs that pick tokens by id (ColBERT's skiplist)
        return result
