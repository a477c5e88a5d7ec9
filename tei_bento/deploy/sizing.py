"""Memory math: how many tokens one forward pass may hold on a GPU, and the knobs that follow.

The engine cuts padded batches (`longest x count <= max_batch_tokens`), so peak GPU memory
is the weights plus a cost per padded token. Per token, one transformer layer keeps a few
hidden-size tensors alive at once (residual, norm output, Q, K, V, attention output and
projection: ~8 x hidden), the MLP's up projection and activation (2 x intermediate, 3 for
gated SwiGLU decoders), and one row of the additive attention mask (max_input_length
elements: the mask is batch x seq x seq). Layers run one after another without autograd, so
this does not grow with depth. A 1.5x margin covers allocator fragmentation and the copies
made while pooling.

Memory alone would allow millions of tokens for a small model on an 80 GB card, where a
batch would take seconds. A compute cap keeps one full batch near TARGET_BATCH_SECONDS:
datasheet fp16 throughput x EFFECTIVE_FRACTION / FLOPs per token. The two constants are
calibrated so that bert-large on an L4 lands at 16384 tokens, where Baseten's TEI example
reports marginal gains above ~16000 tokens. A hard cap keeps one replica's CPU side
(tokenization, JSON encoding) able to feed the GPU; more traffic means more replicas.

Concurrency follows from the batch: enough requests in flight to fill the running batch and
the next one (2 x max_batch_tokens / tokens of a typical request), as the TEI example's
`40 x 512 = 20480 >= 16000`. `max_concurrent_requests` counts one permit per input, so it
is `predict_concurrency x max_client_batch_size`: Baseten's proxy never lets more than
`predict_concurrency` requests into a replica, and none of those can be answered 429.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

DeployTask = Literal["embed", "rerank", "classify"]

GIB = 1024**3
DTYPE_BYTES = 2  # float16 / bfloat16 on every GPU here
USABLE_FRACTION = 0.90  # of what the card reports; the rest is fragmentation headroom
CUDA_CONTEXT_GIB = 1.0  # CUDA context, cuBLAS/cuDNN workspaces, kernels
ACTIVATION_MARGIN = 1.5
TARGET_BATCH_SECONDS = 0.2
EFFECTIVE_FRACTION = 0.5
MAX_BATCH_TOKENS_CAP = 131_072
TYPICAL_INPUT_TOKENS = 512  # a RAG chunk; shorter for queries, so the estimate errs high
CONCURRENCY_RANGE = (8, 256)


@dataclass(frozen=True)
class Gpu:
    """A Baseten accelerator (names as truss spells them) and what the sizing needs of it."""

    name: str
    memory_gib: float  # what torch reports, a little under the marketing number
    fp16_tflops: float  # dense fp16 tensor-core throughput from the datasheet
    bf16: bool  # Turing (T4) has no bfloat16
    cpu: str  # vCPUs to request: tokenization threads that feed the GPU


GPUS: dict[str, Gpu] = {
    gpu.name: gpu
    for gpu in (
        Gpu("T4", 15.0, 65.0, bf16=False, cpu="4"),
        Gpu("L4", 22.0, 121.0, bf16=True, cpu="4"),
        Gpu("A10G", 22.0, 70.0, bf16=True, cpu="4"),
        Gpu("A100", 79.0, 312.0, bf16=True, cpu="8"),
        Gpu("H100", 79.0, 989.0, bf16=True, cpu="8"),
    )
}


@dataclass(frozen=True)
class ModelClass:
    """A family of models with the same memory and compute shape, with one example."""

    name: str
    example_model_id: str
    task: DeployTask
    params_millions: float
    hidden: int
    layers: int
    intermediate: int
    max_input_length: int
    vocab_size: int
    decoder: bool = False  # gated MLP, last-token pooling, bfloat16 where the GPU has it
    inputs_per_request: int = 1  # a rerank request carries a query and many texts

    @property
    def weights_gib(self) -> float:
        return self.params_millions * 1e6 * DTYPE_BYTES / GIB

    @property
    def activation_bytes_per_token(self) -> int:
        mlp = (3 if self.decoder else 2) * self.intermediate
        return DTYPE_BYTES * (8 * self.hidden + mlp + self.max_input_length)

    @property
    def flops_per_token(self) -> float:
        """2 x the matmul parameters (the embedding table is a lookup, not a matmul; it is
        most of an XLM-RoBERTa base), plus attention scores over a typical input."""
        matmul_params = self.params_millions * 1e6 - self.vocab_size * self.hidden
        context = min(self.max_input_length, TYPICAL_INPUT_TOKENS)
        return 2 * matmul_params + 4 * self.layers * self.hidden * context


@dataclass(frozen=True)
class Sizing:
    """The knobs for one model class on one GPU, and the numbers they came from."""

    gpu: Gpu
    model: ModelClass
    dtype: str
    memory_tokens: int
    compute_tokens: int
    max_batch_tokens: int
    predict_concurrency: int
    max_client_batch_size: int
    max_concurrent_requests: int
    host_memory: str

    def reasoning(self) -> list[str]:
        """Why these numbers, one line each, for the comment block beside the config."""
        m, g = self.model, self.gpu
        budget = activation_budget_gib(g, m.weights_gib)
        request_tokens = m.inputs_per_request * min(m.max_input_length, TYPICAL_INPUT_TOKENS)
        mlp = 3 if m.decoder else 2
        return [
            (
                f"Sized as {m.name} (like {m.example_model_id}): {m.params_millions:g}M "
                f"parameters, hidden {m.hidden}, {m.layers} layers, MLP {m.intermediate}, "
                f"inputs up to {m.max_input_length} tokens; {self.dtype} on {g.name} "
                f"({g.memory_gib:g} GiB)."
            ),
            (
                f"Weights: {m.weights_gib:.2f} GiB. Activation budget: {g.memory_gib:g} x "
                f"{USABLE_FRACTION} - {CUDA_CONTEXT_GIB:g} GiB CUDA context - weights = "
                f"{budget:.2f} GiB."
            ),
            (
                f"Per padded token: {DTYPE_BYTES} B x (8 x hidden + "
                f"{mlp} x MLP + mask row {m.max_input_length}) = "
                f"{m.activation_bytes_per_token} B, x {ACTIVATION_MARGIN} margin -> memory allows "
                f"{self.memory_tokens} tokens."
            ),
            (
                f"Compute: {m.flops_per_token / 1e9:.2f} GFLOP/token; {g.fp16_tflops:g} TFLOPS x "
                f"{EFFECTIVE_FRACTION} x {TARGET_BATCH_SECONDS}s per batch -> "
                f"{self.compute_tokens} tokens before bigger batches only add latency."
            ),
            (
                f"max_batch_tokens = {self.max_batch_tokens}: the smaller of the two (and of "
                f"{MAX_BATCH_TOKENS_CAP}), rounded down to a power of two, never below one "
                f"full-length input ({m.max_input_length})."
            ),
            (
                f"predict_concurrency = {self.predict_concurrency}: 2 batches / {request_tokens} "
                f"tokens per typical request ({m.inputs_per_request} input(s) of <= "
                f"{TYPICAL_INPUT_TOKENS}), within {CONCURRENCY_RANGE}."
            ),
            (
                f"max_concurrent_requests = {self.max_concurrent_requests} = predict_concurrency x "
                f"max_client_batch_size ({self.max_client_batch_size}): one permit per input, so "
                "no request Baseten lets in is answered 429."
            ),
        ]


class DoesNotFit(ValueError):
    """The weights plus one full-length input do not fit in the GPU's memory."""


