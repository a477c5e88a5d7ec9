"""Pooling of token states into one vector, matching sentence-transformers' Pooling.

All modes take right-padded states and the attention mask; arithmetic is in float32 so
half-precision models pool as exactly as their states allow.
"""

from __future__ import annotations

import torch


def pool(states: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    states = states.float()
    if mode == "cls":
        return states[:, 0]
    if mode == "last-token":
        last = mask.sum(dim=1) - 1
        return states[torch.arange(states.shape[0], device=states.device), last]
    weights = mask.unsqueeze(-1).to(states.dtype)
    if mode == "max":
        return states.masked_fill(weights == 0, float("-inf")).max(dim=1).values
    if mode == "weightedmean":
        positions = torch.arange(1, states.shape[1] + 1, device=states.device, dtype=states.dtype)
        weights = weights * positions.view(1, -1, 1)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    summed = (states * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    if mode == "mean":
        return summed / counts
    if mode == "mean-sqrt-len":
        return summed / counts.sqrt()
    raise ValueError(f"unknown pooling `{mode}`")


def splade(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """SPLADE max pooling: max over tokens of log(1 + relu(logits)), padding masked out."""
    scores = torch.log1p(torch.relu(logits.float())) * mask.unsqueeze(-1).to(torch.float32)
    return scores.max(dim=1).values
