"""Tiny random models written to folders, for tests that compare tei-bento with
sentence-transformers / transformers on the very same files.

Everything is built offline, ~0.05 s per model once transformers' modeling
modules are imported (the very first build in a process pays 2-4 s of imports).
A small vocabulary (~600 entries) is derived with the ``tokenizers`` BPE
trainer from :data:`CORPUS`, a fixed English text of a few hundred words
(WordPiece and Unigram vocabularies are assembled from BPE output because
``tokenizers``' WordPiece/Unigram trainers are not reproducible across
processes/thread counts; the outputs here are byte-identical run to run), and
then handed to the
*model-specific* transformers tokenizer class (``BertTokenizer``,
``RobertaTokenizer``, ``XLMRobertaTokenizer``, ``Qwen2Tokenizer``, ...).  That
matters with transformers 5: for most model types ``AutoTokenizer`` does not
load ``tokenizer.json`` verbatim, it takes vocab/merges (and the
post-processor) from it and rebuilds normalizer and pre-tokenizer from the
class defaults.  Building through the same class guarantees that the saved
``tokenizer.json`` (what a server using the ``tokenizers`` library reads) and
``AutoTokenizer.from_pretrained(folder)`` (what sentence-transformers uses)
tokenize identically; :func:`tokenizer_mismatches` checks exactly that.

Public API
----------
``ARCHITECTURES``
    the architecture names accepted by the builders.
``build_embedding_model(path, arch, pooling=..., dense_layers=..., ...)``
    a sentence-transformers folder (transformer + tokenizer at the root,
    ``modules.json``, ``1_Pooling``, optional ``2_Dense``..., optional
    Normalize, ``sentence_bert_config.json``,
    ``config_sentence_transformers.json``).
``build_cross_encoder(path, arch, num_labels=1)``
    a ``*ForSequenceClassification`` folder.
``build_masked_lm(path, arch="bert")``
    a ``*ForMaskedLM`` folder (SPLADE tests).
``build_transformer(path, arch, head=None)``
    only the transformers folder (model + tokenizer).
``build_hub_cache(cache_dir, repo_id, source_folder, revision="main")``
    a Hugging Face Hub cache entry that ``snapshot_download(...,
    local_files_only=True)`` / ``HF_HUB_OFFLINE=1`` resolves.
``tokenizer_mismatches(folder)``
    differences between ``tokenizer.json`` (raw ``tokenizers``) and
    ``AutoTokenizer`` on :data:`SAMPLE_TEXTS` / :data:`SAMPLE_PAIRS`.

Per-architecture tokenizers (special-token ids in brackets)
-----------------------------------------------------------
============  =======================  ==========================================
arch          tokenizer                template (single / pair)
============  =======================  ==========================================
bert          WordPiece, lower-case    [CLS] A [SEP] / [CLS] A [SEP] B [SEP],
              ([PAD]=0 [UNK]=1          token_type_ids 0 / 1
              [CLS]=2 [SEP]=3
              [MASK]=4)
distilbert    same vocab as bert       same, but ``model_input_names`` has no
              (DistilBertTokenizer)     token_type_ids (DistilBERT takes none)
mpnet         WordPiece, lower-case    <s> A </s> / <s> A </s></s> B </s>
              (<s>=0 <pad>=1 </s>=2     (RobertaProcessing, no type ids)
              [UNK]=3, <mask> last)
roberta       byte-level BPE           <s> A </s> / <s> A </s></s> B </s>
              (<s>=0 <pad>=1 </s>=2
              <unk>=3, <mask> last)
xlm-roberta   Unigram + Metaspace      <s> A </s> / <s> A </s></s> B </s>
              (<s>=0 <pad>=1 </s>=2     unknown characters -> <unk>
              <unk>=3, <mask> last)
camembert     Unigram + Metaspace      as xlm-roberta
              (<s>NOTUSED=0 <pad>=1
              </s>NOTUSED=2 <unk>=3
              <unk>NOTUSED=4 <s>=5
              </s>=6, <mask> last)
deberta-v2    Unigram + Metaspace      [CLS] A [SEP] / [CLS] A [SEP] B [SEP]
              ([PAD]=0 [CLS]=1          (type ids 0 / 1; config has
              [SEP]=2 [UNK]=3,          type_vocab_size=0 like DeBERTa-v3, so
              [MASK] last)              the model ignores them)
modernbert    byte-level BPE,          [CLS] A [SEP] / [CLS] A [SEP] B [SEP]
              PreTrainedTokenizerFast   (all type ids 0, no token_type_ids
              (specials at the end:     returned); ModernBERT is in
              [UNK] [CLS] [SEP]         transformers' "incorrect hub class"
              [PAD] [MASK])             list, so AutoTokenizer reads
                                        tokenizer.json verbatim
qwen2, qwen3  byte-level BPE with the  A <|endoftext|> / A <|endoftext|> B
              Qwen regex + NFC          <|endoftext|> (EOS appended, as
              (<|endoftext|>,           Qwen3-Embedding / gte-Qwen2 do);
              <|im_start|>,             pad = <|endoftext|>
              <|im_end|> at the end)
mistral       Llama-style BPE with     <s> A </s> / <s> A </s> <s> B </s>
              byte fallback            (add_bos_token + add_eos_token, as
              (<unk>=0 <s>=1 </s>=2,    e5-mistral does); pad = </s> (2)
              <0x00>..<0xFF> = 3..258)
============  =======================  ==========================================

All tokenizers have ``model_max_length = 128``.  Words outside the corpus
still tokenize (WordPiece/Unigram map unknown characters to the unk token,
byte-level BPE and byte-fallback cover every byte).  Decoder models pad on
the right by default (``padding_side="right"``): with causal attention the
real tokens' hidden states are then independent of padding, so batched and
unbatched outputs agree; pass ``padding_side="left"`` to mimic
Qwen3-Embedding's tokenizer_config.

Model configs are tiny: hidden 32, 2 layers, 4 heads (2 key/value heads for
the decoders), intermediate 64, ``max_position_embeddings`` 128 (130 for the
RoBERTa family, which offsets positions by ``pad_token_id + 1``).  ModernBERT
uses ``local_attention=16`` so that its sliding-window layer matters on
short inputs.  Weights use ``initializer_range=0.2`` (instead of 0.02) so that
attention is far from uniform and outputs depend on token order and
positions.  ``config_overrides`` changes any config field.

The sentence-transformers files are written in the *legacy* layout that
models on the Hub have (``sentence_transformers.models.Transformer`` module
types, ``pooling_mode_*_tokens`` flags, ``word_embedding_dimension``), which
sentence-transformers 6 still loads; ``layout="native"`` instead saves with
the installed sentence-transformers (6.x writes ``pooling_mode: "mean"``,
``embedding_dimension``, ``modality_config`` ...).

No architecture from the brief had to be left out.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ARCHITECTURES",
    "CORPUS",
    "DECODER_ARCHITECTURES",
    "ENCODER_ARCHITECTURES",
    "SAMPLE_PAIRS",
    "SAMPLE_TEXTS",
    "build_cross_encoder",
    "build_embedding_model",
    "build_hub_cache",
    "build_masked_lm",
    "build_tokenizer",
    "build_transformer",
    "tokenizer_mismatches",
]

ENCODER_ARCHITECTURES: tuple[str, ...] = (
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "distilbert",
    "mpnet",
    "deberta-v2",
    "modernbert",
)
DECODER_ARCHITECTURES: tuple[str, ...] = ("qwen2", "qwen3", "mistral")
ARCHITECTURES: tuple[str, ...] = ENCODER_ARCHITECTURES + DECODER_ARCHITECTURES

MODEL_MAX_LENGTH = 128
HIDDEN_SIZE = 32

# --------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------

CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A search engine turns every document into a vector and compares them by cosine.",
    "Sentence embeddings map short texts to points where similar meanings are close.",
    "What is the capital of France? Paris is the capital and the largest city of France.",
    "How many people live in Berlin? About three point seven million people live there.",
    "The weather today is sunny and warm, but tomorrow it will rain in the morning.",
    "She reads a book every evening before going to sleep, usually a novel or a short story.",
    "Machine learning models need data, compute and careful evaluation to be useful.",
    "The server receives a request, tokenizes the input, runs the model and returns the result.",
    "Batching many small requests together makes better use of the hardware.",
    "Deep learning is a part of machine learning that uses neural networks with many layers.",
    "Transformers use attention to mix information between all positions of a sequence.",
    "Rerankers score a query together with each candidate passage and sort the passages.",
    "The cat sat on the mat while the dog slept in the sun by the open window.",
    "Our team meets on Monday at ten o'clock to plan the work for the week.",
    "He bought apples, oranges, bananas and a loaf of fresh bread at the market.",
    "Please write a short summary of this article in two or three sentences.",
    "Water boils at one hundred degrees Celsius at sea level, and freezes at zero.",
    "The train to London leaves at 7:45 from platform 9 and arrives two hours later.",
    "Numbers such as 1, 2, 3, 42, 100 and 2024 appear in many documents.",
    "Good software is tested, documented, and easy to change when requirements move.",
    "Children learn languages quickly when they hear them every day at home and at school.",
    "The museum opens at nine in the morning and closes at six in the evening.",
    "Green tea, black coffee and orange juice are popular drinks for breakfast.",
    "Represent this sentence for searching relevant passages: where do pandas live?",
    "query: how much protein should a female eat? passage: adults need about fifty grams a day.",
    "Instruct: Given a web search query, retrieve relevant passages that answer the query.",
    "The mountain was covered with snow, and the climbers walked slowly towards the top.",
    "A positive review says it is great; a negative one says it is bad; neutral is between.",
    "Is this answer relevant to the question, or is it about something else entirely?",
    "Large language models can also produce embeddings from the hidden state of the last token.",
    "Doctors recommend regular exercise, enough sleep and a balanced diet for a healthy life.",
    "The library has thousands of books about history, science, art, music and travel.",
    "If the input is too long, the tokenizer truncates it to the maximum sequence length.",
    "Special tokens mark the start and the end of a sequence, and padding fills the rest.",
    "Yesterday I walked to the station, but the last bus had already left the city.",
    "Hello world! This is a small test, with some punctuation: commas, dots; and (brackets).",
    "They're sure it's going to work, and we'll see whether you've been right.",
)

SAMPLE_TEXTS: tuple[str, ...] = (
    "Hello world!",
    "What is the capital of France?",
    "The quick brown fox jumps over the lazy dog.",
    "An unusual zyxwvut word, Quixotic flibbertigibbet, and CamelCaseIdentifiers.",
    "Ünïcödé text: café, naïve, Straße, 東京, emoji 🚀🙂.",
    "  leading and trailing spaces   with   multiple   gaps  ",
    "tabs\tand\nnewlines\r\nhere",
    "x",
    " ".join(["Sentence embeddings map short texts to points in a space."] * 12),
)

SAMPLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "Paris is the capital of France."),
    ("how many people live in berlin", "Berlin has about 3.7 million inhabitants."),
    ("query with an unknownword", "Ünïcödé passage 🚀 with café."),
)


# --------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------

_ROBERTA_FAMILY = frozenset({"roberta", "xlm-roberta", "camembert", "mpnet"})


def _corpus() -> list[str]:
    return list(CORPUS)


def _model_json(tok) -> dict:
    return json.loads(tok.to_str())["model"]


@functools.cache
def _wordpiece_vocab(specials: tuple[str, ...], vocab_size: int) -> tuple[tuple[str, int], ...]:
    """A WordPiece vocabulary built deterministically.

    ``tokenizers``' WordPieceTrainer is not reproducible across processes
    (ties between ``##`` pieces are broken in hash-map order), so the vocab is
    assembled from the (deterministic) BPE trainer instead: specials, every
    corpus character with and without ``##``, then each learned BPE token with
    and without ``##`` in merge order until ``vocab_size`` is reached.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    chars = sorted(
        {
            c
            for line in CORPUS
            for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(line))
            for c in w
        }
    )
    tokens = [*specials, *chars, *("##" + c for c in chars)]
    base, _merges = _bpe_vocab("bert", vocab_size)
    for tok, _ in base:
        if len(tokens) >= vocab_size:
            break
        if len(tok) > 1:
            tokens.extend([tok, "##" + tok])
    return tuple((t, i) for t, i in _renumber(tokens[:vocab_size]).items())