def _pow2_floor(value: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(1.0, value))))


def _host_memory(model: ModelClass) -> str:
    """The loader reads the weights into host memory before moving them to the GPU."""
    return host_memory(model.weights_gib)


def host_memory(weights_gib: float) -> str:
    """Host memory for `weights_gib` of weights: x 1.5 + 4 GiB, a power of two, >= 16Gi."""
    need = weights_gib * 1.5 + 4
    return f"{max(16, 1 << math.ceil(math.log2(need)))}Gi"


def activation_budget_gib(gpu: Gpu, weights_gib: float) -> float:
    """What one process may spend on activations: usable memory less context and weights."""
    return gpu.memory_gib * USABLE_FRACTION - CUDA_CONTEXT_GIB - weights_gib


def default_client_batch_size(task: DeployTask) -> int:
    """Small requests let Baseten autoscale on requests per second (the TEI example's
    advice, OpenAI's historical 32); a rerank request lists its candidates in one call."""
    return 64 if task == "rerank" else 32


def size(
    model: ModelClass,
    gpu: Gpu,
    max_client_batch_size: int | None = None,
    max_batch_tokens: int | None = None,
    predict_concurrency: int | None = None,
    budget_gib: float | None = None,
) -> Sizing:
    """Derive the batch, concurrency and permit knobs; explicit values override a step and
    everything after it is derived from them, so the set stays consistent. `budget_gib` is
    the activation memory this model may use (default: the whole GPU after its weights)."""
    if budget_gib is None:
        budget_gib = activation_budget_gib(gpu, model.weights_gib)
    per_token = model.activation_bytes_per_token * ACTIVATION_MARGIN
    memory_tokens = int(max(0.0, budget_gib) * GIB / per_token)
    if memory_tokens < model.max_input_length:
        raise DoesNotFit(
            f"{model.name} needs {model.weights_gib:.1f} GiB of weights plus one "
            f"{model.max_input_length}-token input; {gpu.name} has {gpu.memory_gib:g} GiB"
        )
    compute_tokens = int(
        gpu.fp16_tflops * 1e12 * EFFECTIVE_FRACTION * TARGET_BATCH_SECONDS / model.flops_per_token
    )
    if max_batch_tokens is None:
        chosen = _pow2_floor(min(memory_tokens, compute_tokens, MAX_BATCH_TOKENS_CAP))
        max_batch_tokens = min(max(chosen, model.max_input_length), memory_tokens)
    client = max_client_batch_size or default_client_batch_size(model.task)
    if predict_concurrency is None:
        request_tokens = model.inputs_per_request * min(
            model.max_input_length, TYPICAL_INPUT_TOKENS
        )
        low, high = CONCURRENCY_RANGE
        predict_concurrency = min(high, max(low, math.ceil(2 * max_batch_tokens / request_tokens)))
    return Sizing(
        gpu=gpu,
        model=model,
        dtype="bfloat16" if model.decoder and gpu.bf16 else "float16",
        memory_tokens=memory_tokens,
        compute_tokens=compute_tokens,
        max_batch_tokens=max_batch_tokens,
        predict_concurrency=predict_concurrency,
        max_client_batch_size=client,
        max_concurrent_requests=predict_concurrency * client,
        host_memory=_host_memory(model),
    )


