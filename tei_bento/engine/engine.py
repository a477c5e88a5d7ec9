"""The Engine: one model, driven by every adapter (FastAPI app, BentoML, Truss, CLI).

A request takes one permit per input (429 at once when none are left), is validated and
tokenized in the tokenizer pool, queued for the token-budget batcher, and its answers are
cut out of the batch output on the model thread. What a route means for this model (which
routes fit, the job per input, the head after the network) is the task's; how the network
runs is the backend's. The Engine knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from tei_bento.backends.base import Backend
from tei_bento.backends.select import choose_backend
from tei_bento.engine.batcher import BatchObserver, Batcher, WorkItem
from tei_bento.engine.loading import LoadedEngineParts, load_parts
from tei_bento.engine.permits import Permits, acquire
from tei_bento.engine.tokenization import Input, TokenizedText
from tei_bento.errors import BackendError, EmptyError, TEIError, ValidationError
from tei_bento.model.runner import ModelRunner
from tei_bento.settings import ModelSettings
from tei_bento.tasks.base import Route

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
    lengths: list[int] = field(default_factory=list)
    """Tokens of each input (te_request_input_length)."""


@dataclass
class Result(Generic[T]):
    values: list[T]
    timings: Timings


class Engine:
    def __init__(
        self, settings: ModelSettings, parts: LoadedEngineParts, observer: BatchObserver | None = None
    ) -> None:
        self.settings = settings
        self.info = parts.info
        self.task = parts.task
        self.tokenizers = parts.tokenizers
        self.name = settings.served_model_name or parts.info.source.model_id
        self.permits = Permits(settings.max_concurrent_requests)
        on_cpu = parts.info.placement.device.type == "cpu"
        self.batcher = Batcher(
            self._run_batch,
            settings.max_batch_tokens,
            settings.max_batch_requests,
            observer=observer,
            # On CPU compute grows with every padded token; accelerators are latency-bound at
            # small batches, so a forward pass costs about as much as many more tokens.
            overhead_tokens=16 if on_cpu else 2048,
            preferred_tokens=settings.preferred_batch_tokens
            or (CPU_PREFERRED_BATCH_TOKENS if on_cpu else None),
        )
        self.healthy = True
        self.backend: Backend = self._choose(parts)
        self.runner = ModelRunner(self.backend, self.task, parts.pad_id)
        # Warm the kernels up and prove the model answers before serving, on the thread that
        # will serve (each thread that runs torch gets its own OpenMP team).
        self.batcher.run_now_in_model_thread(self.probe)
        if self.task.quantizable and self.healthy:
            from tei_bento.engine.calibration import calibrate

            self.task.calibration = calibrate(self)  # type: ignore[attr-defined]

    @classmethod
    def from_settings(cls, settings: ModelSettings, observer: BatchObserver | None = None) -> "Engine":
        return cls(settings, load_parts(settings), observer)

    def _choose(self, parts: LoadedEngineParts) -> Backend:
        tokenizer = parts.tokenizers.tokenizer

        def calibration(texts: list[str]) -> Any:
            encodings = [tokenizer.encode(t) for t in texts]
            runner = ModelRunner(parts.eager, parts.task, parts.pad_id)
            return runner.feeds([e.ids for e in encodings], [e.type_ids for e in encodings])

        return choose_backend(
            self.settings,
            parts.eager,
            parts.folder.path,
            parts.task.auto_class,
            parts.folder.config,
            parts.info.placement.dtype,
            parts.pad_id,
            calibration,
            on_model_thread=self.batcher.run_now_in_model_thread,
        )

    def probe(self) -> bool:
        """One real forward pass on a short text: the model answers, and with finite numbers."""
        try:
            encoding = self.tokenizers.tokenizer.encode("health check")
            output = self.runner.forward([encoding.ids], [encoding.type_ids])
            healthy = bool(np.isfinite(output.vectors).all())
        except Exception:
            log.exception("Health probe failed")
            healthy = False
        if not healthy:
            log.error("The model %s cannot answer: health probe failed", self.name)
        self.healthy = healthy
        return healthy

    async def health(self) -> bool:
        """Healthy while batches succeed; after a failure, a probe on the model thread decides
        (its own answer: a culprit's batch failing right after it must not overrule it)."""
        if not self.healthy:
            return bool(await self.batcher.run_in_model_thread(self.probe))
        return True

    async def stop(self) -> None:
        await self.batcher.stop()
        self.tokenizers.close()

    def close(self) -> None:
        """Release the threads of an engine that never started serving."""
        self.batcher.close()
        self.tokenizers.close()

    # -- batch execution (model thread) ----------------------------------------------

    def _run_batch(self, batch: list[WorkItem]) -> list[Any]:
        """Forward a batch; when it fails, retry its inputs one by one so only the culprit fails."""
        try:
            output = self.runner.forward(
                [item.ids for item in batch],
                [item.type_ids for item in batch],
                prompt_lengths=[item.prompt_length for item in batch],
                attention_lengths=[item.attention_length for item in batch],
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

    async def run(
        self,
        route: Route,
        inputs: list[Input],
        truncate: bool | None = None,
        direction: str = "right",
        prompt_name: str | None = None,
        **options: Any,
    ) -> Result[Any]:
        """Any route: the task says whether it fits (424) and what each input computes."""
        self.task.check(route, **options)
        job = self.task.job(route, **options)
        self.check_batch(len(inputs))
        inputs = self.task.format_inputs(route, inputs, **options)
        long_inputs = self.settings.long_inputs
        chunk = long_inputs == "chunk" and route is Route.EMBED and truncate is not True and self.task.chunkable
        if truncate is None:
            truncate = False if long_inputs == "error" else self.settings.auto_truncate
        return await self._infer(inputs, job, truncate, direction, prompt_name, chunk)

    async def _infer(
        self,
        inputs: list[Input],
        job: Any,
        truncate: bool,
        direction: str,
        prompt_name: str | None,
        chunk: bool = False,
    ) -> Result[Any]:
        """Tokenize, batch, compute; with `chunk`, an input longer than the window runs as
        overlapping windows whose values the task joins into one."""
        started = time.perf_counter()
        lease = await acquire(self.permits, len(inputs))  # a stream's message waits its turn
        admitted = time.perf_counter()
        try:
            if chunk:
                groups = await self.tokenizers.encode_windows(inputs, direction, prompt_name)
                encoded = [e for group in groups for e in group]
            else:
                encoded = await self.tokenizers.encode(inputs, truncate, direction, prompt_name)
            tokenized = time.perf_counter()
            loop = asyncio.get_running_loop()
            if chunk and len(encoded) > len(inputs):
                window_job = self.task.window_job()
                jobs = [job if len(group) == 1 else window_job for group in groups for _ in group]
            else:
                jobs = [job] * len(encoded)
            items = [
                WorkItem(e.ids, e.type_ids, item_job, loop.create_future(), e.prompt_length, e.attention_length)
                for e, item_job in zip(encoded, jobs)
            ]
            values = await self.batcher.submit(items)
        finally:
            lease.release()
        count = len(items)
        if chunk and len(encoded) > len(inputs):
            values, lengths = self._join(groups, values, job)
        else:
            lengths = [len(e.ids) for e in encoded]
        timings = Timings(
            chars=sum(e.chars for e in encoded),
            tokens=sum(lengths),
            tokenization=tokenized - admitted,
            queue=sum(i.started_at - i.enqueued_at for i in items) / count,
            inference=sum(i.finished_at - i.started_at for i in items) / count,
            started_at=started,
            lengths=lengths,
        )
        return Result(values, timings)

    def _join(self, groups: list[list[Any]], values: list[Any], job: Any) -> tuple[list[Any], list[int]]:
        """Each input's value from its windows' (weighted by their content tokens), and each
        input's token count (its windows' together)."""
        joined, lengths, at = [], [], 0
        for group in groups:
            parts = values[at : at + len(group)]
            at += len(group)
            if len(group) == 1:
                joined.append(parts[0])
            else:
                weights = [len(e.ids) for e in group]
                joined.append(self.task.join_windows(job, parts, weights))
            lengths.append(sum(len(e.ids) for e in group))
        return joined, lengths

    async def embed(
        self,
        inputs: list[Input],
        normalize: bool = True,
        truncate: bool | None = None,
        direction: str = "right",
        prompt_name: str | None = None,
        dimensions: int | None = None,
        embedding_type: str = "float",
    ) -> Result[Any]:
        """Pooled vectors; `embedding_type` int8 / uint8 / binary / ubinary quantizes them."""
        options: dict[str, Any] = {"normalize": normalize, "dimensions": dimensions}
        if embedding_type != "float":
            options["embedding_type"] = embedding_type
        return await self.run(Route.EMBED, inputs, truncate, direction, prompt_name, **options)

    async def embed_all(
        self,
        inputs: list[Input],
        truncate: bool | None = None,
        direction: str = "right",
        prompt_name: str | None = None,
    ) -> Result[Any]:
        return await self.run(Route.EMBED_ALL, inputs, truncate, direction, prompt_name)

    async def embed_sparse(
        self,
        inputs: list[Input],
        truncate: bool | None = None,
        direction: str = "right",
        prompt_name: str | None = None,
    ) -> Result[Any]:
        return await self.run(Route.EMBED_SPARSE, inputs, truncate, direction, prompt_name)

    async def embed_multi_vector(
        self, inputs: list[Input], is_query: bool = True, truncate: bool | None = None
    ) -> Result[Any]:
        """ColBERT token vectors per input; long inputs are cut to the model's query or
        document length unless `truncate` is false (then refused)."""
        return await self.run(
            Route.EMBED_MULTI_VECTOR, inputs, True, "right", None, is_query=is_query, refuse_long=truncate is False
        )

    async def predict(
        self,
        inputs: list[Input],
        raw_scores: bool = False,
        truncate: bool | None = None,
        direction: str = "right",
    ) -> Result[Any]:
        """Label scores per input (a text or a text pair), one permit per input."""
        return await self.run(Route.PREDICT, inputs, truncate, direction, raw_scores=raw_scores)

    async def rerank(
        self,
        query: str,
        texts: list[str],
        raw_scores: bool = False,
        truncate: bool | None = None,
        direction: str = "right",
        instruction: str | None = None,
    ) -> Result[Any]:
        """One score per (query, text) pair, in the order of `texts`; one permit per pair.
        `instruction`: an LLM reranker's task description (default: its template's)."""
        if not texts:
            raise EmptyError("`texts` cannot be empty").without_prefix()
        pairs: list[Input] = [(query, text) for text in texts]
        options: dict[str, Any] = {"raw_scores": raw_scores}
        if instruction is not None:
            options["instruction"] = instruction
        result = await self.run(Route.RERANK, pairs, truncate, direction, **options)
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
