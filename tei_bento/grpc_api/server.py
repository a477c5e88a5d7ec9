"""TEI's gRPC API (`tei.v1`) over the same engines, permits and metrics as HTTP.

A `grpc.aio` server runs on the HTTP server's event loop, so every call goes through the
model's own permits and token-budget batcher, exactly like an HTTP request. Unary calls take
their permits at once (RESOURCE_EXHAUSTED when none is left, TEI's 429); stream messages are
fed to the batcher as they arrive, each waiting for a permit rather than failing, as TEI's
streams do, and answers come back in request order. A `model` metadata key picks a served
model; otherwise the first model that serves the method answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np

from tei_bento.answers import label_scores, ranked, sparse_values
from tei_bento.api.auth import BearerKey
from tei_bento.api.context import ApiContext
from tei_bento.api.routes_meta import build_info
from tei_bento.api.routes_tokens import simple_tokens
from tei_bento.api.responses import timing_headers
from tei_bento.engine.engine import Engine, Timings
from tei_bento.engine.permits import waiting_for_permits
from tei_bento.errors import ErrorType, TEIError, ValidationError
from tei_bento.grpc_api import tei_pb2 as pb
from tei_bento.grpc_api import tei_pb2_grpc as rpc
from tei_bento.grpc_api.malformed import MalformedMessageInterceptor
from tei_bento.tasks.base import Route

log = logging.getLogger(__name__)
Req = TypeVar("Req")
Res = TypeVar("Res")

CODES: dict[ErrorType, grpc.StatusCode] = {
    ErrorType.UNHEALTHY: grpc.StatusCode.UNAVAILABLE,
    ErrorType.BACKEND: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorType.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorType.VALIDATION: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorType.TOKENIZER: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorType.EMPTY: grpc.StatusCode.INVALID_ARGUMENT,
}
"""TEI's gRPC status for each error type (router/src/grpc/server.rs)."""
MODEL_TYPES = {
    "embedding": pb.MODEL_TYPE_EMBEDDING,
    "classifier": pb.MODEL_TYPE_CLASSIFIER,
    "reranker": pb.MODEL_TYPE_RERANKER,
}


def status_of(exc: TEIError) -> grpc.StatusCode:
    if exc.status == 404:
        return grpc.StatusCode.NOT_FOUND
    return CODES[exc.error_type]


def direction(value: int) -> str:
    return "left" if value == pb.TRUNCATION_DIRECTION_LEFT else "right"


def metadata_of(timings: Timings, started: float) -> pb.Metadata:
    return pb.Metadata(
        compute_chars=timings.chars,
        compute_tokens=timings.tokens,
        total_time_ns=int((time.perf_counter() - started) * 1e9),
        tokenization_time_ns=int(timings.tokenization * 1e9),
        queue_time_ns=int(timings.queue * 1e9),
        inference_time_ns=int(timings.inference * 1e9),
    )


def timing_metadata(timings: Timings, engine: Engine) -> tuple[tuple[str, str], ...]:
    """TEI's x-* answer headers (HTTP's, the same values) as gRPC initial metadata."""
    compute_type = "gpu+optimized" if engine.info.device != "cpu" else "cpu"
    return tuple(timing_headers(timings, time.perf_counter(), compute_type).items())


