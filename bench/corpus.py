"""A fixed, seeded corpus of real English text, built offline from stdlib docstrings.

Why docstrings: the benchmark must not download a data set, yet embedding throughput
depends on real token statistics (word pieces, punctuation, length mix), which random
words do not have. The Python standard library's docstrings are real prose written by
people, present on every machine, and licensed with Python (PSF licence).

Why a committed file: docstrings change between Python versions, so the corpus is built
once (`python -m bench.corpus --write`) and committed as bench/corpus.jsonl; every run
reads that file, so results from different machines use the same texts.
`python -m bench.corpus --check` tells whether this interpreter rebuilds it byte for byte.
Build it in a fresh interpreter (as that command does): some libraries replace stdlib
functions at import time (torch et al. patch a few in `inspect`), which changes the text.

The mix imitates a retrieval workload: mostly short queries (5-15 words), some passages
(50-120 words) and a few long documents (250-500 words, longer than the 256-token limit
of all-MiniLM-L6-v2, so the server truncates them).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import inspect
import json
import random
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

SEED = 4  # issue 4; changing it changes every published number
GENERATED_WITH = "3.11.7"  # the Python whose docstrings made the committed corpus.jsonl
CORPUS_PATH = Path(__file__).resolve().parent / "corpus.jsonl"

# Prose-rich modules, in a fixed order. Missing ones (e.g. no sqlite3) are skipped.
# fmt: off
MODULES: tuple[str, ...] = (
    "abc", "argparse", "asyncio", "asyncio.base_events", "asyncio.events", "asyncio.locks",
    "asyncio.queues", "asyncio.streams", "asyncio.tasks", "base64", "bdb", "bisect", "bz2",
    "calendar", "cmd", "code", "codecs", "collections", "compileall", "concurrent.futures",
    "concurrent.futures.process", "concurrent.futures.thread", "configparser", "contextlib",
    "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "dis", "doctest",
    "email.charset", "email.feedparser", "email.generator", "email.header",
    "email.headerregistry", "email.message", "email.parser", "email.policy", "email.utils",
    "enum", "filecmp", "fileinput", "fnmatch", "fractions", "ftplib", "functools",
    "getopt", "gettext", "glob", "graphlib", "gzip", "hashlib", "heapq", "hmac",
    "html.parser", "http.client", "http.cookiejar", "http.cookies", "http.server",
    "imaplib", "importlib.metadata", "inspect", "io", "ipaddress", "itertools", "json",
    "json.decoder", "json.encoder", "linecache", "locale", "logging", "logging.config",
    "logging.handlers", "lzma", "mailbox", "mimetypes", "modulefinder", "multiprocessing",
    "multiprocessing.managers", "multiprocessing.pool", "multiprocessing.process",
    "multiprocessing.queues", "netrc", "numbers", "operator", "optparse", "os", "pathlib",
    "pdb", "pickle", "pickletools", "pkgutil", "platform", "plistlib", "poplib", "pprint",
    "profile", "pstats", "py_compile", "pyclbr", "pydoc", "queue", "quopri", "random", "re",
    "reprlib", "rlcompleter", "runpy", "sched", "secrets", "selectors", "shelve", "shlex",
    "shutil", "signal", "site", "smtplib", "socket", "socketserver", "sqlite3", "ssl",
    "stat", "statistics", "string", "struct", "subprocess", "symtable", "sysconfig",
    "tabnanny", "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize",
    "trace", "traceback", "tracemalloc", "types", "typing", "unittest.case",
    "unittest.loader", "unittest.mock", "unittest.result", "unittest.runner",
    "urllib.parse", "urllib.request", "urllib.robotparser", "uuid", "warnings", "wave",
    "weakref", "webbrowser", "wsgiref.handlers", "wsgiref.simple_server", "xml.dom.minidom",
    "xml.etree.ElementTree", "xml.sax.handler", "xmlrpc.client", "xmlrpc.server", "zipfile",
    "zipimport",
)
# fmt: on

# Target mix (fractions of items) and length ranges in words.
MIX: dict[str, float] = {"query": 0.75, "passage": 0.20, "document": 0.05}
WORDS: dict[str, tuple[int, int]] = {
    "query": (5, 15),
    "passage": (50, 120),
    "document": (250, 500),
}
MAX_ITEMS = 2000
MAX_BYTES = 900_000  # stays under 1 MB so the file can be committed

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"^[(\"']?[A-Za-z][A-Za-z'-]*[)\"']?[.,;:!?]?[)\"']?$")
_CODE_MARKS = ("==", "->", ">>>", "\\", "{", "}", "[", "]", "|", "=", "#", "://")


@dataclass(frozen=True)
class Item:
    """One corpus text; `source` is the module whose docstrings it came from."""

    id: int
    kind: str
    words: int
    source: str
    text: str


def docstrings(module_name: str) -> list[str]:
    """Docstrings of a module and of what it defines, in a stable (sorted) order.

    Only public objects defined in the module itself count, so re-exports do not repeat
    text and the result does not depend on what else was imported (libraries patch
    private helpers, e.g. typing's, at import time); `__doc__` is read directly because
    inspect.getdoc would inherit base-class docs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated modules and aliases still have prose
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return []
        found = [module.__doc__]
        for name in sorted(vars(module)):
            obj = getattr(module, name, None)
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            found.append(obj.__doc__)
            if inspect.isclass(obj):
                members = vars(obj)
                found += [
                    members[a].__doc__
                    for a in sorted(members)
                    if _public_method(a) and inspect.isfunction(members[a])
                ]
    return [doc for doc in found if isinstance(doc, str)]


def _public_method(name: str) -> bool:
    return not name.startswith("_") or name == "__init__"


def prose_paragraphs(doc: str) -> Iterator[str]:
    """Paragraphs that read as prose: code samples, tables and field lists are dropped."""
    for block in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        lines = block.splitlines()
        if not lines or any(line.startswith((" ", "\t")) for line in lines):
            continue  # indented: code, tables, parameter lists
        if any(line.lstrip().startswith((">>>", "...", ":", "-", "*", "+")) for line in lines):
            continue
        yield " ".join(line.strip() for line in lines)


def is_prose_sentence(sentence: str) -> bool:
    """A sentence of words, not of identifiers or code."""
    if not sentence[:1].isupper() or sentence[-1] not in ".!?":
        return False
    if any(mark in sentence for mark in _CODE_MARKS):
        return False
    words = sentence.split()
    if len(words) < 3:
        return False
    wordlike = sum(1 for w in words if _WORD.match(w))
    return wordlike / len(words) >= 0.8


def sentences(module_names: Iterable[str] = MODULES) -> Iterator[tuple[str, str]]:
    """(module, sentence) pairs in document order, each sentence once."""
    seen: set[str] = set()
    for module_name in module_names:
        for doc in docstrings(module_name):
            for paragraph in prose_paragraphs(doc):
                for sentence in _SENTENCE_END.split(re.sub(r"\s+", " ", paragraph).strip()):
                    if sentence not in seen and is_prose_sentence(sentence):
                        seen.add(sentence)
                        yield module_name, sentence


def build(seed: int = SEED, module_names: Iterable[str] = MODULES) -> list[Item]:
    """Cut the sentence stream into queries, passages and documents, then shuffle.

    The stream is walked once: the seeded generator picks the kind of the next item
    (per MIX) and its target length; a query is the next sentence of the right length,
    a passage or document is consecutive sentences of one module (real running text).
    """
    rng = random.Random(seed)
    stream = list(sentences(module_names))
    items: list[tuple[str, str, str]] = []
    used_bytes = 0
    pos = 0
    kinds, weights = list(MIX), list(MIX.values())
    while pos < len(stream) and len(items) < MAX_ITEMS and used_bytes < MAX_BYTES:
        kind = rng.choices(kinds, weights)[0]
        low, high = WORDS[kind]
        if kind == "query":
            while pos < len(stream) and not low <= len(stream[pos][1].split()) <= high:
                pos += 1
            if pos == len(stream):
                break
            source, text = stream[pos]
            pos += 1
        else:
            target = rng.randint(low, high)
            source = stream[pos][0]
            parts: list[str] = []
            count = 0
            while pos < len(stream) and stream[pos][0] == source and count < target:
                words = len(stream[pos][1].split())
                if count >= low and count + words > high:
                    break
                parts.append(stream[pos][1])
                count += words
                pos += 1
            if count < low:  # the module ran out of text; its leftover is not an item
                continue
            text = " ".join(parts)
        items.append((kind, source, text))
        used_bytes += len(text.encode()) + 80
    rng.shuffle(items)
    return [
        Item(id=i, kind=kind, words=len(text.split()), source=source, text=text)
        for i, (kind, source, text) in enumerate(items)
    ]


def dumps(items: Iterable[Item]) -> str:
    """The JSON Lines text of a corpus (stable key order, UTF-8, one item a line)."""
    return "".join(json.dumps(asdict(item), ensure_ascii=False) + "\n" for item in items)


def load(path: Path = CORPUS_PATH) -> list[Item]:
    """Read the committed corpus; build it in memory if the file is missing."""
    if not path.exists():
        return build()
    return [Item(**json.loads(line)) for line in path.read_text().splitlines() if line]


def sha256(path: Path = CORPUS_PATH) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary(items: list[Item]) -> dict[str, dict[str, float]]:
    """Count and mean words per kind: what the README's provenance note quotes."""
    out: dict[str, dict[str, float]] = {}
    for kind in WORDS:
        words = [item.words for item in items if item.kind == kind]
        out[kind] = {
            "count": len(words),
            "mean_words": round(sum(words) / len(words), 1) if words else 0.0,
            "min_words": min(words, default=0),
            "max_words": max(words, default=0),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"(re)write {CORPUS_PATH.name}")
    parser.add_argument("--check", action="store_true", help="does this Python rebuild it?")
    args = parser.parse_args(argv)
    items = build()
    text = dumps(items)
    if args.write:
        CORPUS_PATH.write_text(text)
    print(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "items": len(items),
                "bytes": len(text.encode()),
                "mix": summary(items),
            },
            indent=1,
        )
    )
    if args.check:
        same = CORPUS_PATH.exists() and CORPUS_PATH.read_text() == text
        print("identical to the committed corpus" if same else "differs from the committed file")
        return 0 if same else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
