"""Request and response bodies, mirroring TEI's serde types (router/src/http/types.rs).

Inputs are untagged unions as in TEI: a string, a list of token ids (one input), or a list
mixing strings and id lists (a batch). `[]` is one empty id list, so it answers TEI's
"`inputs` cannot be empty". Unknown fields are ignored, as serde does.

Every list stops validating at its first bad item (`FastList`): a 2 MB body holding a
million wrong items is then one error found in microseconds, not a million errors built
for seconds on the event loop while every other request waits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, TypeVar, Union

from tei_bento.quantization import EmbeddingType

from pydantic import BaseModel, ConfigDict, FailFast, Field, NonNegativeInt, field_validator

from tei_bento.engine.tokenization import Input


class _FailFast(FailFast):
    """pydantic's FailFast, hashable so that it can sit inside a `Union`."""

    def __hash__(self) -> int:
        return hash(type(self))


T = TypeVar("T")
FastList = Annotated[list[T], _FailFast()]

TokenIds = FastList[NonNegativeInt]
InputType = Union[str, TokenIds]
Inputs = Union[str, TokenIds, FastList[InputType]]
Direction = Literal["right", "left", "Right", "Left"]


def as_batch(inputs: Inputs) -> tuple[list[Input], bool]:
    """(inputs as a list, whether the request was a batch)."""
    if isinstance(inputs, str):
        return [inputs], False
    if not inputs or all(isinstance(x, int) for x in inputs):
        return [list(inputs)], False  # one token-id input (TEI: `[]` is Single(Ids([])))
    return list(inputs), True


class TEIModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ModelChoice(TEIModel):
    model: Optional[str] = Field(
        None,
        description=(
            "tei-bento: the served model that answers (GET /v1/models lists them); default: "
            "the first model that serves this route."
        ),
    )


class TruncationParams(ModelChoice):
    truncate: Optional[bool] = Field(
        None, description="Truncate inputs longer than max_input_length; null = server default."
    )
    truncation_direction: Direction = Field("right", description="Which end to cut.")

    @property
    def direction(self) -> str:
        return self.truncation_direction.lower()


class EmbedRequest(TruncationParams):
    inputs: Inputs = Field(..., examples=["What is Deep Learning?"])
    normalize: bool = True
    prompt_name: Optional[str] = None
    dimensions: Optional[int] = Field(
        None, description="Keep the first `dimensions` values (Matryoshka), then normalize."
    )
    embedding_type: EmbeddingType = Field(
        "float",
        description="tei-bento: `int8` / `uint8` (buckets from the server's calibration, see "
        "/info), `binary` / `ubinary` (signs packed 8 to a byte), as sentence-transformers' "
        "quantize_embeddings.",
    )


class EmbedAllRequest(TruncationParams):
    inputs: Inputs = Field(..., examples=["What is Deep Learning?"])
    prompt_name: Optional[str] = None


class EmbedSparseRequest(EmbedAllRequest):
    pass


class EmbedMultiVectorRequest(ModelChoice):
    """tei-bento: ColBERT token vectors, as `pylate.models.ColBERT.encode(texts, is_query=...)`."""

    inputs: Union[str, FastList[str]] = Field(..., examples=["What is Deep Learning?"])
    is_query: bool = Field(
        True, description="Queries get the query prefix and expansion; documents the document prefix and skiplist."
    )
    truncate: Optional[bool] = Field(
        None, description="Longer inputs are cut to the model's query / document length; false refuses them."
    )


class SparseValue(TEIModel):
    index: int
    value: float


class SimilarityInput(TEIModel):
    source_sentence: str = Field(..., examples=["What is Deep Learning?"])
    sentences: FastList[str] = Field(..., examples=[["What is Machine Learning?"]])


class SimilarityParameters(TruncationParams):
    prompt_name: Optional[str] = None


class SimilarityRequest(ModelChoice):
    inputs: SimilarityInput
    parameters: Optional[SimilarityParameters] = None


class TokenizeRequest(ModelChoice):
    inputs: Union[str, FastList[str]] = Field(..., examples=["test"])
    add_special_tokens: bool = True
    prompt_name: Optional[str] = None


