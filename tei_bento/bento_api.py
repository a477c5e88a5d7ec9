"""Typed BentoML API methods over the same engines as TEI's HTTP routes.

`bentoml.SyncHTTPClient(url).embed(inputs=[...])`, and `bentoml.depends(TEIBento)` from
another service, call these. They live under `/bento/<name>` so that TEI's own routes
(`/embed`, `/rerank`, ...) stay exactly as the mounted app answers them. Nothing batches in
front of them: each call goes straight to its model's token-budget batcher, so concurrent
one-text calls share forward passes with each other and with TEI-route traffic.

TEI's errors become BentoML errors with TEI's message and status (422 validation, 424 wrong
model type, 429 overloaded, 404 unknown model), which BentoML's clients raise as
`BentoMLException` with that status.
"""

from __future__ import annotations

import contextlib
from http import HTTPStatus
from typing import Annotated, Any, Iterator, Literal, Optional, Union

import bentoml
import numpy as np
import orjson
from bentoml.exceptions import BentoMLException
from pydantic import Field, WithJsonSchema
from starlette.requests import Request
from starlette.responses import Response
from pydantic import ValidationError as PydanticValidationError

from tei_bento.bento_tasks import TaskCancelled, unless_cancelled
from tei_bento.answers import cosine, label_scores, relevance_results, sparse_values
from tei_bento.api.context import ApiContext
from tei_bento.api.routes_tokens import simple_tokens
from tei_bento.api.schemas import PredictRequest
from tei_bento.engine.bulk import run_in_chunks
from tei_bento.engine.engine import Engine
from tei_bento.engine.models import Models
from tei_bento.errors import EmptyError, TEIError, ValidationError
from tei_bento.quantization import EmbeddingType
from tei_bento.tasks.base import Route

ROUTE_PREFIX = "/bento"
Direction = Literal["right", "left"]
ModelName = Optional[str]
# BentoML's schema (and its clients, which encode by it) keep only the first branch of a
# Union's `anyOf`, so the input unions carry their own `oneOf` schema, which it leaves whole.
_TEXT = {"type": "string"}
_TEXTS = {"type": "array", "items": _TEXT}
Texts = Annotated[Union[str, list[str]], WithJsonSchema({"oneOf": [_TEXT, _TEXTS]})]
PredictInputs = Annotated[
    Union[str, list[str], list[list[str]]],
    WithJsonSchema({"oneOf": [_TEXT, _TEXTS, {"type": "array", "items": _TEXTS}]}),
]
MAX_TASK_INPUTS = 100_000
MODEL_DOC = "Which served model answers (GET /v1/models); default: the first that serves this."


try:  # the request BentoML is serving (bentoml.Context.request reads it); pinned bentoml
    from bentoml._internal.context import _request_var as _serving_request
except ImportError:  # pragma: no cover - a BentoML without it: always the plain value
    _serving_request = None


