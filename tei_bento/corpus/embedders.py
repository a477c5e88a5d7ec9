"""What turns a shard's texts into vectors: the engine in this process, or a running server.

Both take every text of a shard at once and keep the model busy: in-process, the texts go
through the engine's own permits and token-budget batcher in chunks (tei_bento.engine.bulk,
all the permits: nothing else is served); remotely, `/embed` requests of the server's
max_client_batch_size, several in flight, a 429 waited out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

REMOTE_IN_FLIGHT = 4
RETRY_429_S = 0.05


@dataclass(frozen=True)
class EmbedOptions:
    normalize: bool = True
    truncate: bool | None = None
    prompt_name: str | None = None
    embedding_type: str = "float"
    model: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("normalize", "truncate", "prompt_name", "embedding_type", "model")}


class Embedder(Protocol):
    name: str

    async def prepare(self) -> None:
        """Ready to embed, and `name` is the model's."""

    async def embed(self, texts: list[str], progress: Callable[[int, int], None]) -> list[np.ndarray]:
        """Vectors for `texts` in order; `progress(texts, tokens)` as parts finish."""

    async def close(self) -> None: ...


class InProcessEmbedder:
    def __init__(self, settings: Any, options: EmbedOptions) -> None:
        from tei_bento.engine.models import Models

        self.models = Models.load(settings.model_settings())
        self.engine = self.models.for_route(None, options.model)
        self.name = self.engine.name
        self.options = options

    async def prepare(self) -> None:
        return None

    async def embed(self, texts: list[str], progress: Callable[[int, int], None]) -> list[np.ndarray]:
        from tei_bento.engine.bulk import ChunkPlan, run_in_chunks

        o = self.options
        engine = self.engine

        async def call(chunk: list[str]):
            result = await engine.embed(chunk, o.normalize, o.truncate, "right", o.prompt_name, None, o.embedding_type)
            progress(len(chunk), result.timings.tokens)
            return result

        result = await run_in_chunks(engine, texts, call, plan=ChunkPlan.for_engine(engine, share=1.0))
        return list(result.values)

    async def close(self) -> None:
        await self.models.stop()


class RemoteEmbedder:
    """A running tei-bento (or TEI) server's `/embed`."""

    def __init__(self, url: str, options: EmbedOptions, headers: dict[str, str] | None = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.options = options
        self.client = httpx.AsyncClient(timeout=300, headers=headers or {})
        self.name = url
        self.batch: int | None = None

    async def prepare(self) -> None:
        params = {"model": self.options.model} if self.options.model else None
        info = (await self.client.get(self.url + "/info", params=params)).raise_for_status().json()
        self.batch = int(info.get("max_client_batch_size") or 32)
        self.name = info.get("served_model_name") or info.get("model_id") or self.url

    async def embed(self, texts: list[str], progress: Callable[[int, int], None]) -> list[np.ndarray]:
        assert self.batch is not None, "prepare() first"
        o = self.options
        body: dict[str, Any] = {"normalize": o.normalize, "truncate": o.truncate, "prompt_name": o.prompt_name}
        if o.embedding_type != "float":
            body["embedding_type"] = o.embedding_type
        if o.model:
            body["model"] = o.model
        parts = [texts[i : i + self.batch] for i in range(0, len(texts), self.batch)]
        answers: list[list[Any] | None] = [None] * len(parts)
        limit = asyncio.Semaphore(REMOTE_IN_FLIGHT)

        async def one(index: int) -> None:
            async with limit:
                while True:
                    response = await self.client.post(self.url + "/embed", json={**body, "inputs": parts[index]})
                    if response.status_code != 429:
                        break
                    await asyncio.sleep(RETRY_429_S)
                if response.status_code != 200:
                    raise RuntimeError(f"{self.url}/embed answered {response.status_code}: {response.text[:300]}")
                answers[index] = response.json()
                progress(len(parts[index]), int(response.headers.get("x-compute-tokens", 0)))

        await asyncio.gather(*(one(i) for i in range(len(parts))))
        dtype = np.float32 if o.embedding_type == "float" else (np.uint8 if o.embedding_type.startswith("u") else np.int8)
        return [np.asarray(v, dtype=dtype) for part in answers for v in part or []]

    async def close(self) -> None:
        await self.client.aclose()
