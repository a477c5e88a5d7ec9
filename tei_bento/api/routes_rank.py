"""Cross-encoder and classifier routes: /rerank, /v1/rerank, /predict.

`/rerank` answers TEI's list when given `texts`, and the Cohere / Jina / Dify / FastGPT
`{"results": [...]}` when given `documents`; `/v1/rerank` always answers the latter
(Cohere's v2 routes are in routes_cohere).
Results are sorted as TEI sorts them: ascending (stable), then reversed, so equal scores
list the later index first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tei_bento.api.context import context_of
from tei_bento.api.disconnect import unless_disconnected
from tei_bento.api.routes_embed import ANSWERS
from tei_bento.api.schemas import Prediction, PredictRequest, Rank, RerankRequest, RerankResults
from tei_bento.answers import label_scores, relevance_results, tei_ranks
from tei_bento.errors import EmptyError
from tei_bento.tasks.base import Route

router = APIRouter(tags=["Text Embeddings Inference"])


async def _rerank(body: RerankRequest, request: Request, cohere_form: bool) -> Response:
    context = context_of(request)
    engine = context.engine_for(request, Route.RERANK, body.model)
    texts = body.texts if body.texts is not None else body.document_texts
    if body.texts is None and body.documents is None:
        raise EmptyError("`texts` cannot be empty").without_prefix()
    context.count_request(engine, True, "predict")
    result = await unless_disconnected(
        request,
        engine.rerank(
            body.query,
            texts,
            raw_scores=body.raw_scores,
            truncate=body.truncate,
            direction=body.direction,
            instruction=body.instruction,
        ),
    )
    if cohere_form or body.texts is None:
        with_documents = bool(body.return_documents or body.return_text)
        content: Any = {
            "model": engine.name,
            "results": relevance_results(result.values, texts, body.top_n, with_documents),
            "usage": {"total_tokens": result.timings.tokens},
        }
    else:
        content = tei_ranks(result.values, texts, body.top_n, body.return_text)
    return context.reply(engine, content, result.timings, True, kind="predict")


@router.post("/rerank", response_model=list[Rank] | RerankResults, responses=ANSWERS)
async def rerank(body: RerankRequest, request: Request) -> Response:
    """Score `texts` (or `documents`) against `query` with a cross-encoder, best first."""
    return await _rerank(body, request, cohere_form=False)


@router.post("/v1/rerank", response_model=RerankResults, responses=ANSWERS)
async def rerank_v1(body: RerankRequest, request: Request) -> Response:
    """Cohere / Jina rerank: `documents`, `top_n`, `return_documents`, `model`."""
    return await _rerank(body, request, cohere_form=True)


@router.post(
    "/predict", response_model=list[Prediction] | list[list[Prediction]], responses=ANSWERS
)
async def predict(body: PredictRequest, request: Request) -> Response:
    """Label scores for a text, a text pair, or a batch of both, best first."""
    context = context_of(request)
    engine = context.engine_for(request, Route.PREDICT, body.model)
    inputs, batch = body.as_batch()
    context.count_request(engine, batch, "predict")
    result = await unless_disconnected(
        request,
        engine.predict(
            inputs, raw_scores=body.raw_scores, truncate=body.truncate, direction=body.direction
        ),
    )
    label = engine.task.label  # type: ignore[attr-defined]  (the task is a classifier here)
    answers = [label_scores(scores, label) for scores in result.values]
    content = answers if batch else answers[0]
    return context.reply(engine, content, result.timings, batch, kind="predict")