@dataclass(frozen=True)
class SharedSizing:
    """Several models served by one process on one GPU, each sized against its share.

    The process holds one CUDA context and every model's weights; each model has its own
    batcher and model thread, so their forward passes may run at the same time and their
    activation peaks add up. The memory left after all the weights is therefore split
    equally: every model running a full batch at once still fits. The compute cap is not
    split: it is the latency of one batch on an otherwise idle GPU, and batches of models
    busy at the same time take turns (more load wants more replicas, not bigger batches).
    Baseten's proxy counts requests per replica, not per model, so `predict_concurrency` is
    the sum of what each model needs for its own two batches (traffic spread over the
    models keeps every batcher fed), and each model's `max_concurrent_requests` is that
    replica-wide number x its own `max_client_batch_size`: all the requests Baseten lets
    in may name one model, and none of them is answered 429. Permits bound queued inputs
    (host memory); `max_batch_tokens` alone bounds GPU memory.
    """

    gpu: Gpu
    sizings: tuple[Sizing, ...]  # each model's own knobs, sized against its share
    alone_memory_tokens: tuple[int, ...]  # what memory would allow each with the GPU alone
    given: tuple[frozenset[str], ...]  # the knobs each model's entry set itself
    budget_gib: float  # activation memory of the whole process
    predict_concurrency: int
    concurrency_given: bool
    host_memory: str

    @property
    def weights_gib(self) -> float:
        return sum(s.model.weights_gib for s in self.sizings)

    @property
    def share_gib(self) -> float:
        return self.budget_gib / len(self.sizings)

    def max_concurrent_requests(self, sizing: Sizing) -> int:
        return self.predict_concurrency * sizing.max_client_batch_size

    def reasoning(self, labels: list[str]) -> list[str]:
        """Why these numbers, for the comment block of a multi-model Truss."""
        g, n = self.gpu, len(self.sizings)
        weights = " + ".join(f"{s.model.weights_gib:.2f}" for s in self.sizings)
        lines = [
            (
                f"One process serves the {n} models on one {g.name} ({g.memory_gib:g} GiB): one "
                "CUDA context, every model's weights resident, and a batcher and model thread "
                "per model, so their forward passes can overlap. The activation memory left "
                "after all the weights is split equally, so every model running a full batch "
                "at the same time still fits."
            ),
            (
                f"Weights: {weights} = {self.weights_gib:.2f} GiB. Activation budget: "
                f"{g.memory_gib:g} x {USABLE_FRACTION} - {CUDA_CONTEXT_GIB:g} GiB CUDA context - "
                f"weights = {self.budget_gib:.2f} GiB; / {n} = {self.share_gib:.2f} GiB per "
                f"model. Host memory {self.host_memory}: all the weights x 1.5 + 4 GiB, a power "
                "of two, at least 16Gi."
            ),
        ]
        for label, s, alone, given in zip(
            labels, self.sizings, self.alone_memory_tokens, self.given
        ):
            m = s.model
            batch = (
                "set in the models file or by flag"
                if "max_batch_tokens" in given
                else f"min(share, compute, {MAX_BATCH_TOKENS_CAP}) rounded down to a power of two, "
                f">= one {m.max_input_length}-token input"
            )
            client = "set" if "max_client_batch_size" in given else "default"
            lines.append(
                f"- {label} ({m.task}): sized as {m.name} ({m.params_millions:g}M parameters, "
                f"{m.weights_gib:.2f} GiB, {s.dtype}). {m.activation_bytes_per_token} B per "
                f"padded token x {ACTIVATION_MARGIN}: its share allows {s.memory_tokens} tokens "
                f"(alone: {alone}); compute caps at {s.compute_tokens}. max_batch_tokens = "
                f"{s.max_batch_tokens} ({batch}); max_client_batch_size = "
                f"{s.max_client_batch_size} ({client}); its own two batches take "
                f"{s.predict_concurrency} typical requests."
            )
        own = " + ".join(str(s.predict_concurrency) for s in self.sizings)
        lines += [
            (
                f"predict_concurrency = {self.predict_concurrency}: set with --predict-concurrency."
                if self.concurrency_given
                else f"predict_concurrency = {self.predict_concurrency}: the sum of every "
                f"model's own ({own}), within {CONCURRENCY_RANGE}. Baseten's proxy counts "
                "requests per replica, not per model; the sum keeps every model's next batch "
                "full when traffic is spread over them."
            ),
            (
                "max_concurrent_requests of each model = predict_concurrency x its "
                "max_client_batch_size ("
                + ", ".join(str(self.max_concurrent_requests(s)) for s in self.sizings)
                + "): all the requests Baseten lets in may name one model, and none is "
                "answered 429. Permits bound queued inputs; max_batch_tokens bounds GPU memory."
            ),
            (
                "Compute is shared, not split: each compute cap is one batch's latency on an "
                "idle GPU; batches of models busy at the same time take turns and take longer, "
                "so more load wants more replicas, not bigger batches."
            ),
        ]
        return lines


