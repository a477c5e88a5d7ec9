"""Validation and tokenization in a pool of threads, as TEI's tokenization workers do.

Fast tokenizers release the GIL, so a thread pool tokenizes in parallel with the event
loop and the forward pass. Each thread owns a tokenizer copy, because truncation is a
setting on the tokenizer object. Checks follow TEI's order and messages: empty input,
prompt lookup, character cap, then the token limit.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Union

from tokenizers import Encoding, Tokenizer

from tei_bento.errors import EmptyError, TokenizerError, ValidationError

MAX_CHAR_MULTIPLIER = 250
WINDOW_OVERLAP = 0.25
"""`--long-inputs chunk`: consecutive windows share this share of their content tokens."""

TextPair = tuple[str, str]


@dataclass(frozen=True)
class PreparedInput:
    """An input a task has tokenized itself (ColBERT's prefix token and query expansion):
    taken as it is; `attention_length` leading tokens are attended, the rest still computed."""

    ids: list[int]
    type_ids: list[int]
    attention_length: int
    chars: int


Input = Union[str, list[int], TextPair, PreparedInput]


INLINE_CHARS = 2_000
"""Inputs this short are tokenized on the event loop: a few dozen microseconds of Rust,
where a trip to the tokenizer pool costs a thread hop each way (~0.15 ms on a 2-core
vCPU, more when the model's threads hold the cores). Longer ones go to the pool so the
event loop never waits on a long document."""


@dataclass(frozen=True)
class EncodedInput:
    ids: list[int]
    type_ids: list[int]
    chars: int
    prompt_length: int = 0
    """Leading tokens pooling leaves out (a prompt, where `include_prompt` is false)."""
    attention_length: int | None = None
    """Tokens attended to, where fewer than all (ColBERT's query expansion); None: all."""


@dataclass(frozen=True)
class TokenizedText:
    """What /tokenize answers for one input: the (prompted) text and its encoding."""

    text: str
    encoding: Encoding


@dataclass(frozen=True)
class PromptConfig:
    prompts: dict[str, str]
    default_prompt: str | None = None

    def resolve(self, prompt_name: str | None) -> str | None:
        if prompt_name is None:
            return self.default_prompt
        if not self.prompts:
            raise ValidationError(
                f"`default-prompt-name` is set to `{prompt_name}` but no prompts were found "
                "in the Sentence Transformers configuration"
            )
        if prompt_name not in self.prompts:
            raise ValidationError(
                f"`default-prompt-name` is set to `{prompt_name}` but it was not found in the "
                f"Sentence Transformers prompts. Available prompts: {list(self.prompts)}"
            )
        return self.prompts[prompt_name]


def input_chars(value: Input) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, PreparedInput):
        return value.chars
    if isinstance(value, tuple):
        return len(value[0]) + len(value[1])
    return len(value)


def is_empty(value: Input) -> bool:
    if isinstance(value, PreparedInput):
        return not value.ids
    if isinstance(value, tuple):
        return not value[0] and not value[1]
    return len(value) == 0


class TokenizerPool:
    def __init__(
        self,
        tokenizer: Tokenizer,
        max_input_length: int,
        prompts: PromptConfig,
        workers: int,
        lowercase: bool = False,
        pool_prompt: bool = True,
        wrap: tuple[list[int], list[int]] | None = None,
    ) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._json = tokenizer.to_str()
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
        self.max_input_length = max_input_length
        self.prompts = prompts
        self.lowercase = lowercase
        self.pool_prompt = pool_prompt
        self.wrap = wrap
        """Token ids put before and after every text (a chat template's ends, tokenized
        apart from the text as the model card does); the text is truncated to fit."""
        self._prompt_lengths: dict[str, int] = {}
        self.workers = workers
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="tokenizer")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- async API -------------------------------------------------------------------

    async def encode(
        self,
        inputs: list[Input],
        truncate: bool,
        direction: str = "right",
        prompt_name: str | None = None,
    ) -> list[EncodedInput]:
        for value in inputs:
            if is_empty(value):
                raise EmptyError("`inputs` cannot be empty")
        if sum(input_chars(value) for value in inputs) <= INLINE_CHARS:
            return self._encode_all(inputs, truncate, direction, prompt_name)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._encode_all, inputs, truncate, direction, prompt_name
        )

    async def encode_windows(
        self, inputs: list[Input], direction: str = "right", prompt_name: str | None = None
    ) -> list[list[EncodedInput]]:
        """`encode` without truncation, where a text longer than the window becomes several
        overlapping windows (see `windows`); anything else is one encoding, as `encode`."""
        for value in inputs:
            if is_empty(value):
                raise EmptyError("`inputs` cannot be empty")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._windows_all, inputs, direction, prompt_name
        )

    def encode_now(self, inputs: list[Input], truncate: bool) -> list[EncodedInput]:
        """`encode` on the calling thread (start-up work such as calibration)."""
        return self._encode_all(inputs, truncate, "right", None)

    async def tokenize(
        self, inputs: list[str], add_special_tokens: bool, prompt_name: str | None
    ) -> list[TokenizedText]:
        for value in inputs:
            if is_empty(value):
                raise EmptyError("`inputs` cannot be empty")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._tokenize_all, inputs, add_special_tokens, prompt_name
        )

    async def decode(self, ids: list[list[int]], skip_special_tokens: bool) -> list[str]:
        for seq in ids:
            if not seq:
                raise EmptyError("`input_ids` cannot be empty")
            self._check_ids(seq)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor,
            lambda: self._thread_tokenizer(None, "right").decode_batch(
                ids, skip_special_tokens=skip_special_tokens
            ),
        )

    # -- worker side -----------------------------------------------------------------

    def _thread_tokenizer(self, max_length: int | None, direction: str) -> Tokenizer:
        local = self._local
        if not hasattr(local, "tokenizer"):
            local.tokenizer = Tokenizer.from_str(self._json)
            local.truncation = (None, "right")
        if local.truncation != (max_length, direction):
            if max_length is None:
                local.tokenizer.no_truncation()
            else:
                local.tokenizer.enable_truncation(max_length, direction=direction)
            local.truncation = (max_length, direction)
        return local.tokenizer

    def _check_ids(self, ids: list[int]) -> None:
        for token_id in ids:
            if token_id < 0 or token_id >= self.vocab_size:
                raise TokenizerError(
                    f"token id {token_id} is out of the vocabulary (size {self.vocab_size})"
                )

    def _prepare_text(self, text: str, prompt: str | None) -> str:
        if prompt:
            text = prompt + text
        if self.lowercase:
            text = text.lower()
        return text

    def _encode_all(
        self, inputs: list[Input], truncate: bool, direction: str, prompt_name: str | None
    ) -> list[EncodedInput]:
        prompt = self.prompts.resolve(prompt_name)
        return [self._encode_one(value, truncate, direction, prompt) for value in inputs]

    def _encode_one(
        self, value: Input, truncate: bool, direction: str, prompt: str | None
    ) -> EncodedInput:
        limit = self.max_input_length
        if isinstance(value, PreparedInput):
            if len(value.ids) > limit:
                raise ValidationError(f"`inputs` must have less than {limit} tokens. Given: {len(value.ids)}")
            return EncodedInput(value.ids, value.type_ids, value.chars, 0, value.attention_length)
        chars = input_chars(value)
        char_limit = limit * MAX_CHAR_MULTIPLIER
        if chars > char_limit:
            if not truncate:
                raise ValidationError(
                    f"`inputs` must have less than {char_limit} characters. Given: {chars}"
                )
            value = _cut_chars(value, char_limit)
        if isinstance(value, list):
            self._check_ids(value)
            if prompt:
                value = self._thread_tokenizer(None, direction).decode(value)
            else:
                return self._ids_input(value, truncate, direction, chars)
        if self.wrap is not None and isinstance(value, str):
            return self._wrapped(value, truncate, direction, chars)
        tokenizer = self._thread_tokenizer(limit if truncate else None, direction)
        try:
            if isinstance(value, tuple):
                if prompt:
                    raise ValidationError("`prompt_name` cannot be set with dual inputs")
                first, second = (self._prepare_text(v, None) for v in value)
                encoding = tokenizer.encode(first, second)
            else:
                encoding = tokenizer.encode(self._prepare_text(value, prompt))
        except ValidationError:
            raise
        except Exception as exc:  # tokenizers raises plain Exceptions
            raise TokenizerError(str(exc)) from exc
        if len(encoding.ids) > limit:
            raise ValidationError(
                f"`inputs` must have less than {limit} tokens. Given: {len(encoding.ids)}"
            )
        skipped = self._prompt_length(prompt) if prompt and not self.pool_prompt else 0
        return EncodedInput(encoding.ids, encoding.type_ids, chars, min(skipped, len(encoding.ids)))

    def _wrapped(self, text: str, truncate: bool, direction: str, chars: int) -> EncodedInput:
        assert self.wrap is not None
        prefix, suffix = self.wrap
        limit = self.max_input_length
        budget = max(1, limit - len(prefix) - len(suffix))
        try:
            encoding = self._thread_tokenizer(budget if truncate else None, direction).encode(text)
        except Exception as exc:  # tokenizers raises plain Exceptions
            raise TokenizerError(str(exc)) from exc
        ids = [*prefix, *encoding.ids, *suffix]
        if len(ids) > limit:
            raise ValidationError(f"`inputs` must have less than {limit} tokens. Given: {len(ids)}")
        return EncodedInput(ids, [0] * len(ids), chars)

    def _windows_all(
        self, inputs: list[Input], direction: str, prompt_name: str | None
    ) -> list[list[EncodedInput]]:
        prompt = self.prompts.resolve(prompt_name)
        return [self._windows_one(value, direction, prompt) for value in inputs]

    def _windows_one(self, value: Input, direction: str, prompt: str | None) -> list[EncodedInput]:
        if not isinstance(value, str) or self.wrap is not None:
            return [self._encode_one(value, False, direction, prompt)]
        chars = input_chars(value)
        char_limit = self.max_input_length * MAX_CHAR_MULTIPLIER
        if chars > char_limit:
            raise ValidationError(f"`inputs` must have less than {char_limit} characters. Given: {chars}")
        text = self._prepare_text(value, prompt)
        tokenizer = self._thread_tokenizer(None, "right")
        try:
            encoding = tokenizer.encode(text)
            if len(encoding.ids) <= self.max_input_length:
                skipped = self._prompt_length(prompt) if prompt and not self.pool_prompt else 0
                return [EncodedInput(encoding.ids, encoding.type_ids, chars, min(skipped, len(encoding.ids)))]
            content = tokenizer.encode(text, add_special_tokens=False).ids
        except Exception as exc:  # tokenizers raises plain Exceptions
            raise TokenizerError(str(exc)) from exc
        prefix, suffix = self._special_ends()
        skipped = self._prompt_length(prompt) if prompt and not self.pool_prompt else 0
        return [
            EncodedInput(
                [*prefix, *window, *suffix],
                [0] * (len(prefix) + len(window) + len(suffix)),
                chars if index == 0 else 0,
                skipped if index == 0 else 0,
            )
            for index, window in enumerate(windows(content, self.max_input_length - len(prefix) - len(suffix)))
        ]

    def _special_ends(self) -> tuple[list[int], list[int]]:
        """The special tokens the tokenizer puts before and after one text ([CLS] / [SEP],
        <s> / </s>, a decoder's EOS), read off the encoding of a one-word text."""
        if not hasattr(self, "_ends"):
            self._ends = special_ends(self._thread_tokenizer(None, "right"))
        return self._ends

    def _prompt_length(self, prompt: str) -> int:
        """The prompt's tokens as sentence-transformers counts them for `include_prompt:
        false`: the prompt tokenized alone, less a trailing special token ([SEP], EOS)."""
        if prompt not in self._prompt_lengths:
            encoding = self._thread_tokenizer(None, "right").encode(self._prepare_text(prompt, None))
            length = len(encoding.ids)
            if length and encoding.special_tokens_mask[-1]:
                length -= 1
            self._prompt_lengths[prompt] = length
        return self._prompt_lengths[prompt]

    def _ids_input(
        self, ids: list[int], truncate: bool, direction: str, chars: int
    ) -> EncodedInput:
        limit = self.max_input_length
        if len(ids) > limit:
            if not truncate:
                raise ValidationError(
                    f"`inputs` must have less than {limit} tokens. Given: {len(ids)}"
                )
            ids = ids[-limit:] if direction == "left" else ids[:limit]
        return EncodedInput(list(ids), [0] * len(ids), chars)

    def _tokenize_all(
        self, inputs: list[str], add_special_tokens: bool, prompt_name: str | None
    ) -> list[TokenizedText]:
        prompt = self.prompts.resolve(prompt_name)
        tokenizer = self._thread_tokenizer(None, "right")
        results = []
        for value in inputs:
            text = self._prepare_text(value, prompt)
            try:
                encoding = tokenizer.encode(text, add_special_tokens=add_special_tokens)
            except Exception as exc:
                raise TokenizerError(str(exc)) from exc
            results.append(TokenizedText(text, encoding))
        return results


def special_ends(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids `tokenizer` puts before and after one text, read off the
    encoding of a one-word text with and without them."""
    full = tokenizer.encode("hello").ids
    bare = tokenizer.encode("hello", add_special_tokens=False).ids
    start = next(i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare)
    return full[:start], full[start + len(bare) :]


def windows(content: list[int], size: int) -> list[list[int]]:
    """Windows of `size` content tokens, each starting `size - overlap` after the previous
    (overlap = WINDOW_OVERLAP x size, rounded down), the last one ending at the text's end."""
    size = max(1, size)
    stride = max(1, size - int(size * WINDOW_OVERLAP))
    starts = list(range(0, max(1, len(content) - size + stride), stride))
    return [content[start : start + size] for start in starts if start < len(content)]


def _cut_chars(value: Input, limit: int) -> Input:
    if isinstance(value, tuple):
        first = value[0][:limit]
        return (first, value[1][: max(0, limit - len(first))])
    return value[:limit]
