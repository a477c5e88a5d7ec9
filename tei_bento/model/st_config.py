"""Read a sentence-transformers folder the way SentenceTransformer(folder) does.

Only the parts that change numbers are read: pooling mode, Dense modules in order, the
Normalize module, `max_seq_length`, `do_lower_case`, and prompts. A plain transformers
folder (no modules.json) gets TEI's defaults: CLS pooling for encoders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tei_bento.settings import Pooling

LEGACY_POOLING_FLAGS = {
    "pooling_mode_cls_token": Pooling.CLS,
    "pooling_mode_mean_tokens": Pooling.MEAN,
    "pooling_mode_max_tokens": Pooling.MAX,
    "pooling_mode_mean_sqrt_len_tokens": Pooling.MEAN_SQRT_LEN,
    "pooling_mode_weightedmean_tokens": Pooling.WEIGHTED_MEAN,
    "pooling_mode_lasttoken": Pooling.LAST_TOKEN,
}


@dataclass(frozen=True)
class SentenceTransformerConfig:
    pooling: Pooling | None = None
    include_prompt: bool = True
    dense_dirs: list[Path] = field(default_factory=list)
    has_normalize: bool = False
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None


def _read_json(path: Path) -> dict[str, Any] | list[Any] | None:
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def parse_pooling_config(config: dict[str, Any]) -> tuple[Pooling | None, bool]:
    """Both the v2-v5 flag form and the v6 `pooling_mode` form; the first mode wins."""
    include_prompt = bool(config.get("include_prompt", True))
    mode = config.get("pooling_mode")
    if isinstance(mode, list):
        mode = mode[0] if mode else None
    if isinstance(mode, str):
        return Pooling.parse(mode), include_prompt
    for flag, name in LEGACY_POOLING_FLAGS.items():
        if config.get(flag):
            return name, include_prompt
    return None, include_prompt


def read_sentence_transformers_config(folder: Path) -> SentenceTransformerConfig:
    modules = _read_json(folder / "modules.json") or []
    pooling: Pooling | None = None
    include_prompt = True
    dense_dirs: list[Path] = []
    has_normalize = False
    for module in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind = module.get("type", "")
        path = folder / module.get("path", "")
        if kind.endswith("Pooling"):
            pooling_config = _read_json(path / "config.json") or {}
            pooling, include_prompt = parse_pooling_config(pooling_config)
        elif kind.endswith("Dense"):
            dense_dirs.append(path)
        elif kind.endswith("Normalize"):
            has_normalize = True
    bert_config = _read_json(folder / "sentence_bert_config.json") or {}
    st_config = _read_json(folder / "config_sentence_transformers.json") or {}
    return SentenceTransformerConfig(
        pooling=pooling,
        include_prompt=include_prompt,
        dense_dirs=dense_dirs,
        has_normalize=has_normalize,
        max_seq_length=bert_config.get("max_seq_length"),
        do_lower_case=bool(bert_config.get("do_lower_case", False)),
        prompts=dict(st_config.get("prompts") or {}),
        default_prompt_name=st_config.get("default_prompt_name") or None,
    )