def size_shared(
    models: list[ModelClass],
    gpu: Gpu,
    overrides: list[dict[str, int]] | None = None,
    predict_concurrency: int | None = None,
) -> SharedSizing:
    """Size `models` served together by one process on `gpu`: every model's weights first,
    then an equal share of the activation memory left for each (see SharedSizing).
    `overrides[i]` may set model i's `max_batch_tokens` / `max_client_batch_size`."""
    if not models:
        raise ValueError("no model to size")
    overrides = overrides or [{} for _ in models]
    weights = sum(m.weights_gib for m in models)
    budget = activation_budget_gib(gpu, weights)
    share = budget / len(models)
    usable = gpu.memory_gib * USABLE_FRACTION - CUDA_CONTEXT_GIB
    for model in models:
        need = model.max_input_length * model.activation_bytes_per_token * ACTIVATION_MARGIN
        if share * GIB < need:
            fit = f"{len(models)} models do not fit one {gpu.name} ({gpu.memory_gib:g} GiB)"
            if budget <= 0:
                raise DoesNotFit(
                    f"{fit}: their weights alone take {weights:.1f} GiB of its {usable:.1f} "
                    "usable GiB"
                )
            raise DoesNotFit(
                f"{fit}: their weights take {weights:.1f} of its {usable:.1f} usable GiB, "
                f"leaving {share:.2f} GiB of activations per model, and {model.name} needs "
                f"{need / GIB:.2f} GiB for one {model.max_input_length}-token input"
            )
    sizings = tuple(
        size(model, gpu, budget_gib=share, **override) for model, override in zip(models, overrides)
    )
    if predict_concurrency is None:
        low, high = CONCURRENCY_RANGE
        total = sum(s.predict_concurrency for s in sizings)
        concurrency = min(high, max(low, total))
    else:
        concurrency = predict_concurrency
    return SharedSizing(
        gpu=gpu,
        sizings=sizings,
        alone_memory_tokens=tuple(size(model, gpu).memory_tokens for model in models),
        given=tuple(frozenset(o) for o in overrides),
        budget_gib=budget,
        predict_concurrency=concurrency,
        concurrency_given=predict_concurrency is not None,
        host_memory=host_memory(weights),
    )
