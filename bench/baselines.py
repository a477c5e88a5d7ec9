"""In-process references every server figure is compared with.

Why: a server's throughput only means something next to what the same model does with
no server at all. `SentenceTransformer.encode` at its best batch size is the ceiling a
Python server on the same cores should approach (the ratio is reported for every stage),
and the bare forward pass of one short text is the floor of any request's latency (the
idle-latency check: a server should add no more than a few milliseconds to it).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily: sentence-transformers takes seconds to import
    from sentence_transformers import SentenceTransformer

ST_BATCH_SIZES: tuple[int, ...] = (8, 16, 32, 64, 128)


@dataclass(frozen=True)
class EncodeResult:
    """One `encode(texts, batch_size=b)` call over the whole sample."""

    batch_size: int
    texts: int
    tokens: int
    seconds: float
    texts_per_s: float
    tokens_per_s: float
    padding_efficiency: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_folder(model_id: str) -> tuple[str, Path]:
    """(model name, folder) as the server resolves them, so both load the same weights."""
    from tei_bento.model.source import resolve_model
    from tei_bento.settings import ModelSettings

    source = resolve_model(ModelSettings(model_id=model_id))
    return source.model_id, source.path


def load_model(folder: Path | str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def max_length(model: SentenceTransformer) -> int:
    """Tokens kept per input, specials included: what the server truncates to."""
    return int(model.max_seq_length or model.tokenizer.model_max_length)


def token_counts(model: SentenceTransformer, texts: Sequence[str]) -> list[int]:
    """Real tokens per text, truncated at the model's max length, special tokens included.

    These, not characters or padded shapes, are the numerator of every tokens/s figure.
    """
    encoded = model.tokenizer(
        list(texts), truncation=True, max_length=max_length(model), add_special_tokens=True
    )
    return [len(ids) for ids in encoded["input_ids"]]


def st_padding_efficiency(texts: Sequence[str], tokens: Sequence[int], batch_size: int) -> float:
    """Real / computed tokens when encode() sorts inputs by length (as ST does) and batches.

    sentence-transformers sorts by character length, descending, then cuts fixed-size
    batches; each batch computes `longest x count` tokens.
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    padded = 0
    for start in range(0, len(order), batch_size):
        chunk = [tokens[i] for i in order[start : start + batch_size]]
        padded += max(chunk) * len(chunk)
    return sum(tokens) / padded if padded else 1.0


def measure_encode(
    model: SentenceTransformer,
    texts: Sequence[str],
    tokens: Sequence[int],
    batch_sizes: Sequence[int] = ST_BATCH_SIZES,
) -> list[EncodeResult]:
    """Time one encode() of the whole sample per batch size, after a short warm-up."""
    model.encode(list(texts[:16]), batch_size=8, show_progress_bar=False)
    results = []
    total_tokens = sum(tokens)
    for batch_size in batch_sizes:
        start = time.perf_counter()
        model.encode(list(texts), batch_size=batch_size, show_progress_bar=False)
        seconds = time.perf_counter() - start
        results.append(
            EncodeResult(
                batch_size=batch_size,
                texts=len(texts),
                tokens=total_tokens,
                seconds=round(seconds, 4),
                texts_per_s=round(len(texts) / seconds, 2),
                tokens_per_s=round(total_tokens / seconds, 1),
                padding_efficiency=round(st_padding_efficiency(texts, tokens, batch_size), 4),
            )
        )
    return results


def best(results: Sequence[EncodeResult]) -> EncodeResult:
    return max(results, key=lambda r: r.tokens_per_s)


def _summary_ms(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 3),
        "min_ms": round(ordered[0] * 1000, 3),
    }


def bare_forward(model: SentenceTransformer, text: str, repeats: int) -> dict[str, Any]:
    """Latency floor for one short text: the module stack's forward on ready tensors.

    Tokenization is outside the timer; pooling and normalization (part of the ST
    module stack) are inside, because a server must do them too. `encode_one` (the whole
    `model.encode([text])`) is reported beside it as a second reference.
    """
    import torch

    prepare = getattr(model, "preprocess", None) or model.tokenize  # renamed in ST 6
    features = {
        k: v.to(model.device) if isinstance(v, torch.Tensor) else v
        for k, v in prepare([text]).items()
    }
    forward: list[float] = []
    encode_one: list[float] = []
    with torch.inference_mode():
        for _ in range(10):
            model.forward(dict(features))
        for _ in range(repeats):
            start = time.perf_counter()
            model.forward(dict(features))
            forward.append(time.perf_counter() - start)
    for _ in range(max(5, repeats // 2)):
        start = time.perf_counter()
        model.encode([text], show_progress_bar=False)
        encode_one.append(time.perf_counter() - start)
    return {
        "text": text,
        "tokens": int(features["input_ids"].shape[1]),
        "torch_threads": torch.get_num_threads(),
        "forward": _summary_ms(forward),
        "encode_one": _summary_ms(encode_one),
    }
