"""Pooling of token states into one vector, matching sentence-transformers' Pooling.

All modes take right-padded states and the mask of the tokens to pool (the attention mask,
minus a prompt's tokens where the folder's `include_prompt` is false); arithmetic is in
float32 so half-precision models pool as exactly as their states allow.
"""

from __future__ import annotations

import torch

from tei_bento.settings import Pooling


def pool(states: torch.Tensor, mask: torch.Tensor, mode: Pooling) -> torch.Tensor:
    states = states.float()
    rows = torch.arange(states.shape[0], device=states.device)
    if mode is Pooling.CLS:  # the first pooled token: [CLS], or the first after the prompt
        return states[rows, mask.argmax(dim=1)]
    if mode is Pooling.LAST_TOKEN:
        last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)
        return states[rows, last]
    weights = mask.unsqueeze(-1).to(states.dtype)
    if mode is Pooling.MAX:
        return states.masked_fill(weights == 0, float("-inf")).max(dim=1).values
    if mode is Pooling.WEIGHTED_MEAN:
        positions = torch.arange(1, states.shape[1] + 1, device=states.device, dtype=states.dtype)
        weights = weights * positions.view(1, -1, 1)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    summed = (states * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    if mode is Pooling.MEAN:
        return summed / counts
    if mode is Pooling.MEAN_SQRT_LEN:
        return summed / counts.sqrt()
    raise ValueError(f"pooling `{mode.value}` does not pool token states")


def splade(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SPLADE max pooling: max over tokens of log(1 + relu(logits)), padding masked out."""
    scores = torch.log1p(torch.relu(logits.float())) * mask.unsqueeze(-1).to(torch.float32)
    return scores.max(dim=1).values
