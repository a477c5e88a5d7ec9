"""Assemble what an engine serves from its settings: folder, task, network, tokenizer, limits.

Every start-up decision TEI makes is made here, once, with its reasons logged: the task
the folder serves, its pooling, max_input_length (sentence-transformers' max_seq_length,
else the position table, capped to max_batch_tokens), and the prompts in force. Which
backend runs the network is decided later, on the model thread (`backends/select.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tei_bento.backends.torch_eager import TorchBackend
from tei_bento.engine.tokenization import PromptConfig, TokenizerPool
from tei_bento.model.device import Placement, choose_placement
from tei_bento.model.runner import max_positions, pad_token_id
from tei_bento.model.source import ModelSource, resolve_model
from tei_bento.model.st_config import read_sentence_transformers_config
from tei_bento.settings import ModelSettings, available_cores
from tei_bento.tasks.base import ModelFolder, Task
from tei_bento.tasks.registry import default_pooling, detect_task

log = logging.getLogger(__name__)


@dataclass
class ModelInfo:
    source: ModelSource
    placement: Placement
    max_input_length: int
    prompts: dict[str, str]

    @property
    def dtype(self) -> str:
        return self.placement.dtype_name

    @property
    def device(self) -> str:
        return str(self.placement.device)


@dataclass
class LoadedEngineParts:
    """The eager network (the backend selector's reference), task, tokenizers and facts."""

    eager: TorchBackend
    task: Task
    folder: ModelFolder
    tokenizers: TokenizerPool
    info: ModelInfo
    pad_id: int


def max_input_length(settings: ModelSettings, base: int) -> int:
    if base <= settings.max_batch_tokens:
        return base
    if not settings.auto_truncate:
        raise RuntimeError(
            f"The maximum input length is `{base}` which exceeds "
            f"`--max-batch-tokens={settings.max_batch_tokens}`. Either increase "
            f"`--max-batch-tokens` to at least `{base}`, or set `--auto-truncate true` so that "
            f"regardless the maximum input length, those are truncated to "
            f"`{settings.max_batch_tokens}` tokens."
        )
    log.warning(
        "The maximum input length is %s which exceeds --max-batch-tokens=%s: inputs are "
        "truncated to %s tokens.",
        base,
        settings.max_batch_tokens,
        settings.max_batch_tokens,
    )
    return settings.max_batch_tokens


def _load_tokenizer(folder: Any) -> tuple[Any, int | None]:
    """The fast tokenizer exactly as transformers builds it (what sentence-transformers uses).

    transformers 5 rebuilds normalizer and pre-tokenizer from the tokenizer class rather than
    reading tokenizer.json verbatim, so the raw file alone could tokenize differently.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise RuntimeError(f"`{folder}` has no fast tokenizer (tokenizer.json) that can be used")
    limit = getattr(tokenizer, "model_max_length", None)
    return backend, (int(limit) if limit and limit < 1_000_000 else None)


def _prompt_config(settings: ModelSettings, prompts: dict[str, str], st_default: str | None) -> PromptConfig:
    """The prompts in force: the folder's, the settings' on top, and the default one."""
    if settings.default_prompt_name is not None:
        PromptConfig(prompts).resolve(settings.default_prompt_name)
    default_prompt = settings.default_prompt
    default_name = settings.default_prompt_name or (
        st_default if settings.default_prompt is None else None
    )
    if default_name is not None and default_name in prompts:
        default_prompt = prompts[default_name]
    return PromptConfig(prompts, default_prompt)


def load_parts(settings: ModelSettings) -> LoadedEngineParts:
    from transformers import AutoConfig

    source = resolve_model(settings)
    path = source.path
    config = AutoConfig.from_pretrained(path)
    st_config = read_sentence_transformers_config(path)
    pooling = settings.pooling or st_config.pooling or default_pooling(config)
    task_class = detect_task(config, pooling, settings, path)
    placement = choose_placement(settings.device, settings.dtype)
    log.info(
        "Loading %s from %s as %s (%s pooling) on %s with %s",
        source.model_id,
        path,
        task_class.name,
        pooling.value,
        placement.device,
        placement.dtype_name,
    )
    folder = ModelFolder(path, config, st_config, pooling, settings, placement.device)
    task = task_class(folder)
    eager = TorchBackend.load(path, task.auto_class, task.network_output, placement)

    tokenizer, tokenizer_limit = _load_tokenizer(path)
    # sentence-transformers' max_seq_length wins; without it, the tokenizer's and the position
    # table's limits apply, as they do in SentenceTransformer.
    declared = st_config.max_seq_length or tokenizer_limit
    limits = [x for x in (declared, max_positions(config)) if x]
    base_length = min(limits) if limits else settings.max_batch_tokens
    input_limit = max_input_length(settings, base_length)

    prompts = {**st_config.prompts, **settings.prompts}
    tokenizers = TokenizerPool(
        tokenizer,
        input_limit,
        _prompt_config(settings, prompts, st_config.default_prompt_name),
        settings.tokenization_workers or available_cores(),
        lowercase=st_config.do_lower_case,
        pool_prompt=st_config.include_prompt,
        wrap=task.bind_tokenizer(tokenizer),
    )
    info = ModelInfo(source, placement, input_limit, prompts)
    return LoadedEngineParts(eager, task, folder, tokenizers, info, pad_token_id(config))
