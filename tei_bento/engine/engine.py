"""The Engine: one object that every adapter (FastAPI app, BentoML, Truss, CLI) drives.

A request takes one permit per input (429 at once when none are left), is validated and
tokenized in the tokenizer pool, queued for the token-budget batcher, and its answers are
cut out of the batch output on the model thread. The Engine knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from tei_bento import __version__
from tei_bento.engine.batcher import BatchObserver, Batcher, WorkItem
from tei_bento.engine.jobs import EmbedJob, ScoreJob, SparseJob, TokenStatesJob
from tei_bento.engine.loading import LoadedEngineParts, load_parts
from tei_bento.engine.permits import Permits
from tei_bento.engine.tokenization import Input, TokenizedText
from tei_bento.errors import (
    BackendError,
    EmptyError,
    TEIError,
    ValidationError,
    WrongModelTypeError,
)
from tei_bento.model.tasks import Task
from tei_bento.settings import Settings

log = logging.getLogger(__name__)

# On CPU a forward pass of more than a few thousand tokens spills its activations out of
# the caches: all-MiniLM-L6-v2 on a 2-core EPYC ran 4,300-4,600 tokens/s in length-sorted
# batches of 512-4,096 tokens and 2,700-2,900 in batches of 16,384 (TEI's default budget).
CPU_PREFERRED_BATCH_TOKENS = 2048
T = TypeVar("T")


@dataclass
class Timings:
    """What TEI reports in its x-*-time headers and te_request_* histograms."""

    chars: int = 0
    tokens: int = 0
    tokenization: float = 0.0
    queue: float = 0.0
    inference: float = 0.0
    started_at: float = 0.0


@dataclass
class Result(Generic[T]):
    values: list[T]
    timings: Timings


class Engine:
    def __init__(
        self, settings: Settings, parts: LoadedEngineParts, observer: BatchObserver | None = None
    ) -> None:
        self.settings = settings
        self.model = parts.model
        self.info = parts.info
        self.tokenizers = parts.tokenizers
        self.permits = Permits(settings.max_concurrent_requests)
        self.batcher = Batcher(
            self._run_batch,
            settings.max_batch_tokens,
            settings.max_batch_requests,
            observer=observer,
            # On CPU compute grows with every padded token; accelerators are latency-bound at
            # small batches, so a forward pass costs about as much as many more tokens.
            overhead_tokens=16 if parts.info.device == "cpu" else 2048,
            preferred_tokens=settings.preferred_batch_tokens
            or (CPU_PREFERRED_BATCH_TOKENS if parts.info.device == "cpu" else None),
        )
        self.healthy = True
        # Trace, warm the kernels up and prove the model answers before serving. On the model
        # thread: each thread that runs torch gets its own OpenMP team, and two teams on two
        # cores slow every later forward pass by milliseconds.
        self.batcher.run_now_in_model_thread(self._prepare)

    @classmethod
    def from_settings(cls, settings: Settings, observer: BatchObserver | None = None) -> "Engine":
        return cls(settings, load_parts(settings, __version__), observer)

    @property
    def task(self) -> Task:
        return self.model.task

    def _prepare(self) -> None:
        if self.settings.torchscript and self.model.use_torchscript():
            self.info.backend = "torchscript"
            log.info("Serving a TorchScript trace of the network")
        self.probe()

    def probe(self) -> bool:
        """One real forward pass on a short text: the model answers, and with finite numbers."""
        try:
            encoding = self.tokenizers.tokenizer.encode("health check")
            output = self.model.forward([encoding.ids], [encoding.type_ids])
            values = [v for v in (output.pooled, output.sparse, output.logits) if v is not None]
            healthy = all(np.isfinite(v).all() for v in values)
        except Exception:
            log.exception("Health probe failed")
            healthy = False
        if not healthy:
            log.error("The model cannot answer: health probe failed")
        self.healthy = healthy
        return healthy

    async def health(self) -> bool:
        """Healthy while batches succeed; after a failure, a probe on the model thread decides."""
        if not self.healthy:
            await self.batcher.run_in_model_thread(self.probe)
        return self.healthy

    async def stop(self) -> None:
        await self.batcher.stop()
        self.tokenizers.close()

    # -- batch execution (model thread) ----------------------------------------------

    def _run_batch(self, batch: list[WorkItem]) -> list[Any]:
        """Forward a batch; when it fails, retry its inputs one by one so only the culprit fails."""
        try:
            output = self.model.forward(
                [item.ids for item in batch],
                [item.type_ids for item in batch],
                want_token_states=[item.job.needs_token_states for item in batch],
            )
        except Exception as exc:
            self.healthy = False
            if len(batch) > 1:
                log.warning("Batch of %d failed (%s); retrying inputs one by one", len(batch), exc)
                return [self._run_batch([item])[0] for item in batch]
            log.error("Inference failed: %s", exc)
            return [BackendError(f"inference failed: {exc}")]
        return [self._extract(item, output, row) for row, item in enumerate(batch)]

    def _extract(self, item: WorkItem, output: Any, row: int) -> Any:
        try:
            return item.job.extract(output, row)
        except TEIError as exc:
            self.healthy = False
            return exc
        except Exception as exc:
            self.healthy = False
            return BackendError(f"inference failed: {exc}")

    # -- request path -----------------------------------------------------------------

    def check_batch(self, count: int) -> None:
        if count == 0:
            raise EmptyError("`inputs` cannot be empty").without_prefix()
        limit = self.settings.max_client_batch_size
        if count > limit:
            raise ValidationError(
                f"batch size {count} > maximum allowed batch size {limit}"
            ).without_prefix()

    def require_task(self, *tasks: Task, message: str) -> None:
        """TEI answers 424 with a Backend error when a route does not fit the model."""
        if self.task not in tasks:
            raise WrongModelTypeError(message)

    async def _infer(
        self,
        inputs: list[Input],
        job: Any,
        truncate: bool | None,
        direction: str,
        prompt_name: str | None,
    ) -> Result[Any]:
        started = time.perf_counter()
        lease = self.permits.acquire(len(inputs))
        try:
            encoded = await self.tokenizers.encode(
                inputs,
                self.settings.auto_truncate if truncate is None else truncate,
                direction,
                prompt_name,
            )
            tokenized = time.perf_counter()
            loop = asyncio.get_running_loop()
            items = [WorkItem(e.ids, e.type_ids, job, loop.create_future()) for e in encoded]
            values = await self.batcher.submit(items)
        finally:
            lease.release()
        count = len(items)
        timings = Timings(
            chars=sum(e.chars for e in encoded),
            tokens=sum(len(e.ids) for e in encoded),
            tokenization=tokenized - started,
            queue=sum(i.started_at - i.enqueued_at for i in items) / count,
            inference=sum(i.finished_at - i.started_at for i in items) / count,
            started_at=started,
        )
        return Result(values, timings)

    async def embed(
        self,
        inputs: list[Input],
        normalize: bool = True,
        truncate: bool | None = None,
        direction: str = "right",
        prompt_name: str | None = None,
        dimensions: int | None = None,
    ) -> Result[Any]:
        self.require_task(Task.EMBEDDING, Task.SPLADE, message="Model is not an embedding model")
        if self.task is Task.SPLADE and normalize:
            raise WrongModelTypeError("`normalize` is not available for SPLADE models")
        if dimensions is not None:
            if dimensions <= 0:
                raise ValidationError("`dimensions` should be positive")
            if dimensions > self.model.embedding_size:
                raise ValidationError(
                    "`dimensions` should be smaller than the maximum embedding dimension."
                )
        self.check_batch(len(inputs))
        job = EmbedJob(normalize=normalize, dimensions=dimensions)
        return await self._infer(inputs, job, truncate, direction, prompt_name)

    async def embed_all(
        self,
        inputs: list[Input],
        truncate: bool | None = None,
        direction: str = "right",
        prompt_name: str | None = None,
    ) -> Result[Any]:
        if self.task is Task.SPLADE:
            raise WrongModelTypeError("`embed_all` is not available for SPLADE models")
        self.require_task(Task.EMBEDDING, message="Model is not an embedding model")
        self.check_batch(len(inputs))
        return await self._infer(inputs, TokenStatesJob(), truncate, direction, prompt_name)

    async def embed_sparse(
        self,
        inputs: list[Input],
        truncate: bool | None = None,
        direction: str = "right",
        prompt_name: str | None = None,
    ) -> Result[Any]:
        self.require_task(
            Task.SPLADE, message="Model is not an embedding model with SPLADE pooling"
        )
        self.check_batch(len(inputs))
        return await self._infer(inputs, SparseJob(), truncate, direction, prompt_name)

    async def predict(
        self,
        inputs: list[Input],
        raw_scores: bool = False,
        truncate: bool | None = None,
        direction: str = "right",
    ) -> Result[Any]:
        """Label scores per input (a text or a text pair), one permit per input."""
        self.require_task(Task.CLASSIFIER, Task.RERANKER, message="Model is not a classifier model")
        self.check_batch(len(inputs))
        return await self._infer(inputs, ScoreJob(raw_scores), truncate, direction, None)

    async def rerank(
        self,
        query: str,
        texts: list[str],
        raw_scores: bool = False,
        truncate: bool | None = None,
        direction: str = "right",
    ) -> Result[Any]:
        """One score per (query, text) pair, in the order of `texts`; one permit per pair."""
        if not texts:
            raise EmptyError("`texts` cannot be empty").without_prefix()
        self.require_task(Task.RERANKER, message="model is not a re-ranker model")
        self.check_batch(len(texts))
        pairs: list[Input] = [(query, text) for text in texts]
        result = await self._infer(pairs, ScoreJob(raw_scores), truncate, direction, None)
        result.values = [float(scores[0]) for scores in result.values]
        return result

    async def tokenize(
        self, inputs: list[str], add_special_tokens: bool = True, prompt_name: str | None = None
    ) -> list[TokenizedText]:
        self.check_batch(len(inputs))
        return await self.tokenizers.tokenize(inputs, add_special_tokens, prompt_name)

    async def decode(self, ids: list[list[int]], skip_special_tokens: bool = True) -> list[str]:
        if not ids:
            raise EmptyError("`ids` cannot be empty")
        self.check_batch(len(ids))
        return await self.tokenizers.decode(ids, skip_special_tokens)
