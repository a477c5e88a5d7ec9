"""Tokenizer routes: /tokenize and /decode (any model type, no permit, no queue)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tei_bento.api.context import context_of
from tei_bento.api.responses import JSONResponse
from tei_bento.api.schemas import DecodeRequest, SimpleToken, TokenizeRequest
from tei_bento.api.routes_embed import ERRORS
from tei_bento.engine.tokenization import TokenizedText

router = APIRouter(tags=["Text Embeddings Inference"])


def byte_offsets(text: str) -> list[int]:
    """UTF-8 byte position of every character boundary (TEI reports byte offsets)."""
    positions = [0] * (len(text) + 1)
    total = 0
    for index, char in enumerate(text):
        positions[index] = total
        total += len(char.encode("utf-8"))
    positions[len(text)] = total
    return positions


def simple_tokens(tokenized: TokenizedText) -> list[dict]:
    encoding = tokenized.encoding
    raw = tokenized.text.encode("utf-8")
    to_bytes = byte_offsets(tokenized.text)
    tokens = []
    for token_id, token, special, (start, stop) in zip(
        encoding.ids, encoding.tokens, encoding.special_tokens_mask, encoding.offsets
    ):
        if special:
            tokens.append(
                {"id": token_id, "text": token, "special": True, "start": None, "stop": None}
            )
            continue
        byte_start, byte_stop = to_bytes[start], to_bytes[stop]
        text = raw[byte_start:byte_stop].decode("utf-8", errors="replace")
        tokens.append(
            {"id": token_id, "text": text, "special": False, "start": byte_start, "stop": byte_stop}
        )
    return tokens


@router.post("/tokenize", response_model=list[list[SimpleToken]], responses=ERRORS)
async def tokenize(body: TokenizeRequest, request: Request) -> Response:
    """Tokens with ids, text and UTF-8 byte offsets (null for special tokens)."""
    engine = context_of(request).engine_for(request, None, body.model)
    inputs = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    results = await engine.tokenize(
        inputs, body.add_special_tokens, body.prompt_name
    )
    return JSONResponse([simple_tokens(r) for r in results])


@router.post("/decode", response_model=list[str], responses=ERRORS)
async def decode(body: DecodeRequest, request: Request) -> Response:
    """Text of one id list or of a batch of id lists."""
    engine = context_of(request).engine_for(request, None, body.model)
    ids = body.ids
    batch = [ids] if not ids or isinstance(ids[0], int) else ids
    texts = await engine.decode(batch, body.skip_special_tokens)
    return JSONResponse(texts)