@functools.cache
def _bpe_vocab(
    kind: str, vocab_size: int
) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """Train a BPE without special tokens; returns (vocab, merges)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

    if kind == "bert":
        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        alphabet = []
    elif kind == "metaspace":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.WhitespaceSplit(),
                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            ]
        )
        alphabet = ["▁"]
    elif kind == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    elif kind == "qwen":
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

        tok = Tokenizer(models.BPE())
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    elif kind == "llama":
        tok = Tokenizer(models.BPE(byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="first", split=True
        )
        alphabet = []
    else:  # pragma: no cover
        raise ValueError(kind)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[], initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(_corpus(), trainer)
    model = _model_json(tok)
    vocab = tuple(sorted(model["vocab"].items(), key=lambda kv: kv[1]))
    merges = tuple(tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"])
    return vocab, merges


@functools.cache
def _unigram_pieces(vocab_size: int) -> tuple[tuple[str, float], ...]:
    """Non-special pieces (with log-probability scores) of a SentencePiece-like Unigram model.

    ``tokenizers``' UnigramTrainer is not bit-reproducible across machines
    (parallel float sums decide ties when pruning), so the pieces come from the
    deterministic BPE trainer on Metaspace-split text, scored with the
    smoothed log frequency of each piece when the corpus is segmented by that BPE.
    """
    import math
    from collections import Counter

    from tokenizers import Tokenizer, models, pre_tokenizers

    base, merges = _bpe_vocab("metaspace", vocab_size)
    tok = Tokenizer(models.BPE(vocab=dict(base), merges=list(merges)))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )
    counts = Counter(t for line in CORPUS for t in tok.encode(line).tokens)
    total = sum(counts.values()) + 0.1 * len(base)
    return tuple((piece, round(math.log((counts[piece] + 0.1) / total), 6)) for piece, _ in base)


def _renumber(tokens: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tokens:
        if t not in out:
            out[t] = len(out)
    return out


def build_tokenizer(arch: str, *, padding_side: str | None = None):
    """Return a fresh transformers tokenizer for ``arch`` (not saved)."""
    import transformers as tf

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHITECTURES}")
    common: dict[str, Any] = {"model_max_length": MODEL_MAX_LENGTH}
    if padding_side is not None:
        common["padding_side"] = padding_side

    if arch in ("bert", "distilbert"):
        specials = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
        vocab = dict(_wordpiece_vocab(specials, 600))
        cls = tf.DistilBertTokenizer if arch == "distilbert" else tf.BertTokenizer
        return cls(vocab=vocab, do_lower_case=True, **common)

    if arch == "mpnet":
        specials = ("<s>", "<pad>", "</s>", "[UNK]")
        vocab = dict(_wordpiece_vocab(specials, 600))
        vocab["<mask>"] = len(vocab)
        return tf.MPNetTokenizer(vocab=vocab, do_lower_case=True, **common)

    if arch == "roberta":
        base, merges = _bpe_vocab("bytelevel", 600)
        vocab = _renumber(["<s>", "<pad>", "</s>", "<unk>", *(t for t, _ in base), "<mask>"])
        return tf.RobertaTokenizer(vocab=vocab, merges=list(merges), **common)

    if arch in ("xlm-roberta", "camembert", "deberta-v2"):
        pieces = list(_unigram_pieces(600))
        if arch == "xlm-roberta":
            vocab = [
                ("<s>", 0.0),
                ("<pad>", 0.0),
                ("</s>", 0.0),
                ("<unk>", 0.0),
                *pieces,
                ("<mask>", 0.0),
            ]
            return tf.XLMRobertaTokenizer(vocab=vocab, **common)
        if arch == "camembert":
            head = ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<unk>NOTUSED", "<s>", "</s>"]
            vocab = [(t, 0.0) for t in head] + pieces + [("<mask>", 0.0)]
            return tf.CamembertTokenizer(vocab=vocab, **common)
        vocab = [
            ("[PAD]", 0.0),
            ("[CLS]", 0.0),
            ("[SEP]", 0.0),
            ("[UNK]", 0.0),
            *pieces,
            ("[MASK]", 0.0),
        ]
        return tf.DebertaV2Tokenizer(vocab=vocab, do_lower_case=False, **common)

    if arch == "modernbert":
        from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

        base, merges = _bpe_vocab("bytelevel", 600)
        specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
        vocab = _renumber([*(t for t, _ in base), *specials])
        tok = Tokenizer(
            models.BPE(
                vocab=vocab,
                merges=list(merges),
                continuing_subword_prefix="",
                end_of_word_suffix="",
            )
        )
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(
            add_prefix_space=False, trim_offsets=True, use_regex=True
        )
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens(
            [
                AddedToken(t, special=True, normalized=False, lstrip=(t == "[MASK]"))
                for t in specials
            ]
        )
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS]:0 $A:0 [SEP]:0",
            pair="[CLS]:0 $A:0 [SEP]:0 $B:0 [SEP]:0",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        return tf.PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="[UNK]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            pad_token="[PAD]",
            mask_token="[MASK]",
            model_input_names=["input_ids", "attention_mask"],
            clean_up_tokenization_spaces=True,
            **common,
        )

    if arch in ("qwen2", "qwen3"):
        from tokenizers import processors

        base, merges = _bpe_vocab("qwen", 600)
        vocab = _renumber(t for t, _ in base)
        common.setdefault("padding_side", "right")
        tok = tf.Qwen2Tokenizer(
            vocab=vocab,
            merges=list(merges),
            extra_special_tokens=["<|im_start|>", "<|im_end|>"],
            **common,
        )
        eos = tok.eos_token
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A:0 {eos}:0",
            pair=f"$A:0 {eos}:0 $B:1 {eos}:1",
            special_tokens=[(eos, tok.eos_token_id)],
        )
        return tok

    if arch == "mistral":
        base, merges = _bpe_vocab("llama", 600)
        byte_tokens = [f"<0x{i:02X}>" for i in range(256)]
        vocab = _renumber(["<unk>", "<s>", "</s>", *byte_tokens, *(t for t, _ in base)])
        common.setdefault("padding_side", "right")
        return tf.LlamaTokenizer(
            vocab=vocab,
            merges=list(merges),
            add_bos_token=True,
            add_eos_token=True,
            pad_token="</s>",
            **common,
        )

    raise AssertionError(arch)  # pragma: no cover


def tokenizer_mismatches(
    folder: str | os.PathLike,
    texts: Sequence[str] = SAMPLE_TEXTS,
    pairs: Sequence[tuple[str, str]] = SAMPLE_PAIRS,
) -> list[str]:
    """Compare ``tokenizer.json`` loaded with ``tokenizers`` against ``AutoTokenizer``.

    Returns human-readable differences (empty list = identical ids, type ids
    where AutoTokenizer returns them, and identical pair handling).
    """
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    folder = Path(folder)
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    raw.no_truncation()
    raw.no_padding()
    hf = AutoTokenizer.from_pretrained(str(folder))
    problems: list[str] = []
    for text in texts:
        r = raw.encode(text)
        h = hf(text, verbose=False)
        if r.ids != h["input_ids"]:
            problems.append(f"ids differ for {text!r}: raw={r.ids} hf={h['input_ids']}")
        if "token_type_ids" in h and r.type_ids != h["token_type_ids"]:
            problems.append(f"type ids differ for {text!r}")
    for a, b in pairs:
        r = raw.encode(a, b)
        h = hf(a, b, verbose=False)
        if r.ids != h["input_ids"]:
            problems.append(f"pair ids differ for {(a, b)!r}: raw={r.ids} hf={h['input_ids']}")
        if "token_type_ids" in h and r.type_ids != h["token_type_ids"]:
            problems.append(
                f"pair type ids differ for {(a, b)!r}: raw={r.type_ids} hf={h['token_type_ids']}"
            )
    if len(raw.get_vocab(with_added_tokens=True)) != len(hf):
        problems.append(f"vocab size differs: raw={raw.get_vocab_size(True)} hf={len(hf)}")
    return problems


# --------------------------------------------------------------------------------------
# Transformer models
# --------------------------------------------------------------------------------------

_HEAD_CLASSES = {
    None: "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "masked-lm": "AutoModelForMaskedLM",
    "causal-lm": "AutoModelForCausalLM",
}


_CONFIG_CLASSES = {
    "bert": "BertConfig",
    "roberta": "RobertaConfig",
    "xlm-roberta": "XLMRobertaConfig",
    "camembert": "CamembertConfig",
    "mpnet": "MPNetConfig",
    "distilbert": "DistilBertConfig",
    "deberta-v2": "DebertaV2Config",
    "modernbert": "ModernBertConfig",
    "qwen2": "Qwen2Config",
    "qwen3": "Qwen3Config",
    "mistral": "MistralConfig",
}


def _config_kwargs(arch: str, tok, init_std: float) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "initializer_range": init_std,
    }
    if arch == "distilbert":
        kw.update(dim=HIDDEN_SIZE, n_layers=2, n_heads=4, hidden_dim=64)
        kw["max_position_embeddings"] = MODEL_MAX_LENGTH
        return kw
    kw.update(
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MODEL_MAX_LENGTH + (2 if arch in _ROBERTA_FAMILY else 0),
    )
    if arch == "bert":
        kw["type_vocab_size"] = 2
    elif arch in ("roberta", "xlm-roberta", "camembert"):
        kw.update(type_vocab_size=1, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    elif arch == "mpnet":
        kw.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    elif arch == "deberta-v2":
        # DeBERTa-v3 style: relative attention with buckets, no absolute positions, no type ids
        kw.update(
            type_vocab_size=0,
            relative_attention=True,
            position_buckets=32,
            max_relative_positions=-1,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
        )
    elif arch == "modernbert":
        kw.update(
            local_attention=16,
            cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id,
            bos_token_id=tok.cls_token_id,
            eos_token_id=tok.sep_token_id,
        )
    elif arch in DECODER_ARCHITECTURES:
        kw.update(
            num_key_value_heads=2,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            tie_word_embeddings=False,
        )
        if arch in ("qwen3", "mistral"):
            kw["head_dim"] = HIDDEN_SIZE // 4
        if arch == "mistral":
            kw["sliding_window"] = None
    return kw


def _make_config(arch: str, tok, *, init_std: float, overrides: Mapping[str, Any] | None):
    import transformers as tf

    kwargs = _config_kwargs(arch, tok, init_std)
    kwargs.update(overrides or {})
    return getattr(tf, _CONFIG_CLASSES[arch])(**kwargs)


def build_transformer(
    path: str | os.PathLike,
    arch: str,
    *,
    head: str | None = None,
    num_labels: int = 1,
    id2label: Mapping[int, str] | None = None,
    seed: int = 0,
    init_std: float = 0.2,
    config_overrides: Mapping[str, Any] | None = None,
    padding_side: str | None = None,
    check_tokenizer: bool = True,
    extra_tokens: Sequence[str] = (),
) -> Path:
    """Write a transformers folder (config.json, model.safetensors, tokenizer files).

    ``head`` is None (``AutoModel``, e.g. ``BertModel``), ``"sequence-classification"``
    or ``"masked-lm"``.  Weights are drawn after ``torch.manual_seed(seed)`` with
    ``initializer_range=init_std``; ``config_overrides`` are passed to the config
    constructor (so derived fields such as ModernBERT's ``layer_types`` follow).
    ``padding_side`` is written to tokenizer_config.json (default: right).  With
    ``check_tokenizer`` the saved tokenizer.json is compared with ``AutoTokenizer``
    (:func:`tokenizer_mismatches`) and an ``AssertionError`` is raised on any
    difference.  Returns the folder path.
    """
    import torch
    import transformers as tf

    if head not in _HEAD_CLASSES:
        raise ValueError(f"unknown head {head!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(arch, padding_side=padding_side)
    if extra_tokens:
        tok.add_tokens(list(extra_tokens))
    cfg = _make_config(arch, tok, init_std=init_std, overrides=config_overrides)
    if head == "sequence-classification":
        cfg.num_labels = num_labels
        if id2label is None:
            id2label = _default_id2label(num_labels)
        cfg.id2label = {int(k): v for k, v in id2label.items()}
        cfg.label2id = {v: int(k) for k, v in id2label.items()}
    auto_cls = getattr(tf, _HEAD_CLASSES[head])
    torch.manual_seed(seed)
    model = auto_cls.from_config(cfg)
    model.eval()
    model.save_pretrained(str(path), safe_serialization=True)
    tok.save_pretrained(str(path))
    if check_tokenizer:
        problems = tokenizer_mismatches(path)
        if problems:
            raise AssertionError(
                f"{arch}: tokenizer.json and AutoTokenizer disagree:\n" + "\n".join(problems)
            )
    return path


LLM_RERANKER_TOKENS = ("yes", "no", "<think>", "</think>")
"""The words Qwen3-Reranker's prompt and answer use, added whole to the tiny vocabulary."""


def build_llm_reranker(path: str | os.PathLike, *, seed: int = 0, tie_word_embeddings: bool = False) -> Path:
    """A tiny random Qwen3 causal LM with a real (trained) byte-level BPE tokenizer that knows
    the Qwen3-Reranker template's tokens: the model card's code runs on it unchanged. Its
    window is 512 tokens: the card's prompt alone is ~100 in a 600-entry vocabulary."""
    folder = build_transformer(
        path,
        "qwen3",
        head="causal-lm",
        seed=seed,
        extra_tokens=LLM_RERANKER_TOKENS,
        config_overrides={"tie_word_embeddings": tie_word_embeddings, "max_position_embeddings": 512},
        padding_side="left",
    )
    config_file = folder / "tokenizer_config.json"
    tokenizer_config = json.loads(config_file.read_text())
    tokenizer_config["model_max_length"] = 512
    _write_json(config_file, tokenizer_config)
    return folder


def _default_id2label(num_labels: int) -> dict[int, str]:
    if num_labels == 2:
        return {0: "negative", 1: "positive"}
    if num_labels == 3:
        return {0: "negative", 1: "neutral", 2: "positive"}
    return {i: f"LABEL_{i}" for i in range(num_labels)}


# --------------------------------------------------------------------------------------
# sentence-transformers folders
# --------------------------------------------------------------------------------------

_POOLING_FLAGS = {
    "cls": "pooling_mode_cls_token",
    "mean": "pooling_mode_mean_tokens",
    "max": "pooling_mode_max_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}

_ACTIVATIONS = {
    "identity": "torch.nn.modules.linear.Identity",
    "tanh": "torch.nn.modules.activation.Tanh",
    "relu": "torch.nn.modules.activation.ReLU",
    "gelu": "torch.nn.modules.activation.GELU",
    "sigmoid": "torch.nn.modules.activation.Sigmoid",
    "silu": "torch.nn.modules.activation.SiLU",
}


def _activation_name(name: str | None) -> str:
    if name is None:
        return _ACTIVATIONS["identity"]
    if name.lower() in _ACTIVATIONS:
        return _ACTIVATIONS[name.lower()]
    if "." in name:
        return name
    raise ValueError(
        f"unknown activation {name!r}; use one of {sorted(_ACTIVATIONS)} or a dotted class path"
    )


def _activation_module(dotted: str):
    import importlib

    module, _, cls = dotted.rpartition(".")
    return getattr(importlib.import_module(module), cls)()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _versions() -> dict[str, str]:
    # importlib.metadata: importing sentence_transformers just for its version costs seconds
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for key, dist in (
        ("sentence_transformers", "sentence-transformers"),
        ("transformers", "transformers"),
        ("pytorch", "torch"),
    ):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:  # pragma: no cover
            out[key] = "unknown"
    return out


def build_embedding_model(
    path: str | os.PathLike,
    arch: str,
    pooling: str = "mean",
    dense_layers: Sequence[tuple[int, int, str | None]] = (),
    max_seq_length: int | None = None,
    prompts: Mapping[str, str] | None = None,
    default_prompt_name: str | None = None,
    normalize_module: bool = False,
    seed: int = 0,
    *,
    include_prompt: bool = True,
    dense_bias: bool = True,
    similarity_fn_name: str | None = "cosine",
    layout: str = "legacy",
    init_std: float = 0.2,
    config_overrides: Mapping[str, Any] | None = None,
    padding_side: str | None = None,
    check_tokenizer: bool = True,
) -> Path:
    """Write a sentence-transformers model folder and return its path.

    * transformer + tokenizer at the root (``AutoModel``-loadable, ``architectures``
      = the base class, e.g. ``["BertModel"]``);
    * ``modules.json``; ``1_Pooling/config.json`` (``pooling`` is one of
      ``cls``, ``mean``, ``max``, ``lasttoken``, ``weightedmean``,
      ``mean_sqrt_len_tokens``); ``2_Dense``, ``3_Dense``, ... for each
      ``(in_features, out_features, activation)`` of ``dense_layers``
      (activation: ``"tanh"``, ``"identity"``/None, ``"relu"``, ``"gelu"``,
      ``"sigmoid"``, ``"silu"`` or a dotted class path); a Normalize module
      last when ``normalize_module`` (listed in ``modules.json`` only, no
      folder, like models on the Hub);
    * ``sentence_bert_config.json`` (``{"max_seq_length": N, "do_lower_case": false}``;
      the key is left out when ``max_seq_length`` is None, so the effective
      length is min(max_position_embeddings, tokenizer.model_max_length) = 128);
    * ``config_sentence_transformers.json`` with ``prompts`` and
      ``default_prompt_name``.

    ``layout="native"`` saves through the installed sentence-transformers
    instead of writing the legacy Hub layout.
    """
    if pooling not in _POOLING_FLAGS:
        raise ValueError(f"unknown pooling {pooling!r}; expected one of {sorted(_POOLING_FLAGS)}")
    if layout not in ("legacy", "native"):
        raise ValueError("layout must be 'legacy' or 'native'")
    if default_prompt_name is not None and default_prompt_name not in (prompts or {}):
        raise ValueError(f"default_prompt_name {default_prompt_name!r} is not a key of prompts")
    path = Path(path)
    dense_layers = [tuple(d) for d in dense_layers]
    dim = (config_overrides or {}).get(
        "dim" if arch == "distilbert" else "hidden_size", HIDDEN_SIZE
    )
    for i, (d_in, d_out, act) in enumerate(dense_layers):
        if d_in != dim:
            raise ValueError(
                f"dense layer {i}: in_features={d_in} but the previous output has {dim} features"
            )
        _activation_name(act)  # validate early
        dim = d_out

    if layout == "native":
        tmp = path / "_transformer_tmp"
        build_transformer(
            tmp,
            arch,
            seed=seed,
            init_std=init_std,
            config_overrides=config_overrides,
            padding_side=padding_side,
            check_tokenizer=check_tokenizer,
        )
        try:
            _save_native(
                path,
                tmp,
                arch,
                pooling,
                dense_layers,
                max_seq_length,
                prompts,
                default_prompt_name,
                normalize_module,
                seed,
                include_prompt,
                dense_bias,
                similarity_fn_name,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    build_transformer(
        path,
        arch,
        seed=seed,
        init_std=init_std,
        config_overrides=config_overrides,
        padding_side=padding_side,
        check_tokenizer=check_tokenizer,
    )
    import torch
    from safetensors.torch import save_file

    cfg = json.loads((path / "config.json").read_text())
    hidden = cfg.get("hidden_size", cfg.get("dim"))

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
    ]
    pool_cfg = {"word_embedding_dimension": hidden}
    for mode, flag in _POOLING_FLAGS.items():
        pool_cfg[flag] = mode == pooling
    pool_cfg["include_prompt"] = include_prompt
    _write_json(path / "1_Pooling" / "config.json", pool_cfg)
    modules.append(
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
    )

    idx = 2
    for i, (d_in, d_out, act) in enumerate(dense_layers):
        folder = path / f"{idx}_Dense"
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(
            folder / "config.json",
            {
                "in_features": d_in,
                "out_features": d_out,
                "bias": dense_bias,
                "activation_function": _activation_name(act),
            },
        )
        torch.manual_seed(seed + 1000 + i)
        linear = torch.nn.Linear(d_in, d_out, bias=dense_bias)
        tensors = {"linear.weight": linear.weight.detach().contiguous()}
        if dense_bias:
            tensors["linear.bias"] = linear.bias.detach().contiguous()
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        modules.append(
            {
                "idx": idx,
                "name": str(idx),
                "path": f"{idx}_Dense",
                "type": "sentence_transformers.models.Dense",
            }
        )
        idx += 1
    if normalize_module:
        modules.append(
            {
                "idx": idx,
                "name": str(idx),
                "path": f"{idx}_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    _write_json(path / "modules.json", modules)

    sbert_cfg: dict[str, Any] = {}
    if max_seq_length is not None:
        sbert_cfg["max_seq_length"] = int(max_seq_length)
    sbert_cfg["do_lower_case"] = False
    _write_json(path / "sentence_bert_config.json", sbert_cfg)

    st_cfg = {
        "__version__": _versions(),
        "model_type": "SentenceTransformer",
        "prompts": dict(prompts or {}),
        "default_prompt_name": default_prompt_name,
        "similarity_fn_name": similarity_fn_name,
    }
    _write_json(path / "config_sentence_transformers.json", st_cfg)
    return path


def _save_native(
    path,
    transformer_folder,
    arch,
    pooling,
    dense_layers,
    max_seq_length,
    prompts,
    default_prompt_name,
    normalize_module,
    seed,
    include_prompt,
    dense_bias,
    similarity_fn_name,
):
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )

    transformer = Transformer(str(transformer_folder), max_seq_length=max_seq_length)
    dim = transformer.get_embedding_dimension()
    mods = [transformer, Pooling(dim, pooling_mode=pooling, include_prompt=include_prompt)]
    for i, (d_in, d_out, act) in enumerate(dense_layers):
        torch.manual_seed(seed + 1000 + i)
        mods.append(
            Dense(
                d_in,
                d_out,
                bias=dense_bias,
                activation_function=_activation_module(_activation_name(act)),
            )
        )
    if normalize_module:
        mods.append(Normalize())
    model = SentenceTransformer(
        modules=mods,
        prompts=dict(prompts or {}),
        default_prompt_name=default_prompt_name,
        similarity_fn_name=similarity_fn_name,
        device="cpu",
    )
    model.save(str(path), create_model_card=False)


# --------------------------------------------------------------------------------------
# Cross encoders and masked LMs
# --------------------------------------------------------------------------------------


def build_cross_encoder(
    path: str | os.PathLike,
    arch: str = "bert",
    num_labels: int = 1,
    seed: int = 0,
    *,
    id2label: Mapping[int, str] | None = None,
    init_std: float = 0.2,
    config_overrides: Mapping[str, Any] | None = None,
    check_tokenizer: bool = True,
) -> Path:
    """Write a ``*ForSequenceClassification`` folder (with tokenizer).

    ``num_labels`` 2 / 3 get ``{0: "negative", 1: "positive"}`` /
    ``{0: "negative", 1: "neutral", 2: "positive"}`` unless ``id2label`` is given.
    Any encoder architecture works; bert, roberta and xlm-roberta are tested.
    """
    if arch not in ENCODER_ARCHITECTURES:
        raise ValueError(f"cross encoders need an encoder architecture, got {arch!r}")
    return build_transformer(
        path,
        arch,
        head="sequence-classification",
        num_labels=num_labels,
        id2label=id2label,
        seed=seed,
        init_std=init_std,
        config_overrides=config_overrides,
        check_tokenizer=check_tokenizer,
    )


def build_masked_lm(
    path: str | os.PathLike,
    arch: str = "bert",
    seed: int = 0,
    *,
    init_std: float = 0.2,
    config_overrides: Mapping[str, Any] | None = None,
    check_tokenizer: bool = True,
) -> Path:
    """Write a ``*ForMaskedLM`` folder (with tokenizer), e.g. for SPLADE tests."""
    if arch not in ENCODER_ARCHITECTURES:
        raise ValueError(f"masked LMs need an encoder architecture, got {arch!r}")
    return build_transformer(
        path,
        arch,
        head="masked-lm",
        seed=seed,
        init_std=init_std,
        config_overrides=config_overrides,
        check_tokenizer=check_tokenizer,
    )


# --------------------------------------------------------------------------------------
# Hugging Face Hub cache
# --------------------------------------------------------------------------------------

_HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def build_hub_cache(
    cache_dir: str | os.PathLike,
    repo_id: str,
    source_folder: str | os.PathLike,
    revision: str = "main",
) -> str:
    """Copy ``source_folder`` into a Hub cache layout and return the commit sha.

    Layout (as huggingface_hub writes it)::

        <cache_dir>/models--<org>--<name>/
            blobs/<etag>                       file contents (sha256 for *.safetensors/*.bin
                                               like LFS files, git blob sha1 otherwise)
            snapshots/<commit>/<relative path> relative symlinks to ../../blobs/<etag>
                                               (plain copies where symlinks are unsupported)
            refs/<revision>                    the commit sha (not written when ``revision``
                                               is itself a 40-hex commit)

    The commit sha is derived deterministically from repo id, revision and the
    file contents.  ``snapshot_download(repo_id, revision=revision,
    cache_dir=cache_dir, local_files_only=True)`` (or with ``HF_HUB_OFFLINE=1``)
    then returns ``snapshots/<commit>``.  Empty directories are not recorded.
    """
    source = Path(source_folder)
    if not source.is_dir():
        raise NotADirectoryError(source)
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    files = sorted(p for p in source.rglob("*") if p.is_file())

    digest = hashlib.sha1()
    digest.update(f"{repo_id}\0{revision}\0".encode())
    entries: list[tuple[str, str, bytes]] = []
    for f in files:
        rel = f.relative_to(source).as_posix()
        data = f.read_bytes()
        lfs = f.suffix in (
            ".safetensors",
            ".bin",
            ".pt",
            ".pth",
            ".onnx",
            ".gguf",
            ".msgpack",
            ".h5",
        )
        etag = hashlib.sha256(data).hexdigest() if lfs else _git_blob_sha1(data)
        entries.append((rel, etag, data))
        digest.update(f"{rel}\0{etag}\0".encode())
    commit = revision if _HEX40.match(revision) else digest.hexdigest()

    blobs = repo_dir / "blobs"
    snapshot = repo_dir / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for rel, etag, data in entries:
        blob = blobs / etag
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        target = os.path.relpath(blob, link.parent)
        try:
            link.symlink_to(target)
        except OSError:  # pragma: no cover - e.g. Windows without symlink rights
            shutil.copyfile(blob, link)
    if not _HEX40.match(revision):
        ref = repo_dir / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return commit