def answer(value: Any) -> Any:
    """The method's value; as orjson-encoded JSON when BentoML answers a JSON request.

    BentoML serializes a method's output through pydantic and the standard json module,
    which costs ~1.5 ms of the event loop per 8 vectors (and seconds for a 100,000-text
    task): a tenth of the throughput on two cores. It passes a Response through as is. A
    direct Python call (no request being served) and BentoML's own service-to-service
    calls (`bentoml.depends`, which speak pickle) get the value for BentoML to encode."""
    request = _serving_request.get(None) if _serving_request is not None else None
    if request is None or _media_type(request) != "application/json":
        return value.tolist() if isinstance(value, np.ndarray) else value
    return Response(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _media_type(request: Request) -> str:
    """The serde BentoML picks for this request's answer: its body's Content-Type."""
    return request.headers.get("content-type", "application/json").split(";")[0].strip()


class TEIBentoError(BentoMLException):
    """A TEI error as BentoML reports it: TEI's message, TEI's status."""


def bentoml_error(exc: TEIError) -> TEIBentoError:
    return TEIBentoError(exc.error, error_code=HTTPStatus(exc.status))


class TEIBentoAPI:
    """Mixed into the BentoML service class, whose `__init__` sets `models` and `context`."""

    models: Models
    context: ApiContext

    @contextlib.contextmanager
    def _call(self, route: Route | None, model: ModelName) -> Iterator[Engine]:
        """The engine that answers (`model`, else the first serving `route`); a TEI error
        inside is counted in te_request_failure and raised as TEI's message and status."""
        name = ""
        try:
            engine = self.models.for_route(route, model)
            name = engine.name
            yield engine
        except TEIError as exc:
            self.context.count_failure(exc, name)
            raise bentoml_error(exc) from exc

    def _batch(self, inputs: Union[str, list[str]]) -> tuple[list[Any], bool]:
        return ([inputs], False) if isinstance(inputs, str) else (list(inputs), True)

    @bentoml.api(route=f"{ROUTE_PREFIX}/embed")
    async def embed(
        self,
        inputs: Texts = Field(..., description="One text or several."),
        normalize: bool = True,
        truncate: Optional[bool] = None,
        truncation_direction: Direction = "right",
        prompt_name: Optional[str] = None,
        dimensions: Optional[int] = Field(None, description="Keep the first N values, then normalize."),
        model: ModelName = Field(None, description=MODEL_DOC),
        embedding_type: EmbeddingType = Field(
            "float", description="int8 / uint8 / binary / ubinary: quantized as sentence-transformers does."
        ),
    ) -> list[list[float]]:
        """Pooled embeddings, one vector per input (TEI's /embed); quantized with `embedding_type`."""
        with self._call(Route.EMBED, model) as engine:
            texts, batch = self._batch(inputs)
            self.context.count_request(engine, batch, "embed")
            result = await engine.embed(
                texts, normalize, truncate, truncation_direction, prompt_name, dimensions, embedding_type
            )
        self.context.record_success(engine, result.timings, batch, "embed")
        return answer(np.stack(result.values))

    @bentoml.task(route=f"{ROUTE_PREFIX}/embed_batch")
    async def embed_batch(
        self,
        inputs: list[str] = Field(..., min_length=1, max_length=MAX_TASK_INPUTS),
        normalize: bool = True,
        truncate: Optional[bool] = None,
        truncation_direction: Direction = "right",
        prompt_name: Optional[str] = None,
        dimensions: Optional[int] = None,
        model: ModelName = Field(None, description=MODEL_DOC),
    ) -> list[list[float]]:
        """A bulk embedding task (up to 100,000 texts): `submit` answers a task id at once,
        `status` follows it, `get` returns one vector per input. The texts go through the
        same batcher as interactive calls, a quarter of the permits at a time
        (tei_bento/engine/bulk.py), so interactive calls are served while it runs; unlike
        `embed`, it is not limited by max_client_batch_size."""
        with self._call(Route.EMBED, model) as engine:
            self.context.count_request(engine, True, "embed")
            chunks = run_in_chunks(
                engine,
                inputs,
                lambda chunk: engine.embed(
                    chunk, normalize, truncate, truncation_direction, prompt_name, dimensions
                ),
            )
            serving = _serving_request.get(None) if _serving_request is not None else None
            try:
                result = await unless_cancelled(serving, chunks)
            except TaskCancelled:
                raise TEIBentoError("The task was cancelled", error_code=HTTPStatus.CONFLICT) from None
        self.context.record_success(engine, result.timings, True, "embed")
        return answer(np.stack(result.values))

    @bentoml.api(route=f"{ROUTE_PREFIX}/embed_sparse")
    async def embed_sparse(
        self,
        inputs: Texts,
        truncate: Optional[bool] = None,
        truncation_direction: Direction = "right",
        prompt_name: Optional[str] = None,
        model: ModelName = Field(None, description=MODEL_DOC),
    ) -> list[list[dict[str, Union[int, float]]]]:
        """SPLADE sparse vectors: `[{"index", "value"}]` per input, zeros dropped."""
        with self._call(Route.EMBED_SPARSE, model) as engine:
            texts, batch = self._batch(inputs)
            self.context.count_request(engine, batch, "embed")
            result = await engine.embed_sparse(texts, truncate, truncation_direction, prompt_name)
        self.context.record_success(engine, result.timings, batch, "embed")
        return answer([sparse_values(indices, values) for indices, values in result.values])

    @bentoml.api(route=f"{ROUTE_PREFIX}/rerank")
    async def rerank(
        self,
        query: str,
        documents: list[str],
        top_n: Optional[int] = Field(None, ge=0),
        raw_scores: bool = False,
        return_documents: bool = False,
        truncate: Optional[bool] = None,
        truncation_direction: Direction = "right",
        model: ModelName = Field(None, description=MODEL_DOC),
        instruction: Optional[str] = Field(
            None, description="LLM rerankers only: the task in the model's prompt (default: the card's)."
        ),
    ) -> dict[str, Any]:
        """The Dify / FastGPT / Cohere answer: `{"results": [{"index", "relevance_score",
        "document"?}], "model", "usage"}`, best first."""
        with self._call(Route.RERANK, model) as engine:
            self.context.count_request(engine, True, "predict")
            result = await engine.rerank(
                query, documents, raw_scores, truncate, truncation_direction, instruction
            )
            results = relevance_results(result.values, documents, top_n, return_documents)
        self.context.record_success(engine, result.timings, True, "predict")
        return answer(
            {"model": engine.name, "results": results, "usage": {"total_tokens": result.timings.tokens}}
        )

    @bentoml.api(route=f"{ROUTE_PREFIX}/predict")
    async def predict(
        self,
        inputs: PredictInputs = Field(
            ..., description="A text, one pair `[a, b]`, or a batch `[[a], [a, b], ...]`."
        ),
        raw_scores: bool = False,
        truncate: Optional[bool] = None,
        truncation_direction: Direction = "right",
        model: ModelName = Field(None, description=MODEL_DOC),
    ) -> Union[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """Label scores, best first: one list for a text or pair, a list of lists for a batch."""
        with self._call(Route.PREDICT, model) as engine:
            try:
                rows, batch = PredictRequest(inputs=inputs).as_batch()
            except PydanticValidationError as exc:
                message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                raise ValidationError(message).without_prefix() from exc
            self.context.count_request(engine, batch, "predict")
            result = await engine.predict(rows, raw_scores, truncate, truncation_direction)
            label = engine.task.label  # type: ignore[attr-defined]  (a classifier here)
            answers = [label_scores(scores, label) for scores in result.values]
        self.context.record_success(engine, result.timings, batch, "predict")
        return answer(answers if batch else answers[0])

    @bentoml.api(route=f"{ROUTE_PREFIX}/similarity")
    async def similarity(
        self,
        source_sentence: str,
        sentences: list[str],
        truncate: Optional[bool] = None,
        truncation_direction: Direction = "right",
        prompt_name: Optional[str] = None,
        model: ModelName = Field(None, description=MODEL_DOC),
    ) -> list[float]:
        """Cosine similarity of `source_sentence` to each of `sentences`."""
        with self._call(Route.EMBED, model) as engine:
            if not sentences:
                raise EmptyError("`inputs.sentences` cannot be empty").without_prefix()
            self.context.count_request(engine, True)
            result = await engine.embed(
                [source_sentence, *sentences], False, truncate, truncation_direction, prompt_name
            )
        self.context.record_success(engine, result.timings, True, "embed")
        vectors = np.stack(result.values)
        return answer(cosine(vectors[0], vectors[1:]))

    @bentoml.api(route=f"{ROUTE_PREFIX}/tokenize")
    async def tokenize(
        self,
        inputs: Texts,
        add_special_tokens: bool = True,
        prompt_name: Optional[str] = None,
        model: ModelName = Field(None, description=MODEL_DOC),
    ) -> list[list[dict[str, Any]]]:
        """Tokens with ids, text and UTF-8 byte offsets (null for special tokens)."""
        with self._call(None, model) as engine:
            texts, _ = self._batch(inputs)
            tokenized = await engine.tokenize(texts, add_special_tokens, prompt_name)
        return answer([simple_tokens(t) for t in tokenized])