class Calls:
    """What every method shares: model choice, metrics, TEI's error mapping, streams."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context

    def engine(self, route: Route | None, call: grpc.aio.ServicerContext) -> Engine:
        name = dict(call.invocation_metadata() or ()).get("model")
        return self.context.require_models().for_route(route, name)

    async def unary(
        self,
        call: grpc.aio.ServicerContext,
        route: Route | None,
        compute: Callable[[Engine], Awaitable[tuple[Any, Timings | None]]],
        kind: str | None = "embed",
    ) -> Any:
        """One call: TEI's metrics and metadata on success, TEI's status on failure."""
        name = ""
        try:
            engine = self.engine(route, call)
            name = engine.name
            if kind is not None:
                self.context.count_request(engine, False, kind)
            answer, timings = await compute(engine)
        except TEIError as exc:
            self.context.count_failure(exc, name)
            await call.abort(status_of(exc), exc.error)
        if timings is not None:
            self.context.record_success(engine, timings, False, kind or "embed")
            await call.send_initial_metadata(timing_metadata(timings, engine))
        return answer

    async def stream(
        self,
        requests: AsyncIterator[Req],
        call: grpc.aio.ServicerContext,
        route: Route | None,
        answer_one: Callable[[Engine, Req], Awaitable[tuple[Res, Timings | None]]],
        kind: str | None = "embed",
    ) -> AsyncIterator[Res]:
        """Answer each message as it arrives, in order; a message waits for a permit
        instead of failing. A cancelled stream cancels what it has in flight."""
        try:
            engine = self.engine(route, call)
        except TEIError as exc:
            await call.abort(status_of(exc), exc.error)
        pending: asyncio.Queue[asyncio.Task[Res] | None] = asyncio.Queue(
            self.context.settings.grpc_max_parallel_stream_requests
        )

        async def patient(request: Req) -> Res:
            waiting_for_permits.set(True)  # this task's own context: it waits its turn, in order
            if kind is not None:
                self.context.count_request(engine, False, kind)
            try:
                answer, timings = await answer_one(engine, request)
            except TEIError as exc:
                self.context.count_failure(exc, engine.name)
                raise
            if timings is not None:
                self.context.record_success(engine, timings, False, kind or "embed")
            return answer

        async def read() -> None:
            try:
                async for request in requests:
                    await pending.put(asyncio.ensure_future(patient(request)))
            finally:
                await pending.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (task := await pending.get()) is not None:
                try:
                    yield await task
                except TEIError as exc:
                    await call.abort(status_of(exc), exc.error)
            await reader
        finally:
            reader.cancel()
            while not pending.empty():
                task = pending.get_nowait()
                if task is not None:
                    task.cancel()


class InfoService(rpc.InfoServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def Info(self, request: pb.InfoRequest, context: grpc.aio.ServicerContext) -> pb.InfoResponse:  # noqa: N802
        async def compute(engine: Engine) -> tuple[pb.InfoResponse, None]:
            info = build_info(engine)
            return (
                pb.InfoResponse(
                    version=info["version"],
                    model_id=info["model_id"],
                    model_sha=info["model_sha"] or None,
                    model_dtype=info["model_dtype"],
                    model_type=MODEL_TYPES.get(next(iter(info["model_type"])), pb.MODEL_TYPE_EMBEDDING),
                    max_concurrent_requests=info["max_concurrent_requests"],
                    max_input_length=info["max_input_length"],
                    max_batch_tokens=info["max_batch_tokens"],
                    max_batch_requests=info["max_batch_requests"],
                    max_client_batch_size=info["max_client_batch_size"],
                    tokenization_workers=info["tokenization_workers"],
                ),
                None,
            )

        return await self.calls.unary(context, None, compute, kind=None)


class EmbedService(rpc.EmbedServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def _embed(self, engine: Engine, r: pb.EmbedRequest) -> tuple[pb.EmbedResponse, Timings]:
        started = time.perf_counter()
        normalize = r.normalize if r.HasField("normalize") else True
        dimensions = r.dimensions if r.HasField("dimensions") else None
        prompt = r.prompt_name if r.HasField("prompt_name") else None
        result = await engine.embed(
            [r.inputs], normalize, r.truncate or None, direction(r.truncation_direction), prompt, dimensions
        )
        vector = np.asarray(result.values[0], dtype=np.float32)
        return pb.EmbedResponse(embeddings=vector, metadata=metadata_of(result.timings, started)), result.timings

    async def _sparse(self, engine: Engine, r: pb.EmbedSparseRequest) -> tuple[pb.EmbedSparseResponse, Timings]:
        started = time.perf_counter()
        prompt = r.prompt_name if r.HasField("prompt_name") else None
        result = await engine.embed_sparse([r.inputs], r.truncate or None, direction(r.truncation_direction), prompt)
        indices, values = result.values[0]
        sparse = [pb.SparseValue(**value) for value in sparse_values(indices, values)]
        return pb.EmbedSparseResponse(sparse_embeddings=sparse, metadata=metadata_of(result.timings, started)), result.timings

    async def _all(self, engine: Engine, r: pb.EmbedAllRequest) -> tuple[pb.EmbedAllResponse, Timings]:
        started = time.perf_counter()
        prompt = r.prompt_name if r.HasField("prompt_name") else None
        result = await engine.embed_all([r.inputs], r.truncate or None, direction(r.truncation_direction), prompt)
        tokens = [pb.TokenEmbedding(embeddings=np.asarray(row, dtype=np.float32)) for row in result.values[0]]
        return pb.EmbedAllResponse(token_embeddings=tokens, metadata=metadata_of(result.timings, started)), result.timings

    async def Embed(self, request, context):  # noqa: N802
        return await self.calls.unary(context, Route.EMBED, lambda e: self._embed(e, request))

    async def EmbedSparse(self, request, context):  # noqa: N802
        return await self.calls.unary(context, Route.EMBED_SPARSE, lambda e: self._sparse(e, request))

    async def EmbedAll(self, request, context):  # noqa: N802
        return await self.calls.unary(context, Route.EMBED_ALL, lambda e: self._all(e, request))

    async def EmbedStream(self, request_iterator, context):  # noqa: N802
        async for answer in self.calls.stream(request_iterator, context, Route.EMBED, self._embed):
            yield answer

    async def EmbedSparseStream(self, request_iterator, context):  # noqa: N802
        async for answer in self.calls.stream(request_iterator, context, Route.EMBED_SPARSE, self._sparse):
            yield answer

    async def EmbedAllStream(self, request_iterator, context):  # noqa: N802
        async for answer in self.calls.stream(request_iterator, context, Route.EMBED_ALL, self._all):
            yield answer


class PredictService(rpc.PredictServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def _predict(self, engine: Engine, inputs: Any, r: Any) -> tuple[pb.PredictResponse, Timings]:
        started = time.perf_counter()
        result = await engine.predict([inputs], r.raw_scores, r.truncate or None, direction(r.truncation_direction))
        label = engine.task.label  # type: ignore[attr-defined]  (a classifier or reranker)
        predictions = [pb.Prediction(score=p["score"], label=p["label"]) for p in label_scores(result.values[0], label)]
        return pb.PredictResponse(predictions=predictions, metadata=metadata_of(result.timings, started)), result.timings

    async def _single(self, engine: Engine, r: pb.PredictRequest):
        return await self._predict(engine, r.inputs, r)

    async def _pair(self, engine: Engine, r: pb.PredictPairRequest):
        if len(r.inputs) != 2:
            raise ValidationError(
                f"`inputs` must have two elements. Found {len(r.inputs)}"
            ).without_prefix()
        return await self._predict(engine, (r.inputs[0], r.inputs[1]), r)

    async def Predict(self, request, context):  # noqa: N802
        return await self.calls.unary(context, Route.PREDICT, lambda e: self._single(e, request), "predict")

    async def PredictPair(self, request, context):  # noqa: N802
        return await self.calls.unary(context, Route.PREDICT, lambda e: self._pair(e, request), "predict")

    async def PredictStream(self, request_iterator, context):  # noqa: N802
        async for answer in self.calls.stream(request_iterator, context, Route.PREDICT, self._single, "predict"):
            yield answer

    async def PredictPairStream(self, request_iterator, context):  # noqa: N802
        async for answer in self.calls.stream(request_iterator, context, Route.PREDICT, self._pair, "predict"):
            yield answer


class RerankService(rpc.RerankServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def _rerank(
        self, engine: Engine, query: str, texts: list[str], r: Any, return_text: bool
    ) -> tuple[pb.RerankResponse, Timings]:
        started = time.perf_counter()
        result = await engine.rerank(query, texts, r.raw_scores, r.truncate or None, direction(r.truncation_direction))
        scores = result.values
        ranks = [
            pb.Rank(index=i, score=scores[i], text=texts[i] if return_text else None) for i in ranked(scores)
        ]
        return pb.RerankResponse(ranks=ranks, metadata=metadata_of(result.timings, started)), result.timings

    async def Rerank(self, request, context):  # noqa: N802
        texts = list(request.texts)
        return await self.calls.unary(
            context, Route.RERANK, lambda e: self._rerank(e, request.query, texts, request, request.return_text), "predict"
        )

    async def RerankStream(self, request_iterator, context):  # noqa: N802
        """TEI's RerankStream: one text per message, ranked together when the stream ends;
        raw_scores, return_text, truncate and direction come from the first message."""
        messages = [m async for m in request_iterator]
        if not messages:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "`texts` cannot be empty")
        first = messages[0]
        texts = [m.text for m in messages]
        return await self.calls.unary(
            context, Route.RERANK, lambda e: self._rerank(e, first.query, texts, first, first.return_text), "predict"
        )


class TokenizeService(rpc.TokenizeServicer):
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def _tokenize(self, engine: Engine, r: pb.EncodeRequest) -> tuple[pb.EncodeResponse, None]:
        prompt = r.prompt_name if r.HasField("prompt_name") else None
        [tokenized] = await engine.tokenize([r.inputs], r.add_special_tokens, prompt)
        return pb.EncodeResponse(tokens=[pb.SimpleToken(**t) for t in simple_tokens(tokenized)]), None

    async def _decode(self, engine: Engine, r: pb.DecodeRequest) -> tuple[pb.DecodeResponse, None]:
        [text] = await engine.decode([list(r.ids)], r.skip_special_tokens)
        return pb.DecodeResponse(text=text), None

    async def Tokenize(self, request, context):  # noqa: N802
        return await self.calls.unary(context, None, lambda e: self._tokenize(e, request), kind=None)

    async def Decode(self, request, context):  # noqa: N802
        return await self.calls.unary(context, None, lambda e: self._decode(e, request), kind=None)

    async def TokenizeStream(self, request_iterator, context):  # noqa: N802
        async for answer in self.calls.stream(request_iterator, context, None, self._tokenize, kind=None):
            yield answer

    async def DecodeStream(self, request_iterator, context):  # noqa: N802
        async for answer in self.calls.stream(request_iterator, context, None, self._decode, kind=None):
            yield answer


@dataclass
class GrpcServer:
    """The running gRPC server and the watcher that keeps its health service current."""

    server: grpc.aio.Server
    health: "HealthWatcher"

    async def stop(self, grace: float) -> None:
        self.health.stop()
        await self.server.stop(grace=grace)


async def start_server(context: ApiContext, port: int, host: str = "0.0.0.0") -> GrpcServer:
    """Start the gRPC server for `context`'s models: TEI's services, grpc.health.v1 and
    server reflection; the payload limit is the largest message; `--api-key` is required as
    `authorization: Bearer <key>` metadata."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1.health import aio as health_aio
    from grpc_reflection.v1alpha import reflection

    settings = context.settings
    limit = settings.payload_limit
    interceptors: list[grpc.aio.ServerInterceptor] = [MalformedMessageInterceptor()]
    if settings.api_key:
        interceptors.append(ApiKeyInterceptor(settings.api_key))
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)],
    )
    calls = Calls(context)
    rpc.add_InfoServicer_to_server(InfoService(calls), server)
    rpc.add_EmbedServicer_to_server(EmbedService(calls), server)
    rpc.add_PredictServicer_to_server(PredictService(calls), server)
    rpc.add_RerankServicer_to_server(RerankService(calls), server)
    rpc.add_TokenizeServicer_to_server(TokenizeService(calls), server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health = HealthWatcher(context, health_servicer)
    await health.update()  # right from the first Check
    services = [d.full_name for d in pb.DESCRIPTOR.services_by_name.values()]
    reflection.enable_server_reflection(
        (*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    health.start()
    return GrpcServer(server, health)


SERVICE_ROUTES: dict[str, tuple[Route, ...]] = {
    "tei.v1.Embed": (Route.EMBED, Route.EMBED_SPARSE, Route.EMBED_ALL),
    "tei.v1.Rerank": (Route.RERANK,),
    "tei.v1.Predict": (Route.PREDICT,),
}
"""The services whose health follows the models that answer them (Info and Tokenize are
always SERVING, as in TEI)."""
HEALTH_POLL_S = 1.0


def service_health(health: dict[str, bool], routes: dict[str, set[Route]]) -> dict[str, bool]:
    """grpc.health.v1 status per service name, from each model's health and routes.

    As in TEI, a service no model serves is NOT_SERVING (the hint that its calls always
    fail), and one whose models cannot answer is NOT_SERVING. Beyond TEI (several models):
    a service is SERVING while every model that serves it can answer, "" (the whole server)
    while every model can, as HTTP's /health; each model's served name is a service of its
    own, so `grpc_health_probe -service <model>` checks one model."""
    status = {"": all(health.values()), "tei.v1.Info": True, "tei.v1.Tokenize": True}
    for service, wanted in SERVICE_ROUTES.items():
        serving = [health[name] for name, served in routes.items() if served & set(wanted)]
        status[service] = bool(serving) and all(serving)
    status.update(health)
    return status


class HealthWatcher:
    """Keeps grpc.health.v1 in step with the models: TEI's backend health watcher, by
    polling each model's health (a failed batch marks a model down; a probe brings it back)."""

    def __init__(self, context: ApiContext, servicer: Any) -> None:
        self.context = context
        self.servicer = servicer
        self.known: dict[str, bool] = {}
        self.task: asyncio.Task[None] | None = None

    async def update(self) -> None:
        from grpc_health.v1 import health_pb2

        models = self.context.models
        if models is None:
            return
        routes = {engine.name: set(engine.task.routes) for engine in models}
        for service, serving in service_health(await models.health(), routes).items():
            if self.known.get(service) != serving:
                self.known[service] = serving
                await self.servicer.set(
                    service,
                    health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING,
                )

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._watch())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_POLL_S)
            try:
                await self.update()
            except Exception:  # a failed poll must not end the watcher
                log.exception("gRPC health update failed")


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """TEI's `--api-key` on gRPC: `authorization: Bearer <key>` metadata, else
    UNAUTHENTICATED "No valid auth token" (health and reflection stay open)."""

    OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")

    def __init__(self, api_key: str) -> None:
        self.key = BearerKey(api_key)

    async def intercept_service(self, continuation, details):
        if details.method.startswith(self.OPEN):
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        if self.key.matches(metadata.get("authorization")):
            return await continuation(details)
        return _refusal(details)


def _refusal(details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
    async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "No valid auth token")

    async def deny_stream(requests: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "No valid auth token")

    return grpc.stream_stream_rpc_method_handler(deny_stream)