class SimpleToken(TEIModel):
    id: int
    text: str
    special: bool
    start: Optional[int]
    stop: Optional[int]


class DecodeRequest(ModelChoice):
    ids: Union[TokenIds, FastList[TokenIds]] = Field(..., examples=[[101, 7592, 102]])
    skip_special_tokens: bool = True


class OpenAIEmbeddingsRequest(ModelChoice):
    input: Inputs = Field(..., examples=["What is Deep Learning?"])
    user: Optional[str] = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Optional[int] = None


class OpenAIEmbedding(TEIModel):
    object: Literal["embedding"] = "embedding"
    embedding: Union[list[float], str]
    index: int


class OpenAIUsage(TEIModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingsResponse(TEIModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class ErrorResponse(TEIModel):
    error: str
    error_type: Literal[
        "Unhealthy", "Backend", "Overloaded", "Validation", "Tokenizer", "Empty", "Unauthorized"
    ]


class OpenAIErrorDetail(TEIModel):
    message: str
    type: str
    code: Union[int, str] = Field(..., description="The status, or `model_not_found`.")


class OpenAIErrorResponse(TEIModel):
    """OpenAI's error shape under `error`, with TEI's flat fields kept beside it."""

    error: OpenAIErrorDetail
    message: str
    type: str
    code: Union[int, str]


class ServedModel(TEIModel):
    id: str = Field(..., description="The served model name, as `model` selects it.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tei-bento"
    task: str = Field(..., description="tei-bento: embedding, splade, reranker or classifier.")
    model_id: str = Field(..., description="tei-bento: the folder or Hub id it was loaded from.")


class ModelList(TEIModel):
    object: Literal["list"] = "list"
    data: list[ServedModel]


class Info(TEIModel):
    model_id: str
    model_sha: Optional[str]
    model_dtype: str
    served_model_name: str
    model_type: dict[str, Any]
    max_concurrent_requests: int
    max_input_length: int
    max_batch_tokens: int
    max_batch_requests: Optional[int]
    max_client_batch_size: int
    auto_truncate: bool
    long_inputs: str = Field("truncate", description="tei-bento: truncate, error or chunk (--long-inputs).")
    tokenization_workers: int
    version: str
    sha: Optional[str] = None
    docker_label: Optional[str] = None
    device: str = Field(..., description="tei-bento: where the model runs.")
    embedding_dimension: Optional[int] = Field(None, description="tei-bento: output size.")
    prompts: Optional[dict[str, str]] = Field(None, description="tei-bento: prompts in force.")
    backend: str = Field("torch", description="tei-bento: torch, onnx or onnx-int8.")
    accuracy: Optional[dict[str, Optional[float]]] = Field(
        None, description="tei-bento: measured cosine of a quantized model to float32."
    )
    quantization: Optional[dict[str, Any]] = Field(
        None,
        description="tei-bento, embedders: where `embedding_type` int8 / uint8 take their buckets "
        "(`calibration`) and the ranges for normalized full-size vectors (`int8_ranges`: [min, max]).",
    )


# -- rerank and predict --------------------------------------------------------------


class Document(TEIModel):
    text: str


class RerankRequest(TruncationParams):
    """TEI's form (`texts`) or the Dify / FastGPT / Cohere / Jina form (`documents`)."""

    query: str = Field(..., examples=["What is Deep Learning?"])
    texts: Optional[FastList[str]] = Field(None, examples=[["Deep Learning is ..."]])
    documents: Optional[FastList[Union[str, Document]]] = Field(
        None, description='Instead of `texts`: answers `{"results": [...]}` (Cohere / Dify form).'
    )
    raw_scores: bool = False
    return_text: bool = False
    top_n: Optional[int] = Field(None, ge=0, description="Keep the best `top_n` results.")
    return_documents: Optional[bool] = Field(
        None, description="Cohere form: include each document (default: false)."
    )
    instruction: Optional[str] = Field(
        None,
        description="tei-bento, LLM rerankers only: the task description in the model's prompt "
        "(default: the model card's).",
    )
    @property
    def document_texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents or []]


class Rank(TEIModel):
    index: int
    score: float
    text: Optional[str] = None


class RelevanceResult(TEIModel):
    index: int
    relevance_score: float
    document: Optional[Document] = None


class RerankResults(TEIModel):
    """The Cohere / Jina / Dify answer."""

    model: str
    results: list[RelevanceResult]
    usage: dict[str, int]


class CohereRerankRequest(ModelChoice):
    """Cohere's v2 rerank (`cohere.ClientV2.rerank`): `documents` are strings, and long ones
    are truncated to the model's window rather than refused, as Cohere does."""

    query: str = Field(..., examples=["What is Deep Learning?"])
    documents: FastList[str] = Field(..., examples=[["Deep Learning is ..."]])
    top_n: Optional[int] = Field(None, ge=1, description="Keep the best `top_n` results.")
    max_tokens_per_doc: Optional[int] = Field(
        None,
        ge=1,
        description="Accepted for Cohere's clients; documents are cut at the model's own window.",
    )
    instruction: Optional[str] = Field(None, description="tei-bento, LLM rerankers only.")


CohereEmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]


class CohereEmbedRequest(ModelChoice):
    """Cohere's v2 embed (`cohere.ClientV2.embed`), texts only."""

    texts: FastList[str] = Field(..., examples=[["What is Deep Learning?"]])
    input_type: Optional[str] = Field(
        None,
        description="search_query / search_document / classification / clustering: the folder's "
        "prompt of that name, or `query` / `document` (`passage`) for the search types; else none.",
    )
    embedding_types: Optional[FastList[CohereEmbeddingType]] = Field(
        None, description="Any of float, int8, uint8, binary, ubinary, base64 (default: float)."
    )
    truncate: Literal["NONE", "START", "END"] = Field(
        "END", description="END cuts long texts at the end, START at the start, NONE refuses them."
    )
    output_dimension: Optional[int] = Field(None, description="Matryoshka: keep the first N values.")
    max_tokens: Optional[int] = Field(None, ge=1, description="Accepted; the model's window is the cut.")


class CohereEmbedResponse(TEIModel):
    id: str
    embeddings: dict[str, Any]
    texts: list[str]
    meta: dict[str, Any]
    response_type: str = "embeddings_by_type"


class CohereRerankResult(TEIModel):
    index: int
    relevance_score: float


class CohereRerankResponse(TEIModel):
    id: str
    results: list[CohereRerankResult]
    meta: dict[str, Any]


class PredictRequest(TruncationParams):
    inputs: Union[str, FastList[str], FastList[FastList[str]]] = Field(
        ...,
        examples=["I like you. I love you."],
        description="A text, one pair `[a, b]`, or a batch `[[a], [a, b], ...]`.",
    )
    raw_scores: bool = False

    @field_validator("inputs")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, list):
            rows = value if value and isinstance(value[0], list) else [value]
            for row in rows:
                if len(row) not in (1, 2):
                    raise ValueError(
                        f"invalid length {len(row)}, expected a string, a pair of strings "
                        "[string, string] or a batch of mixed strings and pairs "
                        "[[string], [string, string], ...]"
                    )
        return value

    def as_batch(self) -> tuple[list[Input], bool]:
        value = self.inputs
        if isinstance(value, str):
            return [value], False
        if value and isinstance(value[0], list):
            return [_predict_input(row) for row in value], True
        return [_predict_input(value)], False


def _predict_input(row: list[str]) -> Input:
    return row[0] if len(row) == 1 else (row[0], row[1])


class Prediction(TEIModel):
    score: float
    label: str


# -- POST /, /invocations and /vertex (documentation: these routes read the raw body) --

TaskResponse = Union[
    list[list[float]],
    list[float],
    list[list[SparseValue]],
    list[Rank],
    RerankResults,
    list[Prediction],
    list[list[Prediction]],
]


class VertexResponse(TEIModel):
    predictions: list[TaskResponse] = Field(..., description="One answer per instance, in order.")
