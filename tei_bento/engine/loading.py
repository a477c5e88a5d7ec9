"""Assemble what the engine serves from settings: folder, config, model, tokenizer, limits.

Every start-up decision TEI makes is made here, once, with its reasons logged: the task
the folder serves, its pooling, max_input_length (sentence-transformers' max_seq_length,
else the position table, capped to max_batch_tokens), and the prompts in force.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tei_bento.engine.tokenization import PromptConfig, TokenizerPool
from tei_bento.model.device import choose_placement
from tei_bento.model.loaded_model import LoadedModel, max_positions
from tei_bento.model.source import ModelSource, resolve_model
from tei_bento.model.st_config import read_sentence_transformers_config
from tei_bento.model.tasks import Task, default_pooling, detect_task
from tei_bento.settings import Settings, available_cores

log = logging.getLogger(__name__)


@dataclass
class ModelInfo:
    source: ModelSource
    task: Task
    pooling: str
    dtype: str
    device: str
    max_input_length: int
    embedding_size: int
    id2label: dict[int, str]
    prompts: dict[str, str]
    backend: str = "torch"
    accuracy: dict[str, Any] | None = None


@dataclass
class LoadedEngineParts:
    model: LoadedModel
    tokenizers: TokenizerPool
    info: ModelInfo


def max_input_length(settings: Settings, base: int) -> int:
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


def _calibration_encoder(tokenizer: Any, model: LoadedModel) -> Any:
    def encode(texts: list[str]) -> dict:
        encodings = [tokenizer.encode(t) for t in texts]
        return model.padded_tensors([e.ids for e in encodings], [e.type_ids for e in encodings])

    return encode


def load_parts(settings: Settings, version: str) -> LoadedEngineParts:
    from transformers import AutoConfig

    source = resolve_model(settings)
    folder = source.path
    config = AutoConfig.from_pretrained(folder)
    st_config = read_sentence_transformers_config(folder)
    pooling = settings.pooling or st_config.pooling or default_pooling(config)
    task = detect_task(config, pooling)
    if task is Task.SPLADE and not any(
        a.endswith("ForMaskedLM") for a in (config.architectures or [])
    ):
        raise RuntimeError("`--pooling splade` needs a *ForMaskedLM model")
    placement = choose_placement(settings.device, settings.dtype)
    log.info(
        "Loading %s from %s as %s (%s pooling) on %s with %s",
        source.model_id,
        folder,
        task.value,
        pooling,
        placement.device,
        placement.dtype_name,
    )
    model = LoadedModel(folder, config, task, pooling, placement, st_config, settings.dense_path)

    tokenizer, tokenizer_limit = _load_tokenizer(folder)
    # sentence-transformers' max_seq_length wins; without it, the tokenizer's and the position
    # table's limits apply, as they do in SentenceTransformer.
    declared = st_config.max_seq_length or tokenizer_limit
    limits = [x for x in (declared, max_positions(config)) if x]
    base_length = min(limits) if limits else settings.max_batch_tokens
    input_limit = max_input_length(settings, base_length)

    if settings.default_prompt_name is not None:
        PromptConfig(st_config.prompts).resolve(settings.default_prompt_name)
    default_prompt = settings.default_prompt
    default_name = settings.default_prompt_name or (
        st_config.default_prompt_name if settings.default_prompt is None else None
    )
    if default_name is not None and default_name in st_config.prompts:
        default_prompt = st_config.prompts[default_name]
    workers = settings.tokenization_workers or available_cores()
    tokenizers = TokenizerPool(
        tokenizer,
        input_limit,
        PromptConfig(st_config.prompts, default_prompt),
        workers,
        lowercase=st_config.do_lower_case,
    )
    backend, accuracy = "torch", None
    quantize = None if settings.quantize == "none" else settings.quantize
    if settings.backend == "auto" and not quantize and model.onnx_by_default():
        try:
            model.use_onnx(folder, None, _calibration_encoder(tokenizer, model), verify=True)
            backend = "onnx"
            log.info("Serving the model through ONNX Runtime (`--backend torch` opts out)")
        except Exception as exc:  # any export, optimizer or runtime failure: torch serves
            log.warning("ONNX Runtime not used, serving the torch network: %s", exc)
    elif settings.backend == "onnx" or quantize:
        report = model.use_onnx(folder, quantize, _calibration_encoder(tokenizer, model))
        backend = f"onnx-{quantize}" if quantize else "onnx"
        accuracy = (
            {
                "min_cosine_to_float32": report.min_cosine,
                "mean_cosine_to_float32": report.mean_cosine,
            }
            if quantize
            else None
        )
    id2label = {int(k): v for k, v in (getattr(config, "id2label", None) or {}).items()}
    info = ModelInfo(
        source=source,
        task=task,
        pooling=pooling,
        dtype=placement.dtype_name,
        device=str(placement.device),
        max_input_length=input_limit,
        embedding_size=model.embedding_size,
        id2label=id2label,
        prompts=st_config.prompts,
        backend=backend,
        accuracy=accuracy,
    )
    return LoadedEngineParts(model, tokenizers, info)
