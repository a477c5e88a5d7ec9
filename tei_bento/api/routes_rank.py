"""Cross-encoder and classifier routes: /rerank, /v1/rerank, /predict.

`/rerank` answers TEI's list when given `texts`, and the Cohere / Jina / Dify / FastGPT
`{"results": [...]}` when given `documents`; `/v1/rerank` always answers the latter.
Results are sorted as TEI sorts them: ascending (stable), then reversed, so equal scores
list the later index first.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tei_bento.api.context import context_of
from tei_bento.api.disconnect import unless_disconnected
from tei_bento.api.routes_embed import ANSWERS
from tei_bento.api.schemas import Prediction, Rank, RerankRequest, RerankResults, PredictRequest
from tei_bento.errors import BackendError, EmptyError
from tei_bento.tasks.base import Route

router = APIRouter(tags=["Text Embeddings Inference"])


def tei_order(scores: list[float]) -> list[int]:
    """Indices by descending score; ties keep TEI's order (later index first)."""
    return list(reversed(sorted(range(len(scores)), key=lambda i: scores[i])))


def _check_finite(scores: list[float]) -> None:
    if any(math.isnan(s) for s in scores):
        raise BackendError("score is NaN")


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
        ),
    )
    scores = result.values
    _check_finite(scores)
    order = tei_order(scores)
    if body.top_n is not None:
        order = order[: body.top_n]
    if cohere_form or body.texts is None:
        with_documents = bool(body.return_documents or body.return_text)
        content: Any = {
            "model": engine.name,
            "results": [
                {"index": i, "relevance_score": scores[i]}
                | ({"document": {"text": texts[i]}} if with_documents else {})
                for i in order
            ],
            "usage": {"total_tokens": result.timings.tokens},
        }
    else:
        content = [
            {"index": i, "score": scores[i]} | ({"text": texts[i]} if body.return_text else {})
            for i in order
        ]
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
    answers = []
    for scores in result.values:
        values = [float(s) for s in scores]
        _check_finite(values)
        answers.append([{"score": values[i], "label": label(i)} for i in tei_order(values)])
    content = answers if batch else answers[0]
    return context.reply(engine, content, result.timings, batch, kind="predict")
